#!/usr/bin/env bash
# late_device.sh SERVER STEMD POSITION_SIGNAL_PY STEMCTL — issue 14, item 4: a boot where the
# audio server comes up 5 s after stemd (SERVER jack: a JACK dummy server; SERVER pipewire: a
# headless PipeWire reached through pipewire-jack, as on a Pi OS Desktop). stemd, configured
# with its device, must tell the service manager STATUS="waiting for device …" (sd_notify: the
# test is the NOTIFY_SOCKET listener, as systemd would be), keep waiting, open the device as
# soon as it appears, say so in STATUS ("playing on …"), play its --play file unbroken (checked
# frame by frame at the server's monitor ports, tests/tools/position_signal.py), and log the
# audio thread's scheduling policy once the stream runs ("audio thread: SCHED_FIFO priority N",
# or "audio thread: SCHED_OTHER (not real-time): …" saying why). jack_device_wait.sh covers the
# log and OSC side of the wait; this test adds the service-manager side and the RT line.
# Exit 0 pass, 1 fail, 77 skip (the server or python3 not installed).
set -uo pipefail
SERVER=$1 STEMD=$2 POS=$3 STEMCTL=$4
NAME="late_device($SERVER)"
need=(python3 jack_capture)
if [ "$SERVER" = jack ]; then need+=(jackd jack_wait); else need+=(pipewire pw-link pw-cli); fi
for t in "${need[@]}"; do
  command -v "$t" >/dev/null 2>&1 || { echo "$NAME: SKIP ($t not installed)"; exit 77; }
done
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
fail() {
  echo "$NAME: FAIL: $*" >&2
  [ -f "$TESTBED_DIR/notify.log" ] && { echo "--- sd_notify messages"; cat "$TESTBED_DIR/notify.log"; } >&2
  [ -f "$TESTBED_DIR/stemd.log" ] && grep -v "^ALSA lib\|cannot find card" "$TESTBED_DIR/stemd.log" | tail -20 >&2
  exit 1
}

if [ "$SERVER" = jack ]; then
  # The server's name is made by testbed_start: start it once, then take it away before stemd.
  # Real-time where allowed (as the unit's LimitRTPRIO allows on a Pi): stemd's audio thread,
  # JACK's process thread, is then SCHED_FIFO, and the log must say so.
  export TESTBED_JACKD_RT=1
  testbed_start 1024 48000 || fail "could not start jackd"
  testbed_kill_jackd
  DEVICE=system
  export TESTBED_CAPTURE_PORTS="system:monitor_1 system:monitor_2"
else
  TESTBED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stemd-testbed.XXXXXX")
  TESTBED_DIR_OWNED=1
  export TESTBED_DIR
  trap testbed_cleanup EXIT
  # The runtime dir PipeWire will use, known to stemd before the server exists.
  mkdir -p "$TESTBED_DIR/pw-run" && chmod 700 "$TESTBED_DIR/pw-run"
  export XDG_RUNTIME_DIR="$TESTBED_DIR/pw-run" PIPEWIRE_RUNTIME_DIR="$TESTBED_DIR/pw-run"
  rc=0; pipewire_jack_env || rc=$?
  [ "$rc" -eq 0 ] || { echo "$NAME: SKIP (pipewire-jack not installed)"; exit 77; }
  DEVICE=stemd-test-sink
  export TESTBED_CAPTURE_PORTS="stemd-test-sink:monitor_FL stemd-test-sink:monitor_FR"
fi
D=$TESTBED_DIR
python3 "$POS" gen "$D/pos.wav" 30 48000 || fail "fixture"

# The service manager's side of sd_notify: one line per datagram.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(65536).decode(errors="replace").replace("\n", " | ") + "\n")
' "$D/notify.sock" "$D/notify.log" &
testbed_track_pid $!
testbed_wait_for 5 test -S "$D/notify.sock" || fail "notify listener did not start"

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NOTIFY_SOCKET="$D/notify.sock" "$STEMD" --backend portaudio --device "$DEVICE" --buffer-size 1024 \
  --osc-port "$PORT" --play "$D/pos.wav" --log-level info >"$D/stemd.log" 2>&1 &
STEMD_PID=$!
testbed_track_pid "$STEMD_PID"
testbed_wait_for 10 grep -q "STATUS=waiting for device '$DEVICE'" "$D/notify.log" ||
  fail "no STATUS=waiting for device '$DEVICE' over sd_notify"
grep -q "READY=1" "$D/notify.log" || fail "no READY=1 while waiting (the OSC side is up)"
sleep 5
kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd exited while its device was away"
grep -q "using the null backend" "$D/stemd.log" && fail "fell back to the null backend"
grep -q "STATUS=playing" "$D/notify.log" && fail "STATUS says playing before the server exists"

if [ "$SERVER" = jack ]; then
  testbed_restart_jackd || fail "jackd did not start"
else
  pipewire_start 1024 48000 || fail "PipeWire did not start"
fi
t_up=$(date +%s%N)
testbed_wait_for 15 grep -q "STATUS=playing on portaudio device .*'$DEVICE'" "$D/notify.log" ||
  fail "STATUS did not turn to 'playing on … $DEVICE' within 15 s of the server's start"
echo "$NAME: STATUS playing $(( ($(date +%s%N) - t_up) / 1000000 )) ms after the server was up (retry backoff up to 5 s)"
X0=$(testbed_xruns)
capture_start "$D/cap.wav" || fail "capture"
sleep 2
capture_stop || fail "capture stop"
CX=$(capture_xruns)
SLIPS=$(( $(testbed_xruns) - X0 + ${CX:-0} ))
testbed_wait_for 5 grep -q "audio thread: SCHED_" "$D/stemd.log" || fail "no 'audio thread: SCHED_…' line in the log"
grep -E "audio thread: (SCHED_FIFO priority [0-9]+|SCHED_RR priority [0-9]+|SCHED_OTHER \(not real-time\): .+)" \
  "$D/stemd.log" || fail "the audio thread's scheduling line does not say its policy and priority (or why not)"
if [ "${TESTBED_JACKD_REALTIME:-0}" = 1 ]; then
  grep -q "audio thread: SCHED_FIFO priority [1-9]" "$D/stemd.log" ||
    fail "jackd runs real-time (-R) but the log does not show the audio thread SCHED_FIFO"
fi
st=$("$STEMCTL" -p "$PORT" status 2>&1) || fail "status over OSC: $st"
grep -Eiq "device[ :]+running" <<<"$st" || fail "OSC status does not say the device runs: $st"
# A whole period slipped by an xrun that jackd or jack_capture counted is the shared VM's, not
# stemd's (testbed.md): allowed that many times, nothing else.
testbed_position_unbroken "$POS" "$D/cap.wav" "$NAME" "$SLIPS" 1024 || fail "see above"
echo "--- sd_notify messages"; cat "$D/notify.log"
echo "$NAME: PASS"
