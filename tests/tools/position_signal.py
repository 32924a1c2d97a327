#!/usr/bin/env python3
"""position_signal.py: audio whose every frame says where in the file it is.

  position_signal.py gen OUT.wav SECONDS [RATE]   32-bit float stereo WAV: frame f has
      L = (f % 8192 + 1) / 32768 and R = (f // 8192 + 1) / 32768 — exact in float, below
      -12 dBFS (under the limiter), never silent.
  position_signal.py scan CAPTURE.wav             reads a float WAV (a capture; a header
      left unpatched by a dead writer is tolerated) and prints, as JSON: the first
      non-silent frame, the first frame from which the decoded positions run on one by
      one (after any fade-in), the position decoded there, how many frames run on
      without a break, and the breaks (a repeated, skipped or wrong frame) after it.
"""
import json
import struct
import sys
from array import array


def gen(path, seconds, rate):
    n = int(seconds * rate)
    data = array("f", bytes(8 * n))
    for f in range(n):
        data[2 * f] = (f % 8192 + 1) / 32768.0
        data[2 * f + 1] = (f // 8192 + 1) / 32768.0
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, rate, rate * 8, 8, 32)
    with open(path, "wb") as out:
        out.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(payload)) + b"WAVE")
        out.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        out.write(b"data" + struct.pack("<I", len(payload)) + payload)


def read_float_wav(path):
    raw = open(path, "rb").read()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise SystemExit(f"{path}: not a WAV file")
    pos, channels = 12, 0
    while pos + 8 <= len(raw):
        tag, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt_tag, channels = struct.unpack("<HH", raw[body:body + 4])
            bits = struct.unpack("<H", raw[body + 14:body + 16])[0]
            if bits != 32 or fmt_tag not in (3, 0xFFFE):
                raise SystemExit(f"{path}: not 32-bit float")
        if tag == b"data":
            end = len(raw) if size == 0 or body + size > len(raw) else body + size
            end -= (end - body) % (4 * channels)
            return channels, array("f", raw[body:end])
        pos = body + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


def decode(l, r):
    a, b = l * 32768.0, r * 32768.0
    if a != int(a) or b != int(b) or a < 1 or b < 1 or a > 8192:
        return None
    return (int(b) - 1) * 8192 + int(a) - 1


def scan(path):
    channels, d = read_float_wav(path)
    frames = len(d) // channels
    first_sound = next((i for i in range(frames) if d[i * channels] != 0.0 or d[i * channels + 1] != 0.0), None)
    res = {"frames": frames, "first_sound": first_sound, "steady_from": None, "position": None,
           "run": 0, "breaks": []}
    if first_sound is None:
        return res
    # The first frame from which 64 decoded positions run on one by one.
    i = first_sound
    while i + 64 < frames:
        p = decode(d[i * channels], d[i * channels + 1])
        if p is not None and all(decode(d[(i + k) * channels], d[(i + k) * channels + 1]) == p + k
                                 for k in range(1, 64)):
            break
        i += 1
    else:
        return res
    res["steady_from"], res["position"] = i, decode(d[i * channels], d[i * channels + 1])
    expect = res["position"]
    for j in range(i, frames):
        p = decode(d[j * channels], d[j * channels + 1])
        if p != expect:
            if len(res["breaks"]) < 10:
                res["breaks"].append({"frame": j, "expected": expect, "got": p})
            if p is None:
                break  # silence or a fade: the voice ended or was stopped
            expect = p
        expect += 1
        res["run"] = j - i + 1
    return res


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "gen":
        gen(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 48000)
    elif len(sys.argv) == 3 and sys.argv[1] == "scan":
        print(json.dumps(scan(sys.argv[2])))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
