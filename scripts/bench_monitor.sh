#!/usr/bin/env bash
# bench_monitor.sh [BUILD_DIR] [SECONDS=15]: the web monitor's cost (issue 16) — stemd's CPU
# (all its threads, utime+stime from /proc) playing one looped file on a private JACK dummy
# server at 1024 frames / 48 kHz, measured over SECONDS in four runs of the same daemon build:
#   off (no --http-port: the reference), on with 0 listeners, 1 listener, 4 listeners
# (each a WebSocket client on /ws/audio reading everything). Prints a markdown table: % of one
# core, and the cost per listener = (4 listeners − 0 listeners) / 4. A report, never pass/fail.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$root/build/release}
SECS=${2:-15}
# shellcheck source=testbed.sh
source "$root/scripts/testbed.sh"
testbed_start 1024 48000 >&2 || { echo "bench_monitor: could not start jackd" >&2; exit 1; }
D=$TESTBED_DIR
sox -n -r 48000 -b 16 -c 2 "$D/loop.wav" synth 10 sine 440 vol 0.3 2>/dev/null
run() {  # run NAME LISTENERS [stemd flags…] → "NAME cpu_percent"
  local name=$1 n=$2
  shift 2
  "$BUILD/src/stemd" --backend portaudio --device system --buffer-size 1024 --osc-port 0 \
    --play "$D/loop.wav" --loop "$@" >"$D/$name.log" 2>&1 &
  local pid=$!
  testbed_track_pid "$pid"
  testbed_wait_for 10 grep -qs " started: " "$D/$name.log"
  sleep 1
  local port
  port=$(grep -o 'web monitor on http://127\.0\.0\.1:[0-9]*' "$D/$name.log" | sed 's/.*://' || true)
  python3 - "$pid" "$SECS" "$n" "${port:-0}" "$name" <<'PY'
import os, socket, sys, threading, time, base64
pid, secs, n, port, name = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stop = False
got = [0] * n
def listen(i):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /ws/audio HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % base64.b64encode(os.urandom(16)).decode()).encode())
    while not stop:
        b = s.recv(1 << 16)
        if not b:
            break
        got[i] += len(b)
threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(n)]
for t in threads:
    t.start()
time.sleep(1)
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0, t0 = cpu(), time.monotonic()
time.sleep(secs)
c1, t1 = cpu(), time.monotonic()
stop = True
rate = sum(got) / max(1, n) / (t1 - t0 + 1) / 1024
print(f"{name} {100 * (c1 - c0) / (t1 - t0):.2f} {rate:.0f}")
PY
  kill -TERM "$pid"
  testbed_wait_pid "$pid" 10 || true
}
off=$(run off 0)
on0=$(run on0 0 --http-port 0)
on1=$(run on1 1 --http-port 0)
on4=$(run on4 4 --http-port 0)
pct() { echo "$1" | cut -d' ' -f2; }
kib() { echo "$1" | cut -d' ' -f3; }
per=$(python3 -c "print(f'{($(pct "$on4") - $(pct "$on0")) / 4:.2f}')")
first=$(python3 -c "print(f'{$(pct "$on1") - $(pct "$on0"):.2f}')")
echo "| stemd, 1 looped file, 1024 frames, 48 kHz, ${SECS} s | CPU (% of one core) | KiB/s per listener |"
echo "|---|---|---|"
echo "| monitor off (reference) | $(pct "$off") | – |"
echo "| --http-port, 0 listeners | $(pct "$on0") | – |"
echo "| 1 listener | $(pct "$on1") | $(kib "$on1") |"
echo "| 4 listeners | $(pct "$on4") | $(kib "$on4") |"
echo "| **the first listener** (1 − 0) | **$first** | |"
echo "| **per listener** ((4 − 0) / 4) | **$per** | |"
