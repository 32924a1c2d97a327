#!/usr/bin/env bash
# state_stall.sh STEMD STEMCTL STALL_FS: the state file ITSELF on a file system that does not answer
# (a network share or a USB bridge that hung; tests/tools/stall_fs.py holds its open() — and, with
# --hold-creates, the creation of a file: a write). Before, stemd read and wrote it on its main
# thread and --check-config checked it in-process: each waited in the kernel for as long as the
# file system was down.
#  1. Read at start: stemd starts within seconds without the restore (saying why), answers OSC,
#     stops at SIGTERM — the process really gone while the file system still hangs — and never
#     writes the file it could not read.
#  2. Write at run time: the main loop goes on (health lines, watchdog pings, STATUS= naming it),
#     SIGTERM stops stemd within seconds
#     (the process gone), saying the state was not saved.
#  3. --check-config: returns within --load-timeout + a few seconds, naming the file that did not
#     answer (the state file: a warning; a --play file: a problem, exit 2).
# Exit 0 pass, 1 fail, 77 skipped (not root, or no FUSE).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=state_stall
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mount_fs "$D/mnt" "$D/fs.log"
mount_fs "$D/mnt2" "$D/fs2.log" --hold-creates

# systemd's part: a datagram socket as NOTIFY_SOCKET (a path: reachable from any network
# namespace), each message a line of $D/notify.log; a 400 ms watchdog.
python3 - "$D/notify.sock" >"$D/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode(errors="replace").replace("\n", " "), flush=True)
PY
echo $! >"$D/notify.pid"
wait_for_socket() { local i=0; until [ -S "$D/notify.sock" ]; do [ $i -ge 100 ] && fail "no notify socket"; sleep 0.05; i=$((i + 1)); done; }
wait_for_socket

run_case() {  # NAME STATE_FILE: in a network namespace of its own (fixed ports)
  start_netns "$1" env NOTIFY_SOCKET="$D/notify.sock" WATCHDOG_USEC=400000 "$STEMD" --backend null --config none \
    --osc-port 57120 --http-port -1 --load-timeout 1 --health-interval 1 --state-file "$2"
}

# 1. The state file's open never answers.
run_case one "$D/mnt/stalled.wav"
wait_for "$D/one.log" " started: " 10 || fail "did not start while the state file's file system does not answer"
grep -qF "state file $D/mnt/stalled.wav did not answer within 1 s (--load-timeout; its file system hung?): starting WITHOUT restoring it" "$D/one.log" ||
  fail "no line saying why the state was not restored"
P=$(cat "$D/one.pid")
in_netns "$P" "$STEMCTL" --port 57120 ping >"$D/one.ping" 2>&1 || fail "OSC does not answer: $(cat "$D/one.ping")"
wait_for "$D/one.log" "health: " 5 || fail "no health line"
kill -TERM "$P"
ends_with "$P" 0 5 "stemd (1), sent SIGTERM while its state file's file system hangs,"
grep -qF "state file $D/mnt/stalled.wav: not saved — it could not be read at start" "$D/one.log" ||
  fail "no line saying the unread state file was left alone"
grep -q "create of" "$D/fs.log" && fail "stemd tried to write the state file it could not read: $(cat "$D/fs.log")"
# The periodic health line ("health: N voices, …"), not a glitch warning ("health: voice underruns
# …", which a busy machine's late null-backend pacer can add last: a flake under load).
grep -E "health: [0-9]+ voices?" "$D/one.log" | tail -1 | grep -qF "state file not read at start (not written)" ||
  fail "the health line does not say the state file was not read"

# 2. The state file reads (missing: a first start) but its write never answers.
run_case two "$D/mnt2/live.state"
wait_for "$D/two.log" " started: " 10 || fail "did not start"
wait_for "$D/fs2.log" "create of .live.state.tmp." 10 || fail "no write of the state file reached the file system"
wait_for "$D/two.log" "state file $D/mnt2/live.state: its write has not answered after 1 s" 5 ||
  fail "no line saying the write hangs"
n=$(grep -c "health: " "$D/two.log")
w=$(grep -c "WATCHDOG=1" "$D/notify.log")
sleep 2.2
[ "$(grep -c "health: " "$D/two.log")" -ge $((n + 2)) ] || fail "the main loop stopped while the write hangs (no health lines)"
[ "$(grep -c "WATCHDOG=1" "$D/notify.log")" -ge $((w + 4)) ] || fail "the watchdog pings stopped while the write hangs"
grep "STATUS=" "$D/notify.log" | tail -1 | grep -q "state file not saved (its write has not answered for" ||
  fail "systemd's STATUS= does not say the state is not being saved: $(grep STATUS= "$D/notify.log" | tail -1)"
grep -E "health: [0-9]+ voices?" "$D/two.log" | tail -1 |
  grep -q "state file not saved (its write has not answered for [0-9]* s)" ||
  fail "the health line does not say the state is not being saved"
P=$(cat "$D/two.pid")
kill -TERM "$P"
ends_with "$P" 0 5 "stemd (2), sent SIGTERM while its state file's write hangs,"
grep -qF "the state was NOT saved — its write has not finished after" "$D/two.log" || fail "no line saying the state was not saved"
[ "$(grep -c "create of" "$D/fs2.log")" = 1 ] || fail "more than one write at a time: $(cat "$D/fs2.log")"

# 3. --check-config (the unit's ExecStartPre): the state file there is a warning, a --play file a problem.
check() {  # NAME CODE ARGS…: --check-config returns within 6 s with exit code CODE
  local name=$1 code=$2
  shift 2
  "$STEMD" --check-config --config none --backend null --load-timeout 1 "$@" >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
  ends_with $! "$code" 6 "--check-config ($name)"
}
check three 0 --state-file "$D/mnt/stalled.wav"  # a warning: a start runs
grep -qF "warning: --state-file $D/mnt/stalled.wav: did not answer within 1 s (--load-timeout; its file system hung?)" "$D/three.log" ||
  fail "--check-config (3) does not name the state file that did not answer"
check four 2 --play "$D/mnt/stalled.wav"
grep -qF -- "--play $D/mnt/stalled.wav: did not answer within 1 s" "$D/four.log" ||
  fail "--check-config (4) does not name the --play file that did not answer"
echo "state_stall: PASS"
