#!/usr/bin/env bash
# jack_device_double_loss.sh STEMD POSITION_SIGNAL_PY STEMCTL: the device lost again the moment it
# came back (outside pass 29, H1). A fresh image replays the hand-over's voices only once the
# device has run 4 callbacks; a loss before that handed over a state without them, and with
# --state-file --restore-voices the state file was saved without them: every voice was gone, even
# after a reboot. With --state-file --restore-voices, voice 1 (--play) plays, voice 2 is paused
# and voice 3 plays at volume 0.5. The JACK server is killed, started again, and killed again as
# soon as stemd logs that the device is back (again, up to 3 times, until the loss falls before
# the voices were replayed); then it comes back for good.
#  - The state file keeps the voices while the device is away (the new image's first look at the
#    state rewrote it without them, the device lost once was enough), the second hand-over has
#    the 3 voices to restart, and the state file keeps them again.
#  - After the return: "3 of 3 voices back", voices 1 and 3 playing (their positions move), voice 2
#    paused at the frame where it was paused, voice 3 at its volume.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_double_loss
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
device_stemd --log-level debug --state-file "$D/state" --restore-voices
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
for id in 2 3; do ctl load "$id" "$D/pos.wav" >/dev/null || fail "load $id"; done
if ! { ctl play 2 >/dev/null && sleep 0.3 && ctl pause 2 >/dev/null && ctl play 3 >/dev/null &&
  ctl volume 3 0.5 >/dev/null; }; then
  fail "play, pause, volume"
fi
sleep 0.5
before=$(voices) || fail "voices"
echo "$TEST_NAME: before the loss: $(tr '\n' ' ' <<<"$before")"
count() { grep -c "$1" "$D/stemd.log"; }
testbed_kill_jackd
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" || fail "no hand-over"
# The new image's state file while the device is away (its first look, within a second): the
# voices it has not replayed yet are in it (a reboot now lost them all).
sleep 1.5
for id in 1 2 3; do
  grep -q "^/stemd/play $id " "$D/state" || problem "the state file lost voice $id during the first loss"
done
# The server back and lost again at once: jackd started here (not testbed_restart_jackd, whose
# wait for the server could outlast the window), killed when stemd says the device is back.
hit=0
for try in 1 2 3; do
  testbed_wait_for 8 grep -q "audio device not back yet (attempt" "$D/stemd.log" || fail "no retry logged"
  backs=$(count "audio device back after")
  resumes=$(count "voices to restart")
  replays=$(count "voices back at their frames")
  jackd "${TESTBED_JACKD_RTFLAGS[@]}" -n "$JACK_DEFAULT_SERVER" -d dummy -m -r 48000 -p 1024 \
    >>"$D/jackd.log" 2>&1 &
  TESTBED_JACKD_PID=$!
  TESTBED_JACKD_KILLED=0
  testbed_wait_for 15 sh -c "[ \$(grep -c 'audio device back after' '$D/stemd.log') -gt $backs ]" ||
    fail "the device did not come back"
  testbed_kill_jackd
  testbed_wait_for 8 sh -c "[ \$(grep -c 'voices to restart' '$D/stemd.log') -gt $resumes ]" ||
    fail "no hand-over after the second loss"
  if [ "$(count "voices back at their frames")" = "$replays" ]; then
    hit=1
    break
  fi
  echo "$TEST_NAME: try $try: the voices were replayed before the second loss; again"
done
[ "$hit" = 1 ] || fail "3 tries: the second loss never came before the voices were replayed (a loaded machine?)"
second=$(grep "voices to restart" "$D/stemd.log" | tail -1)
echo "$TEST_NAME: after the second loss: ${second##*resume: }"
grep -q ", 3 voices to restart" <<<"$second" || problem "the second hand-over does not have the 3 voices"
# The state file, written at the hand-over and again by the new image while it waits: its voices.
sleep 1.5
for id in 1 2 3; do
  grep -q "^/stemd/play $id " "$D/state" || problem "the state file lost voice $id while the device is away"
done
grep -q "^/stemd/pause 2 " "$D/state" || problem "the state file lost voice 2's pause"
replays=$(count "voices back at their frames")
testbed_restart_jackd || fail "jackd did not restart"
testbed_wait_for 10 sh -c "[ \$(grep -c 'voices back at their frames' '$D/stemd.log') -gt $replays ]" ||
  fail "the voices were not replayed"
last=$(grep "voices back at their frames" "$D/stemd.log" | tail -1)
grep -q "3 of 3 voices back" <<<"$last" || problem "after the return: ${last##*resume: }"
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
for id in (1, 3):
    if id not in b or b[id][0] != "playing": bad.append(f"voice {id} is not playing: {b.get(id)}")
    elif float(b[id][1]) <= float(a[id][1]): bad.append(f"voice {id}'s position does not move")
if 2 not in b or b[2][0] != "paused" or b[2][1] != before[2][1]:
    bad.append(f"voice 2 is not paused at {before[2][1]} s: {b.get(2)}")
if 3 in b and b[3][2] != "0.50": bad.append(f"voice 3 at volume {b[3][2]}, not 0.50")
if bad: sys.exit("; ".join(bad))
PY
problems_or_fail
echo "$TEST_NAME: PASS"
