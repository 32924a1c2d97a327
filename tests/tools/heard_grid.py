#!/usr/bin/env python3
"""Where a quantised start is heard against stemd's own beat grid (outside pass 28, M2).

Against a stemd on a JACK server whose first output stemd-jack-onsets watches (its output file:
"latency MIN MAX RATE PERIOD", "ready", then "onset NS FRAME DRIVER_NS" lines, CLOCK_MONOTONIC_RAW
ns). Each trial, at a random moment:
  1. /stemd/status, timed (CLOCK_MONOTONIC_RAW) around the round trip: its beat and beat_phase are
     the beat heard now, so the next bar is heard at the round trip's middle + (quantum − phase)
     beats (a trial whose round trip took over --max-rtt-ms, or whose bar is under 0.15 s away,
     is done again);
  2. /stemd/play ID (quantised: /stemd/quantize QUANTUM was sent first) starts on that bar;
  3. the onset at stemd's port, on the driver's timeline (DRIVER_NS, else JACK's NS), plus the
     port's playback latency (JACK's, in frames: MAX) is when it is heard.
The heard onset minus the bar must be within --max-periods periods (a quarter by default: a start
a whole period off is M2's defect; the tolerance is the grid's, not a speed).

  heard_grid.py --port P --onsets FILE --id ID [--trials 6] [--quantum 4] [--max-periods 0.25]
Prints one line per trial and "heard_grid: offsets_ms [...] worst W"; exit 0 when every trial was
within, 1 otherwise, 2 on a setup error.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sync_trials import Daemon  # noqa: E402


def raw():
    return time.clock_gettime(time.CLOCK_MONOTONIC_RAW)


def read_lines(path):
    with open(path) as f:
        return [line.split() for line in f]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", required=True)
    p.add_argument("--onsets", required=True)
    p.add_argument("--id", type=int, default=1)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--quantum", type=float, default=4)
    p.add_argument("--max-periods", type=float, default=0.25)
    p.add_argument("--max-rtt-ms", type=float, default=3.0)
    a = p.parse_args()
    lat = [line for line in read_lines(a.onsets) if line and line[0] == "latency"]
    if not lat:
        print("heard_grid: no latency line from the onset tool", file=sys.stderr)
        return 2
    lat_frames, rate, period = int(lat[0][2]), int(lat[0][3]), int(lat[0][4])
    if lat_frames <= 0:
        print("heard_grid: JACK gives the port no playback latency", file=sys.stderr)
        return 2
    d = Daemon(a.port)
    if d.call("/stemd/quantize", a.quantum)[0] != "/done":
        print("heard_grid: /stemd/quantize failed", file=sys.stderr)
        return 2
    st = d.status()
    print("heard_grid: port playback latency %d frames (%.1f ms), period %d, rate %d; stemd compensates %.1f ms"
          % (lat_frames, 1e3 * lat_frames / rate, period, rate, st.get("output_latency_ms", -1)), flush=True)
    limit_ms = 1e3 * a.max_periods * period / rate
    offsets, seen = [], sum(1 for line in read_lines(a.onsets) if line and line[0] == "onset")
    missed = 0
    n = 0
    # A bar nearer than the compensated latency and a couple of periods is one stemd can no longer
    # start on (it takes the next: at a 4096-frame period, 171 ms of latency, a play sent 0.195 s
    # before the bar was heard a bar later): such a moment is not a trial of this bar.
    near_s = max(0.15, st.get("output_latency_ms", 0) / 1e3 + 2.0 * period / rate + 0.05)
    while n < a.trials:
        for _attempt in range(20):
            time.sleep(random.uniform(0.3, 1.1))
            t0 = raw()
            st = d.status()
            t1 = raw()
            beat_s = 60.0 / st["tempo_bpm"]
            to_bar = (st["quantum"] - st["beat_phase"]) * beat_s
            if 1e3 * (t1 - t0) <= a.max_rtt_ms and to_bar > near_s:
                break
        else:
            print("heard_grid: no status round trip under %.1f ms" % a.max_rtt_ms, file=sys.stderr)
            return 2
        bar = (t0 + t1) / 2 + to_bar
        r = d.call("/stemd/play", a.id)
        if r[0] != "/done":
            print("heard_grid: /stemd/play: %r" % (r,), file=sys.stderr)
            return 2
        onset = None
        deadline = raw() + to_bar + 3.0
        while onset is None and raw() < deadline:
            time.sleep(0.05)
            lines = [line for line in read_lines(a.onsets) if line and line[0] == "onset"]
            if len(lines) > seen:
                onset, seen = lines[seen], len(lines)
        d.call("/stemd/stop", a.id)
        if onset is None:  # once, a trial may be done again; a start that never plays fails
            missed += 1
            print("trial %d: no onset%s" % (n, "" if missed > 1 else " (done again)"), flush=True)
            if missed > 1:
                return 1
            continue
        ns = float(onset[3]) if onset[3] != "nan" else float(onset[1])
        heard = ns / 1e9 + lat_frames / rate
        off_ms = 1e3 * (heard - bar)
        offsets.append(off_ms)
        print("trial %d: status rtt %.2f ms, bar in %.3f s; heard %+.2f ms from the bar (written %+.2f ms)"
              % (n, 1e3 * (t1 - t0), to_bar, off_ms, off_ms - 1e3 * lat_frames / rate), flush=True)
        time.sleep(0.4)  # the sound (0.25 s) ends: silence before the next onset
        n += 1
    worst = max(offsets, key=abs)
    print("heard_grid: offsets_ms [%s] worst %+.2f (limit ±%.2f = %.2f periods)"
          % (", ".join("%+.2f" % o for o in offsets), worst, limit_ms, a.max_periods), flush=True)
    return 0 if abs(worst) <= limit_ms else 1


if __name__ == "__main__":
    sys.exit(main())
