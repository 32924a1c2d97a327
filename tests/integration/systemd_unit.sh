#!/usr/bin/env bash
# systemd_unit.sh STEMD_BINARY SOURCE_DIR: the unit file passes `systemd-analyze verify` (and the
# user unit systemd/stemd-user.service `systemd-analyze verify --user`) and
# its exposure score (`systemd-analyze security --offline=true`) is at most 2.0. PID 1 is not
# systemd on the build machines, so the unit is checked, not started (testbed.md).
# Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).
set -uo pipefail
STEMD=$1 SRC=$2
command -v systemd-analyze >/dev/null || { echo "systemd_unit: SKIP (no systemd-analyze)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify checks that ExecStart exists: point it at the built binary
sed "s|/usr/bin/stemd|$STEMD|" "$SRC/systemd/stemd.service" >"$tmp/stemd.service"
if ! out=$(systemd-analyze verify "$tmp/stemd.service" 2>&1) || [ -n "$out" ]; then
  echo "systemd_unit: FAIL: systemd-analyze verify:"; echo "$out"; exit 1
fi
score=$(systemd-analyze security --offline=true "$tmp/stemd.service" 2>&1 | sed -n 's/.*Overall exposure level for stemd.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "systemd_unit: FAIL: no exposure score"; exit 1; }
echo "systemd_unit: exposure level $score (aim ≤ 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "systemd_unit: FAIL: exposure $score > 2.0"; exit 1; }
# /proc/asound stays visible: stemd reads it to resolve ALSA card names (hw:CARD=DAC, the Pi
# guide's device) and to diagnose a busy device; ProcSubset=pid hid it (the unit had it, so the
# Pi guide's device name could not resolve under the service; found by a new-user pass).
if grep -Eq '^ProcSubset=pid' "$SRC/systemd/stemd.service"; then
  echo "systemd_unit: FAIL: ProcSubset=pid hides /proc/asound (ALSA card names)"; exit 1
fi
# The user unit (systemctl --user): verified with a user manager's view; it needs a runtime
# directory, which a build machine's root has not: a private one is given.
mkdir -p "$tmp/user"
sed "s|/usr/bin/stemd|$STEMD|" "$SRC/systemd/stemd-user.service" >"$tmp/user/stemd.service"
mkdir -p "$tmp/run" && chmod 700 "$tmp/run"
if ! out=$(XDG_RUNTIME_DIR="$tmp/run" systemd-analyze verify --user "$tmp/user/stemd.service" 2>&1) || [ -n "$out" ]; then
  echo "systemd_unit: FAIL: systemd-analyze verify --user (user unit):"; echo "$out"; exit 1
fi
grep -q '^ExecStart=/usr/bin/stemd$' "$SRC/systemd/stemd-user.service" ||
  { echo "systemd_unit: FAIL: the user unit should start stemd without --config (the config search)"; exit 1; }
grep -q '^RuntimeDirectory=stemd$' "$SRC/systemd/stemd-user.service" ||
  { echo "systemd_unit: FAIL: the user unit should give the hand-over file a RuntimeDirectory (not /tmp)"; exit 1; }
echo "systemd_unit: user unit verified"
echo "systemd_unit: PASS"
