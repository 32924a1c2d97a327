#!/usr/bin/env bash
# start_files_stall.sh STEMD STALL_FS: --bpm-config, --script and --web-root on a file system that stops
# answering (tests/tools/stall_fs.py --hold-all-after: once its flag exists every request is held).
# Before (outside pass 25, N2) they were read on the main thread with no deadline: the start hung
# in the kernel with SIGTERM ignored, and --check-config hung on --bpm-config (needed SIGKILL).
# Now they are read as the config file is (the helper, --load-timeout, SIGTERM ends the wait):
#  1. --bpm-config: the start exits 2 within --load-timeout + a few seconds, naming the file.
#  2. --check-config --bpm-config: returns within its deadline, exit 2, naming the file.
#  3. --script: the start exits 2 the same way, naming the file.
#  4. --script, --load-timeout 30: SIGTERM while the start waits ends it within 2 s.
#  5. --http-port with --web-root on the share: the start exits 2 the same way, naming index.html.
#  6. --check-config with that --web-root: returns within its deadline, exit 2, naming it.
#  7. --web-root, --load-timeout 30: SIGTERM while the start waits ends it within 2 s.
# Exit 0 pass, 1 fail, 77 skipped (not root, or no FUSE).
set -uo pipefail
STEMD=$1
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$2
# shellcheck disable=SC2034
NAME=start_files_stall
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

printf '{"movement_bpm": {"bpm_targets": {"medium": 120}}}\n' >"$D/bpm.json"
printf '0 /stemd/master 0.5\n' >"$D/s.script"
mount_fs "$D/mnt" "$D/fs.log" --hold-all-after "$D/hang" --serve "bpm.json=$D/bpm.json" --serve "s.script=$D/s.script" \
  --serve "index.html=$D/s.script"
ls "$D/mnt" >/dev/null
touch "$D/hang"

start() {  # NAME ARGS…: runs stemd in the background ($S its pid)
  local name=$1
  shift
  "$STEMD" --config none --backend null --no-osc --http-port -1 "$@" >"$D/$name.log" 2>&1 &
  S=$!
  echo $S >"$D/$name.pid"
}
ends_with() {  # NAME RC TEXT: $S ended within 6 s with RC, its log holding TEXT
  gone_within "$S" 6 || fail "$1 did not end within 6 s of a file whose file system does not answer"
  wait "$S"
  local rc=$?
  [ "$rc" = "$2" ] || fail "$1 exited $rc, not $2"
  grep -qF -- "$3" "$D/$1.log" || fail "$1 does not say: $3"
}

# 1.
start bpm --bpm-config "$D/mnt/bpm.json" --load-timeout 1
ends_with bpm 2 "--bpm-config $D/mnt/bpm.json: the file system of $D/mnt/bpm.json did not answer within 1 s"

# 2.
"$STEMD" --check-config --config none --backend null --bpm-config "$D/mnt/bpm.json" --load-timeout 1 \
  >"$D/check.log" 2>&1 &
S=$!
echo $S >"$D/check.pid"
ends_with check 2 "the file system of $D/mnt/bpm.json did not answer within 1 s"

# 3.
start script --script "$D/mnt/s.script" --load-timeout 1
ends_with script 2 "--script $D/mnt/s.script: the file system of $D/mnt/s.script did not answer within 1 s"

# 4.
start term --script "$D/mnt/s.script" --load-timeout 30
sleep 1.5
kill -0 "$S" 2>/dev/null || fail "start (4) ended before its 30 s deadline: $(cat "$D/term.log")"
kill -TERM "$S"
gone_within "$S" 2 || fail "start (4) did not end within 2 s of SIGTERM while it waits for --script"

# 5.–7. The web monitor's page (a start with --http-port reads it before it opens the server).
web() {  # NAME ARGS…: a start with the web monitor on any free port and its page on the share
  local name=$1
  shift
  "$STEMD" --config none --backend null --no-osc --http-port 0 --web-root "$D/mnt" "$@" >"$D/$name.log" 2>&1 &
  S=$!
  echo $S >"$D/$name.pid"
}
web page --load-timeout 1
ends_with page 2 "--web-root $D/mnt/index.html: the file system of $D/mnt/index.html did not answer within 1 s"
"$STEMD" --check-config --config none --backend null --http-port 0 --web-root "$D/mnt" --load-timeout 1 \
  >"$D/check_page.log" 2>&1 &
S=$!
echo $S >"$D/check_page.pid"
ends_with check_page 2 "--web-root $D/mnt: did not answer within 1 s"
web page_term --load-timeout 30
sleep 1.5
kill -0 "$S" 2>/dev/null || fail "start (7) ended before its 30 s deadline: $(cat "$D/page_term.log")"
kill -TERM "$S"
gone_within "$S" 2 || fail "start (7) did not end within 2 s of SIGTERM while it waits for --web-root"
echo "start_files_stall: PASS"
