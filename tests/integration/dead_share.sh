#!/usr/bin/env bash
# dead_share.sh STEMD STEMCTL STALL_FS: media on a share that stops answering (a dead NFS server,
# sshfs whose ssh hung, a USB bridge that hung; tests/tools/stall_fs.py with a flag file: every
# request to it, lookups and stats too, is held unanswered). Outside pass 21, findings 2, 3, 6, 7:
#  1. a state file naming 9 files there, --load-timeout 1: at most the 2 opener threads are lost
#     (before: one per file and retry, 8 within seconds, then every load from any disk answered
#     busy); a client's load of another file there answers busy at once, naming the file system; a
#     file on the local disk loads.
#  2. --media-root there: stemd starts after --load-timeout (before: the start hung, SIGTERM
#     ignored), says the root does not answer, answers pings, refuses loads saying why; with a
#     long time-out SIGTERM stops it while it waits.
#  3. --no-osc --play a file there: --load-timeout gives it up (exit 1), SIGTERM stops it (before:
#     the start hung, neither applied).
#  4. --media-root on a mount whose server is gone (ENOTCONN): a start as for a missing root (before:
#     exit 2, and systemd gave up at boot); loads refused naming errno.
# Exit 0 pass, 1 fail, 77 skipped (not root, no FUSE, no network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=dead_share
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mkdir -p "$D/media"
write_wav "$D/media/a.wav"
mount_fs "$D/mnt" "$D/fs.log" --hold-all-after "$D/hang"
touch "$D/hang"  # from now on nothing on $D/mnt answers

# A daemon in a network namespace of its own (fixed ports), and stemctl beside it.
run() {  # NAME ARGS…
  local name=$1
  shift
  unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
    --http-port -1 "$@" >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
}
ctl() {  # NAME ARGS…: stemctl in NAME's namespace
  local pid
  pid=$(cat "$D/$1.pid")
  shift
  timeout 5 nsenter --net="/proc/$pid/ns/net" "$STEMCTL" --port 57120 "$@" 2>&1
}
lost() { ctl "$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["loads_lost"])'; }

# 1. Nine files of one dead share in the state file.
{
  echo 'stemd-state 1'
  for i in $(seq 1 9); do echo "/stemd/load $((10 + i)) \"$D/mnt/stem$i.wav\" \"stem$i\""; done
  echo end
} >"$D/held.state"
run held --osc-port 57120 --load-timeout 1 --state-file "$D/held.state"
wait_for "$D/held.log" " started: " 10 || fail "did not start with a state file's share not answering"
sleep 6  # a round of the state file's retries (every 5 s)
n=$(lost held)
[ "$n" -le 2 ] || fail "$n opener threads lost to one dead share (at most the 2 that had started)"
t0=$(date +%s%N)
out=$(ctl held load 1 "/$D/mnt/./other.wav")
t1=$(date +%s%N)
echo "$out" | grep -qF "busy: the file system of" || fail "a load of another file on the dead share: $out"
[ $(((t1 - t0) / 1000000)) -lt 1000 ] || fail "the busy answer took $(((t1 - t0) / 1000000)) ms"
out=$(ctl held load 2 "$D/media/a.wav") || fail "a local file did not load while the share is dead: $out"
n2=$(lost held)
[ "$n2" = "$n" ] || fail "loads_lost went from $n to $n2"
kill -TERM "$(cat "$D/held.pid")"
wait_for "$D/held.log" "state saved to" 5 || fail "no state saved at SIGTERM"

# 2. The media root on the dead share: started after --load-timeout, loads refused saying why.
run root --osc-port 57120 --load-timeout 2 --media-root "$D/mnt/media"
wait_for "$D/root.log" "--media-root $D/mnt/media: its file system does not answer" 8 ||
  fail "no line saying the media root does not answer"
wait_for "$D/root.log" " started: " 5 || fail "did not start with the media root's share not answering"
ctl root ping >/dev/null || fail "no answer to ping"
out=$(ctl root load 1 x.wav)
echo "$out" | grep -qF "its file system does not answer" || fail "a load under the dead root: $out"
kill -TERM "$(cat "$D/root.pid")"
run root2 --osc-port 57120 --load-timeout 30 --media-root "$D/mnt/media"
sleep 1
kill -TERM "$(cat "$D/root2.pid")"
wait_for "$D/root2.log" "stopping (SIGTERM while --media-root was looked up): before the audio started" 3 ||
  fail "SIGTERM not acted on while the media root was looked up"

# 3. --no-osc --play a file there.
run noosc --no-osc --load-timeout 1 --play "$D/mnt/loop.wav" --loop
wait_for "$D/noosc.log" "--play $D/mnt/loop.wav: timed out: the file system did not answer for 1 s (--load-timeout) (refused at start" 8 ||
  fail "--no-osc --play: --load-timeout not applied"
run noosc2 --no-osc --load-timeout 30 --play "$D/mnt/loop.wav" --loop
sleep 1
kill -TERM "$(cat "$D/noosc2.pid")"
wait_for "$D/noosc2.log" "stopping (SIGTERM while --play $D/mnt/loop.wav loaded): before the audio started" 3 ||
  fail "--no-osc --play: SIGTERM not acted on"

# 4. A mount whose server is gone (ENOTCONN).
mount_fs "$D/mnt2" "$D/fs2.log"
kill "${FS[1]}"  # its server gone, the mount left in place
wait "${FS[1]}" 2>/dev/null
ls "$D/mnt2/media" >/dev/null 2>&1
run gone --osc-port 57120 --media-root "$D/mnt2/media"
wait_for "$D/gone.log" " started: " 8 || fail "a media root on a mount whose server is gone stopped the start"
grep -qF -- "--media-root $D/mnt2/media: Transport endpoint is not connected" "$D/gone.log" ||
  fail "no line naming the dead root's errno"
out=$(ctl gone load 1 x.wav)
echo "$out" | grep -qF "Transport endpoint is not connected" || fail "a load under the gone root: $out"
kill -TERM "$(cat "$D/gone.pid")"

# The share's server goes (the held requests fail): every process ends, with its exit code.
stop_fs
for c in held root root2 noosc noosc2 gone; do
  p=$(cat "$D/$c.pid")
  gone_within "$p" 10 || fail "stemd ($c) still running 10 s after the file system came back"
  wait "$p"
  rc=$?
  want=0
  [ "$c" = noosc ] && want=1  # a --play file refused: a start-up error
  [ "$rc" = "$want" ] || fail "stemd ($c) exited $rc, not $want"
done
echo "dead_share: PASS"
