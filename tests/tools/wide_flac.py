#!/usr/bin/env python3
"""wide_flac.py: a FLAC of CONSTANT subframes in blocks of up to 65,535 frames — a few KB on disk
whatever its length and channel count (tests/common/fixtures.cpp's write_constant_flac in Python).

  wide_flac.py OUT.flac [SECONDS 30] [CHANNELS 8] [BLOCK 65535] [DECLARED_BLOCK = BLOCK]

DECLARED_BLOCK is the block size its STREAMINFO states; libFLAC decodes larger blocks anyway.
Used by hostile_client.py (wide_flac, wide_flac_lie)."""
import struct
import sys


def crc8(data):
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def crc16(data):
    c = 0
    for b in data:
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def utf8_num(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | (n >> 6), 0x80 | (n & 0x3F)])
    return bytes([0xE0 | (n >> 12), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])


def write(path, seconds=30, rate=48000, channels=8, block=65535, declared_block=0, value=100):
    declared = declared_block or block
    nblocks = (seconds * rate + block - 1) // block
    total = nblocks * block
    si = struct.pack(">HH", declared, declared) + b"\0" * 6  # min/max block; frame sizes unknown
    si += ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | total).to_bytes(8, "big") + b"\0" * 16
    out = bytearray(b"fLaC" + bytes([0x80, 0, 0, 34]) + si)
    for f in range(nblocks):
        # sync, fixed blocking, 16-bit block size at the end, rate from STREAMINFO, independent channels, 16 bits
        hdr = bytes([0xFF, 0xF8, 0x70, ((channels - 1) << 4) | (4 << 1)]) + utf8_num(f) + struct.pack(">H", block - 1)
        frame = hdr + bytes([crc8(hdr)]) + b"".join(b"\0" + struct.pack(">h", value) for _ in range(channels))
        out += frame + struct.pack(">H", crc16(frame))
    with open(path, "wb") as fp:
        fp.write(out)


if __name__ == "__main__":
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    n = [int(x) for x in a[1:]]
    write(a[0], seconds=n[0] if n else 30, channels=n[1] if len(n) > 1 else 8, block=n[2] if len(n) > 2 else 65535,
          declared_block=n[3] if len(n) > 3 else 0)
