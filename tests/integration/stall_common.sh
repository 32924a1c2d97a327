# shellcheck shell=bash
# Sourced by the tests of file systems that do not answer (tests/tools/stall_fs.py: *_stall.sh,
# *dead_share.sh, slow_share.sh), after NAME and STALL_FS are set. Skips (77) without root,
# /dev/fuse or network namespaces; makes D (a temporary directory) and sets the EXIT trap.
#   mount_fs DIR LOG [STALL_FS FLAGS…]  a stall_fs server on DIR (77 when the mount is refused)
#   stop_fs                             kills the servers: every held open fails, its process goes on
#   fail MSG                            "NAME: FAIL: MSG", the tail of every $D/*.log, exit 1
#   wait_for FILE TEXT SECONDS          until FILE holds TEXT; false after SECONDS
#   gone_within PID SECONDS             until the process has ended; false after SECONDS
#   ends_with PID CODE SECONDS WHAT     the job PID (of this shell) ends within SECONDS with exit code
#                                       CODE; else fail: "WHAT did not end within…" or "WHAT exited…"
#   start_netns NAME CMD…               CMD in a network namespace of its own (lo up; fixed ports are
#                                       free there), output in $D/NAME.log, its pid in $D/NAME.pid and $!
#   in_netns PID CMD…                   CMD in PID's network namespace (a client of that daemon)
#   write_wav FILE                      1 s of 48 kHz 16-bit stereo (a sine on the left)
# The web file browser's (files_stall.sh, files_dead_share.sh; they need curl):
#   web_start                           stemd on $D/media (--load-timeout 1, HTTP 8089, OSC 57120) in a
#                                       network namespace: $WEB its pid, ready once it has started
#   web_get DIR [TAG]                   GET /api/files?dir=DIR: "CODE SECONDS BODY" (TAG: its files)
#   web_lost                            /api/status listings_lost
#   web_stop                            SIGTERM: fails unless stemd says it stopped within 4 s
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
ends_with() {
  gone_within "$1" "$3" || fail "$4 did not end within $3 s"
  wait "$1"
  local rc=$?
  [ "$rc" = "$2" ] || fail "$4 exited $rc, not $2"
}
start_netns() {
  local name=$1
  shift
  unshare --net bash -c 'ip link set lo up 2>/dev/null; exec "$@"' _ "$@" >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
}
in_netns() {
  nsenter -t "$1" -n "${@:2}"
}
web_start() {
  start_netns stemd "$STEMD" --backend null --config none --osc-port 57120 --http-port 8089 \
    --media-root "$D/media" --load-timeout 1
  WEB=$!
  wait_for "$D/stemd.log" " started: " 10 || fail "did not start"
}
web_get() {
  local t=${2:-0}
  rm -f "$D/body.$t"
  in_netns "$WEB" curl -s -m 8 -o "$D/body.$t" -w '%{http_code} %{time_total}' \
    "http://127.0.0.1:8089/api/files?dir=$1" >"$D/get.$t"
  echo " $(cat "$D/body.$t" 2>/dev/null)" >>"$D/get.$t"
  cat "$D/get.$t"
}
web_lost() {
  in_netns "$WEB" curl -s -m 5 http://127.0.0.1:8089/api/status |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["listings_lost"])'
}
web_stop() {
  kill -TERM "$WEB"
  wait_for "$D/stemd.log" "stopped (SIGTERM): " 4 || fail "not stopped 4 s after SIGTERM"
}
write_wav() {
  python3 - "$1" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<hh", int(8000 * math.sin(i / 20)), 0) for i in range(48000)))
PY
}
