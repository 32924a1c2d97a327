#!/usr/bin/env bash
# arm64_deb.sh BUILD_DIR EMULATOR: the .deb of a cross build (preset arm64) is an arm64 package
# (issue 14): Architecture arm64, Depends found by dpkg-shlibdeps among the arm64 libraries (the
# same runtime packages as the amd64 .deb: tests/integration/deb_package.sh checks the rest of the
# package, which does not depend on the architecture), stripped aarch64 binaries, and the packaged
# stemd and stemctl run (under EMULATOR, qemu-aarch64) and accept the packaged config.
# Exit 0 pass, 1 fail, 77 skip (cpack, dpkg-deb or dpkg-shlibdeps missing).
set -uo pipefail
BUILD=$(cd "$1" && pwd)
emu=$2
TEST_NAME=arm64_deb
fails=0
fail() { echo "arm64_deb: FAIL: $*"; fails=$((fails + 1)); }
# shellcheck source-path=SCRIPTDIR source=deb_common.sh
source "$(dirname "$0")/deb_common.sh"
deb_build "$BUILD" "*_arm64"
[ "$(dpkg-deb --field "$deb" Architecture)" = arm64 ] || fail "Architecture is '$(dpkg-deb --field "$deb" Architecture)'"
deb_check_depends

dpkg-deb -x "$deb" "$tmp/root"
for b in stemd stemctl; do
  f="$tmp/root/usr/bin/$b"
  [ -x "$f" ] || { fail "no /usr/bin/$b"; continue; }
  machine=$(readelf -h "$f" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
  [ "$machine" = AArch64 ] || fail "/usr/bin/$b is for '$machine', not AArch64"
  readelf -S "$f" | grep -q '\.symtab' && fail "/usr/bin/$b is not stripped"
done
"$emu" "$tmp/root/usr/bin/stemd" --version | head -1 | grep -q '^stemd ' || fail "the packaged stemd does not run"
"$emu" "$tmp/root/usr/bin/stemctl" --help >/dev/null 2>&1 || fail "the packaged stemctl does not run"
# The packaged config is accepted by the packaged binary (offline: the null backend, no OSC).
STEMD_NO_CONFIG_SEARCH=1 timeout -k 5 120 "$emu" "$tmp/root/usr/bin/stemd" --config "$tmp/root/etc/stemd/stemd.conf" \
  --backend null --no-osc --duration 0.05 >"$tmp/run.log" 2>&1 || { fail "the packaged config is refused:"; cat "$tmp/run.log"; }

[ "$fails" -eq 0 ] && echo "arm64_deb: ok" && exit 0
exit 1
