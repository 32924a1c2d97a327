#!/usr/bin/env bash
# shellcheck disable=SC2031  # measure() runs in a subshell on purpose; $out is never changed
# Command-to-sound latency benchmark (issue 3): OSC /stemd/play → first output sample, on the
# headless JACK test bed (../shared/testbed.md), at 256 and 1024 frames. Prints a markdown
# table on stdout; progress goes to stderr. A benchmark: it reports, never passes or fails
# (exit 1 only when a run could not be measured at all).
#
# For each period N: a private jackd (dummy driver, -p N, 48 kHz) — first left idle for
# IDLE seconds to count the VM's own xruns (the baseline the figures must be read against),
# then stemd --backend portaudio --device system --buffer-size N, and stemd-jack-latency on
# stemd:out_0/out_1 for RUNS runs of a 1 s full-scale noise burst (loaded once, played,
# stopped, silence between runs). Latency = send (CLOCK_MONOTONIC_RAW) → the time the buffer
# holding the first loud sample leaves the JACK graph (its cycle's end, + the sample's offset);
# see tests/tools/jack_latency.cpp. "cycle" is the same from the start of that cycle.
#
#   scripts/bench_latency.sh [--runs 20] [--idle 10] [--periods "256 1024"] [--dialect native]
#                            [--build-dir DIR]   (default build/release, built if needed)
#                            [--keep DIR]        (keep each run's logs and raw output in DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

runs=20 idle=10 periods="256 1024" dialect=native build="" keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --idle) idle=$2; shift ;;
    --periods) periods=$2; shift ;;
    --dialect) dialect=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --keep) keep=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_latency.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$build" ]; then
  build=build/release
  [ -f "$build/CMakeCache.txt" ] || cmake --preset release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target stemd stemd-gen-fixture stemd-jack-latency >&2
fi
STEMD=$build/src/stemd GEN=$build/tests/tools/stemd-gen-fixture LAT=$build/tests/tools/stemd-jack-latency
for b in "$STEMD" "$GEN" "$LAT"; do
  [ -x "$b" ] || { echo "bench_latency.sh: $b is missing (libjack-jackd2-dev installed?)" >&2; exit 1; }
done
command -v jackd >/dev/null || { echo "bench_latency.sh: jackd is not installed" >&2; exit 1; }

out=$(mktemp -d "${TMPDIR:-/tmp}/stemd-bench-latency.XXXXXX")
trap 'rm -rf "$out"' EXIT

# One period's measurement, in a subshell so testbed.sh's EXIT trap cleans up after each.
measure() {
  local n=$1 res=$out/$1
  mkdir -p "$res"
  (
    unset TESTBED_DIR
    # shellcheck source=scripts/testbed.sh
    . scripts/testbed.sh
    [ -n "$keep" ] && export TESTBED_KEEP=1
    testbed_start "$n" 48000 >&2
    d=$TESTBED_DIR
    x0=$(testbed_xruns); sleep "$idle"; x1=$(testbed_xruns)
    echo "idle_xruns $((x1 - x0))" >"$res/meta"
    "$GEN" "$d/burst.wav" --seconds 1 --rate 48000 --channels 2 --format pcm16 --kind noise --amp 0.9 \
      --seed 7 >&2
    "$STEMD" --backend portaudio --device system --buffer-size "$n" --osc-port 0 --log-level info \
      >"$d/stemd.log" 2>&1 &
    pid=$!
    testbed_track_pid "$pid"
    # shellcheck disable=SC2317  # called through testbed_wait_for
    has_port() { grep -q 'OSC on udp 127\.0\.0\.1:[0-9]' "$d/stemd.log"; }
    testbed_wait_for 10 has_port || { cat "$d/stemd.log" >&2; exit 1; }
    port=$(grep -o 'OSC on udp 127\.0\.0\.1:[0-9]*' "$d/stemd.log" | head -n1 | sed 's/.*://')
    sleep 1
    x2=$(testbed_xruns)
    rc=0
    "$LAT" --port "$port" --file "$d/burst.wav" --runs "$runs" --dialect "$dialect" >"$res/latency.txt" || rc=$?
    x3=$(testbed_xruns)
    echo "run_xruns $((x3 - x2))" >>"$res/meta"
    kill -TERM "$pid"; testbed_wait_pid "$pid" 10 || true
    underflows=$(grep -o 'device_underflows=[0-9]*' "$d/stemd.log" | tail -n1 | cut -d= -f2)
    echo "device_underflows ${underflows:-?}" >>"$res/meta"
    echo "loadavg $(cut -d' ' -f1 /proc/loadavg)" >>"$res/meta"
    [ -n "$keep" ] && { mkdir -p "$keep/$n"; cp "$d/stemd.log" "$d/jackd.log" "$res/latency.txt" "$keep/$n/"; }
    exit "$rc"
  )
}

status=0
for n in $periods; do
  echo "bench_latency: -p $n: idle baseline ${idle} s, then $runs runs" >&2
  measure "$n" || { echo "bench_latency: -p $n: measurement failed" >&2; status=1; }
  [ -f "$out/$n/latency.txt" ] && cat "$out/$n/latency.txt" >&2
done

get() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$1" 2>/dev/null; }
q() { awk -v i="$2" '{ print $i }' <<<"$1"; }

play=/stemd/play; [ "$dialect" = native ] || play=/play_stem
echo "OSC \`$play\` → first output sample on the JACK dummy test bed (48 kHz;"
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)). ms; periods in brackets."
echo
echo "| period | runs | min | median | p90 | max | cycle median | /done reply median / max | xruns idle ${idle} s / during runs | device underflows |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in $periods; do
  f=$out/$n/latency.txt m=$out/$n/meta
  [ -f "$f" ] || { echo "| $n | failed | | | | | | | | |"; continue; }
  l=$(get "$f" latency_ms) p=$(get "$f" latency_periods) c=$(get "$f" cycle_ms) r=$(get "$f" reply_ms)
  ms=$(awk -v n="$n" 'BEGIN { printf "%.2f", 1000 * n / 48000 }')
  printf '| %s (%s ms) | %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s | %s / %s | %s / %s | %s |\n' \
    "$n" "$ms" "$(get "$f" runs)" \
    "$(q "$l" 1)" "$(q "$p" 1)" "$(q "$l" 2)" "$(q "$p" 2)" "$(q "$l" 3)" "$(q "$p" 3)" "$(q "$l" 4)" "$(q "$p" 4)" \
    "$(q "$c" 2)" "$(q "$r" 2)" "$(q "$r" 4)" "$(get "$m" idle_xruns)" "$(get "$m" run_xruns)" \
    "$(get "$m" device_underflows)"
done
exit "$status"
