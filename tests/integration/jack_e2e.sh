#!/usr/bin/env bash
# jack_e2e.sh: stemd's real-device end-to-end test on the headless JACK test bed.
#
# Plays a generated 4 s 16-bit stereo fixture through stemd's PortAudio backend on a
# private JACK dummy server (-p 1024, 48 kHz), records what reached system:playback_1/2
# with jack_capture, and requires the whole fixture to be in the capture bit-exactly with
# no slips, stemd to exit 0 on SIGTERM and its final log line to report
# device_underflows=0. The jackd xrun count is printed so a failure caused by the VM's
# scheduling noise (not by stemd) is recognisable.
#
#   tests/integration/jack_e2e.sh STEMD_BINARY GEN_TOOL VERIFY_TOOL
# Exit 0 pass, 1 fail, 77 skip (jackd or jack_capture not installed).
# STEMD_E2E_KEEP=1 keeps the temp dir (fixture, capture, logs) for debugging.
set -uo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 STEMD_BINARY GEN_TOOL VERIFY_TOOL" >&2
  exit 1
fi
STEMD=$1 GEN=$2 VERIFY=$3
for b in "$STEMD" "$GEN" "$VERIFY"; do
  [ -x "$b" ] || { echo "jack_e2e: $b is not executable" >&2; exit 1; }
done
for t in jackd jack_capture jack_wait; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_e2e: SKIP ($t not installed)"; exit 77; }
done

PERIOD=1024
RATE=48000
SECONDS_PLAYED=4
MARGIN=1.5   # after the file must have ended: start-up, latency, scheduling slack

# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}   # testbed_cleanup keeps $TESTBED_DIR if 1

fail() { echo "jack_e2e: FAIL: $*" >&2; exit 1; }

testbed_start "$PERIOD" "$RATE" || fail "could not start jackd"
D=$TESTBED_DIR
"$GEN" "$D/fixture.wav" --seconds "$SECONDS_PLAYED" --rate "$RATE" --channels 2 \
  --format pcm16 --kind mix --seed 42 || fail "fixture generation"

capture_start "$D/capture.wav" || fail "could not start jack_capture"

"$STEMD" --backend portaudio --device system --buffer-size "$PERIOD" --osc-port 0 \
  --play "$D/fixture.wav" --log-level info >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"   # killed by the cleanup trap if the test dies early

# Poll rather than sleep the whole span, so a daemon that dies early fails at once.
if testbed_wait_for "$(awk "BEGIN{print int($SECONDS_PLAYED + $MARGIN + 0.999)}")" \
     _testbed_gone "$STEMD_PID"; then
  rc=0; wait "$STEMD_PID" || rc=$?
  echo "--- stemd.log"; cat "$D/stemd.log"
  fail "stemd exited by itself (status $rc) before SIGTERM"
fi

kill -TERM "$STEMD_PID"
rc=0; testbed_wait_pid "$STEMD_PID" 10 || rc=$?
capture_stop || fail "jack_capture did not finish its file"
XRUNS=$(testbed_xruns)
CAP_XRUNS=$(capture_xruns)

echo "--- stemd.log"
grep -v "cannot find card\|^ALSA lib\|^Cannot connect to server\|^jack server is not running" \
  "$D/stemd.log" || true   # PortAudio's ALSA probing noise on a card-less machine
echo "--- jackd xruns during the run: $XRUNS (jack_capture saw ${CAP_XRUNS:-?})"

status=0
if [ "$rc" -eq 124 ]; then
  echo "jack_e2e: stemd did not exit within 10 s of SIGTERM" >&2; status=1
elif [ "$rc" -ne 0 ]; then
  echo "jack_e2e: stemd exited $rc after SIGTERM (expected 0)" >&2; status=1
fi

UNDERFLOWS=$(grep -o 'device_underflows=[0-9]*' "$D/stemd.log" | tail -n1 | cut -d= -f2)
if [ -z "$UNDERFLOWS" ]; then
  echo "jack_e2e: stemd's log has no device_underflows=N line" >&2; status=1
elif [ "$UNDERFLOWS" -ne 0 ]; then
  echo "jack_e2e: device_underflows=$UNDERFLOWS (jackd xruns $XRUNS)" >&2; status=1
fi

echo "--- capture-verify"
"$VERIFY" --ref "$D/fixture.wav" --capture "$D/capture.wav" --period "$PERIOD" --tolerance 0
vrc=$?
if [ "$vrc" -ne 0 ]; then
  echo "jack_e2e: the capture does not hold the fixture bit-exactly (jackd xruns $XRUNS)" >&2
  status=1
fi

if [ "$status" -eq 0 ]; then echo "jack_e2e: PASS"; else echo "jack_e2e: FAIL" >&2; fi
exit "$status"
