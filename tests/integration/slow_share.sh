#!/usr/bin/env bash
# slow_share.sh STEMD STEMCTL STALL_FS: loads from a share that answers every read, slowly
# (tests/tools/stall_fs.py --serve --read-delay: each read 50 ms late, one at a time — a congested
# Wi-Fi NAS). Outside attack, MEDIUM 7: with --load-timeout 1 and the 2 opener threads, 6 loads sent
# together take ~5 s in all, each longer than the time-out (a 1-s WAV is ~17 reads, its header in
# small ones, and the two threads' reads wait for each other), every read answered well within it.
# All load, and no thread is counted lost (before: the time-out counted from when a load was sent:
# the first two failed "timed out after 1 s (the file system did not answer)" and marked the share
# as dead, and the rest were given up with them).
# Exit 0 pass, 1 fail, 77 skipped (not root, no FUSE, no network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=slow_share
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mkdir -p "$D/media"
write_wav "$D/media/a.wav"
serve=()
for i in 1 2 3 4 5 6; do serve+=(--serve "s$i.wav=$D/media/a.wav"); done
mount_fs "$D/mnt" "$D/fs.log" --read-delay 50 "${serve[@]}"

unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$STEMD" --backend null --config none \
  --http-port -1 --osc-port 57120 --load-timeout 1 >"$D/stemd.log" 2>&1 &
echo $! >"$D/stemd.pid"
wait_for "$D/stemd.log" " started: " 10 || fail "stemd did not start"
ctl() {  # ARGS…: stemctl in the daemon's namespace
  timeout 40 nsenter --net="/proc/$(cat "$D/stemd.pid")/ns/net" "$STEMCTL" --port 57120 "$@" 2>&1
}

t0=$(date +%s%N)
pids=()
for i in 1 2 3 4 5 6; do
  ctl --timeout 30 load "$i" "$D/mnt/s$i.wav" >"$D/load$i.out" &
  pids+=($!)
done
for i in 1 2 3 4 5 6; do
  wait "${pids[$((i - 1))]}" || fail "load $i: $(cat "$D/load$i.out")"
done
t1=$(date +%s%N)
reads=$(grep -c "answered late" "$D/fs.log")
took=$(((t1 - t0) / 1000000))
echo "slow_share: 6 loads in $took ms, $reads reads answered 50 ms late"
# The case this is about: the loads took longer than the time-out in all.
[ "$took" -gt 2000 ] || fail "the loads took $took ms: not slower than --load-timeout, nothing shown"
lost=$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["loads_lost"])')
[ "$lost" = 0 ] || fail "$lost opener threads counted lost to a share that answered"
n=$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"])')
[ "$n" = 6 ] || fail "$n sources loaded, not 6"
grep -qF "did not answer" "$D/stemd.log" && fail "a load was said not to be answered"
kill -TERM "$(cat "$D/stemd.pid")"
gone_within "$(cat "$D/stemd.pid")" 10 || fail "stemd still running 10 s after SIGTERM"
echo "slow_share: PASS"
