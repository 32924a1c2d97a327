#!/usr/bin/env bash
# jack_group.sh: a crowdstream group start is sample-aligned at the JACK port.
#
# Three decks are cued over OSC and started by one /start_group: deck A plays a noise file,
# deck B the same file inverted, deck C a different "marker" file. If A and B start on the
# same output sample they cancel exactly (a + (−a) = 0 in float), so what reaches
# system:playback_1/2 is the marker alone, bit for bit. One sample of misalignment leaves
# loud noise in the capture. The capture is checked against the marker with
# stemd-capture-verify (bit-exact, every period).
#
#   tests/integration/jack_group.sh STEMD STEMCTL GEN_TOOL VERIFY_TOOL
# Exit 0 pass, 1 fail, 77 skip (no jackd / jack_capture).
set -uo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 STEMD STEMCTL GEN_TOOL VERIFY_TOOL" >&2
  exit 1
fi
STEMD=$1 STEMCTL=$2 GEN=$3 VERIFY=$4
for t in jackd jack_capture jack_wait python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_group: SKIP ($t not installed)"; exit 77; }
done
PERIOD=1024
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}
fail() { echo "jack_group: FAIL: $*" >&2; exit 1; }

testbed_start "$PERIOD" 48000 || fail "could not start jackd"
D=$TESTBED_DIR
"$GEN" "$D/a.wav" --seconds 3 --format pcm16 --kind noise --seed 7 || fail "fixture"
"$GEN" "$D/marker.wav" --seconds 2 --format pcm16 --kind mix --seed 8 || fail "fixture"
# The inversion, sample for sample (no dither, no clipping: the noise stays well inside ±1).
python3 - "$D/a.wav" "$D/inv.wav" <<'PY' || fail "inverting the fixture"
import sys, wave, array
r = wave.open(sys.argv[1], "rb"); p = r.getparams(); x = array.array("h", r.readframes(p.nframes)); r.close()
assert min(x) > -32768, "cannot invert -32768"
y = array.array("h", (-v for v in x))
w = wave.open(sys.argv[2], "wb"); w.setparams(p); w.writeframes(y.tobytes()); w.close()
PY

# What deck C must sound like: /start_group plays at the old server's volume, 0.8. The capture
# path is exact only on a 24-bit grid (jack_capture), so the marker's 16-bit samples are made
# multiples of 5: then 0.8 × x / 32768 = (4x/5) / 32768 is exact in float32 and on that grid.
python3 - "$D/marker.wav" "$D/marker08.raw" <<'PY' || fail "scaling the marker"
import sys, wave, array
r = wave.open(sys.argv[1], "rb"); p = r.getparams(); x = array.array("h", r.readframes(p.nframes)); r.close()
x = array.array("h", (5 * round(v / 5) for v in x))
w = wave.open(sys.argv[1], "wb"); w.setparams(p); w.writeframes(x.tobytes()); w.close()
open(sys.argv[2], "wb").write(array.array("f", ((v // 5) * 4 / 32768.0 for v in x)).tobytes())
PY
sox -t f32 -r 48000 -c 2 "$D/marker08.raw" -e floating-point -b 32 "$D/marker08.wav" || fail "sox"

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$STEMD" --backend portaudio --device system --buffer-size "$PERIOD" --osc-port "$PORT" --limiter false \
  --log-level info >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
ctl() { "$STEMCTL" --port "$PORT" --timeout 3 "$@"; }
for _ in $(seq 100); do ctl -q ping >/dev/null 2>&1 && break; sleep 0.05; done
ctl -q ping || fail "stemd does not answer on port $PORT"

capture_start "$D/capture.wav" || fail "could not start jack_capture"
ctl send /cue A "s:$D/a.wav" 0.0 || fail "/cue A"
ctl send /cue B "s:$D/inv.wav" 0.0 || fail "/cue B"
ctl send /cue C "s:$D/marker.wav" 0.0 || fail "/cue C"
ctl send /start_group 0.2 A B C || fail "/start_group"
sleep 3.0   # the marker (2 s, looped) plays at least once whole after the start
capture_stop || fail "jack_capture did not finish its file"
kill -TERM "$STEMD_PID"; testbed_wait_pid "$STEMD_PID" 10 >/dev/null || true
XRUNS=$(testbed_xruns)
echo "--- jackd xruns during the run: $XRUNS"
grep -E "device_underflows|error" "$D/stemd.log" || true

echo "--- capture-verify against the marker alone (at the group's volume 0.8)"
if "$VERIFY" --ref "$D/marker08.wav" --capture "$D/capture.wav" --period "$PERIOD" --tolerance 0; then
  echo "jack_group: PASS (A and its inversion started on the same sample: they cancel exactly)"
  exit 0
fi
echo "jack_group: FAIL: the capture is not the marker alone — the group was not sample-aligned (xruns $XRUNS)" >&2
exit 1
