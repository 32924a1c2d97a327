#!/usr/bin/env bash
# jack_device_kill_in_open.sh STEMD POSITION_SIGNAL_PY STEMCTL KILL_SHIM: the JACK server dies while
# stemd opens the device again after a loss — after the probe helper found it there, inside
# stemd's own open (loss29). PortAudio 19.6 then aborts the process (pa_jack.c:988 CleanUpStream
# or pa_jack.c:820 Terminate, `assert(err == 0)`): the daemon died, its voices with it; a loop of
# kills (/work/pass29/attack/t29_flap.sh) hit that window in 2 runs of 3.
# KILL_SHIM (tests/tools/jack_kill_shim.cpp, LD_PRELOAD) kills the server the moment stemd calls
# jack_port_register, once, when asked: the window is hit every run.
# Voice 1 (--play) plays, voice 2 is paused. The server is killed (a hand-over), started again
# and killed inside stemd's reopen, then started again for good.
#  - stemd is still running, the same PID; its log says in words what happened;
#  - after the return "2 of 2 voices back": voice 1 plays on, voice 2 is paused at its frame.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
SHIM=$(realpath "$4" 2>/dev/null)
TEST_NAME=jack_device_kill_in_open
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
[ -f "$SHIM" ] || { echo "$TEST_NAME: SKIP (no $4)"; exit 77; }
# Running, not a zombie (stemd is this script's child: an aborted one stays one until waited for).
alive() { [ -r "/proc/$STEMD_PID/status" ] && ! grep -q "^State:[[:space:]]*Z" "/proc/$STEMD_PID/status"; }
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
export STEMD_KILL_SHIM_FILE=$D/kill-at-register
LD_PRELOAD=$SHIM device_stemd --log-level debug
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
ctl load 2 "$D/pos.wav" >/dev/null || fail "load 2"
{ ctl play 2 >/dev/null && sleep 0.3 && ctl pause 2 >/dev/null; } || fail "play and pause 2"
sleep 0.5
before=$(voices) || fail "voices"
echo "$TEST_NAME: before the loss: $(tr '\n' ' ' <<<"$before")"
count() { grep -c "$1" "$D/stemd.log"; }
# One round: the device lost (the server killed: a hand-over), the server back and killed by the
# shim when stemd registers PORT in its reopen (the pid is in the file long before the server
# answers the probe helper), then back for good. PortAudio aborts in that open (out_1: its
# clean-up) or in the next one (out_0: the failed session's Pa_Terminate).
kill_in_open() {
  local port=$1 resumes aborts shims replays last
  testbed_kill_jackd
  testbed_wait_for 8 grep -q "audio device not back yet (attempt" "$D/stemd.log" || fail "no retry logged"
  resumes=$(count "resuming after the audio device was lost")
  aborts=$(count "opening the device again, and PortAudio aborted")
  shims=$(count "jack_kill_shim: the JACK server")
  replays=$(count "voices back at their frames")
  jackd "${TESTBED_JACKD_RTFLAGS[@]}" -n "$JACK_DEFAULT_SERVER" -d dummy -m -r 48000 -p 1024 >>"$D/jackd.log" 2>&1 &
  TESTBED_JACKD_PID=$!
  TESTBED_JACKD_KILLED=0
  echo "$TESTBED_JACKD_PID $port" >"$STEMD_KILL_SHIM_FILE"
  testbed_wait_for 15 sh -c "[ \$(grep -c 'jack_kill_shim: the JACK server' '$D/stemd.log') -gt $shims ]" ||
    fail "$port: the server was not killed inside stemd's open (no jack_port_register?)"
  wait "$TESTBED_JACKD_PID" 2>/dev/null
  TESTBED_JACKD_PID=""
  TESTBED_JACKD_KILLED=1
  rm -f /dev/shm/jack_sem.*_"$JACK_DEFAULT_SERVER"_* /dev/shm/jack_"$JACK_DEFAULT_SERVER"_* 2>/dev/null
  sleep 0.3
  alive || fail "$port: stemd died when the server went away inside its open"
  testbed_restart_jackd || fail "jackd did not restart"
  testbed_wait_for 10 sh -c "[ \$(grep -c 'voices back at their frames' '$D/stemd.log') -gt $replays ]" || {
    alive || fail "$port: stemd died (PortAudio's abort) when the server went away inside its open"
    fail "$port: the voices were not replayed"
  }
  alive || fail "$port: stemd is not running (same PID) after the device came back"
  # The abort was hit (else this round tested nothing), and the new image said so in words.
  [ "$(count "opening the device again, and PortAudio aborted")" -gt "$aborts" ] ||
    problem "$port: no abort inside PortAudio (the new image's resume line does not say one)"
  [ "$(count "resuming after the audio device was lost")" -gt "$((resumes))" ] || problem "$port: no fresh image"
  last=$(grep "voices back at their frames" "$D/stemd.log" | tail -1)
  grep -q "2 of 2 voices back" <<<"$last" || problem "$port: after the return: ${last##*resume: }"
  grep "Assertion" "$D/stemd.log" | tail -1 | sed "s/^/$TEST_NAME: $port: /"
}
kill_in_open out_1
kill_in_open out_0
a=$(voices) || fail "voices"
sleep 0.5
b=$(voices) || fail "voices"
echo "$TEST_NAME: after the return: $(tr '\n' ' ' <<<"$a")"
echo "$TEST_NAME: 0.5 s later: $(tr '\n' ' ' <<<"$b")"
python3 - "$before" "$a" "$b" <<'PY' || problem "the voices after the return (see above)"
import sys
def parse(t):
    return {int(l.split()[0]): l.split()[1:] for l in t.splitlines() if l.strip()}
before, a, b = (parse(t) for t in sys.argv[1:4])
bad = []
if 1 not in b or b[1][0] != "playing": bad.append(f"voice 1 is not playing: {b.get(1)}")
elif float(b[1][1]) <= float(a[1][1]): bad.append("voice 1's position does not move")
if 2 not in b or b[2][0] != "paused" or b[2][1] != before[2][1]:
    bad.append(f"voice 2 is not paused at {before[2][1]} s: {b.get(2)}")
if bad: sys.exit("; ".join(bad))
PY
problems_or_fail
echo "$TEST_NAME: PASS"
