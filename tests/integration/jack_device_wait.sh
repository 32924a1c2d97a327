#!/usr/bin/env bash
# jack_device_wait.sh STEMD POSITION_SIGNAL_PY STEMCTL: issue 12, defect 12 — stemd started
# 5 s BEFORE its JACK server (a service at boot, a USB DAC that appears late). With a device
# configured (--backend portaudio --device system) it must not exit and must not fall back to
# null: it waits (log, status "device waiting", OSC answers), re-initialises PortAudio on each
# retry, and plays its --play file once the server is up — checked in the capture of the
# server's monitor ports, frame by frame (tests/tools/position_signal.py).
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_device_wait
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
# The server's name is made by testbed_start: start it once, then take it away before stemd.
testbed_start 1024 48000 || fail "could not start jackd"
testbed_kill_jackd
D=$TESTBED_DIR
HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
device_stemd --http-port "$HPORT"
testbed_wait_for 10 grep -q "waiting for the audio device 'system'" "$D/stemd.log" || fail "no 'waiting' in the log"
for _ in $(seq 100); do ctl -t 0.2 -q status >/dev/null 2>&1 && break; sleep 0.05; done
st=$(ctl status 2>&1) || fail "OSC does not answer while waiting: $st"
grep -Eiq "device[ :]+waiting" <<<"$st" || fail "status does not say the device is waiting: $st"
# The --play voice waits for the device as a lost device's voices do: counted and listed (it was
# in none of the three: "voices playing 0", no row, voices_waiting 0).
grep -Eq "voices +0 playing \(1 waits for the device to appear\)" <<<"$st" ||
  fail "status does not count the --play voice waiting: $st"
v=$(ctl voices 2>&1) || fail "voices: $v"
grep -q "waiting (device not there yet)" <<<"$v" || fail "stemctl voices does not list the --play voice waiting: $v"
w=$(curl -s --max-time 3 "http://127.0.0.1:$HPORT/api/status" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["status"]["voices_waiting"])' 2>&1)
[ "$w" = 1 ] || fail "the web /api/status has voices_waiting '$w', not 1"
sleep 5
kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd exited while its device was away"
grep -q "using the null backend" "$D/stemd.log" && fail "fell back to the null backend"

testbed_restart_jackd || fail "jackd did not start"
t_up=$(date +%s)
testbed_wait_for 15 grep -q "audio device 'system' appeared after" "$D/stemd.log" ||
  fail "stemd did not open the device within 15 s of the server's start"
X0=$(testbed_xruns)
capture_start "$D/cap.wav" || fail "capture"
sleep 2
capture_stop || fail "capture stop"
CX=$(capture_xruns)
SLIPS=$(( $(testbed_xruns) - X0 + ${CX:-0} ))
echo "jack_device_wait: device open $(( $(date +%s) - t_up )) s after the server (retry backoff up to 5 s)"
kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd is not running after the device appeared"
st=$(ctl status 2>&1) || fail "status: $st"
grep -Eiq "device[ :]+running" <<<"$st" || fail "status does not say the device runs: $st"
grep -Eq "voices +1 playing$" <<<"$st" || fail "the --play voice is not playing (or still waiting) once the device runs: $st"
# A whole period slipped by an xrun that jackd or jack_capture counted is the shared VM's, not
# stemd's (testbed.md): allowed that many times, nothing else.
testbed_position_unbroken "$POS" "$D/cap.wav" jack_device_wait "$SLIPS" 1024 || fail "see above"
echo "jack_device_wait: PASS"
