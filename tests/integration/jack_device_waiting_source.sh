#!/usr/bin/env bash
# jack_device_waiting_source.sh STEMD POSITION_SIGNAL_PY STEMCTL: a source waiting for its missing
# file (a USB stick not there at start) across a device loss (outside pass 30, F1 HIGH). The
# hand-over did not carry the sources waiting: the new image neither waited for them nor wrote them
# to the state file again, so the stick's stems never came back, not when the stick was plugged in
# and not after a reboot. With --state-file --restore-voices and a state file naming source 2 on
# the missing stick with a looping voice, the JACK server is killed and started again:
#  - the new image says it waits for 1 source, `stemctl status` says so, and the state file keeps
#    source 2 and its voice line while the device is away and after its return;
#  - once the file is there, source 2 loads and its voice plays (its position moves).
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_waiting_source
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
STICK="$D/stick/b.wav"
printf 'stemd-state 1\n/stemd/load 2 "%s" "onstick"\n/stemd/play 2 1 true 48000 frames 1\nend\n' "$STICK" >"$D/state"
device_stemd --log-level debug --state-file "$D/state" --restore-voices
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
grep -q "source 2 not restored yet: .*No such file or directory" "$D/stemd.log" || fail "source 2 is not waited for at start"
waiting() { ctl status | grep -c "1 source waiting for its file: $STICK"; }
[ "$(waiting)" -ge 1 ] || problem "stemctl status does not say that source 2 waits (before the loss)"
testbed_kill_jackd
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" || fail "no hand-over"
testbed_wait_for 5 grep -q "voices to restart" "$D/stemd.log" || fail "the new image did not read the hand-over"
resume=$(grep "voices to restart" "$D/stemd.log" | tail -1)
echo "$TEST_NAME: ${resume##*resume: }"
grep -q "1 waiting for their files" <<<"$resume" || problem "the new image does not wait for source 2"
[ "$(waiting)" -ge 1 ] || problem "stemctl status does not say that source 2 waits (device away)"
sleep 1.5  # the new image's first look at the state (once a second)
grep -q "^/stemd/load 2 " "$D/state" || problem "the state file lost source 2 while the device is away"
grep -q "^/stemd/play 2 " "$D/state" || problem "the state file lost source 2's voice while the device is away"
testbed_restart_jackd || fail "jackd did not restart"
testbed_wait_for 10 grep -q "voices back at their frames" "$D/stemd.log" || fail "the voices were not replayed"
mkdir -p "$D/stick"
python3 "$POS" gen "$STICK" 30 48000 || fail "the stick's file"
testbed_wait_for 15 grep -q "source 2 restored: $STICK is there now" "$D/stemd.log" ||
  fail "source 2 did not load once its file was there"
pos2() { voices | awk '$1 == 2 { print $2, $3; f = 1 } END { if (!f) print "none 0" }'; }
testbed_wait_for 5 sh -c "'$STEMCTL' -p '$PORT' voices | grep -q onstick" || problem "no voice of source 2"
a=$(pos2) || fail "voices"
sleep 0.5
b=$(pos2) || fail "voices"
echo "$TEST_NAME: source 2's voice: $a, 0.5 s later $b"
python3 -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); sys.exit(0 if b[0] == "playing" and float(b[1]) > float(a[1]) else 1)' "$a" "$b" ||
  problem "source 2's voice does not play: $a, then $b"
problems_or_fail
echo "$TEST_NAME: PASS"
