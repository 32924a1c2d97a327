#!/usr/bin/env python3
"""alsa_pace.py OUT BYTES_PER_SECOND — a clock for ALSA's `file` PCM in the tests.

The `file` plugin over a `null` slave takes audio as fast as it is written: stemd's SCHED_FIFO
callback thread then spins a whole core (250 s of audio in 0.1 s), starving the tests that run
beside it. Given as the plugin's `file "|python3 alsa_pace.py OUT RATE"`, this copies the stream to
OUT (a raw file, or /dev/null) no faster than RATE bytes per second of wall time: the pipe fills and
ALSA's write blocks the callback thread, as a card's clock would. Bytes are copied unchanged.
"""
import sys
import time


def main() -> int:
    out = open(sys.argv[1], "wb", buffering=0)
    rate = float(sys.argv[2])
    start, copied = time.monotonic(), 0
    while True:
        chunk = sys.stdin.buffer.read1(65536)
        if not chunk:
            return 0
        out.write(chunk)
        copied += len(chunk)
        ahead = copied / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


if __name__ == "__main__":
    sys.exit(main())
