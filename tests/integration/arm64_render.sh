#!/usr/bin/env bash
# The arm64 build renders what the x86-64 build renders, sample for sample (issue 14, item 1).
#   arm64_render.sh ARM64_STEMD X86_STEMD GEN_FIXTURE
# ARM64_STEMD is the cross-built stemd run through qemu-aarch64 (build/arm64/emulated/stemd),
# X86_STEMD the native release build's (build/release/src/stemd; scripts/test.sh --preset arm64
# builds it). One offline session (--render-to, --script) exercises what does floating-point
# arithmetic in stemd's own code: int16/24/float/FLAC conversion, the mix and its volume and
# pan ramps, a varispeed ramp, libsamplerate at 44.1→48 kHz, the deck EQ biquads, the crossfader,
# the tempo glide, a fade curve, the test-tone oscillator and the limiter. The two renders must
# have identical samples (the files' headers differ: libsndfile's PEAK chunk holds a timestamp).
# Before -ffp-contract=off (top-level CMakeLists.txt) 1,000+ samples of it differed by 1-2 ulp
# (GCC fuses a*b+c into FMA on aarch64).
# A second session time-stretches a voice (Rubber Band): there the library's own arithmetic,
# compiled by Debian for each architecture, differs by a few 1e-9 in a few dozen samples; it is
# checked within 1e-6 (−120 dBFS), and the count is printed.
# Exit 77 (skipped) when X86_STEMD has not been built.
set -euo pipefail
arm=$1 x86=$2 gen=$3
if [ ! -x "$x86" ]; then
  echo "SKIP: no x86-64 stemd at $x86 to compare with (cmake --build --preset release --target stemd)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

"$gen" a.wav --seconds 3 --format pcm16 --seed 1
"$gen" b.wav --seconds 2 --rate 44100 --format pcm24 --seed 2
"$gen" c.wav --seconds 2 --channels 1 --format float --seed 3
"$gen" d.flac --seconds 3 --format flac --seed 4

cat >main.txt <<EOF
0 /stemd/load 1 "$dir/a.wav"
0 /stemd/load 2 "$dir/b.wav"
0 /load_buffer 100 "$dir/d.flac"
0 /stemd/play 1 0.7 1
0.1 /stemd/play 2 0.5 0
0.2 /stemd/rate 1 1.13 0.3
0.3 /play_stem 100 1 0.8 1 0
0.4 /deck_eq_all A 20 70 40
0.5 /stemd/pan 2 -0.4 0.1
0.8 /stemd/tone 523 -12 0.5
1.0 /set_tempo 126
1.2 /stemd/fade 1 0.2 0.5 s_curve
1.4 /crossfade_levels 0.6 0.4
1.6 /stemd/master 1.8 0.2
EOF
cat >stretch.txt <<EOF
0 /stemd/load 3 "$dir/c.wav"
0.1 /stemd/play 3 0.9 1
0.2 /stemd/stretch 3 1.2
EOF

render() { # binary session out
  if ! "$1" --no-osc --render-to "$3" --script "$2" --duration 2.5 >"$3.log" 2>&1; then
    echo "FAIL: $1 --render-to $3 --script $2 exited non-zero:"
    cat "$3.log"
    exit 1
  fi
}
for s in main stretch; do
  render "$x86" $s.txt x86-$s.wav
  render "$arm" $s.txt arm64-$s.wav
done

python3 - <<'EOF'
import array, sys

def samples(path):
    b = open(path, "rb").read()
    i = 12
    while i + 8 <= len(b):
        cid, n = b[i:i + 4], int.from_bytes(b[i + 4:i + 8], "little")
        if cid == b"data":
            a = array.array("f")
            a.frombytes(b[i + 8:i + 8 + n])
            return a
        i += 8 + n + (n & 1)
    sys.exit(f"FAIL: no data chunk in {path}")

ok = True
for scene, tolerance in (("main", 0.0), ("stretch", 1e-6)):
    x, a = samples(f"x86-{scene}.wav"), samples(f"arm64-{scene}.wav")
    if len(x) != len(a) or len(x) != 120000 * 2:
        print(f"FAIL {scene}: {len(x)} x86 samples, {len(a)} arm64 samples (want 240000)")
        ok = False
        continue
    diff = [i for i in range(len(x)) if x[i] != a[i]]
    worst = max((abs(x[i] - a[i]) for i in diff), default=0.0)
    peak = max(abs(v) for v in x)
    print(f"{scene}: {len(x)} samples, peak {peak:.3f}, {len(diff)} differ, max |diff| {worst:.3g}"
          + (f", first at frame {diff[0] // 2}" if diff else ""))
    if peak < 0.05:
        print(f"FAIL {scene}: the render is (nearly) silent, it proves nothing")
        ok = False
    if worst > tolerance or (tolerance == 0.0 and diff):
        print(f"FAIL {scene}: arm64 and x86-64 renders differ beyond {tolerance}")
        ok = False
sys.exit(0 if ok else 1)
EOF
echo "arm64 and x86-64 renders agree"
