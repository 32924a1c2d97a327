#!/usr/bin/env python3
"""bench_start.py: how long stemd takes to start — to its first /stemd/ping answer and to its first
audio — on the null backend and on a JACK server (the test bed's dummy driver).

    scripts/bench_start.py STEMD [STEMD…] [--runs 10] [--port 49400] [--jack NAME] [--onsets PATH]

Several binaries (before and after a change) take turns, run by run, so that a machine's load
weighs on each alike. Each run starts STEMD (--config none, --log-level debug, --play a 10-s noise file) and stamps:
  ping   the first /stemd/ping answered (UDP, asked every 2 ms from the spawn on)
  voice  the log line "voice N started" (written by the control thread after the audio thread
         started the voice: up to one control pass late; the log's clock is the wall clock, ms)
  sound  with --jack and --onsets (build/…/tests/tools/stemd-jack-onsets): the first loud frame
         at stemd:out_0, in JACK's clock (CLOCK_MONOTONIC_RAW), as it leaves the graph
all from the spawn. With --jack NAME the backend is `portaudio --device system` on the running
JACK server NAME (start it yourself: jackd -n NAME -d dummy -r 48000 -p 1024); else null.
Prints min / median / max per figure. Nothing is asserted: this is a measurement.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
import random
import struct


def osc(address):
    def pad(b):
        return b + b"\0" * (4 - len(b) % 4)
    return pad(address.encode()) + pad(b",")


def noise_wav(path, seconds=10, rate=48000):
    rnd = random.Random(1)
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for _ in range(seconds * rate):
            v = rnd.randint(-20000, 20000)
            frames += struct.pack("<hh", v, v)
        w.writeframes(bytes(frames))


def one_run(args, stemd, wav, log_path):
    cmd = [stemd, "--config", "none", "--log-level", "debug", "--osc-port", str(args.port),
           "--http-port", "-1", "--play", wav]
    env = dict(os.environ)
    if args.jack:
        cmd += ["--backend", "portaudio", "--device", "system", "--buffer-size", "1024"]
        env["JACK_DEFAULT_SERVER"] = args.jack
        env["JACK_NO_START_SERVER"] = "1"
    else:
        cmd += ["--backend", "null", "--buffer-size", "1024"]
    onsets = None
    if args.jack and args.onsets:
        onsets = subprocess.Popen([args.onsets, "--source", "stemd", "--name", "stemd-bench-onsets"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    with open(log_path, "w") as log:
        t0_raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
        t0_wall = time.time()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    ping = None
    deadline = t0_raw + 15
    while ping is None and time.clock_gettime(time.CLOCK_MONOTONIC_RAW) < deadline:
        sock.sendto(osc("/stemd/ping"), ("127.0.0.1", args.port))
        end = time.clock_gettime(time.CLOCK_MONOTONIC_RAW) + 0.002
        while time.clock_gettime(time.CLOCK_MONOTONIC_RAW) < end:
            try:
                sock.recv(1024)
                ping = time.clock_gettime(time.CLOCK_MONOTONIC_RAW) - t0_raw
                break
            except BlockingIOError:
                time.sleep(0.0005)
    voice = None
    while voice is None and time.clock_gettime(time.CLOCK_MONOTONIC_RAW) < deadline:
        with open(log_path) as f:
            m = re.search(r"^(\d+-\d+-\d+ \d+:\d+:\d+\.\d+) \S+ voice \d+ started", f.read(), re.M)
        if m:
            stamp = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + m.group(1)[19:])
            voice = stamp - t0_wall
        else:
            time.sleep(0.01)
    sound = None
    if onsets is not None:
        for line in onsets.stdout:
            if line.startswith("onset "):
                sound = int(line.split()[1]) / 1e9 - t0_raw
                break
            if time.clock_gettime(time.CLOCK_MONOTONIC_RAW) > deadline:
                break
        onsets.terminate()
        onsets.wait()
    proc.terminate()
    proc.wait(timeout=10)
    sock.close()
    return ping, voice, sound


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stemd", nargs="+")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--port", type=int, default=49400)
    ap.add_argument("--jack")
    ap.add_argument("--onsets")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemd-bench-start-") as d:
        wav = os.path.join(d, "noise.wav")
        noise_wav(wav)
        rows = {b: [] for b in args.stemd}
        for i in range(args.runs):
            for b in args.stemd:
                rows[b].append(one_run(args, b, wav, os.path.join(d, f"stemd{i}.log")))
                time.sleep(0.3)
        for b in args.stemd:
            print(f"{b} ({'JACK ' + args.jack if args.jack else 'null'} backend, {args.runs} runs):")
            for k, name in enumerate(["ping", "voice", "sound"]):
                vals = [r[k] for r in rows[b] if r[k] is not None]
                if not vals:
                    continue
                print(f"  {name:6s} n={len(vals):2d}  min {min(vals)*1000:7.1f} ms  median "
                      f"{statistics.median(vals)*1000:7.1f} ms  max {max(vals)*1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
