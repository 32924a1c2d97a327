#!/usr/bin/env bash
# files_stall.sh STEMD STEMCTL STALL_FS: the web file browser over a folder on a file system that
# does not answer (a hung network share mounted at share/ in a media root on the local disk;
# tests/tools/stall_fs.py never answers stalled_dir's opendir). Before, a listing had no
# time-out: two listings of that folder took both listing slots for as long as the share was
# down, and every folder answered "busy"; SIGTERM then waited on the listing thread until the
# shutdown deadline killed the process.
#  1. The listing gives up after --load-timeout: 504 naming the folder and the time-out, its
#     thread counted as lost (listings_lost in /api/status and /stemd/status).
#  2. That folder again (however written): 504 at once, no new thread (one opendir held, ever),
#     naming the share it is stuck on (a stuck listing keys its file system: files_dead_share.sh).
#  3. Folders on other file systems still list (the slots are free).
#  4. SIGTERM: stemd stops at once, without waiting for the lost threads (a lost load's too), and
#     says which it leaves behind, by path.
# Exit 0 pass, 1 fail, 77 skipped (not root, no FUSE, no network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=files_stall
command -v curl >/dev/null || { echo "files_stall: no curl: skipped"; exit 77; }
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"
mkdir -p "$D/media"
mount_fs "$D/media/share" "$D/fs.log"

# stemd in a network namespace of its own (fixed ports), its clients entering it; the file system
# is outside it (the mount namespace is shared).
web_start
out=$(web_get "") && [ "${out%% *}" = 200 ] || fail "the root did not list: $out"
# 1. The stalled folder: 504 after --load-timeout, naming the folder and the time-out.
out=$(web_get share/stalled_dir)
[ "${out%% *}" = 504 ] || fail "a listing on a hung share answered: $out (not 504 after the time-out)"
echo "$out" | grep -qF "listing of '/share/stalled_dir' timed out after 1 s (--load-timeout: the file system did not answer); its thread is lost until the file system answers (1 lost, 4 at most" ||
  fail "the 504 does not name the folder and the time-out: $out"
grep -qF "web: listing of '/share/stalled_dir' timed out after 1 s" "$D/stemd.log" || fail "the time-out was not logged"
[ "$(web_lost)" = 1 ] || fail "/api/status listings_lost is $(web_lost), not 1"
st=$(in_netns "$WEB" "$STEMCTL" --port 57120 send /stemd/status 2>&1)
echo "$st" | grep -qF '"listings_lost" 1 ' || fail "/stemd/status has no listings_lost 1: $st"
# 2. Again, as a page's retries would (and spelled otherwise): at once, no new thread.
for dir in share/stalled_dir ./share/stalled_dir/ share//stalled_dir/. share/stalled_dir; do
  out=$(web_get "$dir")
  [ "${out%% *}" = 504 ] || fail "a stuck folder ($dir) answered: $out"
  echo "$out" | grep -qF "busy: '/share/stalled_dir' is on a file system that does not answer: the file system mounted at '/share' has not answered for" ||
    fail "the stuck folder's answer ($dir) does not say why: $out"
  python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 0.9)' "$(echo "$out" | cut -d' ' -f2)" ||
    fail "a stuck folder ($dir) was not answered at once: $out"
done
[ "$(web_lost)" = 1 ] || fail "retries of a stuck folder lost more threads: listings_lost $(web_lost)"
# 3. Both slots free: folders on other file systems list (the root, share/ in it unreachable), two at once (the pool's size: a third at the same
# moment may be answered busy, as it should — it was, under ASan in CI).
pids=""
for t in 1 2; do web_get "" "$t" >"$D/par.$t" & pids="$pids $!"; done
wait $pids  # (not stemd)
for t in 1 2; do grep -q "^200 " "$D/par.$t" || fail "the root did not list beside a lost listing: $(cat "$D/par.$t")"; done
# 4. SIGTERM: stopped at once, without waiting for the lost threads, and the log names what they
# wait on — a lost load's opener thread too. (The process itself ends only once the file system
# answers: its lost threads sit in the kernel, as with a dead NFS share.) Before, the shutdown
# deadline said "still stopping the OSC server" while the web monitor waited on a listing.
in_netns "$WEB" "$STEMCTL" --port 57120 --timeout 3 load 1 share/stalled.wav >/dev/null 2>&1 &&
  fail "a load of a stalled file was done"
web_stop
sleep 0.3
grep -qF "shutdown (SIGTERM): not waiting for threads in the file system: opener threads on 'share/stalled.wav' (lost); web listings on '/share/stalled_dir' (lost)" "$D/stemd.log" ||
  fail "the shutdown does not name the threads stuck in the file system"
grep -F "still " "$D/stemd.log" | grep -qF "exiting without waiting" && fail "the shutdown deadline expired: $(grep -F 'still ' "$D/stemd.log")"
[ "$(grep -c "opendir of stalled_dir held" "$D/fs.log")" = 1 ] || fail "the stuck folder was opened again: $(cat "$D/fs.log")"
# The file system comes back (its server gone: the held opendir fails): the process ends.
stop_fs
gone_within "$WEB" 10 || fail "stemd still there 10 s after the file system came back"
echo "files_stall: PASS"
