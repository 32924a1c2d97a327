"""What the CI benchmark guards (mix_guard.py, fade_guard.py) share: one run of stemd_bench's
benchmarks, each one's fastest repetition kept (other processes can only make a run slower)."""
import json
import subprocess
import sys
import tempfile


def measure(bench, names, grid, counter, reps, best):
    """Runs `names` + `grid`; folds each one's fastest repetition of `counter` into best[name]."""
    filt = "^(" + "|".join(names) + ")" + grid + "$"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([bench, f"--benchmark_filter={filt}", "--benchmark_min_time=0.05",
                        f"--benchmark_repetitions={reps}", f"--benchmark_out={out.name}",
                        "--benchmark_out_format=json"], check=True, stdout=subprocess.DEVNULL)
        data = json.load(open(out.name))
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        name = b["run_name"].removesuffix(grid)
        v = b.get(counter)
        if v is not None:
            best[name] = min(best.get(name, v), v)


def measure_within(tag, bench, names, grid, counter, reps, attempts, limits, ref):
    """Measures until every guarded ratio (best[name] / best[ref]) is within its limit, up to
    `attempts` runs, the best of every run kept. Returns (best, attempts used), or (None, n) when
    a benchmark gave no result."""
    best = {}
    for attempt in range(1, attempts + 1):
        measure(bench, names, grid, counter, reps, best)
        missing = [n for n in names if n not in best]
        if missing:
            print(f"{tag}: no result for {missing}", file=sys.stderr)
            return None, attempt
        over = [n for n, limit in limits.items() if best[n] / best[ref] > limit]
        if not over:
            return best, attempt
        print(f"{tag}: attempt {attempt}/{attempts}: past the limit: "
              + ", ".join(f"{n} {best[n] / best[ref]:.2f} x" for n in over))
    return best, attempts
