#!/usr/bin/env bash
# jack_device_timed.sh STEMD POSITION_SIGNAL_PY STEMCTL: a start timed for later WITHOUT a quantum
# keeps its time through a device loss (session 30; loss29's "Left": it was replayed at once).
# Voice 1 plays the position fixture (--play). Id 3 gets a play in an OSC bundle timed 20 s ahead
# (a timetag: wall time), and crowdstream's `/play C PATH 21` loads deck C's base id 2100 and
# starts it 21 s after its arrival (start_at). Then the JACK server dies and comes back: the new
# image's stream clock counts from frame 0, so the hand-over carries each start as the wall time
# it is heard at ("@TIME /stemd/play …"), and the new image maps it to its own frames.
#  - After the return both still wait, "starting in S s" with now + S at their times (± 0.3 s);
#    the resume line says "2 starting at their time".
#  - 2 s past its time, voice 3 plays, its position about 2 s (± 0.3 s): it started at its time.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_timed
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
device_stemd --log-level debug
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
ctl load 3 "$D/pos.wav" >/dev/null || fail "load 3"
# /stemd/play 3 in a bundle timed 20 s ahead (NTP timetag); the answer is read back.
t3=$(python3 - "$PORT" <<'PY'
import socket, struct, sys, time
def pad(b): return b + b"\0" * (4 - len(b) % 4)
msg = pad(b"/stemd/play") + pad(b",i") + struct.pack(">i", 3)
t = time.time() + 20.0
ntp = int((t + 2208988800) * (1 << 32))
bundle = pad(b"#bundle") + struct.pack(">Q", ntp) + struct.pack(">i", len(msg)) + msg
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(bundle, ("127.0.0.1", int(sys.argv[1])))
reply = s.recv(2048)
if not reply.startswith(b"/done"): sys.exit(f"the timed play was answered {reply!r}")
print(f"{t:.6f}")
PY
) || fail "the timed play of id 3: $t3"
tc=$(python3 -c 'import time; print(f"{time.time() + 21.0:.6f}")')
ctl send /play C "$D/pos.wav" 21.0 >/dev/null || fail "/play C … 21"
# A voice's state ("starting in S s", "playing"…) and position (file seconds), from `stemctl voices --json`.
voice() {
  ctl voices --json | python3 -c '
import json, sys
v = [x for x in json.load(sys.stdin) if x["id"] == int(sys.argv[1])]
print("%.3f %s" % (v[0]["position_s"], v[0]["state"]) if v else "none")' "$1"
}
# Voice ID waits, "starting in S s", with now + S at its time T: now is taken before and after the
# list (a slow stemctl under load widens the window); S rounds to 0.1 s and counts to the frame
# rendered, heard an output latency (≤ 50 ms here) later.
waits_for() {
  local id=$1 t=$2 when=$3 v t0 t1
  t0=$(date +%s.%N)
  v=$(voice "$id") || fail "voices"
  t1=$(date +%s.%N)
  python3 - "$id" "$v" "$t" "$when" "$t0" "$t1" <<'PY' || problem "voice $id $when (see above)"
import re, sys
vid, v, t, when, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
m = re.fullmatch(r"[0-9.]+ starting in ([0-9.]+) s", v)
if not m: sys.exit(f"voice {vid} {when}: {v!r} (want 'starting in …': its start is timed for later)")
s = float(m.group(1))
print(f"voice {vid} {when}: {v}: its time {t - (t0 + s):+.2f} .. {t - (t1 + s):+.2f} s from now + S")
if not t0 + s - 0.2 <= t <= t1 + s + 0.2: sys.exit(f"voice {vid} {when} does not start at its time")
PY
}
waits_for 3 "$t3" "before the loss"
waits_for 2100 "$tc" "before the loss"
testbed_kill_jackd  # the device disappears
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" ||
  fail "no hand-over to a fresh image"
testbed_wait_for 8 grep -q "audio device not back yet (attempt" "$D/stemd.log" || fail "no retry logged"
back_and_capture "$D/after.wav"
waits_for 3 "$t3" "after the return"
waits_for 2100 "$tc" "after the return"
grep -q "resume: 3 of 3 voices back at their frames: 1 playing, 0 paused, 2 starting at their time (0 whose" \
  "$D/stemd.log" || problem "the resume line: $(grep 'voices back' "$D/stemd.log")"
# 2 s past voice 3's time: it plays from about 2 s into its file.
sleep "$(python3 -c "import time; print(max(0.0, $t3 + 2.0 - time.time()))")"
t0=$(date +%s.%N)
v3=$(voice 3) || fail "voices"
t1=$(date +%s.%N)
python3 - "$v3" "$t3" "$t0" "$t1" <<'PY' || problem "voice 3 after its time (see above)"
import sys
pos, state = sys.argv[1].split(" ", 1)
t3, t0, t1 = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"voice 3 {t0 - t3:.2f} .. {t1 - t3:.2f} s after its time: {state}, at {pos} s")
if state != "playing": sys.exit(f"voice 3 is {state!r} after its time")
if not t0 - t3 - 0.2 <= float(pos) <= t1 - t3 + 0.1: sys.exit(f"voice 3 is at {pos} s: it did not start at its time")
PY
problems_or_fail
echo "$TEST_NAME: PASS"
