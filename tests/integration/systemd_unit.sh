#!/usr/bin/env bash
# systemd_unit.sh STEMD_BINARY SOURCE_DIR: the unit file passes `systemd-analyze verify` and
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
echo "systemd_unit: PASS"
