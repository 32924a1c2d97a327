#!/usr/bin/env bash
# config_stall.sh STEMD STEMCTL STALL_FS: the config file on a file system that stops answering (a
# home directory on NFS under the user unit; tests/tools/stall_fs.py --hold-all-after: once its
# flag exists every request — a lookup, an open, a read — is held). Before (attack pass 24, F4),
# the config file was looked for, opened and read on the main thread: a start hung with no log
# line, --check-config --load-timeout 1 hung in state D, and after a SIGHUP SIGTERM was ignored.
#  1. Start (--config on the share, and the search: $XDG_CONFIG_HOME there): exit 2 within
#     --load-timeout + a few seconds, naming the file whose file system did not answer.
#  2. SIGTERM while the start waits (--load-timeout 30): gone within 2 s — also with SIGTERM
#     blocked, as in the new image after a device hand-over.
#  3. --check-config: returns within its deadline, exit 2, naming the file.
#  4. SIGHUP once the share hangs: "configuration not reloaded" after --load-timeout, OSC answers,
#     a second SIGHUP joins the first, a third is refused while the helper given up on is stuck (never
#     more than one helper), then SIGTERM stops stemd at once with the state saved.
# Exit 0 pass, 1 fail, 77 skipped (not root, or no FUSE).
set -uo pipefail
STEMD=$1
STEMCTL=$2
# shellcheck disable=SC2034  # STALL_FS and NAME: used by stall_common.sh
STALL_FS=$3
# shellcheck disable=SC2034
NAME=config_stall
# shellcheck source=stall_common.sh
. "$(dirname "$0")/stall_common.sh"

printf 'log-level = "info"\nlevels = [1, 1, 1, 1]\n' >"$D/c.conf"
mount_fs "$D/mnt" "$D/fs.log" --hold-all-after "$D/hang" --serve "c.conf=$D/c.conf"

# 4 first, while the share answers: a daemon started on the served config.
start_netns hup "$STEMD" --backend null --config "$D/mnt/c.conf" --osc-port 47650 --http-port -1 \
  --load-timeout 1 --state-file "$D/live.state"
P=$!
wait_for "$D/hup.log" " started: " 10 || fail "did not start on a config file that answers"
helpers() { pgrep -c -P "$P" -f read-config 2>/dev/null || true; }  # its config readers
touch "$D/hang"
kill -HUP "$P"
sleep 0.3
[ "$(helpers)" -le 1 ] || fail "more than one helper: $(helpers)"
kill -HUP "$P"
wait_for "$D/hup.log" "SIGHUP: a reload is already waiting for $D/mnt/c.conf" 3 ||
  fail "a second SIGHUP while the first waits is not said to join it"
wait_for "$D/hup.log" "SIGHUP: configuration not reloaded, the running one stays: config file $D/mnt/c.conf: the file system of $D/mnt/c.conf did not answer within 1 s (--load-timeout" 5 ||
  fail "no 'not reloaded' line naming the file within 5 s of SIGHUP"
in_netns "$P" "$STEMCTL" --port 47650 ping >"$D/ping.log" 2>&1 || fail "OSC does not answer: $(cat "$D/ping.log")"
kill -HUP "$P"
wait_for "$D/hup.log" "has still not returned (its file system does not answer)" 3 ||
  fail "a SIGHUP while the given-up read is stuck is not refused"
[ "$(helpers)" -le 1 ] || fail "SIGHUPs stacked helpers: $(helpers)"
kill -TERM "$P"
ends_with "$P" 0 5 "stemd, sent SIGTERM after a SIGHUP on the hung share,"
grep -qF "state saved to $D/live.state" "$D/hup.log" || fail "the state was not saved"
grep -q "^end" "$D/live.state" || fail "the state file is not complete"

# 1. Start with --config on the hung share; then with the search ($XDG_CONFIG_HOME on it).
start() {  # NAME ARGS…: runs stemd in the background ($S its pid)
  local name=$1
  shift
  env -u STEMD_NO_CONFIG_SEARCH "$STEMD" --backend null --no-osc --http-port -1 "$@" >"$D/$name.log" 2>&1 &
  S=$!
  echo $S >"$D/$name.pid"
}
start one --config "$D/mnt/c.conf" --load-timeout 1
ends_with "$S" 2 5 "start (1), on a config file whose file system does not answer,"
grep -qF "config file $D/mnt/c.conf: the file system of $D/mnt/c.conf did not answer within 1 s" "$D/one.log" ||
  fail "start (1) does not name the file that did not answer"
XDG_CONFIG_HOME="$D/mnt" start two --load-timeout 1
ends_with "$S" 2 5 "start (2, the search)"
grep -qF "the file system of $D/mnt/stemd/stemd.conf did not answer within 1 s" "$D/two.log" ||
  fail "start (2) does not name the searched file that did not answer"
# The default deadline is 10 s (the config file's own --load-timeout is not known yet).
start three --config "$D/mnt/c.conf"
sleep 1
kill -0 "$S" 2>/dev/null || fail "start (3) ended before the default 10 s deadline: $(cat "$D/three.log")"

# 2. SIGTERM during the wait ends it — also with SIGTERM blocked (a hand-over's new image).
kill -TERM "$S"
gone_within "$S" 2 || fail "start (3) did not end within 2 s of SIGTERM while it waits for the config file"
python3 -c 'import os, signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT]); os.execv(sys.argv[1], sys.argv[1:])' \
  "$STEMD" --backend null --no-osc --http-port -1 --config "$D/mnt/c.conf" --load-timeout 30 >"$D/four.log" 2>&1 &
S=$!
echo $S >"$D/four.pid"
sleep 1
kill -TERM "$S"
gone_within "$S" 2 || fail "start (4, SIGTERM blocked) did not end within 2 s of SIGTERM"

# 3. --check-config (the unit's ExecStartPre).
"$STEMD" --check-config --config "$D/mnt/c.conf" --load-timeout 1 --backend null >"$D/check.log" 2>&1 &
S=$!
echo $S >"$D/check.pid"
ends_with "$S" 2 5 "--check-config"
grep -qF "the file system of $D/mnt/c.conf did not answer within 1 s" "$D/check.log" ||
  fail "--check-config does not name the file that did not answer"
echo "config_stall: PASS"
