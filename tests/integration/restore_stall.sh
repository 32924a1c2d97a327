#!/usr/bin/env bash
# restore_stall.sh STEMD STEMCTL STALL_FS: a state file naming a file on a file system that does not
# answer (a network share or a USB bridge hung at boot; tests/tools/stall_fs.py holds its open()).
# Before, the restore opened it on the main thread: no OSC, no web, no READY, SIGTERM not acted on,
# for as long as the file system was down, whatever --load-timeout said; when it came back the
# daemon started and wrote the state without that source.
#  1. --load-timeout 1: stemd starts within seconds, the rest of the state plays, the source is
#     kept (written on into the state file) and tried again.
#  2. --load-timeout 30 and SIGTERM while it waits: the restore stops, stemd stops, and the state
#     file is left as it was.
# Exit 0 pass, 1 fail, 77 skipped (not root, or no FUSE).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=restore_stall
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mkdir -p "$D/media"
mount_fs "$D/mnt" "$D/fs.log"
write_wav "$D/media/a.wav"
state() {  # FILE: the master at 0.5, the stalled source, a good one, a voice of each
  printf 'stemd-state 1\n/stemd/master 0.5 0\n/stemd/load 1 "%s" "stalled"\n/stemd/load 2 "%s" "a"\n/stemd/play 2 1 true 0 frames 1\n/stemd/play 1 1 true 0 frames 1\nend\n' \
    "$D/mnt/stalled.wav" "$D/media/a.wav" >"$1"
}

# Each case in a network namespace of its own: fixed ports, no clash with anything on the machine.
run_case() {  # NAME LOAD_TIMEOUT
  unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
    --osc-port 57120 --http-port 8089 --load-timeout "$2" --state-file "$D/$1.state" --restore-voices \
    >"$D/$1.log" 2>&1 &
  echo $! >"$D/$1.pid"
}

# 1. The timeout: started, the rest restored, the stalled source kept.
state "$D/one.state"
run_case one 1
wait_for "$D/one.log" " started: " 10 || fail "did not start while a state file's file system does not answer"
grep -qF "source 1 not restored yet: timed out: the file system did not answer for 1 s (--load-timeout)" "$D/one.log" ||
  fail "no line saying the stalled source is kept"
grep -qF "restored 1 of 2 sources (1 waiting for their files), 1 voice" "$D/one.log" || fail "the rest not restored"
kill -TERM "$(cat "$D/one.pid")"
wait_for "$D/one.log" "state saved to" 5 || fail "no state saved at SIGTERM"
grep -qF "/stemd/load 1 \"$D/mnt/stalled.wav\" \"stalled\"" "$D/one.state" ||
  fail "the stalled source was dropped from the state file: $(cat "$D/one.state")"
grep -qF "/stemd/load 2 \"$D/media/a.wav\"" "$D/one.state" || fail "the good source is missing: $(cat "$D/one.state")"

# 2. SIGTERM while the restore waits: stopped, the file as it was.
state "$D/two.state"
cp "$D/two.state" "$D/two.before"
run_case two 30
wait_for "$D/two.log" "waiting for 1 load (the first: /stemd/load $D/mnt/stalled.wav)" 10 ||
  fail "no line naming the load the restore waits on"
kill -TERM "$(cat "$D/two.pid")"
wait_for "$D/two.log" "restore stopped by a signal while loads were in flight" 3 || fail "SIGTERM not acted on"
wait_for "$D/two.log" "stopping (SIGTERM during the state restore): before the audio started" 3 || fail "did not stop"
cmp -s "$D/two.state" "$D/two.before" || fail "the state file was rewritten: $(cat "$D/two.state")"

# 3. and 4. A --play file there (outside pass 20, attack 3): before, loaded on the main thread —
# no OSC, no READY, SIGTERM not acted on while the file system did not answer. Now it waits on
# the opener threads: a stop signal stops it (3), --load-timeout makes it a start-up error (4).
run_play() {  # NAME LOAD_TIMEOUT
  unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
    --osc-port 57120 --http-port -1 --load-timeout "$2" --play "$D/mnt/stalled.wav" >"$D/$1.log" 2>&1 &
  echo $! >"$D/$1.pid"
}
run_play three 30
wait_for "$D/three.log" "--play $D/mnt/stalled.wav: waiting for its load" 10 || fail "no line naming the --play load waited for"
kill -TERM "$(cat "$D/three.pid")"
wait_for "$D/three.log" "stopping (SIGTERM while --play $D/mnt/stalled.wav loaded): before the audio started" 3 ||
  fail "SIGTERM not acted on while a --play file's load waited"
run_play four 1
wait_for "$D/four.log" "--play $D/mnt/stalled.wav: timed out: the file system did not answer for 1 s (--load-timeout) (refused at start" 10 ||
  fail "a --play load that does not answer was not given up after --load-timeout"

# The file system comes back (its server gone: the held opens fail): every process ends.
stop_fs
for c in one two three four; do
  p=$(cat "$D/$c.pid")
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && fail "stemd ($c) still running 10 s after the file system came back"
  wait "$p"
  rc=$?
  want=0
  [ "$c" = four ] && want=1  # a --play file refused: a start-up error
  [ "$rc" = "$want" ] || fail "stemd ($c) exited $rc, not $want"
done
echo "restore_stall: PASS"
