#!/usr/bin/env bash
# files_dead_share.sh STEMD STEMCTL STALL_FS: the web file browser beside a share that died (a
# dead NFS server, sshfs whose ssh hung: tests/tools/stall_fs.py with --hold-all-after, every
# request held, even a stat of its mount point), mounted at share/ in a --media-root on the local
# disk, with a symlink fav -> share/stalled_dir beside it (attack finding MEDIUM 6).
#  1. A listing of share/a gives up after --load-timeout 1: one thread lost, keyed by the share.
#  2. share/b, share/c, share/d and share (as a user clicking around, or an attacker): 504 at once
#     naming the share and the folder stuck there, no thread lost; the local folder lists.
#     Before, each lost a thread (keyed by folder): four reached the lost cap and every listing,
#     the local disk's too, answered 503 "busy" until the share answered.
#  3. The folder holding the mount point (the root) lists at once: share/ and fav listed
#     unreachable, never looked at (before, the lstat of share/ lost a thread); fav itself (a
#     symlink into the share) answers 504 at once (before: a thread lost following it).
#  4. listings_lost is 1 all along (/api/status and /stemd/status); the share saw only the first
#     listing's requests.
# Exit 0 pass, 1 fail, 77 skipped (not root, no FUSE, no network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=files_dead_share
command -v curl >/dev/null || { echo "files_dead_share: no curl: skipped"; exit 77; }
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

mkdir -p "$D/media/music" "$D/media/share"
write_wav "$D/media/music/a.wav"
ln -s share/stalled_dir "$D/media/fav"
mount_fs "$D/media/share" "$D/fs.log" --hold-all-after "$D/hang"
touch "$D/hang"  # from now on nothing on the share answers

web_start
held() { grep -c " held " "$D/fs.log"; }

# 1. The first folder of the dead share: 504 after the time-out, its thread lost.
out=$(web_get share/a)
echo "files_dead_share: share/a → ${out:0:160}"
[ "${out%% *}" = 504 ] || fail "a listing on the dead share answered: $out"
echo "$out" | grep -qF "listing of '/share/a' timed out after 1 s" || fail "the 504 does not say it timed out: $out"
echo "$out" | grep -qF "the file system mounted at '/share' is not listed again until it returns" ||
  fail "the 504 does not name the share: $out"
grep -qF "(stuck at $D/media/share)" "$D/stemd.log" || fail "the log does not say where it is stuck"
[ "$(web_lost)" = 1 ] || fail "listings_lost $(web_lost), not 1"
h=$(held)
codes=""
# 2. Three more of its folders, and the share itself: at once, no thread; the local disk lists.
for dir in share/b share/c ./share//d/ share; do
  out=$(web_get "$dir")
  echo "files_dead_share: $dir → ${out:0:160}"
  codes="$codes ${out%% *}"
  echo "$out" >>"$D/answers"
done
out=$(web_get music)
[ "${out%% *}" = 200 ] || fail "the local folder did not list beside the dead share (codes$codes): $out"
echo "$out" | grep -qF '"name":"a.wav"' || fail "the local folder's listing: $out"
[ "$(web_lost)" = 1 ] || fail "four folders of one dead share lost $(web_lost) threads (codes$codes)"
[ "$(grep -c "^504 .*busy: '/share[/a-z]*' is on a file system that does not answer: the file system mounted at '/share' has not answered for [0-9]* s (the listing of '/share/a' is stuck there past --load-timeout)" "$D/answers")" = 4 ] ||
  fail "the share's folders were not refused naming the share and its stuck folder: $(cat "$D/answers")"
# 3. The folder holding the mount point, and the symlink into the share.
out=$(web_get "")
echo "files_dead_share: the root → ${out:0:400}"
[ "${out%% *}" = 200 ] || fail "the folder holding the dead mount point did not list: $out"
echo "${out#* * }" | python3 -c '
import json, sys
j = json.load(sys.stdin)
e = {x["name"]: x for x in j["entries"]}
assert j["unreachable"] == 2, j
assert e["music"]["dir"] is True and "unreachable" not in e["music"], e
for n in ("share", "fav"):
    assert e[n]["dir"] is None and "mounted at '"'"'/share'"'"' has not answered for" in e[n]["unreachable"], e[n]
assert e["fav"].get("link") is True, e["fav"]
' || fail "the root's entries on the dead share are not marked unreachable: $out"
out=$(web_get fav)
echo "files_dead_share: fav → ${out:0:160}"
[ "${out%% *}" = 504 ] && echo "$out" | grep -qF "busy: '/fav' is on a file system that does not answer" ||
  fail "a listing through a symlink into the dead share: $out"
# 4. Still one thread, and the share saw nothing after the first listing.
[ "$(web_lost)" = 1 ] || fail "listings_lost $(web_lost), not 1"
in_netns "$WEB" "$STEMCTL" --port 57120 send /stemd/status 2>&1 | grep -qF '"listings_lost" 1 ' ||
  fail "/stemd/status has no listings_lost 1"
[ "$(held)" = "$h" ] || fail "the share was asked again after its first listing was lost: $(cat "$D/fs.log")"
echo "files_dead_share: $h request(s) held by the share, listings_lost 1"
web_stop
# The share's server goes (the held requests fail): the process ends.
stop_fs
gone_within "$WEB" 10 || fail "stemd still there 10 s after the file system came back"
echo "files_dead_share: PASS"
