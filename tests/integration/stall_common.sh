# shellcheck shell=bash
# Sourced by restore_stall.sh and files_stall.sh after NAME and STALL_FS are set: skips (77)
# without root, /dev/fuse or a network namespace; makes $D; mounts tests/tools/stall_fs.py on
# $D/mnt (FS is its pid; skipped when the kernel refuses the mount).
#   cleanup      on EXIT: the file system's server ends (the held opens fail, ENOTCONN: stemd's
#                threads go on), the mount goes, every pid in $D/*.pid is killed, $D removed
#   fail MSG     "NAME: FAIL: MSG", the last lines of every $D/*.log, exit 1
#   wait_for FILE TEXT SECONDS   until FILE holds TEXT; false after SECONDS
[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || { echo "$NAME: needs root and /dev/fuse: skipped"; exit 77; }
command -v unshare >/dev/null && unshare --net true 2>/dev/null ||
  { echo "$NAME: cannot make a network namespace: skipped"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-$NAME.XXXXXX")
FS=""
cleanup() {
  [ -n "$FS" ] && kill "$FS" 2>/dev/null
  umount -l "$D/mnt" 2>/dev/null
  for p in $(cat "$D"/*.pid 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "$NAME: FAIL: $*" >&2; for f in "$D"/*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done; exit 1; }
wait_for() {  # FILE TEXT SECONDS
  local i=0
  until grep -qF -- "$2" "$1"; do
    [ "$i" -ge $(($3 * 20)) ] && return 1
    sleep 0.05; i=$((i + 1))
  done
}
mkdir -p "$D/mnt"
python3 "$STALL_FS" "$D/mnt" >"$D/fs.log" 2>&1 &
FS=$!
wait_for "$D/fs.log" "mounted" 5 || { grep -q "mount failed" "$D/fs.log" && { echo "$NAME: FUSE mount refused: skipped"; exit 77; }; fail "stall_fs did not mount"; }
