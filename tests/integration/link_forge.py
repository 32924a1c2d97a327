#!/usr/bin/env python3
"""Forged Ableton Link peers for link_forged.sh (run ONLY inside a private network namespace).

Writes Link discovery v1 ('_asdp_v\\x01') and measurement ('_link_v\\x01') packets as laid out in
Debian's ableton-link headers (outside pass 26's linkpeer.py):
  lock SECONDS     one alive message (ttl 1) claiming the session of the first real peer heard,
                   with tempo 125 bpm and beat origin 2^63-1 µbeats (outside pass 26, M2)
  founder SECONDS  a peer founding its own session at 170 bpm whose clock is 4·10^18 µs ahead:
                   it answers measurement pings and announces itself every 0.1 s for SECONDS (M3)
"""
import os
import socket
import struct
import sys
import threading
import time

GROUP, PORT = "224.76.78.75", 20808
K_TMLN, K_SESS, K_STST, K_MEP4, K_GT = 0x746D6C6E, 0x73657373, 0x73747374, 0x6D657034, 0x5F5F6774


def entry(key, val):
    return struct.pack(">II", key, len(val)) + val


def alive(ident, sess, bpm, beat_origin, time_origin, ttl, mep=None):
    p = entry(K_TMLN, struct.pack(">qqq", int(round(60e6 / bpm)), beat_origin, time_origin))
    p += entry(K_SESS, sess) + entry(K_STST, struct.pack(">?qq", False, 0, 0))
    if mep:
        p += entry(K_MEP4, socket.inet_aton(mep[0]) + struct.pack(">H", mep[1]))
    return b"_asdp_v\x01" + bytes([1, ttl]) + b"\0\0" + ident + p


def session_heard(timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("", PORT))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1"))
    s.settimeout(0.5)
    end = time.time() + timeout
    while time.time() < end:
        try:
            d, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        if not d.startswith(b"_asdp_v\x01") or len(d) < 20 or d[8] not in (1, 2):
            continue
        i, b = 0, d[20:]
        while i + 8 <= len(b):
            k, n = struct.unpack(">II", b[i : i + 8])
            if k == K_SESS:
                return b[i + 8 : i + 8 + n]
            i += 8 + n
    return None


def sender():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    s.bind(("127.0.0.1", 0))
    return s


def lock():
    sess = session_heard(5.0)
    if sess is None:
        sys.exit("link_forge: no Link session heard")
    sender().sendto(alive(os.urandom(8), sess, 125.0, 2**63 - 1, 0, ttl=1), (GROUP, PORT))
    print("link_forge: one datagram: session", sess.hex(), "beat origin 2^63-1, 125 bpm", flush=True)


def founder(seconds):
    m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m.bind(("127.0.0.1", 0))
    mep = m.getsockname()
    ident = os.urandom(8)

    def answer():  # pongs with a ghost clock 4·10^18 µs ahead of this host's
        while True:
            d, a = m.recvfrom(2048)
            if d.startswith(b"_link_v\x01") and d[8] == 1:
                gt = int(time.clock_gettime(time.CLOCK_MONOTONIC_RAW) * 1e6) + 4 * 10**18
                m.sendto(b"_link_v\x01\x02" + entry(K_SESS, ident) + entry(K_GT, struct.pack(">q", gt)) + d[9:], a)

    threading.Thread(target=answer, daemon=True).start()
    s, end = sender(), time.time() + seconds
    while time.time() < end:
        s.sendto(alive(ident, ident, 170.0, 10**6, 0, ttl=5, mep=mep), (GROUP, PORT))
        time.sleep(0.1)
    s.sendto(alive(ident, ident, 170.0, 10**6, 0, ttl=0, mep=mep)[:8] + bytes([3, 0]) + b"\0\0" + ident, (GROUP, PORT))


if __name__ == "__main__":
    if sys.argv[1] == "lock":
        lock()
    else:
        founder(float(sys.argv[2]))
