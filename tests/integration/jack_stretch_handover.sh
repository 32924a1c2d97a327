#!/usr/bin/env bash
# jack_stretch_handover.sh: a deck started on the running shared stretch bus keeps its attack, at
# the JACK port (src/engine/stretch_bus.hpp, "The handover").
#
# stemd runs the crowdstream way with --stretch-bus-share (--stretch-method time_stretch, --bpm
# 120, /set_tempo 126: tempo 1.05). Deck A plays a looped 44.1 kHz stem at volume 0 (the shared bus
# runs, silent); then deck B plays a 44.1 kHz stem that is exactly 1 s of a 882 Hz sine, not looped,
# joining the running bus. Heard at the port it must last its whole 1 s / 1.05 = 952 ms of output
# time (its level from the first 5 ms window on). Before the handover it joined without its first
# lookahead (≈ 45 ms) and faded in: ≈ 905 ms. The span is measured in the capture's own frames, so
# no clock is compared with another.
#
#   tests/integration/jack_stretch_handover.sh STEMD STEMCTL
# Exit 0 pass, 1 fail, 77 skip (no jackd / jack_capture, or inconclusive: jackd counted xruns).
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 STEMD STEMCTL" >&2
  exit 1
fi
STEMD=$1 STEMCTL=$2
for t in jackd jack_capture jack_wait python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_stretch_handover: SKIP ($t not installed)"; exit 77; }
done
PERIOD=1024
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}
fail() { echo "jack_stretch_handover: FAIL: $*" >&2; exit 1; }

testbed_start "$PERIOD" 48000 || fail "could not start jackd"
D=$TESTBED_DIR
# 16-bit stereo at 44.1 kHz: deck A's 441 Hz, 6 s (looped); deck B's 882 Hz, exactly 1 s, from
# its first sample at full level (amplitude 0.25).
python3 - "$D" <<'PY' || fail "fixtures"
import sys, wave, math, array
for name, hz, seconds in (("a441", 441.0, 6), ("b882", 882.0, 1)):
    x = array.array("h")
    for i in range(44100 * seconds):
        v = int(round(8192 * math.sin(2 * math.pi * hz * i / 44100)))
        x.extend((v, v))
    w = wave.open(f"{sys.argv[1]}/{name}.wav", "wb")
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100); w.writeframes(x.tobytes()); w.close()
PY

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$STEMD" --backend portaudio --device system --buffer-size "$PERIOD" --osc-port "$PORT" --limiter false \
  --stretch-method time_stretch --bpm 120 --stretch-bus-share --log-level info >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
ctl() { "$STEMCTL" --port "$PORT" --timeout 5 "$@"; }
for _ in $(seq 200); do ctl -q ping >/dev/null 2>&1 && break; sleep 0.05; done
ctl -q ping || fail "stemd does not answer on port $PORT"

ctl send /load_buffer i:100 "s:$D/a441.wav" >/dev/null || fail "/load_buffer 100"
ctl send /load_buffer i:1100 "s:$D/b882.wav" >/dev/null || fail "/load_buffer 1100"
ctl send /set_tempo f:126 >/dev/null || fail "/set_tempo"
ctl send /play_stem i:100 f:1.0 f:0.0 i:1 >/dev/null || fail "/play_stem 100"
sleep 0.5   # deck A's bus runs
capture_start "$D/capture.wav" || fail "could not start jack_capture"
sleep 0.3
ctl send /play_stem i:1100 f:1.0 f:0.8 i:0 >/dev/null || fail "/play_stem 1100"
sleep 0.3
ctl status --json >"$D/status.json" || fail "/stemd/status"
sleep 1.4
capture_stop || fail "jack_capture did not finish its file"
kill -TERM "$STEMD_PID"; testbed_wait_pid "$STEMD_PID" 10 >/dev/null || true
XRUNS=$(testbed_xruns)
echo "--- jackd xruns during the run: $XRUNS"
inconclusive() {
  if [ "${XRUNS:-0}" -gt 0 ]; then
    echo "jack_stretch_handover: SKIP (inconclusive: jackd counted $XRUNS xruns during the run)"
    exit 77
  fi
  fail "see above"
}

python3 - "$D/status.json" "$D/capture.wav" <<'PY' || inconclusive
import sys, json, math, struct
st = json.load(open(sys.argv[1]))
print("status: stretch_buses_running", st.get("stretch_buses_running"), "voices on buses",
      st.get("stretch_bus_voices"), "handovers", st.get("stretch_handovers"), "joins lost",
      st.get("stretch_joins_lost"))
ok = st.get("stretch_bus_voices") == 2 and st.get("stretch_buses_running") == 1
if not ok:
    print("expected both decks' stems on one running bus")
b = open(sys.argv[2], "rb").read()
at, data = 12, None
while at + 8 <= len(b):
    cid, size = b[at:at + 4], struct.unpack("<I", b[at + 4:at + 8])[0]
    if cid == b"data":
        data = b[at + 8:at + 8 + size]
        break
    at += 8 + size + (size & 1)
x = struct.unpack(f"<{len(data) // 4}f", data)[0::2]  # left
W = 240  # 5 ms windows
rms = [math.sqrt(sum(v * v for v in x[i:i + W]) / W) for i in range(0, len(x) - W, W)]
top = max(rms) if rms else 0
print(f"capture {len(x)} frames, loudest 5 ms window rms {top:.4f} (want ≈ {0.2 / math.sqrt(2):.4f})")
if top < 0.1:
    print("deck B's stem was not heard"); sys.exit(1)
on = [i for i, r in enumerate(rms) if r > 0.5 * top]
span = (on[-1] - on[0] + 1) * W
want = 48000 / 1.05
print(f"deck B heard for {span} frames ({span / 48:.1f} ms) at half its level or more; its 1 s of source "
      f"lasts {want:.0f} ({want / 48:.1f} ms); without the handover ≈ {want - 0.045 * 48000:.0f}")
if span < want - 960:  # 20 ms short: its start (the attack) was lost
    print("  its start is missing"); ok = False
if span > want + 960:
    print("  it lasts longer than its source"); ok = False
sys.exit(0 if ok else 1)
PY
echo "jack_stretch_handover: PASS (a deck started on the running shared bus is heard from its first frame)"
exit 0
