#!/usr/bin/env bash
# close_stall.sh STEMD STEMCTL STALL_FS: files loaded from a share that then stops answering, let go.
# close() of a FUSE file sends FLUSH and waits for its answer (sshfs, rclone, s3fs…); stall_fs.py
# --serve serves readable files until its flag appears, then holds every request, FLUSH included.
# Outside pass 23:
#  1. finding 1: `unload` of a file of the share, a load into the id of another, `/mixer_cleanup`
#     (streamed ids, not playing: the source holds the file open): each answers at once and the daemon
#     keeps answering; the status counts the closes stuck (before: the control thread hung in close()
#     for good at the first — no OSC, no loads; the report saw the same with files held in memory).
#  2. finding 2: two streamed ids of the share and a local one play; the share stops answering; the
#     share's ids are unloaded: the local voice plays on and the daemon answers (before: the loader
#     thread hung in close() holding its mutex — every stream starved, then the control thread).
# Exit 0 pass, 1 fail, 77 skipped (not root, no FUSE, no network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=close_stall
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mkdir -p "$D/media"
write_wav "$D/media/local.wav"
python3 - "$D/media/long.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:  # 20 s: a local voice's position never wraps here
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<hh", int(8000 * math.sin(i / 20)), 0) for i in range(48000)) * 20)
PY
write_wav "$D/media/share.wav"
serve=()
for n in s t u v w; do serve+=(--serve "$n.wav=$D/media/share.wav"); done
mount_fs "$D/mnt" "$D/fs.log" --hold-all-after "$D/hang" "${serve[@]}"

run() {  # NAME ARGS…: a daemon in a network namespace of its own (fixed port 57120)
  local name=$1
  shift
  unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
    --http-port -1 --osc-port 57120 "$@" >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
  wait_for "$D/$name.log" " started: " 10 || fail "$name did not start"
}
ctl() {  # NAME ARGS…: stemctl in NAME's namespace
  local pid
  pid=$(cat "$D/$1.pid")
  shift
  timeout 5 nsenter --net="/proc/$pid/ns/net" "$STEMCTL" --port 57120 "$@" 2>&1
}
key() {  # NAME KEY: one status field
  ctl "$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
quick() {  # NAME WHAT ARGS…: the command answers (exit 0) within a second
  local name=$1 what=$2 t0 t1 out
  shift 2
  t0=$(date +%s%N)
  out=$(ctl "$name" "$@") || fail "$what: no answer: $out"
  t1=$(date +%s%N)
  [ $(((t1 - t0) / 1000000)) -lt 1000 ] || fail "$what took $(((t1 - t0) / 1000000)) ms"
}
position() {  # NAME ID: the voice's position in seconds
  ctl "$1" voices --json | python3 -c '
import json, sys
print(next(v["position_s"] for v in json.load(sys.stdin) if v["id"] == int(sys.argv[1])))' "$2"
}

# 1. Sources of the share, not playing: unload, a load into the id, /mixer_cleanup.
run mem --load-timeout 2 --preload-limit-mb 0
for i in 1 2 3 4; do
  ctl mem load "$i" "$D/mnt/$(echo s t u v | cut -d' ' -f"$i").wav" >/dev/null || fail "load $i from the share"
done
ctl mem load 5 "$D/media/local.wav" >/dev/null || fail "load of the local file"
touch "$D/hang"  # from now on nothing on $D/mnt answers, FLUSH included
quick mem "ping with the share dead" ping
quick mem "unload of a file of the dead share" unload 1
quick mem "ping after the unload" ping
quick mem "a local file loaded into an id of the dead share" load 2 "$D/media/local.wav"
quick mem "ping after the reload" ping
quick mem "play of the local id" play 5 --loop
sleep 1.2  # the two closes under way for more than a second: stuck
[ "$(key mem closes_stuck_now)" = 2 ] || fail "closes_stuck_now is $(key mem closes_stuck_now), not 2"
quick mem "/mixer_cleanup with the share dead" send /mixer_cleanup
quick mem "ping after /mixer_cleanup" ping
quick mem "a load after /mixer_cleanup" load 6 "$D/media/local.wav"
sleep 1.2
[ "$(key mem closes_stuck_now)" = 4 ] || fail "closes_stuck_now is $(key mem closes_stuck_now), not 4"
[ "$(key mem closes_waiting)" = 0 ] || fail "closes_waiting is $(key mem closes_waiting), not 0"
n=$(grep -c "request 25 held" "$D/fs.log")
[ "$n" = 4 ] || fail "$n FLUSH requests held by the share, not 4"
kill -TERM "$(cat "$D/mem.pid")"
wait_for "$D/mem.log" "stopped (" 5 || fail "no stop after SIGTERM with four closes stuck"
grep -qF "not waiting for threads in the file system: 4 closer threads in closes of files" "$D/mem.log" ||
  fail "the shutdown did not name the closes it leaves behind"

# 2. Streamed ids of the share unloaded while a local stream plays.
rm -f "$D/hang"
run stream --load-timeout 2 --preload-limit-mb 0
ctl stream load 1 "$D/mnt/w.wav" >/dev/null || fail "streamed load 1 from the share"
ctl stream load 2 "$D/mnt/s.wav" >/dev/null || fail "streamed load 2 from the share"
ctl stream load 3 "$D/media/long.wav" >/dev/null || fail "streamed load of the local file"
for i in 1 2 3; do ctl stream play "$i" --loop >/dev/null || fail "play $i"; done
sleep 0.5
touch "$D/hang"
sleep 3  # the watchdog gives the loader thread stuck in a read up (2 s): the local voice plays on
quick stream "unload of a streamed id of the dead share" unload 1
quick stream "unload of the other" unload 2
sleep 0.5
p0=$(position stream 3) || fail "no voices list after the unloads"
sleep 2
p1=$(position stream 3) || fail "no voices list 2 s after the unloads"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) > 1.5 else 1)' "$p0" "$p1" || fail "the local voice went from ${p0} s to ${p1} s in 2 s (starved)"
quick stream "status after the unloads" status
quick stream "a local load after the unloads" load 4 "$D/media/local.wav"
kill -TERM "$(cat "$D/stream.pid")"
wait_for "$D/stream.log" "stopped (" 5 || fail "no stop after SIGTERM"

# The share's server goes (the held requests fail): both daemons end.
stop_fs
for c in mem stream; do
  p=$(cat "$D/$c.pid")
  gone_within "$p" 10 || fail "stemd ($c) still running 10 s after the file system came back"
done
echo "close_stall: PASS"
