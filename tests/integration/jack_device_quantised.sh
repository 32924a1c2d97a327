#!/usr/bin/env bash
# jack_device_quantised.sh STEMD POSITION_SIGNAL_PY STEMCTL: a device loss in a quantised setup
# (outside pass 28, user H1 and M1). At 60 bpm with /stemd/quantize 8 (a bar of 8 s), voice 1
# plays the position fixture and voice 2 (the same fixture, id 2) is played quantised and
# paused before its bar. Then the JACK server dies and comes back.
#  - Before the loss: the pause sent before the bar holds voice 2 silent at its first frame after
#    the bar (it played from the bar on, while `voices` and the status said "paused").
#  - After the return: voice 1 plays on from the frame where it stopped within ~1 s of the
#    server's return (the resumed plays waited for the next bar: up to 8 s of silence here), and
#    voice 2 stays paused and silent (its replayed pause came before its replayed, quantised play
#    and was lost). Any sound of voice 2 breaks the fixture's positions in the capture.
#  - Just before the loss, /stemd/quantize 64 and voice 3 (the fixture again) played: it waits
#    for its bar (up to 64 s) through the hand-over. After the return it still waits, for the same
#    bar of the carried beat (outside pass 29, M1: it was replayed at once, off the grid); its
#    sound would break voice 1's positions in the capture.
#  - The log counts voices, not their messages: "3 of 3 voices back …: 1 playing, 1 paused, 1
#    starting on the next bar".
#  - Without Link the beat goes on through the hand-over (user L7: it restarted at 0).
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_quantised
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
device_stemd --log-level debug --bpm 60  # the stems' own tempo: players at rate 1 (bit-exact)
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
ctl send /stemd/quantize 8 >/dev/null || fail "quantize"
ctl load 2 "$D/pos.wav" >/dev/null || fail "load 2"
started=$(ctl play 2) || fail "play 2: $started"
ctl pause 2 >/dev/null || fail "pause 2"
echo "$TEST_NAME: $started"
wait_s=$(sed -n 's/.*, in \([0-9.]*\) s.*/\1/p' <<<"$started")
[ -n "$wait_s" ] || fail "the quantised play does not say when it starts: $started"
# Past voice 2's bar, then 1.5 s of output: voice 1 alone, its positions unbroken.
sleep "$(python3 -c "print(float('$wait_s') + 0.5)")"
# A voice's position (file seconds) and state, from `stemctl voices --json`.
voice() {
  ctl voices --json | python3 -c '
import json, sys
v = [x for x in json.load(sys.stdin) if x["id"] == int(sys.argv[1])]
print("%.3f %s" % (v[0]["position_s"], v[0]["state"]) if v else "none")' "$1"
}
v2=$(voice 2) || fail "voices"
[ "$v2" = "0.000 paused" ] || problem "voice 2, paused before its bar, after the bar: $v2 (want 0.000 paused)"
capture_start "$D/before.wav" || fail "capture"
sleep 1.5
capture_stop || fail "capture stop"
scan=$(python3 "$POS" scan "$D/before.wav") || fail "scan"
python3 - "$scan" <<'PY' || problem "before the loss (see above)"
import json, sys
s = json.loads(sys.argv[1])
print(f"before the loss: {s['run']} frames of voice 1 unbroken, breaks {s['breaks'][:3]}")
if s["steady_from"] is None or s["breaks"] or s["run"] < 48000:
    sys.exit("voice 1's positions are broken: voice 2, paused before its bar, sounds")
PY

# The beat count (status, 60 bpm: a beat a second) just before the loss, and when.
beat() { ctl status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["beat"])'; }
ctl send /stemd/quantize 64 >/dev/null || fail "quantize 64"
ctl load 3 "$D/pos.wav" >/dev/null || fail "load 3"
beat_before=$(beat) || fail "status"
t_beat_before=$(date +%s%N)
started3=$(ctl play 3) || fail "play 3: $started3"
wait3=$(sed -n 's/.*, in \([0-9.]*\) s.*/\1/p' <<<"$started3")
[ -n "$wait3" ] || fail "the quantised play 3 does not say when it starts: $started3"
# Its bar, as a beat count (a beat a second): the next multiple of 64.
bar3=$(python3 -c "import math; print(64 * math.ceil(($beat_before + $wait3 - 0.5) / 64))")
echo "$TEST_NAME: voice 3 $started3 (beat $bar3)"
testbed_kill_jackd  # the device disappears
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" ||
  fail "no hand-over to a fresh image"
testbed_wait_for 8 grep -q "audio device not back yet (attempt" "$D/stemd.log" || fail "no retry logged"
back_and_capture "$D/after.wav"
lost_at=$(sed -n 's|.*resume: /stemd/play 1 [^ ]* [^ ]* \([0-9][0-9]*\) .*|\1|p' "$D/stemd.log" | head -1)
[ -n "$lost_at" ] || fail "no resumed voice 1 in the log"
grep -q "resume: /stemd/pause 2" "$D/stemd.log" || fail "voice 2's pause was not replayed"
scan=$(python3 "$POS" scan "$D/after.wav") || fail "scan"
python3 - "$scan" "$lost_at" "$t_back" "$t_cap" <<'PY' || problem "after the return (see above)"
import json, sys
s = json.loads(sys.argv[1]); lost_at = int(sys.argv[2])
t_back, t_cap = int(sys.argv[3]), int(sys.argv[4])
if s["first_sound"] is None: sys.exit("the capture after the return is silent")
delay = (t_cap - t_back) / 1e9 + s["first_sound"] / 48000
print(f"after the return: sound {delay:.3f} s after the server was back; {s['run']} frames unbroken, "
      f"breaks {s['breaks'][:3]}")
if delay > 1.2: sys.exit(f"voice 1 sounded {delay:.2f} s after the device came back (> ~1 s: it waited for the bar?)")
if s["steady_from"] is None: sys.exit("no steady position run in the capture")
start = s["position"] - (s["steady_from"] - s["first_sound"])
if start != lost_at: sys.exit(f"voice 1 resumed at frame {start}, not where it stopped ({lost_at})")
if s["breaks"]: sys.exit(f"voice 1's positions are broken after the return: voice 2, paused, sounds")
if s["run"] < 48000 * 2: sys.exit(f"only {s['run']} frames ran on after resuming")
PY
beat_after=$(beat) || fail "status"
t_beat_after=$(date +%s%N)
# Without Link the beat goes on through the hand-over (it restarted at 0: user L7).
python3 - "$beat_before" "$t_beat_before" "$beat_after" "$t_beat_after" <<'PY' || problem "the beat after the return"
import sys
b0, t0, b1, t1 = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
want = b0 + (t1 - t0) / 1e9  # 60 bpm
print(f"beat {b0:.2f} before the loss, {b1:.2f} after the return ({(t1 - t0) / 1e9:.2f} s later: want {want:.2f})")
if abs(b1 - want) > 0.3: sys.exit("the beat did not go on through the hand-over")
PY
v2=$(voice 2) || fail "voices"
[ "$v2" = "0.000 paused" ] || problem "voice 2 after the return: $v2 (want 0.000 paused)"
# Voice 3 still waits for its bar, the same one: "starting in S s" with the beat + S on it (the
# beat read just before and just after the list: a slow stemctl under load widens the window).
b0=$(beat) || fail "status"
v3=$(ctl voices --json | python3 -c '
import json, sys
v = [x for x in json.load(sys.stdin) if x["id"] == 3]
print(v[0]["state"] if v else "none")') || fail "voices"
b1=$(beat) || fail "status"
python3 - "$v3" "$b0" "$b1" "$bar3" <<'PY' || problem "voice 3 after the return (see above)"
import re, sys
state, b0, b1, bar = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
m = re.fullmatch(r"starting in ([0-9.]+) s", state)
if not m: sys.exit(f"voice 3, waiting for its bar at the loss, is {state!r} after the return (want 'starting in …')")
s = float(m.group(1))  # 60 bpm: a beat a second; the list rounds to 0.1 s
print(f"voice 3 after the return: {state}: at beat {b0 + s:.2f} .. {b1 + s:.2f} (its bar: {bar:.0f})")
if not b0 + s - 0.2 <= bar <= b1 + s + 0.2: sys.exit(f"voice 3 does not start on its bar {bar:.0f}")
PY
st=$(ctl status --json) || fail "status"
python3 - "$st" <<'PY' || problem "status after the return"
import json, sys
s = json.loads(sys.argv[1])
if s["voices"] != 3 or s.get("voices_paused") != 1: sys.exit(f"voices {s['voices']}, paused {s.get('voices_paused')}")
PY
grep -q "resume: 3 of 3 voices back at their frames: 1 playing, 1 paused, 1 starting on the next bar" "$D/stemd.log" ||
  problem "the resume line does not count voices: $(grep 'voices back\|playing again' "$D/stemd.log")"
problems_or_fail
echo "$TEST_NAME: PASS"
