#!/usr/bin/env bash
# pipewire_play.sh MODE STEMD GEN VERIFY STEMCTL — issue 14, item 3: stemd plays into a headless
# PipeWire (scripts/testbed.sh pipewire_start: no D-Bus, no session manager, one null sink) the
# way a Raspberry Pi OS Desktop user's stemd does, and what reaches the sink is checked
# BIT-EXACT against the fixture (tests/tools/capture_verify.cpp, tolerance 0):
#   MODE jack  PortAudio's JACK host API on pipewire-jack (LD_LIBRARY_PATH as pw-jack sets it),
#              --device stemd-test-sink: PortAudio connects to the sink's ports itself
#   MODE alsa  PortAudio's ALSA host API on pipewire-alsa, --device pipewire (the ALSA PCM
#              pipewire-alsa defines); with no session manager the test links the stream to
#              the sink (pipewire_link_stream), then plays the fixture over OSC
# Bit-exact is the right bar: the graph runs at the fixture's rate (48 kHz) with the quantum
# at stemd's buffer (1024), the sink takes F32, the stream's volume is 1.0 — PipeWire only
# de-interleaves (exact); any resampling, dither or volume step would show as a failure.
# The capture is jack_capture (through pipewire-jack) on the sink's monitor ports, which carry
# exactly what the sink received. Exit 0 pass, 1 fail, 77 skip (PipeWire not installed).
set -uo pipefail
MODE=$1 STEMD=$2 GEN=$3 VERIFY=$4 STEMCTL=$5
NAME="pipewire_play($MODE)"
for t in pipewire pw-link pw-cli jack_capture; do
  command -v "$t" >/dev/null 2>&1 || { echo "$NAME: SKIP ($t not installed: scripts/setup.sh installs it)"; exit 77; }
done
if [ "$MODE" = alsa ] && ! compgen -G "/usr/lib*/*/alsa-lib/libasound_module_pcm_pipewire.so" >/dev/null &&
   ! compgen -G "/usr/lib*/alsa-lib/libasound_module_pcm_pipewire.so" >/dev/null; then
  echo "$NAME: SKIP (pipewire-alsa, the 'pipewire' ALSA PCM, is not installed)"; exit 77
fi
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}
fail() {
  echo "$NAME: FAIL: $*" >&2
  [ -f "$TESTBED_DIR/stemd.log" ] && grep -v "^ALSA lib\|cannot find card" "$TESTBED_DIR/stemd.log" | tail -20 >&2
  [ -f "$TESTBED_DIR/pipewire.log" ] && tail -20 "$TESTBED_DIR/pipewire.log" >&2
  exit 1
}
PERIOD=1024 RATE=48000
rc=0; pipewire_start "$PERIOD" "$RATE" || rc=$?
[ "$rc" -eq 77 ] && { echo "$NAME: SKIP (PipeWire not installed)"; exit 77; }
[ "$rc" -eq 0 ] || fail "could not start PipeWire"
rc=0; pipewire_jack_env || rc=$?   # jack_capture (and stemd in jack mode) use pipewire's libjack
[ "$rc" -eq 77 ] && { echo "$NAME: SKIP (pipewire-jack not installed)"; exit 77; }
D=$TESTBED_DIR
"$GEN" "$D/fixture.wav" --seconds 4 --rate "$RATE" --channels 2 --format pcm16 --kind mix --seed 42 || fail "fixture"
export TESTBED_CAPTURE_PORTS="stemd-test-sink:monitor_FL stemd-test-sink:monitor_FR"
capture_start "$D/capture.wav" || fail "could not start jack_capture on the sink's monitor"
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

if [ "$MODE" = jack ]; then
  "$STEMD" --backend portaudio --device stemd-test-sink --buffer-size "$PERIOD" --osc-port "$PORT" \
    --play "$D/fixture.wav" --log-level info >"$D/stemd.log" 2>&1 &
  STEMD_PID=$!
  testbed_track_pid "$STEMD_PID"
  testbed_wait_for 10 grep -q "started: portaudio device .*'stemd-test-sink' (JACK" "$D/stemd.log" ||
    fail "stemd did not open the sink through pipewire-jack"
else
  # pipewire-alsa's PCM must not see the pipewire-jack libjack: that is an ALSA client only.
  env -u LD_LIBRARY_PATH "$STEMD" --backend portaudio --device pipewire --sample-rate "$RATE" \
    --buffer-size "$PERIOD" --osc-port "$PORT" --log-level info >"$D/stemd.log" 2>&1 &
  STEMD_PID=$!
  testbed_track_pid "$STEMD_PID"
  testbed_wait_for 10 grep -q "started: portaudio device .*'pipewire' (ALSA)" "$D/stemd.log" ||
    fail "stemd did not open the 'pipewire' ALSA PCM"
  testbed_wait_for 5 sh -c "timeout 2 pw-cli ls Node | grep -q 'node.name = \"ALSA Playback\"'" ||
    fail "no 'ALSA Playback' stream node in PipeWire"
  pipewire_link_stream "ALSA Playback" || fail "could not link stemd's stream to the sink"
  "$STEMCTL" -p "$PORT" -q load 1 "$D/fixture.wav" || fail "stemctl load"
  "$STEMCTL" -p "$PORT" -q play 1 || fail "stemctl play"
fi
testbed_wait_for 15 grep -q "ended: end of file" "$D/stemd.log" || fail "the fixture did not play to its end"
sleep 0.5   # the output latency (two periods) still in flight
kill -TERM "$STEMD_PID"
rc=0; testbed_wait_pid "$STEMD_PID" 10 || rc=$?
[ "$rc" -eq 0 ] || fail "stemd exited $rc after SIGTERM"
capture_stop || fail "jack_capture did not finish"
grep -v "^ALSA lib" "$D/stemd.log" | grep -E "started:|audio thread:|stopped" || true
grep -q "audio thread: SCHED_" "$D/stemd.log" || fail "no 'audio thread: SCHED_…' line in the log"
# pipewire-jack 0.3.65 reports an unset port latency (~89,000 s): stemd must not take it as its
# output latency (it did: "output latency 89478464.0 ms"), which the log, `stemctl status`
# (output_latency_ms) and stemd tune report.
lat=$(grep -o "output latency [0-9.]* ms" "$D/stemd.log" | head -n1 | awk '{print $3}')
awk -v l="${lat:-x}" 'BEGIN { exit !(l + 0 > 0 && l + 0 < 1000) }' ||
  fail "output latency '${lat:-none}' ms is not a device's latency (0 < latency < 1000 ms)"
UNDERFLOWS=$(grep -o 'device_underflows=[0-9]*' "$D/stemd.log" | tail -n1 | cut -d= -f2)
[ "${UNDERFLOWS:-x}" = 0 ] || fail "device_underflows=${UNDERFLOWS:-?}"
"$VERIFY" --ref "$D/fixture.wav" --capture "$D/capture.wav" --period "$PERIOD" --tolerance 0 ||
  fail "the sink's monitor does not hold the fixture bit-exactly"
echo "$NAME: PASS"
