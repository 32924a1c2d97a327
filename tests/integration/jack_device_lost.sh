#!/usr/bin/env bash
# jack_device_lost.sh STEMD: the JACK server dies under a playing stemd run with
# --on-device-loss exit. stemd must notice, say so, and exit with status 3 — so systemd's
# Restart=on-failure restarts it — instead of playing nothing forever or hanging in PortAudio
# on shutdown. (The default, recovery in place, is jack_device_recover.sh.)
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
for t in jackd jack_wait; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_device_lost: SKIP ($t not installed)"; exit 77; }
done
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
fail() { echo "jack_device_lost: FAIL: $*" >&2; exit 1; }
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
sox -n -r 48000 -b 16 -c 2 "$D/tone.wav" synth 3 sine 440 vol 0.3 2>/dev/null || fail "sox"
"$STEMD" --backend portaudio --on-device-loss exit --device system --buffer-size 1024 --osc-port 0 --play "$D/tone.wav" --loop \
  >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
sleep 1.5
kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd died before the server did: $(cat "$D/stemd.log")"
testbed_kill_jackd   # the device disappears, as a USB interface pulled out would
rc=0; testbed_wait_pid "$STEMD_PID" 10 || rc=$?
grep -v "ALSA\|cannot find card" "$D/stemd.log" | tail -4
[ "$rc" -ne 124 ] || fail "stemd still running 10 s after its device died"
[ "$rc" -eq 3 ] || fail "stemd exited $rc, expected 3 (device lost)"
grep -q "the audio device stopped" "$D/stemd.log" || fail "no log line naming the lost device"
echo "jack_device_lost: PASS (exit 3 after the server died)"
