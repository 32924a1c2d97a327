#!/usr/bin/env python3
"""schedule_flood.py: fill a running stemd's schedule with timed bundles and report the callback cost.

Sends COUNT bundles, each holding one harmless command (/stemd/master 1.0), timed AHEAD seconds
in the future, newest first (every bundle earlier than the one before: the worst order for a
sorted insertion), in paced batches, draining the replies. Then waits a moment and prints the
daemon's status fields that matter here as "key value" lines:

  sent, done, failed (and the first /fail reason), callback_max_us, budget_us,
  device_underflows, scheduled, schedule_refused

A benchmark, not a test: it asserts nothing. Run it against a fresh daemon so callback_max_us
(the maximum since start) is this flood's:

  stemd --backend null --buffer-size 512 --port 57900 &
  tests/tools/schedule_flood.py --port 57900 --count 8192 --ahead 86000
"""

import argparse
import socket
import struct
import sys
import time

NTP_EPOCH = 2208988800  # seconds from 1900 to 1970


def pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def message(address: str, *args) -> bytes:
    tags = ","
    data = b""
    for a in args:
        if isinstance(a, float):
            tags += "f"
            data += struct.pack(">f", a)
        elif isinstance(a, int):
            tags += "i"
            data += struct.pack(">i", a)
        else:
            tags += "s"
            data += pad(a.encode())
    return pad(address.encode()) + pad(tags.encode()) + data


def bundle(unix_time: float, *elements: bytes) -> bytes:
    secs = int(unix_time) + NTP_EPOCH
    frac = int((unix_time - int(unix_time)) * (1 << 32)) & 0xFFFFFFFF
    out = pad(b"#bundle") + struct.pack(">II", secs, frac)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def read_string(b: bytes, i: int):
    end = b.index(b"\0", i)
    s = b[i:end].decode(errors="replace")
    return s, (end + 4) & ~3


def parse(b: bytes):
    address, i = read_string(b, 0)
    tags, i = read_string(b, i)
    args = []
    for t in tags[1:]:
        if t == "i":
            args.append(struct.unpack_from(">i", b, i)[0])
            i += 4
        elif t == "f":
            args.append(struct.unpack_from(">f", b, i)[0])
            i += 4
        elif t == "h":
            args.append(struct.unpack_from(">q", b, i)[0])
            i += 8
        elif t == "d":
            args.append(struct.unpack_from(">d", b, i)[0])
            i += 8
        elif t == "s":
            s, i = read_string(b, i)
            args.append(s)
        elif t in "TFN":
            args.append(t)
    return address, args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=8192)
    ap.add_argument("--ahead", type=float, default=86000.0, help="seconds ahead of now (the newest bundle)")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.connect((args.host, args.port))
    sock.settimeout(2.0)
    cmd = message("/stemd/master", 1.0)
    base = time.time() + args.ahead
    done = failed = 0
    first_fail = ""
    sent = 0
    while sent < args.count:
        n = min(args.batch, args.count - sent)
        for k in range(n):
            # newest first: each bundle 1 ms earlier than the one before
            sock.send(bundle(base - 0.001 * (sent + k), cmd))
        sent += n
        for _ in range(n):
            try:
                address, a = parse(sock.recv(65536))
            except socket.timeout:
                break
            if address == "/done":
                done += 1
            else:
                failed += 1
                if not first_fail:
                    first_fail = str(a[-1]) if a else "?"
    time.sleep(0.5)
    sock.send(message("/stemd/status"))
    status = {}
    while True:
        address, a = parse(sock.recv(65536))
        if address == "/done" and a and a[0] == "/stemd/status":
            status = dict(zip(a[1::2], a[2::2]))
            break
    print(f"sent {sent}")
    print(f"done {done}")
    print(f"failed {failed}")
    if first_fail:
        print(f"first_fail {first_fail}")
    for k in ("buffer_size", "callback_max_us", "callback_p99_us", "budget_us", "device_underflows", "scheduled",
              "schedule_refused"):
        if k in status:
            print(f"{k} {status[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
