#!/usr/bin/env bash
# jack_stretch_bus.sh: the crowdstream time-stretch path through stretch buses, at the JACK port.
#
# stemd runs as the crowdstream workload does (--stretch-method time_stretch, --bpm 120): two
# 44.1 kHz stems on deck A (441 Hz and 661.5 Hz sines), one on deck B (882 Hz), looped, then
# /set_tempo 126. Every player then has tempo 1.05 at rate 1, so deck A's two share one stretch
# bus and deck B's one another (/stemd/status: 3 voices on 2 running buses); deck B's fader is at
# 0.5 (/deck_levels 1 0.5). The capture from the dummy server's monitor ports must hold the three
# tones at their pitch (not at × 1.05, as vinyl would) and at their level (0.8 × the file's, deck
# B's × 0.5), and nothing else of note. With `share` stemd runs with --stretch-bus-share: all three
# on one bus, deck B's fader applied at its input (once: not again after the stretch).
#
#   tests/integration/jack_stretch_bus.sh STEMD STEMCTL [share]
# Exit 0 pass, 1 fail, 77 skip (no jackd / jack_capture).
set -uo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ] || { [ $# -eq 3 ] && [ "$3" != share ]; }; then
  echo "usage: $0 STEMD STEMCTL [share]" >&2
  exit 1
fi
STEMD=$1 STEMCTL=$2
SHARE=()
BUSES=2
if [ "${3:-}" = share ]; then SHARE=(--stretch-bus-share); BUSES=1; fi
for t in jackd jack_capture jack_wait python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_stretch_bus: SKIP ($t not installed)"; exit 77; }
done
PERIOD=1024
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}
fail() { echo "jack_stretch_bus: FAIL: $*" >&2; exit 1; }

testbed_start "$PERIOD" 48000 || fail "could not start jackd"
D=$TESTBED_DIR
# 16-bit stereo sines at 44.1 kHz, 6 s (whole cycles: the loop seam is seamless), amplitude 0.25.
python3 - "$D" <<'PY' || fail "fixtures"
import sys, wave, math, array
for name, hz in (("a441", 441.0), ("a661", 661.5), ("b882", 882.0)):
    n = 44100 * 6
    x = array.array("h")
    for i in range(n):
        v = int(round(8192 * math.sin(2 * math.pi * hz * i / 44100)))
        x.extend((v, v))
    w = wave.open(f"{sys.argv[1]}/{name}.wav", "wb")
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100); w.writeframes(x.tobytes()); w.close()
PY

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$STEMD" --backend portaudio --device system --buffer-size "$PERIOD" --osc-port "$PORT" --limiter false \
  --stretch-method time_stretch --bpm 120 "${SHARE[@]}" --log-level info >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
ctl() { "$STEMCTL" --port "$PORT" --timeout 5 "$@"; }
for _ in $(seq 200); do ctl -q ping >/dev/null 2>&1 && break; sleep 0.05; done
ctl -q ping || fail "stemd does not answer on port $PORT"

ctl send /load_buffer i:100 "s:$D/a441.wav" >/dev/null || fail "/load_buffer 100"
ctl send /load_buffer i:101 "s:$D/a661.wav" >/dev/null || fail "/load_buffer 101"
ctl send /load_buffer i:1100 "s:$D/b882.wav" >/dev/null || fail "/load_buffer 1100"
for id in 100 101 1100; do ctl send /play_stem "i:$id" f:1.0 f:0.8 i:1 >/dev/null || fail "/play_stem $id"; done
sleep 0.3
ctl send /set_tempo f:126 >/dev/null || fail "/set_tempo"
ctl send /deck_levels f:1.0 f:0.5 >/dev/null || fail "/deck_levels"
sleep 0.5   # the fade into the buses, their start, the fader's ramp
ctl status --json >"$D/status.json" || fail "/stemd/status"
capture_start "$D/capture.wav" || fail "could not start jack_capture"
sleep 2.0
capture_stop || fail "jack_capture did not finish its file"
kill -TERM "$STEMD_PID"; testbed_wait_pid "$STEMD_PID" 10 >/dev/null || true
XRUNS=$(testbed_xruns)
echo "--- jackd xruns during the run: $XRUNS"
# A failed analysis on a run where jackd counted xruns measured the test bed (a lost or repeated
# period in the 1 s window lowers a tone and adds what is not a tone: CI saw 441 Hz at -1.5 dB with
# 2 xruns): inconclusive, a skip that says so. Without xruns a failure is a failure.
inconclusive() {
  if [ "${XRUNS:-0}" -gt 0 ]; then
    echo "jack_stretch_bus: SKIP (inconclusive: jackd counted $XRUNS xruns during the run)"
    exit 77
  fi
  fail "see above"
}

python3 - "$D/status.json" "$D/capture.wav" "$BUSES" <<'PY' || inconclusive
import sys, json, math, struct
st = json.load(open(sys.argv[1]))
print("status: stretch_buses", st.get("stretch_buses"), "running", st.get("stretch_buses_running"),
      "voices on buses", st.get("stretch_bus_voices"))
buses = int(sys.argv[3])
ok = st.get("stretch_bus_voices") == 3 and st.get("stretch_buses_running") == buses
if not ok:
    print(f"expected 3 voices on {buses} running stretch bus(es)")
# jack_capture's WAV: 32-bit float, stereo. Find the data chunk.
b = open(sys.argv[2], "rb").read()
at, data = 12, None
while at + 8 <= len(b):
    cid, size = b[at:at + 4], struct.unpack("<I", b[at + 4:at + 8])[0]
    if cid == b"data":
        data = b[at + 8:at + 8 + size]
        break
    at += 8 + size + (size & 1)
x = struct.unpack(f"<{len(data) // 4}f", data)[0::2]  # left
x = x[len(x) // 4:len(x) // 4 + 48000]              # 1 s from the middle of the capture
if len(x) < 48000:
    print("capture too short"); sys.exit(1)
def amp(hz):  # amplitude of a sine at hz (Goertzel over whole cycles of 1 s)
    w = 2 * math.pi * hz / 48000
    c, s = sum(v * math.cos(w * i) for i, v in enumerate(x)), sum(v * math.sin(w * i) for i, v in enumerate(x))
    return 2 * math.hypot(c, s) / len(x)
for hz in (441.0, 661.5, 882.0):
    want = 0.25 * 0.8 * (0.5 if hz == 882.0 else 1.0)  # deck B's fader at 0.5
    a, vinyl = amp(hz), amp(hz * 1.05)
    print(f"{hz:6.1f} Hz: {a:.4f} (want {want:.4f}); at x1.05 ({hz * 1.05:.1f} Hz): {vinyl:.5f}")
    if abs(20 * math.log10(max(a, 1e-9) / want)) > 1.5:
        print(f"  {hz} Hz not at its level"); ok = False
    if vinyl > 0.05 * want:
        print(f"  pitch moved to {hz * 1.05} Hz"); ok = False
total = math.sqrt(sum(v * v for v in x) / len(x))
tones = math.sqrt(sum(amp(h) ** 2 / 2 for h in (441.0, 661.5, 882.0)))
print(f"rms {total:.4f}, of which the three tones {tones:.4f}")
if total > tones * 1.05:
    print("  more than the three tones"); ok = False
sys.exit(0 if ok else 1)
PY
echo "jack_stretch_bus: PASS (3 stems on $BUSES stretch bus(es), pitch and level kept at the port)"
exit 0
