# shellcheck shell=bash
# Sourced by restore_stall.sh, state_stall.sh and dead_share.sh (file systems that do not answer:
# tests/tools/stall_fs.py), after NAME and STALL_FS are set. Skips (77) without root, /dev/fuse or
# network namespaces; makes D (a temporary directory) and sets the EXIT trap.
#   mount_fs DIR LOG [--hold-creates]   a stall_fs server on DIR (77 when the mount is refused)
#   stop_fs                             kills the servers: every held open fails, its process goes on
#   fail MSG                            "NAME: FAIL: MSG", the tail of every $D/*.log, exit 1
#   wait_for FILE TEXT SECONDS          until FILE holds TEXT; false after SECONDS
#   gone_within PID SECONDS             until the process has ended; false after SECONDS
#   write_wav FILE                      1 s of 48 kHz 16-bit stereo (a sine on the left)
# At exit: the servers stopped, the mounts under $D unmounted, every pid in $D/*.pid killed.
[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || { echo "$NAME: needs root and /dev/fuse: skipped"; exit 77; }
command -v unshare >/dev/null && unshare --net true 2>/dev/null ||
  { echo "$NAME: cannot make a network namespace: skipped"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-$NAME.XXXXXX")
FS=()
MOUNTS=()
stop_fs() {
  for f in "${FS[@]}"; do kill "$f" 2>/dev/null; done
  FS=()
}
cleanup() {
  stop_fs
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
  for p in $(cat "$D"/*.pid 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "$NAME: FAIL: $*" >&2; for f in "$D"/*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done; exit 1; }
wait_for() {
  local i=0
  until grep -qF -- "$2" "$1" 2>/dev/null; do
    [ "$i" -ge $(($3 * 20)) ] && return 1
    sleep 0.05; i=$((i + 1))
  done
}
gone_within() {
  local i=0
  while kill -0 "$1" 2>/dev/null; do
    [ "$i" -ge $(($2 * 20)) ] && return 1
    sleep 0.05; i=$((i + 1))
  done
}
mount_fs() {
  mkdir -p "$1"
  MOUNTS+=("$1")
  python3 "$STALL_FS" "$1" "${@:3}" >"$2" 2>&1 &
  FS+=($!)
  wait_for "$2" "mounted" 5 && return 0
  grep -q "mount failed" "$2" && { echo "$NAME: FUSE mount refused: skipped"; exit 77; }
  fail "stall_fs did not mount"
}
write_wav() {
  python3 - "$1" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<hh", int(8000 * math.sin(i / 20)), 0) for i in range(48000)))
PY
}
