#!/usr/bin/env bash
# Runs stemd's benchmarks (tests/bench, Google Benchmark) and prints the README's performance
# tables as markdown on stdout. Benchmarks report; they never pass or fail.
#
#   scripts/bench.sh            full run: 3 repetitions of each benchmark, medians reported (≈ 3 min)
#   scripts/bench.sh --quick    one short repetition of each (≈ 10 s): for checking, not for quoting
#   scripts/bench.sh --out DIR  keep bench.json, bench.txt (console) and bench.md in DIR
#                               (default: build/release/bench-results)
#   scripts/bench.sh -- ARGS    extra arguments for stemd_bench (e.g. --benchmark_filter=mix/)
#
# Builds the release preset first if needed (incremental). Fixtures (≈ 135 MiB of WAVs, plus a
# sparse 1 GiB one) are written to a temp dir and removed afterwards; set STEMD_BENCH_DIR to keep
# and reuse them. Progress goes to stderr; only the markdown goes to stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

orig_args="$*"
quick=0
outdir="$root/build/release/bench-results"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) outdir=$2; shift ;;
    --out=*) outdir=${1#--out=} ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---------------------------------------------------------------- build
if [ ! -f build/release/build.ninja ]; then
  cmake --preset release >&2
fi
cmake --build --preset release --target stemd_bench >&2
bench=build/release/tests/bench/stemd_bench

# ---------------------------------------------------------------- run
mkdir -p "$outdir"
json="$outdir/bench.json"
if [ "$quick" -eq 1 ]; then
  mode="quick (1 repetition, min time 0.05 s)"
  args=(--benchmark_min_time=0.05)
else
  mode="full (3 repetitions, min time 0.5 s each, median reported)"
  args=(--benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
fi
cmd=("$bench" "${args[@]}" --benchmark_out="$json" --benchmark_out_format=json ${extra[@]+"${extra[@]}"})
echo "bench.sh: ${cmd[*]}" >&2
"${cmd[@]}" 2>&1 | tee "$outdir/bench.txt" >&2

# ---------------------------------------------------------------- machine facts
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
[ -n "$cpu_model" ] || cpu_model=$(grep -m1 -i '^\(hardware\|cpu model\|model\)' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' build/release/CMakeCache.txt 2>/dev/null || true)
export BENCH_NPROC=$(nproc)
export BENCH_CPU="$cpu_model"
export BENCH_KERNEL="$(uname -srm)"
export BENCH_CXX="$( ("${cxx:-c++}" --version 2>/dev/null || echo unknown) | head -1)"
export BENCH_SNDFILE="$(pkg-config --modversion sndfile 2>/dev/null || echo unknown)"
export BENCH_MEM="$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
export BENCH_MODE="$mode"
export BENCH_CMD="scripts/bench.sh${orig_args:+ $orig_args}"
export BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"

# ---------------------------------------------------------------- report
python3 - "$json" <<'PY' | tee "$outdir/bench.md"
import json, os, re, statistics, sys

data = json.load(open(sys.argv[1]))
ctx = data["context"]

# One value set per benchmark: the median aggregate when repeated, else the single run.
runs = {}
for b in data["benchmarks"]:
    name = b.get("run_name", b["name"])
    if b.get("error_occurred"):
        runs.setdefault(name, {"error": b.get("error_message", "error")})
        continue
    if b.get("run_type") == "aggregate":
        if b.get("aggregate_name") == "median":
            runs[name] = b
    elif name not in runs or "aggregate_name" not in runs[name]:
        runs.setdefault(name + "#samples", []).append(b)
for k in [k for k in runs if k.endswith("#samples")]:
    base = k[: -len("#samples")]
    samples = runs.pop(k)
    if base not in runs:
        runs[base] = samples[len(samples) // 2] if len(samples) > 1 else samples[0]

def find(prefix):
    """The run whose name is `prefix` or `prefix` followed by benchmark's own suffixes."""
    for name, r in runs.items():
        if name == prefix or name.startswith(prefix + "/"):
            return r
    return None

def val(prefix, key, scale=1.0, fmt="{:.2f}"):
    r = find(prefix)
    if r is None:
        return "–"
    if "error" in r:
        return "error"
    v = r.get(key)
    return "–" if v is None else fmt.format(v * scale)

def num(prefix, key):
    r = find(prefix)
    return None if r is None or "error" in r else r.get(key)

def cache_str():
    parts = []
    for c in ctx.get("caches", []):
        if c["type"] in ("Data", "Unified"):
            size = c["size"]
            s = f"{size // (1 << 20)} MiB" if size >= (1 << 20) else f"{size // 1024} KiB"
            parts.append(f"L{c['level']} {s}")
    return ", ".join(parts) or "unknown"

e = os.environ
print("### Benchmark machine\n")
print("| | |\n|---|---|")
print(f"| CPU | {e['BENCH_CPU']} — {e['BENCH_NPROC']} CPUs (nproc), {ctx.get('mhz_per_cpu', '?')} MHz |")
print(f"| caches | {cache_str()} |")
print(f"| memory | {e['BENCH_MEM']} |")
print(f"| kernel | {e['BENCH_KERNEL']} |")
print(f"| compiler | {e['BENCH_CXX']}, release preset (-O3) |")
print(f"| libsndfile | {e['BENCH_SNDFILE']} |")
print(f"| stemd | {e['BENCH_COMMIT']} |")
print(f"| run | `{e['BENCH_CMD']}`: {e['BENCH_MODE']}, {ctx.get('date', '')} |")
print()

voices = [1, 8, 32, 128]
blocks = [64, 256, 1024]
grid = lambda v, b: f"/voices:{v}/block:{b}"

print("### Mixer: ns per voice-frame\n")
print("`Engine::process()` with N looping voices, each reading its own noise buffer; one voice-frame is")
print("one stereo frame of one voice. *streamed* voices read `Stream` rings (ring read + mix, the")
print("loader's refills excluded); *`+=` loop* is a plain `out[i] += in[i]` over the same bytes.\n")
print("| voices | path | " + " | ".join(f"block {b}" for b in blocks) + " |")
print("|---:|---|" + "---:|" * len(blocks))
paths = [("mix/memory/unity", "in memory, unity gain"), ("mix/memory/gain", "in memory, gain 0.5"),
         ("mix/stream/unity", "streamed, unity gain"), ("ref/add", "`+=` loop (reference)")]
for v in voices:
    for prefix, label in paths:
        cells = [val(prefix + grid(v, b), "ns_per_voice_frame", fmt="{:.3f}") for b in blocks]
        if all(c == "–" for c in cells):
            continue  # not run (filtered)
        print(f"| {v} | {label} | " + " | ".join(cells) + " |")
empty = [num(f"mix/empty/block:{b}", "cpu_time") for b in blocks]
if all(x is not None for x in empty):
    print("\nFixed cost of one `process()` call with no voice playing: " +
          ", ".join(f"{x:.0f} ns at block {b}" for x, b in zip(empty, blocks)) +
          " (it dominates the 1-voice, 64-frame cell).")
print()

print("### Mixer throughput vs memcpy\n")
print("Source bytes mixed per second (N × frames × 8 bytes per call), GB = 10⁹ bytes. *memcpy* copies")
print("the same blocks from the same buffers; the ratio is the mixer's share of memcpy speed.\n")
print("| voices | block | mixer GB/s | streamed GB/s | `+=` loop GB/s | memcpy GB/s | mixer ÷ memcpy | streamed ÷ memcpy |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for v in voices:
    for b in blocks:
        g = grid(v, b)
        mix, st, add, mc = (num(p + g, "bytes_per_second") for p in
                            ("mix/memory/unity", "mix/stream/unity", "ref/add", "ref/memcpy"))
        if all(x is None for x in (mix, st, add, mc)):
            continue
        f = lambda x: "–" if x is None else f"{x / 1e9:.1f}"
        r = lambda x: "–" if x is None or not mc else f"{x / mc:.2f}"
        print(f"| {v} | {b} | {f(mix)} | {f(st)} | {f(add)} | {f(mc)} | {r(mix)} | {r(st)} |")
large = num("ref/memcpy_large", "bytes_per_second")
if large:
    print(f"\nA single 64 MiB memcpy (out of cache) runs at **{large / 1e9:.1f} GB/s** on this machine.")
print()

print("### Decode: ns per stereo frame (16-bit / float stereo WAV, 60 s, from the page cache)\n")
print("| path | file | chunk 8192 | chunk 65536 |")
print("|---|---|---:|---:|")
rows = [("decode/read_stereo/pcm16", "`io::SoundFile::read_stereo` (sf_readf_short + int16→float)", "16-bit"),
        ("decode/read_stereo/float", "`io::SoundFile::read_stereo` (sf_readf_float)", "float"),
        ("raw/sf_readf_short/pcm16", "raw `sf_readf_short` (reference)", "16-bit"),
        ("raw/sf_readf_float/pcm16", "raw `sf_readf_float` (reference)", "16-bit"),
        ("raw/sf_readf_float/float", "raw `sf_readf_float` (reference)", "float"),
        ("raw/pread/pcm16", "`pread()` of the bytes only (floor)", "16-bit")]
for prefix, label, kind in rows:
    cells = [val(f"{prefix}/chunk:{c}", "ns_per_frame", fmt="{:.2f}") for c in (8192, 65536)]
    if all(c == "–" for c in cells):
        continue
    print(f"| {label} | {kind} | " + " | ".join(cells) + " |")
print()

print("### Load to ready: `io::load_source()`, default options (preload limit 16 MiB)\n")
print("16-bit stereo 48 kHz WAV; 20 loads each. *hot*: file in the page cache; *cold*:")
print("`POSIX_FADV_DONTNEED` before each load. p99 of 20 samples is the worst one. The 1 GB file is")
print("sparse (a valid header over a hole).\n")
print("| file | cache | mode | p50 ms | p99 ms | bytes read per load | in RAM |")
print("|---|---|---|---:|---:|---:|---:|")
def size_str(n):
    if n is None:
        return "–"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"
for cache in ("hot", "cold"):
    for size in ("1MB", "100MB", "1GB"):
        p = f"load/{cache}/{size}"
        r = find(p)
        if r is None:
            continue
        if "error" in r:
            print(f"| {size} | {cache} | error: {r['error']} | | | | |")
            continue
        mode = "streamed (head decoded)" if r.get("streamed") else "decoded whole"
        br, fb = r.get("bytes_read"), r.get("file_bytes")
        share = f" ({100 * br / fb:.3g} % of file)" if br is not None and fb else ""
        print(f"| {size} | {cache} | {mode} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{br:,.0f}{share} | {size_str(r.get('memory_bytes'))} |")
PY
echo "bench.sh: JSON in $json, console output in $outdir/bench.txt, markdown in $outdir/bench.md" >&2
