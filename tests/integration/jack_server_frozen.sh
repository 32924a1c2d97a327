#!/usr/bin/env bash
# jack_server_frozen.sh STEMD POSITION_SIGNAL_PY STEMCTL: outside pass 26, M1 — the JACK server is
# alive but FROZEN (SIGSTOP here; a hung jackd or a wedged PipeWire-JACK in real life). Before,
# 1 s without a callback made stemd hand over to a fresh image, whose main thread then waited in
# PortAudio's open (jack_client_open) before OSC was bound and before SIGTERM was acted on: no
# answers, SIGTERM ignored until the server ran again, short stalls a storm of re-execs, and the
# hand-over file left behind. Three runs on one test-bed server:
#   1. freeze under a playing stemd: OSC pings answered throughout, the status says the server
#      does not answer; SIGTERM during the freeze: exit 0 within the shutdown's bound, the state
#      file saved, no stemd-resume-PID.XXXXXX hand-over directory left;
#   2. two 1.3-s stalls then a 3-s freeze under a playing stemd: no hand-over (re-exec), pings
#      answered during the freeze, and after SIGCONT the same voice plays on (capture); only the
#      first stall's lines are logged (the others are counted for a summary: StallLog); the beat
#      runs on with wall time during the freeze and after it (it stood still: session 28's "Left");
#   3. stemd started while the server is frozen: OSC answers (device waiting, the server does not
#      answer), it plays once the server runs again, and SIGTERM then exits 0.
# No wall-clock performance is asserted: the waits are bounds, generous ones.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_server_frozen
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
# The hand-over file goes to $RUNTIME_DIRECTORY (as under the unit): a directory of this test's own.
export RUNTIME_DIRECTORY="$D/run"
mkdir -p "$RUNTIME_DIRECTORY"

# Pings for SECONDS, one every 0.3 s, each given 1 s: prints "answered unanswered".
pings() {
  local end=$(($(date +%s%N) + $1 * 1000000000)) ok=0 bad=0
  while [ "$(date +%s%N)" -lt "$end" ]; do
    if ctl -t 1 -q ping >/dev/null 2>&1; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
    sleep 0.3
  done
  echo "$ok $bad"
}
no_handover_file() {
  local left
  left=$(ls -d "$RUNTIME_DIRECTORY"/stemd-resume-* "/tmp/stemd-resume-$1".* 2>/dev/null)
  [ -z "$left" ] || fail "$2: the hand-over file was left behind: $left"
}

# ---- 1. a freeze under a playing stemd; SIGTERM during it ----
device_stemd --log-level debug --state-file "$D/state1" --shutdown-fade-ms 50
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
sleep 1
freeze
read -r ok bad < <(pings 4)
echo "$TEST_NAME: run 1: server frozen 4 s: pings answered $ok, unanswered $bad"
[ "$bad" -eq 0 ] && [ "$ok" -gt 0 ] || fail "run 1: OSC did not answer while the server was frozen ($bad of $((ok + bad)) pings unanswered)"
st=$(ctl -t 2 status 2>&1) || fail "run 1: no status while the server was frozen: $st"
grep -Eq "device +lost" <<<"$st" || fail "run 1: the status does not say the device is lost: $st"
grep -q "does not answer" <<<"$st" || fail "run 1: the status does not say the audio server does not answer: $st"
kill -TERM "$STEMD_PID"
rc=0
testbed_wait_pid "$STEMD_PID" 3 || rc=$?
# The shutdown's own bound is --shutdown-fade-ms + 2 s (shutdown.cpp); 3 s leaves a margin.
[ "$rc" -ne 124 ] || fail "run 1: stemd still running 3 s after SIGTERM with the server frozen"
[ "$rc" -eq 0 ] || fail "run 1: stemd exited $rc after SIGTERM with the server frozen, expected 0"
grep -q "^stemd-state 1$" "$D/state1" && grep -q "^end$" "$D/state1" || fail "run 1: no complete state file"
grep -q "^/stemd/load 1 " "$D/state1" || fail "run 1: the state file lacks the loaded file: $(cat "$D/state1")"
no_handover_file "$STEMD_PID" "run 1"
thaw
echo "$TEST_NAME: run 1: SIGTERM during the freeze: exit 0, state saved, no hand-over file"

# ---- 2. short stalls, then a freeze, under a playing stemd: it plays on by itself ----
mv "$D/stemd.log" "$D/stemd.1.log"
device_stemd --log-level debug
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "run 2: stemd did not start playing"
sleep 1
for _ in 1 2; do
  freeze
  sleep 1.3
  thaw
  sleep 1
done
n=$(grep -c "resuming after the audio device was lost" "$D/stemd.log")
[ "$n" -eq 0 ] || fail "run 2: two 1.3-s stalls of the server made $n hand-overs to a fresh image"
# The beat, the tempo and when: the beat runs on with wall time while no callback comes, and the
# grid keeps its phase with it after the freeze (it stood still by the freeze's length).
beat_now() { ctl status --json | python3 -c 'import json, sys, time; s = json.load(sys.stdin); print(s["beat"], s["tempo_bpm"], time.time())'; }
beat_on() {  # LABEL: the beat now against the one before the freeze, moved on with wall time
  python3 - "$1" "$beat0" "$(beat_now)" <<'PY' || fail "run 2: $1: the beat did not go on with wall time"
import sys
b0, bpm, t0 = map(float, sys.argv[2].split())
b1, _, t1 = map(float, sys.argv[3].split())
want = b0 + (t1 - t0) * bpm / 60
print(f"run 2: beat {b1:.2f} {sys.argv[1]}, {t1 - t0:.2f} s after {b0:.2f} at {bpm:.0f} bpm: want {want:.2f}")
sys.exit(0 if abs(b1 - want) <= 0.3 else 1)
PY
}
beat0=$(beat_now) || fail "run 2: status"
t_frozen=$(date +%s.%N)
freeze
read -r ok bad < <(pings 3)
echo "$TEST_NAME: run 2: server frozen 3 s: pings answered $ok, unanswered $bad"
[ "$bad" -eq 0 ] && [ "$ok" -gt 0 ] || fail "run 2: OSC did not answer while the server was frozen ($bad unanswered)"
beat_on "during the freeze"
thaw
t_thawed=$(date +%s.%N)
# The device's state follows every stall; the log gives the first in full and counts the others
# (StallLog): three stalls wrote three "asking" lines and three "plays on"/"back" lines before.
testbed_wait_for 10 sh -c "'$STEMCTL' -p $PORT -t 1 status 2>/dev/null | grep -Eiq 'device[ :]+running'" ||
  fail "run 2: the device is not back 10 s after SIGCONT"
beat_on "after the freeze"
# How long the device was lost counts from its last callback, not from the verdict 1–2 s later
# (outside pass 28, A3: a 45-s freeze read "back after 45.1 s" in the log, 43.1 s in the status).
lasted=$(ctl status --json | python3 -c 'import json, sys; print(json.load(sys.stdin).get("device_last_loss_s", -1))')
python3 -c 'import sys; lasted, frozen = float(sys.argv[1]), float(sys.argv[2]) - float(sys.argv[3]); print(f"run 2: frozen {frozen:.1f} s, device_last_loss_s {lasted:.1f} s"); sys.exit(0 if frozen - 1.0 <= lasted <= frozen + 1.0 else 1)' \
  "$lasted" "$t_thawed" "$t_frozen" || fail "run 2: device_last_loss_s is not how long the server was frozen"
n=$(grep -c "asking the audio server whether it answers" "$D/stemd.log")
[ "$n" -eq 1 ] || fail "run 2: three stalls of the server wrote $n 'asking the audio server' lines, expected 1"
n=$(grep -c "stalled for .* and plays on\|audio device back after" "$D/stemd.log")
[ "$n" -eq 1 ] || fail "run 2: three stalls of the server wrote $n 'plays on' lines, expected 1"
X0=$(testbed_xruns)
capture_start "$D/cap2.wav" || fail "run 2: capture"
sleep 2
capture_stop || fail "run 2: capture stop"
SLIPS=$(($(testbed_xruns) - X0 + $(capture_xruns || echo 0)))
kill -0 "$STEMD_PID" 2>/dev/null || fail "run 2: stemd is not running after the server ran again"
st=$(ctl -t 2 status 2>&1) || fail "run 2: status: $st"
grep -Eiq "device[ :]+running" <<<"$st" || fail "run 2: the status does not say the device runs: $st"
grep -Eq "voices +1 playing$" <<<"$st" || fail "run 2: the voice is not playing after the server ran again: $st"
testbed_position_unbroken "$POS" "$D/cap2.wav" "$TEST_NAME: run 2" "$SLIPS" 1024 || fail "run 2: see above"
kill -TERM "$STEMD_PID"
rc=0
testbed_wait_pid "$STEMD_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "run 2: stemd exited $rc after SIGTERM (124: still running after 5 s)"
no_handover_file "$STEMD_PID" "run 2"

# ---- 3. started while the server is frozen ----
mv "$D/stemd.log" "$D/stemd.2.log"
freeze
device_stemd --state-file "$D/state3"
for _ in $(seq 100); do ctl -t 0.2 -q ping >/dev/null 2>&1 && break; sleep 0.1; done
st=$(ctl -t 2 status 2>&1) || fail "run 3: OSC does not answer 10 s after a start against a frozen server: $st"
grep -Eiq "device[ :]+waiting" <<<"$st" || fail "run 3: the status does not say the device is waiting: $st"
grep -q "does not answer" <<<"$st" || fail "run 3: the status does not say the audio server does not answer: $st"
thaw
testbed_wait_for 10 grep -q "audio device 'system' appeared after" "$D/stemd.log" ||
  fail "run 3: stemd did not open the device within 10 s of the server running again"
testbed_wait_for 5 sh -c "'$STEMCTL' -p $PORT -t 1 status 2>/dev/null | grep -Eq 'voices +1 playing\$'" ||
  fail "run 3: the --play voice does not play once the server runs again"
kill -TERM "$STEMD_PID"
rc=0
testbed_wait_pid "$STEMD_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "run 3: stemd exited $rc after SIGTERM (124: still running after 5 s)"
no_handover_file "$STEMD_PID" "run 3"
echo "$TEST_NAME: PASS"
