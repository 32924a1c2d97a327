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
  unshare --net env NOTIFY_SOCKET="$D/notify.sock" WATCHDOG_USEC=400000 \
    bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
    --osc-port 57120 --http-port -1 --load-timeout 1 --health-interval 1 --state-file "$2" >"$D/$1.log" 2>&1 &
  echo $! >"$D/$1.pid"
}

# 1. The state file's open never answers.
run_case one "$D/mnt/stalled.wav"
wait_for "$D/one.log" " started: " 10 || fail "did not start while the state file's file system does not answer"
grep -qF "state file $D/mnt/stalled.wav did not answer within 1 s (--load-timeout; its file system hung?): starting WITHOUT restoring it" "$D/one.log" ||
  fail "no line saying why the state was not restored"
P=$(cat "$D/one.pid")
nsenter -t "$P" -n "$STEMCTL" --port 57120 ping >"$D/one.ping" 2>&1 || fail "OSC does not answer: $(cat "$D/one.ping")"
wait_for "$D/one.log" "health: " 5 || fail "no health line"
kill -TERM "$P"
gone_within "$P" 5 || fail "stemd (1) did not exit within 5 s of SIGTERM while its state file's file system hangs"
wait "$P"
rc=$?
[ "$rc" = 0 ] || fail "stemd (1) exited $rc"
grep -qF "state file $D/mnt/stalled.wav: not saved — it could not be read at start" "$D/one.log" ||
  fail "no line saying the unread state file was left alone"
grep -q "create of" "$D/fs.log" && fail "stemd tried to write the state file it could not read: $(cat "$D/fs.log")"
# The periodic health line ("health: N voices, …"), not a glitch warning ("health: voice underruns
# …", which a busy machine's late null-backend pacer can add last: a flake under load).
grep -E "health: [0-9]+ voices" "$D/one.log" | tail -1 | grep -qF "state file not read at start (not written)" ||
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
grep -E "health: [0-9]+ voices" "$D/two.log" | tail -1 |
  grep -q "state file not saved (its write has not answered for [0-9]* s)" ||
  fail "the health line does not say the state is not being saved"
P=$(cat "$D/two.pid")
kill -TERM "$P"
gone_within "$P" 5 || fail "stemd (2) did not exit within 5 s of SIGTERM while its state file's write hangs"
wait "$P"
rc=$?
[ "$rc" = 0 ] || fail "stemd (2) exited $rc"
grep -qF "the state was NOT saved — its write has not finished after" "$D/two.log" || fail "no line saying the state was not saved"
[ "$(grep -c "create of" "$D/fs2.log")" = 1 ] || fail "more than one write at a time: $(cat "$D/fs2.log")"

# 3. --check-config (the unit's ExecStartPre): the state file there is a warning, a --play file a problem.
check() {  # NAME ARGS…
  local name=$1
  shift
  "$STEMD" --check-config --config none --backend null --load-timeout 1 "$@" >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
  local p=$!
  gone_within "$p" 6 || fail "--check-config ($name) did not return within 6 s"
  wait "$p"
  echo $? >"$D/$name.rc"
}
check three --state-file "$D/mnt/stalled.wav"
[ "$(cat "$D/three.rc")" = 0 ] || fail "--check-config (3) exited $(cat "$D/three.rc"), not 0 (a start runs)"
grep -qF "warning: --state-file $D/mnt/stalled.wav: did not answer within 1 s (--load-timeout; its file system hung?)" "$D/three.log" ||
  fail "--check-config (3) does not name the state file that did not answer"
check four --play "$D/mnt/stalled.wav"
[ "$(cat "$D/four.rc")" = 2 ] || fail "--check-config (4) exited $(cat "$D/four.rc"), not 2"
grep -qF -- "--play $D/mnt/stalled.wav: did not answer within 1 s" "$D/four.log" ||
  fail "--check-config (4) does not name the --play file that did not answer"
echo "state_stall: PASS"
