#!/usr/bin/env python3
"""crowdstream_live.py: crowdstream's clients replayed live over UDP against a running stemd.

The captures in tests/data/crowdstream/*.txt (the message sequences of crowdstream's real
clients, see make_captures.py there) are sent in real time, each client from a socket of its
own and all of them at once, encoded as the clients' python-osc encodes them: a Python int is
an OSC int32 (i), a float a float32 (f), a str a string (s); mixer.py and mixer_3tracks.py call
`send_message("/reset", ([],))`, which python-osc sends as an empty OSC array (",[]").
Every reply is collected; the run fails when a message is not answered /done (the old server
accepted all of them), and prints each /fail with its reason.

  crowdstream_live.py --port P CAPTURE[:UNTIL_SECONDS] ...

Prints one line per client ("client NAME sent N done N fail N missing N") and ends with
"crowdstream_live: PASS" or "crowdstream_live: FAIL"; exit 0 or 1.
"""
import argparse
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_client import _pad, osc_message, parse_reply  # noqa: E402

# Clients whose /reset goes out as ",[]" (their send() does not flatten the list argument).
ARRAY_RESET = ("two_deck_mixer", "three_deck_mixer")
INT = re.compile(r"^-?\d+$")
FLOAT = re.compile(r"^-?(\d+\.\d*|\d*\.\d+|\d+)(e-?\d+)?$")


def arg(text):
    """A capture's argument as the client had it (make_captures.py writes floats with a '.')."""
    if INT.match(text):
        return int(text)
    if FLOAT.match(text):
        return float(text)
    return text


def read_capture(path, until):
    name = os.path.splitext(os.path.basename(path))[0]
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.split()
            t, address, args = float(fields[0]), fields[1], [arg(a) for a in fields[2:]]
            if until is not None and t > until:
                break
            if address == "/reset" and name in ARRAY_RESET:
                data = _pad(b"/reset") + _pad(b",[]")
            else:
                data = osc_message(address, *args)
            out.append((t, address, data))
    return name, out


class Client(threading.Thread):
    def __init__(self, port, name, messages, t0):
        super().__init__(daemon=True)
        self.port, self.name, self.messages, self.t0 = port, name, messages, t0
        self.replies = []

    def receive(self, sock, until):
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(min(left, 0.05))
            try:
                data = sock.recv(65536)
            except (socket.timeout, ConnectionRefusedError):
                continue
            self.replies.extend(parse_reply(data))

    def run(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        for t, _, data in self.messages:
            self.receive(sock, self.t0 + t)
            sock.sendto(data, ("127.0.0.1", self.port))
        self.receive(sock, time.monotonic() + 1.0)  # a /cue answers when its file can play
        sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("captures", nargs="+", help="CAPTURE[:UNTIL_SECONDS]")
    a = ap.parse_args()
    t0 = time.monotonic() + 0.05
    clients = []
    for spec in a.captures:
        path, _, until = spec.partition(":")
        name, messages = read_capture(path, float(until) if until else None)
        clients.append(Client(a.port, name, messages, t0))
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    ok = True
    for c in clients:
        sent = {}
        for _, address, _ in c.messages:
            sent[address] = sent.get(address, 0) + 1
        answered = {}
        fails = []
        for address, args in c.replies:
            about = args[0] if args and isinstance(args[0], str) else "?"
            if address == "/done":
                answered[about] = answered.get(about, 0) + 1
            else:
                fails.append((address, args))
        missing = sum(max(0, n - answered.get(addr, 0)) for addr, n in sent.items())
        done = sum(answered.values())
        print(f"client {c.name} sent {len(c.messages)} done {done} fail {len(fails)} missing {missing}")
        for f in fails[:10]:
            print(f"  {f[0]} {f[1]}")
        for addr, n in sorted(sent.items()):
            if answered.get(addr, 0) != n:
                print(f"  {addr}: sent {n}, /done {answered.get(addr, 0)}")
        ok = ok and not fails and missing == 0 and done == len(c.messages)
    print("crowdstream_live: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
