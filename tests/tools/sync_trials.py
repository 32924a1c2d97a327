#!/usr/bin/env python3
"""sync_trials.py: two stemd daemons start together — measured at their JACK ports.

Drives two daemons (native OSC over UDP on 127.0.0.1) whose outputs are watched by
stemd-jack-onsets (one per JACK server, each writing "onset NS FRAME DRIVER_NS" lines to a file;
both times are CLOCK_MONOTONIC_RAW, so the two servers' onsets compare directly). Source id ID must
be loaded on both (a sound starting loud after silence).

Two measures per trial. The one judged is on the servers' actual cycle timelines (DRIVER_NS: a
dummy server re-anchors its timeline at each xrun, see stemd-jack-onsets); JACK's own estimate
(NS, through JACK's 1/8 Hz DLL, which takes seconds to follow a re-anchor) is printed beside it
("jack dll").

  sync_trials.py link    --a PORT --b PORT --onsets-a F --onsets-b F [--trials 20] [--quantum 4]
      /stemd/quantize QUANTUM on both; per trial, /stemd/play ID sent to each at a different,
      random moment within one bar (which daemon first is random too): both must start on the
      same beat of the Link session.
  sync_trials.py timetag --a PORT --b PORT --onsets-a F --onsets-b F [--trials 20]
      /stemd/quantize 0; per trial, one bundle timetagged 0.6-0.9 s ahead (NTP, CLOCK_REALTIME)
      sent to A, the same bundle sent to B 0-300 ms later.
  sync_trials.py tempo   --a PORT --b PORT [--trials 10]
      /set_tempo on A; how long until B's status reports it (polled every 2 ms).

Prints one line per trial and a JSON summary line ("summary {...}"): for link/timetag the
onset differences B − A in µs (p50, p99 of |d|, max), for tempo the delays in ms. Exit 0 when
every trial was measured and within --max-us (link, timetag; default 1000) or --max-ms (tempo;
default 100), 1 otherwise, 2 on a setup error.
"""
import argparse
import json
import random
import socket
import struct
import sys
import time

NTP_UNIX_OFFSET = 2208988800


def _pad(b):
    return b + b"\0" * (4 - len(b) % 4)


def osc_message(address, *args):
    tags, payload = ",", b""
    for a in args:
        if isinstance(a, bool):
            tags += "T" if a else "F"
        elif isinstance(a, int):
            tags += "i"
            payload += struct.pack(">i", a)
        elif isinstance(a, float):
            tags += "f"
            payload += struct.pack(">f", a)
        else:
            tags += "s"
            payload += _pad(str(a).encode())
    return _pad(address.encode()) + _pad(tags.encode()) + payload


def osc_bundle(timetag, *messages):
    out = b"#bundle\0" + struct.pack(">Q", timetag)
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def ntp_timetag(unix_seconds):
    secs = int(unix_seconds)
    frac = int((unix_seconds - secs) * (1 << 32)) & 0xFFFFFFFF
    return ((secs + NTP_UNIX_OFFSET) << 32) | frac


def _read_str(data, i):
    end = data.index(b"\0", i)
    s = data[i:end].decode(errors="replace")
    return s, (end + 4) & ~3


def osc_parse(data):
    address, i = _read_str(data, 0)
    tags, i = _read_str(data, i)
    args = []
    for t in tags[1:]:
        if t == "i":
            args.append(struct.unpack_from(">i", data, i)[0])
            i += 4
        elif t == "f":
            args.append(struct.unpack_from(">f", data, i)[0])
            i += 4
        elif t == "h":
            args.append(struct.unpack_from(">q", data, i)[0])
            i += 8
        elif t == "d":
            args.append(struct.unpack_from(">d", data, i)[0])
            i += 8
        elif t == "s":
            s, i = _read_str(data, i)
            args.append(s)
        elif t in "TF":
            args.append(t == "T")
        elif t == "N":
            args.append(None)
        else:
            raise ValueError("unexpected OSC type " + t)
    return address, args


class Daemon:
    """A daemon at PORT or HOST:PORT (127.0.0.1 by default; another address for daemons in network
    namespaces, STEMD_SYNC_NETNS in jack_sync.sh)."""

    def __init__(self, where):
        host, _, port = str(where).rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if self.host == "127.0.0.1" else "0.0.0.0", 0))
        self.sock.settimeout(3.0)

    def send(self, packet):
        self.sock.sendto(packet, (self.host, self.port))

    def call(self, address, *args):
        self.send(osc_message(address, *args))
        return self.reply()

    def reply(self):
        while True:
            data, _ = self.sock.recvfrom(65536)
            if data.startswith(b"#bundle"):
                continue
            address, args = osc_parse(data)
            if address in ("/done", "/fail"):
                return address, args

    def status(self):
        address, args = self.call("/stemd/status")
        if address != "/done":
            raise RuntimeError("status failed: %r" % (args,))
        kv = args[1:]
        return {kv[k]: kv[k + 1] for k in range(0, len(kv) - 1, 2)}


class Onsets:
    def __init__(self, path):
        self.path = path
        self.seen = 0

    def lines(self):
        with open(self.path) as f:
            return [l.split() for l in f if l.startswith("onset ")]

    def mark(self):
        self.seen = len(self.lines())

    def wait_next(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ls = self.lines()
            if len(ls) > self.seen:
                self.seen = len(ls)
                last = ls[-1]
                driver = float(last[3]) if len(last) > 3 else float("nan")
                return float(last[1]), driver
            time.sleep(0.01)
        return None


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p * (len(xs) - 1)))))
    return xs[k]


def expect_done(reply, what):
    if reply[0] != "/done":
        raise RuntimeError("%s: %r" % (what, reply))


def onset_pair(oa, ob, timeout):
    """(B − A on the driver timelines, B − A by JACK's DLL), µs; the first falls back to the
    second when an onset's epoch had no usable cycle (NaN)."""
    ta = oa.wait_next(timeout)
    tb = ob.wait_next(timeout)
    if ta is None or tb is None:
        return None
    jack = (tb[0] - ta[0]) / 1000.0
    driver = (tb[1] - ta[1]) / 1000.0
    return (jack if driver != driver else driver), jack


def clocks(a, b):
    """Each daemon's stream clock: its DLL's largest error in the last 1–2 s, its restarts."""
    out = []
    for name, d in (("A", a), ("B", b)):
        st = d.status()
        out.append("%s clock err max %.0f us, restarts %d" % (name, st["clock_error_max_us"], st["clock_resets"]))
    return " (" + "; ".join(out) + ")"


def settle(a, b, bound_us=500.0, timeout_s=15.0, locked_s=8.0):
    """Waits until both stream clocks' DLLs have settled: each has tracked for locked_s seconds
    since its last restart (clock_locked_s: the loop narrows over its first seconds; trials run
    at 3 s measured up to 0.74 ms before) and two looks 0.5 s apart in a row have the largest
    error under bound_us (a daemon just started, or its device just restarted, is still locking
    on: an installation starts its boxes well before the first cue). Prints how long."""
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < timeout_s:
        sts = [d.status() for d in (a, b)]
        worst = max(st["clock_error_max_us"] for st in sts)
        locked = min(st.get("clock_locked_s", locked_s) for st in sts)
        calm = calm + 1 if worst < bound_us and locked >= locked_s else 0
        if calm >= 2:
            break
        time.sleep(0.5)
    print("clocks settled after %.1f s (last largest error %.0f us)" % (time.monotonic() - t0, worst), flush=True)


# A stream clock error this large means the device skipped about a period (256 frames at 48 kHz).
LOST_CYCLE_US = 5000.0


def restarts(a, b):
    return sum(d.status()["clock_resets"] for d in (a, b))


def void_trial(a, b, n, before, pair):
    """A trial during which a daemon's stream clock restarted (its device lost cycles: the JACK
    test bed's dummy servers do on this shared VM) measured the device, not stemd: it is void,
    said so, not counted, and the clocks settle again before the next one."""
    after = restarts(a, b)
    if after == before:
        # A clock that kept running but whose DLL erred by about a period (the test bed's 256
        # frames: 5.3 ms) saw the device skip cycles too, without a restart: a CI run at the
        # tenth session measured link onsets 1,321 us apart in a trial with "A clock err max
        # 6466 us, restarts 0" (jackd xruns A 6, B 7) and within 515 us in the other three.
        worst = max(d.status()["clock_error_max_us"] for d in (a, b))
        if worst < LOST_CYCLE_US:
            return False
        print("trial %d: void (a stream clock erred by %.0f us during it: the device lost cycles; "
              "onset B-A %+.1f us, jack dll %+.1f us)" % (n, worst, pair[0], pair[1]), flush=True)
        settle(a, b)
        return True
    print("trial %d: void (a stream clock restarted %d times during it: the device lost cycles; "
          "onset B-A %+.1f us, jack dll %+.1f us)" % (n, after - before, pair[0], pair[1]), flush=True)
    settle(a, b)
    return True


def settled_restarts(a, b, last):
    """The restarts count before a trial. A restart since the last trial (between trials, where
    void_trial does not look) leaves a clock still locking on: settle first, as after a void."""
    now = restarts(a, b)
    if last is not None and now != last:
        print("clock restarted between trials (%d): settling first" % (now - last), flush=True)
        settle(a, b)
        now = restarts(a, b)
    return now


def out_of_time(args, t_start):
    if time.monotonic() - t_start <= args.budget_s:
        return False
    print("out of time: %.0f s budget spent" % args.budget_s, flush=True)
    return True


def run_trials(a, b, oa, ob, args, one_trial, pause_s):
    """The trial loop both modes share: each trial starts on settled clocks, sends its plays
    (one_trial(n) → (onset difference in µs or None, what to print before it)), and is void if a
    clock restarted during it; at most as many void trials as valid ones, within --budget-s."""
    diffs, jack = [], []
    n = -1
    t_start, last = time.monotonic(), None
    while len(diffs) < args.trials and n < 2 * args.trials:
        if out_of_time(args, t_start):
            break
        n += 1
        before = last = settled_restarts(a, b, last)
        oa.mark()
        ob.mark()
        pair, what = one_trial(n)
        if pair is None:
            print("trial %d: no onset" % n, flush=True)
            return diffs, False, jack
        if void_trial(a, b, n, before, pair):
            last = restarts(a, b)  # settled by void_trial
            time.sleep(pause_s)
            continue
        d, dj = pair
        diffs.append(d)
        jack.append(dj)
        print("trial %d: %sonset B-A %+.1f us (jack dll %+.1f us)%s" % (n, what, d, dj, clocks(a, b)), flush=True)
        time.sleep(pause_s)  # the sound (≤ 0.3 s) ends: silence before the next onset
    return diffs, True, jack


def trials_link(a, b, oa, ob, args):
    for d in (a, b):
        expect_done(d.call("/stemd/quantize", float(args.quantum)), "/stemd/quantize")

    def one(n):
        st = a.status()
        bar_s = args.quantum * 60.0 / st["tempo_bpm"]
        to_bar = (st["quantum"] - st["beat_phase"]) * 60.0 / st["tempo_bpm"]
        if to_bar < 0.45 * bar_s:  # too close to the bar line to fit two sends: the next bar
            time.sleep(to_bar + 0.02)
            to_bar = bar_s - 0.02
        # Two moments within what is left of the bar, 150 ms clear of its end; who goes first
        # is random.
        t1 = random.uniform(0, 0.3 * to_bar)
        t2 = random.uniform(t1 + 0.05, to_bar - 0.15)
        first, second = (a, b) if random.random() < 0.5 else (b, a)
        t0 = time.monotonic()
        time.sleep(t1)
        expect_done(first.call("/stemd/play", args.id), "/stemd/play")
        time.sleep(max(0.0, t2 - (time.monotonic() - t0)))
        expect_done(second.call("/stemd/play", args.id), "/stemd/play")
        what = "sends %.0f ms apart (%s first), " % (1000 * (t2 - t1), "A" if first is a else "B")
        return onset_pair(oa, ob, bar_s + 2.0), what

    return run_trials(a, b, oa, ob, args, one, 0.4)


def trials_timetag(a, b, oa, ob, args):
    for d in (a, b):
        expect_done(d.call("/stemd/quantize", 0.0), "/stemd/quantize")

    def one(n):
        target = time.time() + random.uniform(0.6, 0.9)
        bundle = osc_bundle(ntp_timetag(target), osc_message("/stemd/play", args.id))
        a.send(bundle)
        expect_done(a.reply(), "bundle to A")
        time.sleep(random.uniform(0, 0.3))
        b.send(bundle)
        expect_done(b.reply(), "bundle to B")
        return onset_pair(oa, ob, 3.0), ""

    return run_trials(a, b, oa, ob, args, one, 0.5)


def trials_tempo(a, b, args):
    delays = []
    base = a.status()["tempo_bpm"]
    for n in range(args.trials):
        bpm = base + (6.0 if n % 2 == 0 else 0.0) + 0.25 * n
        t0 = time.monotonic()
        expect_done(a.call("/set_tempo", float(bpm)), "/set_tempo")
        while True:
            if abs(b.status()["tempo_bpm"] - bpm) < 0.01:
                break
            if time.monotonic() - t0 > 2.0:
                print("trial %d: B never reached %.2f bpm" % (n, bpm), flush=True)
                return delays, False
            time.sleep(0.002)
        delays.append(1000 * (time.monotonic() - t0))
        print("trial %d: %.2f bpm reached B after %.1f ms" % (n, bpm, delays[-1]), flush=True)
        time.sleep(0.2)
    expect_done(a.call("/set_tempo", float(base)), "/set_tempo")
    return delays, True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["link", "timetag", "tempo"])
    p.add_argument("--a", required=True, help="PORT or HOST:PORT")
    p.add_argument("--b", required=True, help="PORT or HOST:PORT")
    p.add_argument("--onsets-a")
    p.add_argument("--onsets-b")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--quantum", type=float, default=4)
    p.add_argument("--id", type=int, default=1)
    p.add_argument("--max-us", type=float, default=1000)
    p.add_argument("--max-ms", type=float, default=100)
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock seconds for the trials, settling included (default 60 + 8 per "
                        "trial): a test bed that keeps losing cycles ends the run inconclusive "
                        "(exit 3) instead of running on")
    args = p.parse_args()
    if args.budget_s is None:
        args.budget_s = 60.0 + 8.0 * args.trials
    a, b = Daemon(args.a), Daemon(args.b)
    try:
        if args.mode == "tempo":
            xs, ok = trials_tempo(a, b, args)
            summary = {"mode": "tempo", "trials": len(xs), "p50_ms": percentile(xs, 0.5),
                       "max_ms": max(xs) if xs else None}
            ok = ok and len(xs) == args.trials and max(xs) <= args.max_ms
        else:
            oa, ob = Onsets(args.onsets_a), Onsets(args.onsets_b)
            settle(a, b)
            run = trials_link if args.mode == "link" else trials_timetag
            xs, ok, jack = run(a, b, oa, ob, args)
            mags = [abs(x) for x in xs]
            summary = {"mode": args.mode, "trials": len(xs), "mean_us": sum(xs) / len(xs) if xs else None,
                       "p50_abs_us": percentile(mags, 0.5), "p99_abs_us": percentile(mags, 0.99),
                       "max_abs_us": max(mags) if mags else None}
            jmags = [abs(x) for x in jack]
            summary.update({"jack_dll_p50_abs_us": percentile(jmags, 0.5),
                            "jack_dll_p99_abs_us": percentile(jmags, 0.99)})
            if ok and len(xs) < args.trials and (not mags or max(mags) <= args.max_us):
                # Every valid trial was within the bound, but the device kept losing cycles
                # (void trials, settling) until the budget or the void allowance ran out: the
                # test bed, not stemd, is what was measured. Said so, and not a pass.
                print("summary " + json.dumps(summary), flush=True)
                print("inconclusive: %d of %d valid trials (all within %.0f us); the device lost "
                      "cycles on the others" % (len(xs), args.trials, args.max_us), flush=True)
                return 3
            ok = ok and len(xs) == args.trials and max(mags) <= args.max_us
    except (RuntimeError, OSError, KeyError) as e:
        print("sync_trials: %s" % e, file=sys.stderr)
        return 2
    print("summary " + json.dumps(summary), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
