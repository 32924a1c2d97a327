#!/usr/bin/env bash
# setup_daemon.sh SOURCE_DIR: `scripts/setup.sh --daemon` (a Raspberry Pi building stemd for
# itself) installs only what the daemon and stemctl need — a subset of the full list, none of the
# test, benchmark or browser packages — and configures a build without tests that still has both
# programs. Reads setup.sh's --dry-run, so it installs nothing; configures in a temporary
# directory (the build itself is what scripts/setup.sh --daemon runs; it took 15 s with ccache,
# /tmp/b-notests on 2026-12-04). Exit 0 pass, 1 fail.
set -uo pipefail
SRC=$1
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-setup-daemon.XXXXXX")
trap 'rm -rf "$D"' EXIT
fail() { echo "setup_daemon: FAIL: $*" >&2; exit 1; }

full=$(bash "$SRC/scripts/setup.sh" --dry-run) || fail "setup.sh --dry-run: exit $?"
daemon=$(bash "$SRC/scripts/setup.sh" --daemon --dry-run) || fail "setup.sh --daemon --dry-run: exit $?"
pk() { sed -n 's/^packages: //p' <<<"$1" | tr ' ' '\n' | sort -u; }
[ -n "$(pk "$daemon")" ] || fail "no package list from --daemon --dry-run: $daemon"
extra=$(comm -23 <(pk "$daemon") <(pk "$full"))
[ -z "$extra" ] || fail "--daemon installs packages the full setup does not: $extra"
for p in chromium supercollider-server libgtest-dev libbenchmark-dev clang jackd2 pipewire; do
  pk "$daemon" | grep -qx "$p" && fail "--daemon installs the test-only package $p"
done
grep -qi "playwright\|nodejs" <<<"$daemon" && fail "--daemon sets up the browser test's node and playwright-core: $daemon"
grep -qx "build: cmake --preset release -DSTEMD_BUILD_TESTS=OFF" <<<"$daemon" || fail "--daemon build line: $daemon"
bash "$SRC/scripts/setup.sh" --daemon --arm64 --dry-run >/dev/null 2>&1 && fail "--daemon --arm64 accepted"

# Every package --daemon names exists in the machine's package lists (a typo would stop a Pi's setup).
if command -v apt-cache >/dev/null; then
  for p in $(pk "$daemon"); do
    apt-cache show "$p" >/dev/null 2>&1 || fail "--daemon names $p, which apt does not know"
  done
fi

# The build it configures: the daemon and stemctl, no tests.
cmake -S "$SRC" -B "$D/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTEMD_BUILD_TESTS=OFF >"$D/cfg.log" 2>&1 ||
  { tail -20 "$D/cfg.log" >&2; fail "configure without tests"; }
targets=$(ninja -C "$D/b" -t targets all 2>/dev/null)
for t in src/stemd src/stemctl; do
  grep -q "^$t:" <<<"$targets" || fail "no $t target without tests"
done
grep -q "stemd_unit_tests" <<<"$targets" && fail "tests are built with STEMD_BUILD_TESTS=OFF"

# A build directory --daemon configured without tests gets them back at the next plain configure
# (setup.sh and test.sh run `cmake --preset X`): the presets set STEMD_BUILD_TESTS every time.
# In a copy of the tree, whose build/release is its own.
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  mkdir -p "$D/tree"
  git -C "$SRC" ls-files -z --cached --others --exclude-standard | (cd "$SRC" && xargs -0 cp --parents -t "$D/tree") 2>/dev/null ||
    fail "copy of the tree"
  (cd "$D/tree" && cmake --preset release -DSTEMD_BUILD_TESTS=OFF >"$D/p1.log" 2>&1) || fail "preset without tests"
  grep -q "^STEMD_BUILD_TESTS:BOOL=OFF" "$D/tree/build/release/CMakeCache.txt" || fail "-DSTEMD_BUILD_TESTS=OFF not taken"
  (cd "$D/tree" && cmake --preset release >"$D/p2.log" 2>&1) || fail "preset again"
  grep -q "^STEMD_BUILD_TESTS:BOOL=ON" "$D/tree/build/release/CMakeCache.txt" ||
    fail "a plain cmake --preset release after --daemon kept the tests off"
fi
echo "setup_daemon: pass"
