#!/usr/bin/env python3
"""stream_bench.py: stemd's streaming benchmarks on the headless JACK test bed.

Drives the real daemon (stemd --backend portaudio on a private `jackd -d dummy`) over OSC and
measures, with nothing but the standard library:

  search   the most streaming voices (distinct 16-bit stereo 48 kHz WAVs, looping) that play for
           --seconds with zero voice underruns, device underflows within the idle JACK
           baseline measured in the same run, and a capture that matches the exact expected mix
           period by period (stemd-capture-verify against stemd-voice-fixtures' reference): a
           doubling then a bisection on N, per period.
  cpu      stemd's CPU (utime+stime from /proc/PID/stat over the play window) and RSS at
           given voice counts, with idle stemd (0 voices) and idle jackd as references.
  rss      RSS (VmRSS / VmHWM) with K big sources (default 8 × 140 MB) loaded and playing.
  crowd    the crowdstream workload (issue 15): 8 stems at 44.1 kHz played at 48 kHz on two
           decks with the deck EQ on, through the crowdstream dialect (/load_buffer,
           /play_stem, /deck_eq_all), then /set_tempo with --stretch-method time_stretch:
           stemd's whole-process CPU for idle, resampled only, and stretched with each
           Rubber Band engine (--stretch-engine finer / faster), in one run on one jackd.

Every voice of a trial starts on the same output frame: the plays go out in OSC bundles
carrying one future timetag (stemd honours it to the sample), so the expected output is simply
the looped sum of the files, computed independently by stemd-voice-fixtures. Any voice that
underruns, starts late, drops or repeats data makes periods "unmatched" and fails the trial;
JACK xruns show as "slips" (whole periods shifted) and are judged against the idle baseline.

Prints JSON results on stdout (one object); progress on stderr. scripts/bench.sh turns it into
markdown. Examples:

  stream_bench.py --build build/release search --periods 1024 256 --seconds 30
  stream_bench.py --build build/release cpu --voices 0 1 8 32 128 512 --seconds 20
  stream_bench.py --build build/release rss --count 8 --mb 140
  stream_bench.py --build build/release crowd --seconds 15
"""

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

RATE = 48000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NTP_EPOCH = 2208988800


def log(*a):
    print("stream_bench:", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ OSC
def _pad(b):
    return b + b"\0" * (4 - len(b) % 4)


def osc_message(address, *args):
    tags, data = ",", b""
    for a in args:
        if isinstance(a, (bytes, bytearray)):
            tags += "b"
            data += struct.pack(">i", len(a)) + bytes(a)
            data += b"\0" * (-len(a) % 4)
        elif isinstance(a, bool) or isinstance(a, int):
            tags += "i"
            data += struct.pack(">i", int(a))
        elif isinstance(a, float):
            tags += "f"
            data += struct.pack(">f", a)
        else:
            tags += "s"
            data += _pad(str(a).encode())
    return _pad(address.encode()) + _pad(tags.encode()) + data


def osc_bundle(unix_time, messages):
    secs = int(unix_time)
    frac = int((unix_time - secs) * (1 << 32)) & 0xFFFFFFFF
    out = b"#bundle\0" + struct.pack(">II", secs + NTP_EPOCH, frac)
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def _read_str(b, i):
    j = b.index(b"\0", i)
    return b[i:j].decode(errors="replace"), (j + 4) & ~3


def osc_parse(b):
    addr, i = _read_str(b, 0)
    tags, i = _read_str(b, i)
    args = []
    for t in tags[1:]:
        if t == "i":
            args.append(struct.unpack_from(">i", b, i)[0]); i += 4
        elif t == "f":
            args.append(struct.unpack_from(">f", b, i)[0]); i += 4
        elif t == "h":
            args.append(struct.unpack_from(">q", b, i)[0]); i += 8
        elif t == "d":
            args.append(struct.unpack_from(">d", b, i)[0]); i += 8
        elif t == "s":
            s, i = _read_str(b, i); args.append(s)
        elif t in "TF":
            args.append(t == "T")
        elif t == "N":
            args.append(None)
        else:
            break
    return addr, args


class Osc:
    def __init__(self, port):
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, data):
        self.sock.sendto(data, self.addr)

    def recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return None
        return osc_parse(data)

    def call(self, address, *args, timeout=5.0):
        """One request, its one reply (/done or /fail with `address` first)."""
        self.send(osc_message(address, *args))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.recv(deadline - time.monotonic())
            if r and r[1] and r[1][0] == address:
                return r
        return None

    def status(self):
        r = self.call("/stemd/status")
        if not r or r[0] != "/done":
            return {}
        a = r[1][1:]
        return {a[k]: a[k + 1] for k in range(0, len(a) - 1, 2)}


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# -------------------------------------------------------------------------------------- /proc
def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def vm_pgpgin_kb():
    """KiB the whole machine has read from block devices since boot (/proc/vmstat pgpgin): a
    trial that streams from the page cache as it means to reads none."""
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("pgpgin "):
                return int(line.split()[1])
    return 0


class CpuWindow:
    """CPU used by a process between start() and stop(), as % of one core."""

    def __init__(self, pid):
        self.pid = pid

    def start(self):
        self.t0, self.c0 = time.monotonic(), proc_cpu_ticks(self.pid)

    def stop(self):
        t1, c1 = time.monotonic(), proc_cpu_ticks(self.pid)
        return 100.0 * (c1 - self.c0) / CLK_TCK / (t1 - self.t0)


# --------------------------------------------------------------------------------- the test bed
class Jack:
    """A private jackd -d dummy (see tests/integration, scripts/testbed.sh)."""

    def __init__(self, workdir, period, realtime):
        self.name = f"stemd-bench-{os.getpid()}-{period}-{int(time.monotonic() * 1000) % 100000}"
        self.log = os.path.join(workdir, f"jackd-{period}.log")
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        cmd = ["jackd", "-R" if realtime else "--no-realtime", "-n", self.name, "-d", "dummy", "-m",
               "-r", str(RATE), "-p", str(period)]
        self.cmd = " ".join(cmd)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited at start: {open(self.log).read()[-2000:]}")
            r = subprocess.run(["jack_wait", "-c"], env=self.env, capture_output=True, text=True, timeout=5)
            if r.stdout.strip() == "running":
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("jackd not running after 10 s")
            time.sleep(0.02)

    def xruns(self):
        with open(self.log, errors="replace") as f:
            return sum(1 for line in f if "XRun" in line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Capture:
    def __init__(self, jack, path, workdir):
        self.path = path
        timing = os.path.join(workdir, "capture.timing")
        hook = os.path.join(workdir, "hook_timing.sh")
        with open(hook, "w") as f:
            f.write(f'#!/bin/sh\necho "$@" > "{timing}"\n')
        os.chmod(hook, 0o755)
        if os.path.exists(timing):
            os.unlink(timing)
        self.proc = subprocess.Popen(
            ["jack_capture", "--daemon", "-f", "wav", "-c", "2", "--port", "system:monitor_1", "--port",
             "system:monitor_2", "-Ht", hook, path],
            stdout=open(os.path.join(workdir, "jack_capture.log"), "w"), stderr=subprocess.STDOUT, env=jack.env)
        deadline = time.monotonic() + 5
        while not (os.path.exists(timing) and os.path.getsize(timing) > 0):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("jack_capture did not start recording")
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stemd:
    def __init__(self, build, jack, period, workdir, extra):
        self.port = free_port()
        self.log = os.path.join(workdir, "stemd.log")
        cmd = [os.path.join(build, "src", "stemd"), "--backend", "portaudio", "--device", "system",
               "--buffer-size", str(period), "--osc-port", str(self.port), "--log-level", "info"] + extra
        self.cmd = " ".join(cmd[1:])
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=jack.env)
        self.osc = Osc(self.port)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stemd exited at start: {self.tail()}")
            if self.osc.call("/stemd/ping", timeout=0.2):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"stemd did not answer /stemd/ping: {self.tail()}")

    def tail(self, n=2000):
        with open(self.log, errors="replace") as f:
            return f.read()[-n:]

    def load_all(self, paths, window=16):
        """/stemd/load id path for ids 1..N, `window` outstanding; returns (seconds, failures).
        A load refused as busy (the daemon's limit of loads in flight) is sent again."""
        t0 = time.monotonic()
        queue = list(range(len(paths)))  # indices still to send
        done = 0
        fails = []
        pending = 0
        last = time.monotonic()
        while done < len(paths):
            while pending < window and queue:
                i = queue.pop(0)
                self.osc.send(osc_message("/stemd/load", i + 1, paths[i]))
                pending += 1
            r = self.osc.recv(1.0)
            if r is None:
                if time.monotonic() - last > 30:
                    fails.append(f"no reply for 30 s ({done}/{len(paths)} loaded)")
                    break
                continue
            if r[1] and r[1][0] == "/stemd/load":
                last = time.monotonic()
                pending -= 1
                if r[0] != "/done" and len(r[1]) >= 3 and str(r[1][-1]).startswith("busy"):
                    queue.insert(0, int(r[1][1]) - 1)
                    window = max(1, pending + 1)  # the daemon's limit: stay at or under it
                    continue
                done += 1
                if r[0] != "/done":
                    fails.append(" ".join(str(x) for x in r[1]))
        return time.monotonic() - t0, fails

    def play_all_at(self, count, start_at, window=16):
        """/stemd/play id 1.0 1 for ids 1..count, each in a bundle timed its group's frame after
        `start_at` (unix time). A play of a streamed file opens its stream on the daemon's opener
        threads and counts as a load in flight until it is open: at most `window` are sent at once,
        and one refused as busy is sent again with the same timetag (the daemon maps a timetag
        it has seen to the same frame, so every play of a group still starts on one frame)."""
        queue = list(range(count))
        ok, fails, pending = 0, [], 0
        deadline = time.monotonic() + 30 + count * 0.005
        while ok + len(fails) < count and time.monotonic() < deadline:
            batch = []
            while (pending + len(batch) < window and queue
                   and (not batch or start_group(queue[0]) == start_group(batch[0]))):
                batch.append(queue.pop(0))
            if batch:
                g = start_group(batch[0])
                self.osc.send(osc_bundle(start_at + g * GROUP_STEP / RATE,
                                         [osc_message("/stemd/play", i + 1, 1.0, 1, g * GROUP_STEP, "frames")
                                          for i in batch]))
                pending += len(batch)
                continue
            r = self.osc.recv(max(0.0, min(1.0, deadline - time.monotonic())))
            if r and r[1] and r[1][0] == "/stemd/play":
                pending -= 1
                if r[0] == "/done":
                    ok += 1
                elif len(r[1]) >= 3 and str(r[1][-1]).startswith("busy"):
                    queue.insert(0, int(r[1][1]) - 1)
                    queue.sort()
                    window = max(1, pending + 1)  # the daemon's limit: stay at or under it
                else:
                    fails.append(" ".join(str(x) for x in r[1]))
        if ok + len(fails) < count:
            fails.append(f"{count - ok - len(fails)} plays unanswered")
        return fails

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# ------------------------------------------------------------------------------ staggered start
# stemd refuses more than 256 timed commands per 64-frame period (control/limits.hpp: what one
# callback may be made to apply). N voices therefore start in groups of GROUP, group g at
# GROUP_STEP·g frames after the first and at file frame GROUP_STEP·g: with looping files every
# voice then plays the same file frame at the same output frame as if all had started together,
# and once the last group's fade-in (a start mid-file is declicked, 5 ms) is over the output is
# the exact sum again. The reference starts there (start_skip_frames).
GROUP = 256
GROUP_STEP = 480  # frames (0.01 s: exact in the script's seconds and in frames)


def start_group(i):
    return i // GROUP


def start_skip_frames(n):
    groups = max(1, (n + GROUP - 1) // GROUP)
    return 0 if groups == 1 else (groups - 1) * GROUP_STEP + GROUP_STEP


# ------------------------------------------------------------------------------------ fixtures
class Fixtures:
    def __init__(self, build, root, count, seconds, amp):
        self.tool = os.path.join(build, "tests", "tools", "stemd-voice-fixtures")
        self.dir = os.path.join(root, f"voices-{seconds:g}s-a{amp}")
        self.seconds, self.amp = seconds, amp
        self.have = 0
        self.ensure(count)

    def ensure(self, count):
        if count <= self.have:
            return
        t0 = time.monotonic()
        subprocess.run([self.tool, "gen", self.dir, "--count", str(count), "--seconds", str(self.seconds),
                        "--amp", str(self.amp)], check=True)
        os.sync()  # the new files written back before any trial: a flush of GBs competes with the loader
        log(f"fixtures: {count} files ready in {time.monotonic() - t0:.1f} s")
        self.have = count

    def warm(self, count):
        """Reads the first `count` files through once, so that a trial streams them from the page
        cache as it means to. 8,192 fixtures are 12 GB: partly evicted since they were written (a
        build beside it is enough), the trial measured the disk — 1-s waits for data — not stemd."""
        t0, total = time.monotonic(), 0
        for p in self.paths(count):
            with open(p, "rb", buffering=0) as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    total += len(b)
        log(f"fixtures: {count} files ({total / 2**30:.1f} GiB) read through in {time.monotonic() - t0:.1f} s")

    def paths(self, count):
        return [os.path.join(self.dir, f"v{i:05d}.wav") for i in range(count)]

    def reference(self, out, count, play_seconds, skip_frames=0):
        subprocess.run([self.tool, "ref", out, "--count", str(count), "--play-seconds", str(play_seconds),
                        "--seconds", str(self.seconds), "--amp", str(self.amp), "--skip-frames", str(skip_frames)],
                       check=True)


# ------------------------------------------------------------------------------------- scsynth
def synthdef_diskin(name="stemd_bench_disk"):
    """A compiled SynthDef (SCgf version 2, written byte by byte: no sclang needed) of
    { |bufnum = 0, out = 0| Out.ar(out, DiskIn.ar(2, bufnum, loop: 1)) }."""
    def pstr(t):
        b = t.encode()
        return struct.pack(">B", len(b)) + b

    d = pstr(name)
    d += struct.pack(">i", 1) + struct.pack(">f", 1.0)            # constants: [1.0] (loop)
    d += struct.pack(">i", 2) + struct.pack(">ff", 0.0, 0.0)      # parameters' initial values
    d += struct.pack(">i", 2) + pstr("bufnum") + struct.pack(">i", 0) + pstr("out") + struct.pack(">i", 1)
    d += struct.pack(">i", 3)                                     # UGens
    # 0: Control.kr (the two parameters), no inputs, 2 control-rate outputs
    d += pstr("Control") + struct.pack(">biih", 1, 0, 2, 0) + struct.pack(">bb", 1, 1)
    # 1: DiskIn.ar(bufnum, loop), 2 audio-rate outputs
    d += pstr("DiskIn") + struct.pack(">biih", 2, 2, 2, 0)
    d += struct.pack(">ii", 0, 0) + struct.pack(">ii", -1, 0) + struct.pack(">bb", 2, 2)
    # 2: Out.ar(out, left, right), no outputs
    d += pstr("Out") + struct.pack(">biih", 2, 3, 0, 0)
    d += struct.pack(">ii", 0, 1) + struct.pack(">ii", 1, 0) + struct.pack(">ii", 1, 1)
    d += struct.pack(">h", 0)                                     # variants
    return b"SCgf" + struct.pack(">ih", 2, 1) + d


class Scsynth:
    """scsynth (SuperCollider's server) on the same JACK test bed, playing the same files with
    DiskIn: one 64 k-frame buffer per voice, cued with /b_alloc + /b_read … leaveOpen=1."""

    DEF = "stemd_bench_disk"

    def __init__(self, jack, workdir, voices):
        self.port = free_port()
        self.log = os.path.join(workdir, "scsynth.log")
        cap = max(1024, 2 * voices + 16)
        cmd = ["scsynth", "-u", str(self.port), "-i", "0", "-o", "2", "-b", str(cap), "-n", str(cap),
               "-m", str(max(8192, 64 * voices)), "-R", "0", "-D", "0", "-l", "4"]
        self.cmd = " ".join(cmd)
        env = dict(jack.env, SC_JACK_DEFAULT_OUTPUTS="system:playback_1,system:playback_2")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)
        self.osc = Osc(self.port)
        deadline = time.monotonic() + 15
        while not self.reply_to("/status", timeout=0.2, send=True):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"scsynth did not start: {open(self.log, errors='replace').read()[-1500:]}")

    def reply_to(self, address, timeout, send=False):
        if send:
            self.osc.send(osc_message(address))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.osc.recv(deadline - time.monotonic())
            if r and (r[0] == address + ".reply" or (r[1] and r[1][0] == address)):
                return r
        return None

    def cue_all(self, paths, frames=65536, window=32):
        """Defines the SynthDef, then per voice a buffer cued on its file; returns failures."""
        self.osc.send(osc_message("/d_recv", synthdef_diskin(self.DEF)))
        r = self.reply_to("/d_recv", 10)
        if not r or r[0] != "/done":
            return [f"/d_recv: {r}"]
        sent = done = 0
        fails = []
        last = time.monotonic()
        while done < len(paths) and time.monotonic() - last < 30:
            while sent < len(paths) and sent - done < window:
                read = osc_message("/b_read", sent, paths[sent], 0, frames, 0, 1)
                self.osc.send(osc_message("/b_alloc", sent, frames, 2, read))
                sent += 1
            r = self.osc.recv(1.0)
            if r and r[1] and r[1][0] == "/b_read":
                done += 1
                last = time.monotonic()
            elif r and r[0] == "/fail":
                fails.append(" ".join(str(x) for x in r[1]))
                done += 1
        if done < len(paths):
            fails.append(f"{len(paths) - done} buffers not cued after 30 s")
        return fails

    def play_all(self, count):
        msgs = [osc_message("/s_new", self.DEF, 1000 + i, 0, 0, "bufnum", i) for i in range(count)]
        for k in range(0, count, 64):
            self.osc.send(osc_bundle_now(msgs[k:k + 64]))

    def status(self):
        """/status.reply: ugens, synths, groups, defs, avg CPU %, peak CPU %, rates."""
        r = self.reply_to("/status", 2, send=True)
        return r[1] if r else []

    def stop(self):
        if self.proc.poll() is None:
            self.osc.send(osc_message("/quit"))
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


def osc_bundle_now(messages):
    out = b"#bundle\0" + struct.pack(">II", 0, 1)  # timetag 1: immediately
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def scsynth_trial(args, fx, period, n, seconds):
    """scsynth playing N of the fixture files through DiskIn; its CPU over the same window."""
    res = {"period": period, "voices": n, "seconds": seconds}
    wd = tempfile.mkdtemp(dir=args.workdir, prefix=f"scsynth-{period}-{n}-")
    jack = sc = None
    try:
        fx.ensure(max(n, 1))
        jack = Jack(wd, period, args.realtime)
        sc = Scsynth(jack, wd, n)
        res["command"] = sc.cmd
        t0 = time.monotonic()
        fails = sc.cue_all(fx.paths(n)) if n else []
        res["cue_seconds"] = round(time.monotonic() - t0, 3)
        if fails:
            res["error"] = f"{len(fails)} cues failed, first: {fails[0]}"
            return res
        x0 = jack.xruns()
        sc.play_all(n)
        time.sleep(1.0)
        cpu = CpuWindow(sc.proc.pid)
        cpu.start()
        time.sleep(max(0.0, seconds - 1.0))
        res["scsynth_cpu_pct"] = round(cpu.stop(), 2)
        st = sc.status()
        if len(st) >= 7:  # /status.reply: 1, ugens, synths, groups, defs, avg CPU %, peak CPU %, …
            res["synths"], res["avg_cpu_reported"], res["peak_cpu_reported"] = st[2], st[5], st[6]
        res.update({k: v for k, v in proc_mem(sc.proc.pid).items()})
        res["jackd_xruns"] = jack.xruns() - x0
        return res
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    finally:
        if sc:
            sc.stop()
            res["scsynth_log"] = open(sc.log, errors="replace").read().splitlines()[-6:]
        if jack:
            jack.stop()
        if not args.keep:
            shutil.rmtree(wd, ignore_errors=True)


# --------------------------------------------------------------------------------------- trials
def idle_baseline(args, period, seconds):
    """jackd alone for `seconds`: its xruns and its CPU."""
    with tempfile.TemporaryDirectory(dir=args.workdir) as wd:
        jack = Jack(wd, period, args.realtime)
        try:
            cpu = CpuWindow(jack.proc.pid)
            x0 = jack.xruns()
            cpu.start()
            time.sleep(seconds)
            return {"period": period, "seconds": seconds, "xruns": jack.xruns() - x0, "jackd_cpu_pct": cpu.stop(),
                    "command": jack.cmd}
        finally:
            jack.stop()


def stemd_flags(args, n):
    cap = max(4096, n)
    # Every file streamed (--preload-limit-mb 0: only the 0.5 s head is held in RAM).
    return ["--preload-limit-mb", "0", "--max-voices", str(cap), "--max-sources", str(cap)] + args.stemd_args


def trial(args, fx, period, n, seconds, verify=True, via="script"):
    """N voices for `seconds`; returns a dict of what happened. Never raises for a bad run.

    via="script": the loads and the plays are a --script (loads at start, every play at one
    exact frame): sample-aligned whatever N. via="osc": /stemd/load over UDP (the load rate is
    measured), then the plays in timetagged bundles, at most 16 opening at once (the daemon's
    limit of loads in flight; a bundle's timetag, sent again, maps to the same frame)."""
    res = {"period": period, "voices": n, "seconds": seconds, "via": via}
    wd = tempfile.mkdtemp(dir=args.workdir, prefix=f"trial-{period}-{n}-")
    jack = stemd = cap = None
    try:
        fx.ensure(max(n, 1))
        if n >= 1024:  # the page cache holds them (smaller sets stay cached between trials)
            fx.warm(n)
        paths = fx.paths(n)
        jack = Jack(wd, period, args.realtime)
        flags = stemd_flags(args, n)
        start_s = 2.0 + n * 0.0005  # the script's play time: after start-up and the loader's first fill
        if via == "script" and n:
            script = os.path.join(wd, "session.txt")
            with open(script, "w") as f:
                for i, p in enumerate(paths):
                    f.write(f'0 /stemd/load {i + 1} "{p}"\n')
                for i in range(n):
                    g = start_group(i)
                    f.write(f"{start_s + g * GROUP_STEP / RATE:.6f} /stemd/play {i + 1} 1.0 1 {g * GROUP_STEP} frames\n")
            flags += ["--script", script]
        t_launch = time.monotonic()
        stemd = Stemd(args.build, jack, period, wd, flags)
        res["command"] = "stemd " + stemd.cmd
        if via == "script":
            res["startup_seconds"] = round(time.monotonic() - t_launch, 3)  # n loads included
        else:
            load_s, fails = stemd.load_all(paths) if n else (0.0, [])
            res["load_seconds"] = round(load_s, 3)
            res["loads_per_second"] = round(n / load_s, 1) if n and load_s > 0 else None
            if fails:
                res["error"] = f"{len(fails)} loads failed, first: {fails[0]}"
                return res
        if verify and n:
            cap = Capture(jack, os.path.join(wd, "capture.wav"), wd)
        x0 = jack.xruns()
        st0 = stemd.osc.status()
        if via == "script":
            start_at = time.time() + (start_s * RATE - st0.get("frames", 0)) / RATE
            if n and st0.get("frames", 0) >= start_s * RATE:
                res["error"] = "the voices started before the harness was ready (raise the script's start time)"
                return res
        else:
            start_at = time.time() + 1.0 + n * 0.002  # time to open the streams (16 at once) before the frame
            if n:
                fails = stemd.play_all_at(n, start_at)
                if fails:
                    res["error"] = f"{len(fails)} plays failed, first: {fails[0]}"
                    return res
        # CPU and memory over the play window, from 1 s after the start to its end.
        time.sleep(max(0.0, start_at + 1.0 - time.time()))
        cpu = CpuWindow(stemd.proc.pid)
        jcpu = CpuWindow(jack.proc.pid)
        cpu.start()
        jcpu.start()
        st_mid = stemd.osc.status()
        if args.timeline:
            # When the trouble happened (play-window seconds), not just how much: each 0.25 s the
            # voice-underrun and device-underflow counts so far, and the loader's state (its CPU %
            # of a core over its last 100 ms, its SCHED_FIFO priority or 0, the mean ring target
            # in ms, the mean and the longest read wait in ms) and the MiB the machine has read from
            # its disks since the play began (a page cache that lost the fixtures shows here).
            res["timeline_keys"] = ["t_s", "voice_underruns", "device_underflows", "loader_cpu_pct",
                                    "loader_rt_priority", "ring_target_ms_mean", "read_wait_ms", "read_max_ms",
                                    "disk_read_mb"]
            res["timeline"] = []
            pgpgin0 = vm_pgpgin_kb()
            while time.time() < start_at + seconds - 0.25:
                time.sleep(0.25)
                s = stemd.osc.status()
                res["timeline"].append([round(time.time() - start_at, 2),
                                        s.get("voice_underruns", 0) - st0.get("voice_underruns", 0),
                                        s.get("device_underflows", 0) - st0.get("device_underflows", 0)] +
                                       [round(s.get(k) or 0, 1) for k in res["timeline_keys"][3:-1]] +
                                       [round((vm_pgpgin_kb() - pgpgin0) / 1024, 1)])
        time.sleep(max(0.0, start_at + seconds - time.time()))
        res["stemd_cpu_pct"] = round(cpu.stop(), 2)
        res["jackd_cpu_pct"] = round(jcpu.stop(), 2)
        res.update({k: v for k, v in proc_mem(stemd.proc.pid).items()})
        st = stemd.osc.status()
        time.sleep(0.5 + start_skip_frames(n) / RATE)  # the tail of the reference's span reaches the port
        res["voices_playing"] = st.get("voices")
        res["voice_underruns"] = st.get("voice_underruns", 0) - st0.get("voice_underruns", 0)
        res["device_underflows"] = st.get("device_underflows", 0) - st0.get("device_underflows", 0)
        res["jackd_xruns"] = jack.xruns() - x0
        res["callback_p99_us"] = st.get("callback_p99_us")
        res["callback_max_us"] = st.get("callback_max_us")
        res["budget_us"] = st.get("budget_us")
        res["memory_bytes"] = st.get("memory_bytes")
        res["ring_bytes"] = st.get("ring_bytes")
        res["status_voices_mid"] = st_mid.get("voices")
        if cap:
            cap.stop()
            cap = None
        stemd.stop()
        res["stemd_exit"] = stemd.proc.returncode
        if verify and n:
            ref = os.path.join(wd, "reference.wav")
            fx.reference(ref, n, seconds, start_skip_frames(n))
            v = subprocess.run([os.path.join(args.build, "tests", "tools", "stemd-capture-verify"), "--ref", ref,
                                "--capture", os.path.join(wd, "capture.wav"), "--period", str(period),
                                "--allow-slips", "--json"], capture_output=True, text=True)
            try:
                vr = json.loads(v.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                vr = {"ok": False, "error": (v.stdout + v.stderr)[-500:]}
            res["verify"] = {k: vr.get(k) for k in ("ok", "anchor", "periods", "exact_periods", "slips",
                                                    "slip_periods", "unmatched_periods", "missing_periods",
                                                    "first_bad_frame", "max_abs_diff", "whole_ref_found", "error")}
        return res
    except Exception as e:  # a broken run is a result to report, not a crash of the benchmark
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    finally:
        if cap:
            cap.stop()
        if stemd:
            stemd.stop()
            # The daemon's own account (health lines, prefetch changes, the summary), for the JSON.
            res["stemd_log"] = [line for line in stemd.tail(20000).splitlines()
                                if " loaded id " not in line and "ALSA" not in line
                                and "cannot find card" not in line][-12:]
        if jack:
            jack.stop()
        if args.keep:
            log(f"kept {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)


def clean(res, baseline_xruns):
    """The pass rule (and why not)."""
    why = []
    if "error" in res:
        why.append(res["error"])
    else:
        if res.get("voices_playing") != res["voices"]:
            why.append(f"{res.get('voices_playing')} of {res['voices']} voices playing at the end")
        if res.get("voice_underruns", 1) != 0:
            why.append(f"{res.get('voice_underruns')} voice underruns")
        if res.get("device_underflows", 0) > baseline_xruns:
            why.append(f"{res['device_underflows']} device underflows > idle baseline {baseline_xruns}")
        v = res.get("verify")
        if v is not None and not v.get("ok"):
            why.append(f"capture: {v.get('unmatched_periods')} unmatched, {v.get('missing_periods')} missing "
                       f"of {v.get('periods')} periods" + (f" ({v['error']})" if v.get("error") else ""))
    res["clean"] = not why
    res["why"] = "; ".join(why)
    return res["clean"]


def cmd_search(args):
    # The exact sum of --max files must stay below the limiter's threshold (N · amp < 29204):
    # a higher cap gets quieter fixtures (±3 at 8,192 voices).
    amp = min(args.amp, max(1, 29203 // max(args.max, 1)))
    fx = Fixtures(args.build, args.workdir, args.start, args.file_seconds, amp)
    out = {"mode": "search", "seconds": args.seconds, "file_seconds": args.file_seconds, "start": args.start,
           "max": args.max, "amp": amp, "retries": args.retries, "periods": []}
    for period in args.periods:
        base = idle_baseline(args, period, args.seconds)
        log(f"period {period}: idle jackd {base['xruns']} xruns in {args.seconds} s")
        trials = []

        def attempt(n):
            # A failure is tried again (--retries): on a shared machine one trial can lose to
            # someone else's build. Every attempt is reported; the retry is marked.
            for k in range(1 + args.retries):
                r = trial(args, fx, period, n, args.seconds)
                r["attempt"] = k + 1
                ok = clean(r, base["xruns"])
                log(f"period {period}: N={n} (attempt {k + 1}): {'clean' if ok else 'FAIL: ' + r['why']} "
                    f"(cpu {r.get('stemd_cpu_pct')} %, underruns {r.get('voice_underruns')}, "
                    f"underflows {r.get('device_underflows')}, xruns {r.get('jackd_xruns')})")
                trials.append(r)
                if ok:
                    return True
            return False

        good, bad = 0, None
        n = args.start
        while n <= args.max:  # doubling
            if attempt(n):
                good = n
                n *= 2
            else:
                bad = n
                break
        if bad is None and good < args.max:  # the cap lies between the last doubling and max
            if attempt(args.max):
                good = args.max
            else:
                bad = args.max
        while bad is not None and bad - good > max(args.resolution, good * args.resolution_frac):  # bisection
            mid = (good + bad) // 2
            if attempt(mid):
                good = mid
            else:
                bad = mid
        base_after = idle_baseline(args, period, args.seconds)
        out["periods"].append({"period": period, "idle": base, "idle_after": base_after, "max_clean": good,
                               "first_failure": bad, "capped": bad is None, "trials": trials})
    return out


def cmd_cpu(args):
    fx = Fixtures(args.build, args.workdir, max(max(args.voices), 1), args.file_seconds, args.amp)
    out = {"mode": "cpu", "seconds": args.seconds, "period": args.period}
    out["idle"] = idle_baseline(args, args.period, args.seconds)
    rows = []
    for n in args.voices:
        r = trial(args, fx, args.period, n, args.seconds, verify=args.verify, via="osc")
        clean(r, out["idle"]["xruns"])
        log(f"cpu: {n} voices: stemd {r.get('stemd_cpu_pct')} %, RSS {r.get('VmRSS', 0) / 2**20:.1f} MiB"
            + (f" — {r['why']}" if r.get("why") else ""))
        rows.append(r)
    out["rows"] = rows
    return out


def cmd_rss(args):
    seconds_per_file = args.mb * 1e6 / (RATE * 4)
    fx = Fixtures(args.build, args.workdir, args.count, round(seconds_per_file, 3), args.amp)
    out = {"mode": "rss", "count": args.count, "file_mb": args.mb, "period": args.period, "seconds": args.seconds}
    r = trial(args, fx, args.period, args.count, args.seconds, verify=False, via="osc")
    clean(r, 1 << 30)
    r["file_bytes"] = os.path.getsize(fx.paths(1)[0])
    out["row"] = r
    return out


def cmd_compare(args):
    """stemd and scsynth side by side, same files, same test bed, one run: per N, stemd's whole
    process CPU (voices loaded and started over OSC) and scsynth's (DiskIn), and their ratio."""
    fx = Fixtures(args.build, args.workdir, max(max(args.voices), 1), args.file_seconds, args.amp)
    out = {"mode": "compare", "seconds": args.seconds, "period": args.period, "rows": []}
    out["idle"] = idle_baseline(args, args.period, min(args.seconds, 5))
    for n in args.voices:
        st = trial(args, fx, args.period, n, args.seconds, verify=False, via="osc")
        clean(st, out["idle"]["xruns"])
        sc = scsynth_trial(args, fx, args.period, n, args.seconds)
        a, b = st.get("stemd_cpu_pct"), sc.get("scsynth_cpu_pct")
        row = {"voices": n, "stemd": st, "scsynth": sc, "ratio": round(a / b, 3) if a and b else None}
        log(f"compare: {n} voices: stemd {a} %, scsynth {b} %, ratio {row['ratio']}"
            + (f" — stemd: {st['why']}" if st.get("why") else "") + (f" — scsynth: {sc['error']}" if sc.get("error") else ""))
        out["rows"].append(row)
    return out


def write_stem(path, seconds, rate, seed):
    """A 16-bit stereo WAV: one second of noise and a tone, repeated (the cost of resampling and
    stretching does not depend on what the audio is)."""
    import array
    import math
    import random
    import wave
    if os.path.exists(path):
        return
    rnd = random.Random(seed)
    block = array.array("h")
    for k in range(rate):
        tone = 3000.0 * math.sin(2 * math.pi * (110.0 * (1 + seed % 5)) * k / rate)
        block.append(int(tone + rnd.gauss(0, 1500)))
        block.append(int(tone * 0.8 + rnd.gauss(0, 1500)))
    data = block.tobytes()
    with wave.open(path + ".part", "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(int(seconds)):
            w.writeframes(data)
    os.replace(path + ".part", path)


def crowd_trial(args, jack, paths, label, engine, tempo):
    """One stemd running the crowdstream workload; tempo None: no /set_tempo (resampled only);
    paths empty: idle stemd."""
    flags = ["--stretch-method", "time_stretch", "--stretch-engine", engine, "--bpm", "120"] + args.stemd_args
    with tempfile.TemporaryDirectory(dir=args.workdir) as wd:
        st = Stemd(args.build, jack, args.period, wd, flags)
        r = {"label": label, "engine": engine, "stems": len(paths), "bpm": tempo, "command": st.cmd}
        try:
            ids = [100 + k if k < 4 else 1100 + k - 4 for k in range(len(paths))]  # decks A and B
            for i, p in zip(ids, paths):
                a = st.osc.call("/load_buffer", i, p, timeout=20)
                if not a or a[0] != "/done":
                    r["error"] = f"/load_buffer {i}: {a}"
                    return r
            if paths:
                for deck in ("A", "B"):
                    st.osc.call("/deck_eq_all", deck, 30.0, 60.0, 40.0)
                for i in ids:
                    st.osc.call("/play_stem", i, 1.0, 0.8, 1)
                if tempo:
                    st.osc.call("/set_tempo", float(tempo))
            time.sleep(2.0)  # stretchers attach at the bottom of a fade; the EQ glides
            x0, s0 = jack.xruns(), st.osc.status()
            cpu = CpuWindow(st.proc.pid)
            cpu.start()
            perf = None
            if args.perf and paths and tempo:
                out = os.path.join(args.workdir, f"perf-{engine}.data")
                perf = subprocess.Popen(["perf", "record", "-g", "-F", "499", "-o", out, "-p", str(st.proc.pid), "--",
                                         "sleep", str(args.seconds)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                r["perf_data"] = out
            time.sleep(args.seconds)
            r["stemd_cpu_pct"] = round(cpu.stop(), 2)
            if perf:
                perf.wait(60)
            s1 = st.osc.status()
            r["jackd_xruns"] = jack.xruns() - x0
            r["voices_playing"] = s1.get("voices")
            r["voice_underruns"] = (s1.get("voice_underruns") or 0) - (s0.get("voice_underruns") or 0)
            r["device_underflows"] = (s1.get("device_underflows") or 0) - (s0.get("device_underflows") or 0)
            r["callback_p99_us"] = s1.get("callback_p99_us")
            r["stretch_bus_voices"] = s1.get("stretch_bus_voices")  # stems sharing a deck's stretcher
            r.update(proc_mem(st.proc.pid))
        finally:
            st.stop()
    return r


def cmd_crowd(args):
    rate = args.stem_rate  # 48000: stems at the output's rate, nothing resampled (a DAC run at the stems' rate)
    d = os.path.join(args.workdir, f"crowd-{args.stem_seconds:g}s-{rate}")
    os.makedirs(d, exist_ok=True)
    paths = [os.path.join(d, f"stem{k}.wav") for k in range(8)]
    for k, p in enumerate(paths):
        write_stem(p, args.stem_seconds, rate, k + 1)
    out = {"mode": "crowd", "seconds": args.seconds, "period": args.period, "stem_rate": rate,
           "stem_seconds": args.stem_seconds, "bpm": args.bpm, "rows": []}
    out["idle"] = idle_baseline(args, args.period, min(args.seconds, 5))
    jack = Jack(args.workdir, args.period, args.realtime)
    try:
        plain = "8 stems, resampled (no /set_tempo)" if rate != RATE else "8 stems at the output's rate (no /set_tempo)"
        plan = [("idle stemd", "finer", [], None), (plain, "finer", paths, None)]
        plan += [(f"8 stems, /set_tempo {args.bpm:g}, {e}", e, paths, args.bpm) for e in args.engines]
        for label, engine, ps, tempo in plan:
            r = crowd_trial(args, jack, ps, label, engine, tempo)
            log(f"crowd: {label}: stemd {r.get('stemd_cpu_pct')} % " + (r.get("error") or ""))
            out["rows"].append(r)
    finally:
        jack.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release", help="build directory with src/stemd and tests/tools")
    ap.add_argument("--workdir", default=None, help="fixtures and scratch (default: a temp dir, removed)")
    ap.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                    help="jackd -R (default) or --no-realtime")
    ap.add_argument("--amp", type=int, default=7, help="fixture amplitude in 16-bit units (N·amp < 29204)")
    ap.add_argument("--file-seconds", type=float, default=8.0, help="fixture length; voices loop")
    ap.add_argument("--keep", action="store_true", help="keep each trial's directory and log tails")
    ap.add_argument("--timeline", action="store_true",
                    help="record when voice underruns and device underflows happened (status every 0.25 s)")
    ap.add_argument("--stemd-arg", dest="stemd_args", action="append", default=[], help="extra stemd flag")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search")
    s.add_argument("--periods", type=int, nargs="+", default=[1024, 256])
    s.add_argument("--seconds", type=float, default=30)
    s.add_argument("--start", type=int, default=64)
    s.add_argument("--retries", type=int, default=1, help="attempts more for a failing N")
    s.add_argument("--max", type=int, default=4096)
    s.add_argument("--resolution", type=int, default=64, help="stop bisecting below this many voices…")
    s.add_argument("--resolution-frac", type=float, default=0.05, help="…or this fraction of the result")
    c = sub.add_parser("cpu")
    c.add_argument("--voices", type=int, nargs="+", default=[0, 1, 8, 32, 128, 512])
    c.add_argument("--period", type=int, default=1024)
    c.add_argument("--seconds", type=float, default=20)
    c.add_argument("--verify", action="store_true", help="also check each capture")
    m = sub.add_parser("compare", help="stemd and scsynth (DiskIn) side by side")
    m.add_argument("--voices", type=int, nargs="+", default=[256, 1024])
    m.add_argument("--period", type=int, default=1024)
    m.add_argument("--seconds", type=float, default=15)
    r = sub.add_parser("rss")
    r.add_argument("--count", type=int, default=8)
    r.add_argument("--mb", type=float, default=140)
    r.add_argument("--period", type=int, default=1024)
    r.add_argument("--seconds", type=float, default=10)
    k = sub.add_parser("crowd", help="the crowdstream workload: 8 stems, 44.1 → 48 kHz, EQ, time-stretch")
    k.add_argument("--period", type=int, default=1024)
    k.add_argument("--seconds", type=float, default=15)
    k.add_argument("--stem-seconds", type=float, default=120, help="stem length (streamed beyond 16 MiB)")
    k.add_argument("--bpm", type=float, default=126, help="/set_tempo (base 120: tempo 1.05)")
    k.add_argument("--stem-rate", type=int, default=44100,
                   help="the stems' sample rate, Hz (the output runs at 48000: 48000 resamples nothing)")
    k.add_argument("--engines", nargs="+", default=["finer", "faster"])
    k.add_argument("--perf", action="store_true", help="perf record the stretched trials (kept in --workdir)")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    own = args.workdir is None
    args.workdir = tempfile.mkdtemp(prefix="stemd-stream-bench-") if own else os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    try:
        res = {"search": cmd_search, "cpu": cmd_cpu, "rss": cmd_rss, "compare": cmd_compare,
               "crowd": cmd_crowd}[args.cmd](args)
    finally:
        if own and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    res["machine"] = {"nproc": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
                      "jackd_realtime": args.realtime}
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
