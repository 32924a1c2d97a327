#!/usr/bin/env bash
# jack_crowdstream_live.sh: crowdstream's clients, live over UDP, against stemd started with the
# production launch line (`stemd --port P --disable-filters`, from the folder the clients' relative
# paths are in, as scripts/audio-mix-start.sh runs the old server), playing on the JACK test bed.
#
# tests/tools/crowdstream_live.py sends the captures of tests/data/crowdstream in real time, each
# client from its own socket, encoded as python-osc encodes them (",[]" for mixer.py's /reset),
# several clients at once:
#   1. the two-deck mixer (mixer.py, first 8 s) alone;
#   2. the production track mixer (mixer_tracks.py, 15 s) with the energy sender;
#   3. the three-deck mixer (mixer_3tracks.py, first 9 s: all three decks started) with the
#      movement detector's per-frame traffic (its /dance/total_movement moves the tempo, so the
#      players are resampled: part 1 is without it, its sound checked at rate 1).
# Every message must be answered /done (the old server accepted all of them). In part 1 the
# sound at system:playback_1/2 is checked: decks A and B play noise at level 1 while the mixer
# sends EQ bursts, which the launch line's --disable-filters ignores; every 0.5 s window of the
# capture must have the RMS of the old server's math, 0.9·tanh(0.9 · 0.8 · 0.8 · (a + b)) (master
# 0.8, /cue's volume 0.8, soft clip), with B 0.13 s after A as the /start_group times say, within
# 0.05 dB. An EQ applied, a missing deck, a wrong master or a dropout moves a window by more; and every
# window's samples must be the old server's math to float32 rounding (1e-5), but for as many
# windows as jackd counted xruns.
#
#   tests/integration/jack_crowdstream_live.sh STEMD GEN_TOOL
# Exit 0 pass, 1 fail, 77 skip (no jackd / jack_capture).
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 STEMD GEN_TOOL" >&2
  exit 1
fi
STEMD=$(realpath "$1") GEN=$(realpath "$2")
for t in jackd jack_capture jack_wait python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_crowdstream_live: SKIP ($t not installed)"; exit 77; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
CAPTURES=$HERE/../data/crowdstream
LIVE=$HERE/../tools/crowdstream_live.py
PERIOD=1024
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$HERE/../../scripts/testbed.sh"
export TESTBED_KEEP=${STEMD_E2E_KEEP:-0}
fail() { echo "jack_crowdstream_live: FAIL: $*" >&2; exit 1; }

testbed_start "$PERIOD" 48000 || fail "could not start jackd"
D=$TESTBED_DIR
mkdir -p "$D/mixer" || fail "mkdir"
# The clients' tracks, by the relative names the captures use. c.wav at 44.1 kHz, as most of
# crowdstream's parts are: resampled to the device's rate.
"$GEN" "$D/mixer/a.wav" --seconds 12 --format pcm16 --kind noise --seed 11 || fail "fixture"
"$GEN" "$D/mixer/b.wav" --seconds 12 --format pcm16 --kind noise --seed 12 || fail "fixture"
"$GEN" "$D/mixer/c.wav" --seconds 12 --format pcm16 --kind mix --seed 13 --rate 44100 || fail "fixture"

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The production launch line; stemd picks the test bed's JACK device by itself (auto backend).
(cd "$D/mixer" && exec "$STEMD" --port "$PORT" --disable-filters) >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
testbed_wait_for 10 grep -q "stemd .* started" "$D/stemd.log" || fail "stemd did not start: $(tail -5 "$D/stemd.log")"
grep -q "started: portaudio" "$D/stemd.log" || fail "stemd is not on the JACK device: $(grep started "$D/stemd.log")"

capture_start "$D/capture.wav" || fail "could not start jack_capture"
echo "--- part 1: two-deck mixer"
python3 "$LIVE" --port "$PORT" "$CAPTURES/two_deck_mixer.txt:8" || fail "part 1"
capture_stop || fail "jack_capture did not finish its file"
echo "--- part 2: track mixer (production) + energy sender"
python3 "$LIVE" --port "$PORT" "$CAPTURES/track_mixer.txt" "$CAPTURES/energy_sender.txt" || fail "part 2"
echo "--- part 3: three-deck mixer + movement detector"
python3 "$LIVE" --port "$PORT" "$CAPTURES/three_deck_mixer.txt:9" "$CAPTURES/detector.txt:9" || fail "part 3"
kill -TERM "$STEMD_PID"
testbed_wait_pid "$STEMD_PID" 10
RC=$?
[ "$RC" -eq 0 ] || fail "stemd exited $RC after SIGTERM"
echo "--- jackd xruns during the run: $(testbed_xruns)"
grep -E " (warning|error) " "$D/stemd.log" | grep -v "missed its deadline" | head -20

echo "--- part 1's sound at the port against the old server's math"
python3 - "$D/capture.wav" "$D/mixer/a.wav" "$D/mixer/b.wav" "$(testbed_xruns)" <<'PY' || fail "the sound at the port is not the old server's"
import math, struct, sys, wave

def capture(path):  # 32-bit float WAV (jack_capture): the data chunk as floats
    raw = open(path, "rb").read()
    i = 12
    while i < len(raw):
        cid, size = raw[i:i + 4], struct.unpack("<I", raw[i + 4:i + 8])[0]
        if cid == b"data":
            n = min(size, len(raw) - i - 8) // 4
            return struct.unpack("<%df" % n, raw[i + 8:i + 8 + 4 * n])
        i += 8 + size + (size & 1)
    raise SystemExit("no data chunk in " + path)

def pcm16(path):
    w = wave.open(path, "rb")
    n = w.getnframes() * w.getnchannels()
    return [v / 32768.0 for v in struct.unpack("<%dh" % n, w.readframes(w.getnframes()))]

cap, a, b = capture(sys.argv[1]), pcm16(sys.argv[2]), pcm16(sys.argv[3])
rate, gain, period = 48000, 0.8 * 0.8, 1024  # master 0.8 x /cue's volume 0.8
old = lambda x: 0.9 * math.tanh(0.9 * x)  # the old server's soft clip, on the master's input
frames = len(cap) // 2

def err(f0, n, f_of):  # squared difference of the capture and f_of(frame) over n frames from f0
    return sum((cap[2 * f + ch] - f_of(f, ch)) ** 2 for f in range(f0, f0 + n) for ch in (0, 1))

# Deck A's first frame, exactly: A alone (B starts 0.13 s later) matched sample by sample.
rough = next(i // 2 for i, v in enumerate(cap) if abs(v) > 1e-4)
a_at = min(range(rough - 64, rough + 1),
           key=lambda o: err(o + 2000, 64, lambda f, ch: old(gain * a[2 * (f - o) + ch])))
# Deck B's: what the capture holds beyond A's part (the soft clip inverted) looked up in b.
f0 = a_at + round(0.15 * rate)
rest = [math.atanh(cap[2 * f] / 0.9) / 0.9 / gain - a[2 * (f - a_at)] for f in range(f0, f0 + 64)]
b_at = min(range(a_at + round(0.13 * rate) - 480, a_at + round(0.13 * rate) + 480),
           key=lambda o: sum((rest[i] - b[2 * (f0 + i - o)]) ** 2 for i in range(64)))
print(f"deck A from capture frame {a_at}, deck B {b_at - a_at} frames later (the times say {0.13 * rate:.0f})")
expect = lambda o: (lambda f, ch: old(gain * (a[2 * (f - a_at - o) + ch] + b[2 * (f - b_at - o) + ch])))
worst, windows, exact, shift = 0.0, 0, 0, 0
for k in range(13):  # 0.5 s windows from 1.0 s after A's start to 7.5 s
    w0 = a_at + rate + k * rate // 2
    w1 = w0 + rate // 2
    if w1 + 4 * period > frames:
        break
    # An xrun of the test bed repeats or skips whole periods: both decks move together.
    shift = min((shift + p * period for p in range(-2, 3)), key=lambda o: err(w0, 256, expect(o)))
    e = expect(shift)
    got = sum(cap[2 * f + ch] ** 2 for f in range(w0, w1) for ch in (0, 1))
    exp = sum(e(f, ch) ** 2 for f in range(w0, w1) for ch in (0, 1))
    most = max(abs(cap[2 * f + ch] - e(f, ch)) for f in range(w0, w1) for ch in (0, 1))
    d = 10 * math.log10(got / exp)
    worst = max(worst, abs(d))
    windows += 1
    exact += most <= 1e-5  # float32 rounding: the old server's math to the sample
    print(f"window {1.0 + 0.5 * k:4.1f}-{1.5 + 0.5 * k:4.1f} s after A: {d:+.4f} dB, samples within {most:.1e}"
          f" (shift {shift} frames)")
xruns = int(sys.argv[4] or 0)
print(f"figure crowdstream_live_worst_window_db {worst:.4f} over {windows} windows, {exact} exact to 1e-5"
      f" (jackd xruns {xruns})")
# A test-bed xrun inside a window spoils that window's samples, hardly its level.
sys.exit(0 if windows >= 12 and worst <= 0.05 and exact >= windows - xruns else 1)
PY
echo "jack_crowdstream_live: PASS"
exit 0
