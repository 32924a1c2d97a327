#!/usr/bin/env python3
"""CI regression guard on the cost of curved fades (ctest bench_fade_guard, label bench).

A fade along a curve must cost the mixer about what a linear one does: an outside test pass found
exponential and equal-power fades 20-85 x the cost of no fade (pow or sin for every frame of every
voice: 1,000 fading voices overran the callback). Ramp::fill (include/stemd/ramp.hpp) now runs
recurrences in vectorised lanes. Guarded: each curve's fade/fill ns per frame as a ratio of
fade/fill/linear measured in the same run (never a wall-clock threshold), best of --reps
repetitions, measured again up to --attempts times when past the limit.

Measured (docs/benchmarks.md, nineteenth round): exponential 1.9 x, equal_power 4.4 x,
s_curve 3.6 x linear; before the fix (a call of pow/sin per frame) exponential 57 x and
equal_power 35 x. Limit 8 x.

  fade_guard.py STEMD_BENCH [--reps N] [--attempts N]
"""
import argparse
import sys

from guard_common import measure_within

GRID = "/block:1024"
REF = "fade/fill/linear"
LIMITS = {"fade/fill/exponential": 8.0, "fade/fill/equal_power": 8.0, "fade/fill/s_curve": 8.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--attempts", type=int, default=3)
    a = ap.parse_args()
    best, _ = measure_within("fade_guard", a.bench, list(LIMITS) + [REF], GRID, "ns_per_frame", a.reps, a.attempts,
                             LIMITS, REF)
    if best is None:
        return 1
    ok = True
    for name, limit in LIMITS.items():
        ratio = best[name] / best[REF]
        good = ratio <= limit
        ok &= good
        print(f"fade_guard: {name}{GRID}: {best[name]:.3f} ns per frame = {ratio:.2f} x {REF} ({best[REF]:.3f}); "
              f"limit {limit} x: {'ok' if good else 'REGRESSION'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
