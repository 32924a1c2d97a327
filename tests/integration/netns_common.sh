# shellcheck shell=bash
# Sourced inside the network namespace by osc_bind_pending.sh and media_root_late.sh, after
# NAME and D are set; PID is the daemon's (set by the caller, "" when none runs).
#   cleanup      on EXIT: stops the daemon
#   fail MSG     "NAME: FAIL: MSG", the last lines of $D/stemd.log, exit 1
#   wait_for TEXT SECONDS [LOG]   until LOG ($D/stemd.log) holds TEXT: false after SECONDS, or
#                                 at once when the daemon has ended
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
fail() {
  echo "$NAME: FAIL: $*" >&2
  [ -f "$D/stemd.log" ] && tail -20 "$D/stemd.log" >&2
  exit 1
}
wait_for() {
  local i=0 log=${3:-$D/stemd.log}
  until grep -qF -- "$1" "$log" 2>/dev/null; do
    [ "$i" -ge $(($2 * 20)) ] && return 1
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.05
    i=$((i + 1))
  done
}
