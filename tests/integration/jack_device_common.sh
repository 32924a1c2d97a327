# shellcheck shell=bash
# jack_device_common.sh: what the JACK device tests share (jack_device_wait.sh,
# jack_device_recover.sh). Source it at the top level after setting TEST_NAME, STEMD and POS
# (tests/tools/position_signal.py). It skips the test (77) without jackd, jack_wait,
# jack_capture or python3, sources scripts/testbed.sh and defines
#   fail REASON…         the reason and the end of stemd's log on stderr, exit 1 (first the
#                        server thawed if frozen, and the pid in LEFT, if any, killed: a helper
#                        process a defect left behind)
#   freeze / thaw        SIGSTOP / SIGCONT the test bed's server (a hung server in real life)
#   ctl ARGS…            "$STEMCTL" -p "$PORT" ARGS… (STEMCTL set by the test)
#   voices               "ID STATE POSITION_S VOLUME", a line per voice by id
#   back_and_capture FILE  the test bed's server started again and 3 s of stemd's output captured
#                        into FILE; t_back and t_cap (ns) say when the server was back and when the
#                        capture began; fails when stemd is not running (the same PID) after it
#   device_stemd ARGS…   $TESTBED_DIR/pos.wav (30 s at 48 kHz, every frame its own position),
#                        a free UDP port (PORT; $STEMD_TEST_OSC_PORT when set), and stemd in the background on the JACK device
#                        "system" at 1024 frames, ARGS, playing pos.wav (STEMD_PID, tracked by
#                        the test bed); its log is $TESTBED_DIR/stemd.log
# Call testbed_start first (it makes $TESTBED_DIR).
for t in jackd jack_wait jack_capture python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "$TEST_NAME: SKIP ($t not installed)"; exit 77; }
done
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/testbed.sh"

FROZEN=0
LEFT=""
freeze() { kill -STOP "$TESTBED_JACKD_PID" && FROZEN=1; }
thaw() { [ "$FROZEN" = 0 ] || { kill -CONT "$TESTBED_JACKD_PID"; FROZEN=0; }; }
# A failure never leaves the server stopped (the test bed's cleanup could not stop it then).
fail() {
  [ -z "$LEFT" ] || kill -KILL "$LEFT" 2>/dev/null
  thaw
  echo "$TEST_NAME: FAIL: $*" >&2
  grep -v "ALSA\|cannot find card" "$TESTBED_DIR/stemd.log" | tail -25 >&2
  exit 1
}
# What is wrong is noted and the test goes on (one run says all of it); `problems_or_fail` at the end.
PROBLEMS=0
problem() {
  echo "$TEST_NAME: PROBLEM: $*" >&2
  PROBLEMS=$((PROBLEMS + 1))
}
problems_or_fail() { [ "$PROBLEMS" = 0 ] || fail "$PROBLEMS problems (see above)"; }

ctl() { "$STEMCTL" -p "$PORT" "$@"; }
# id state position_s volume, a line per voice, by id (stemctl voices --json; volume -1: none).
voices() {
  ctl voices --json | python3 -c '
import json, sys
for v in sorted(json.load(sys.stdin), key=lambda v: v["id"]):
    print(v["id"], v["state"].split(" ")[0], "%.3f" % v["position_s"], "%.2f" % (v.get("volume") or -1))'
}

back_and_capture() {
  testbed_restart_jackd || fail "jackd did not restart"
  # shellcheck disable=SC2034  # read by the test
  t_back=$(date +%s%N)
  capture_start "$1" || fail "capture"
  # shellcheck disable=SC2034
  t_cap=$(date +%s%N)
  sleep 3
  capture_stop || fail "capture stop"
  kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd is not running (same PID) after the device came back"
}

device_stemd() {
  python3 "$POS" gen "$TESTBED_DIR/pos.wav" 30 48000 || fail "fixture"
  PORT=${STEMD_TEST_OSC_PORT:-$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  "$STEMD" --backend portaudio --device system --buffer-size 1024 --osc-port "$PORT" "$@" \
    --play "$TESTBED_DIR/pos.wav" >"$TESTBED_DIR/stemd.log" 2>&1 &
  STEMD_PID=$!
  testbed_track_pid "$STEMD_PID"
}
