#!/usr/bin/env bash
# jack_device_paused_stream.sh STEMD POSITION_SIGNAL_PY STEMCTL: a paused voice of a file streamed
# from disk (--preload-limit-mb 0: nothing is held in RAM) stays silent — when a client sends its
# play and its pause in one bundle, and when a device loss replays both in the fresh image (a play,
# then a /stemd/pause). The play waits for its stream to open off the control thread; its pause
# came to the engine after the voice had started and it was heard (session 28's "Left", quant28).
# Voice 1 plays the position fixture; voice 2 is the same fixture, paused: any sound of it breaks
# the fixture's positions in the capture, and it must be listed paused at 0.000 s.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_paused_stream
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
PROBLEMS=0
problem() {
  echo "$TEST_NAME: PROBLEM: $*" >&2
  PROBLEMS=$((PROBLEMS + 1))
}
device_stemd --log-level debug --preload-limit-mb 0
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
grep -q "loaded id .*streamed" "$D/stemd.log" || fail "the fixture is not streamed: $(grep 'loaded id' "$D/stemd.log")"
ctl load 2 "$D/pos.wav" >/dev/null || fail "load 2"
# One bundle, /stemd/play 2 and /stemd/pause 2, as a client sends "play it paused".
python3 - "$PORT" <<'PY' || fail "the bundle"
import socket, struct, sys
def pad(b): return b + b"\0" * (4 - len(b) % 4)
def msg(addr, i): return pad(addr.encode()) + pad(b",i") + struct.pack(">i", i)
body = b"".join(struct.pack(">i", len(m)) + m for m in (msg("/stemd/play", 2), msg("/stemd/pause", 2)))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(pad(b"#bundle") + struct.pack(">II", 0, 1) + body, ("127.0.0.1", int(sys.argv[1])))
for _ in range(2):
    print("reply:", s.recvfrom(65536)[0].split(b"\0")[0].decode())
PY
sleep 0.5
voice() {
  ctl voices --json | python3 -c '
import json, sys
v = [x for x in json.load(sys.stdin) if x["id"] == int(sys.argv[1])]
print("%.3f %s" % (v[0]["position_s"], v[0]["state"]) if v else "none")' "$1"
}
v2=$(voice 2) || fail "voices"
[ "$v2" = "0.000 paused" ] || problem "voice 2, played and paused in one bundle: $v2 (want 0.000 paused)"
# Voice 1 alone in the output: its positions unbroken (voice 2's sound breaks them).
unbroken() {
  python3 - "$(python3 "$POS" scan "$1")" "$2" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print(f"{sys.argv[2]}: {s['run']} frames of voice 1 unbroken, breaks {s['breaks'][:3]}")
if s["steady_from"] is None or s["breaks"] or s["run"] < 48000:
    sys.exit("voice 1's positions are broken: voice 2, paused, sounds")
PY
}
capture_start "$D/before.wav" || fail "capture"
sleep 1.5
capture_stop || fail "capture stop"
unbroken "$D/before.wav" "before the loss" || problem "before the loss (see above)"
testbed_kill_jackd  # the device disappears: the fresh image replays play 2 and pause 2
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" ||
  fail "no hand-over to a fresh image"
testbed_wait_for 8 grep -q "audio device not back yet (attempt" "$D/stemd.log" || fail "no retry logged"
back_and_capture "$D/after.wav"
grep -q "resume: /stemd/pause 2" "$D/stemd.log" || fail "voice 2's pause was not replayed"
unbroken "$D/after.wav" "after the return" || problem "after the return (see above)"
v2=$(voice 2) || fail "voices"
[ "$v2" = "0.000 paused" ] || problem "voice 2 after the return: $v2 (want 0.000 paused)"
grep -q "resume: 2 of 2 voices back at their frames: 1 playing, 1 paused" "$D/stemd.log" ||
  problem "the resume line: $(grep 'voices back' "$D/stemd.log")"
[ "$PROBLEMS" = 0 ] || fail "$PROBLEMS problems (see above)"
echo "$TEST_NAME: PASS"
