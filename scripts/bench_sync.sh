#!/usr/bin/env bash
# bench_sync.sh: the two-daemon sync figures of docs/sync.md (issue 17), by hand.
#
# Two stemd daemons on two private JACK dummy servers (the test bed, scripts/testbed.sh), joined
# by Ableton Link over loopback: quantised plays sent to each at different moments within a bar,
# a late joiner, tempo changes; then timetagged starts without Link. Onsets are captured at each
# server's ports against CLOCK_MONOTONIC_RAW (stemd-jack-onsets). What it prints ("sync: … summary")
# is what docs/sync.md quotes.
#
#   scripts/bench_sync.sh [BUILD_DIR=build/release] [TRIALS=20] [MAX_US=1000]
# STEMD_SYNC_PERIOD (default 256) sets the JACK period; TESTBED_JACKD_RT=0 runs the servers
# without real-time scheduling (a loaded machine then misses cycles: see docs/sync.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build/release}
TRIALS=${2:-20}
MAX_US=${3:-1000}
for t in src/stemd tests/tools/stemd-gen-fixture tests/tools/stemd-jack-onsets; do
  [ -x "$BUILD/$t" ] || { echo "bench_sync: $BUILD/$t not built (cmake --build --preset release)" >&2; exit 2; }
done
exec "$ROOT/tests/integration/jack_sync.sh" "$BUILD/src/stemd" "$BUILD/tests/tools/stemd-gen-fixture" \
  "$BUILD/tests/tools/stemd-jack-onsets" "$TRIALS" "$MAX_US"
