# shellcheck shell=bash
# Sourced by the Link tests (link_forged.sh, link_peer_flood.sh, link_peers_log.sh): each runs its
# daemons in a private network namespace (unshare -n, loopback only), so nothing reaches another
# Link session on this machine.
#   link_ns_enter NAME SECONDS SCRIPT ARGS...  outside the namespace: "NAME: SKIP" (exit 77)
#       without unshare, ip, python3 or root; otherwise SCRIPT ARGS run again in a fresh namespace
#       (under `timeout SECONDS`; 0: none) in this process's place. Inside, it returns.
#   link_ns_multicast NAME  inside: loopback up, multicast on and 224.0.0.0/4 routed to it (what
#       Link's discovery needs); "NAME: SKIP" (exit 77) when the namespace will not have it.
#   link_ns_begin NAME SECONDS SCRIPT STEMD STEMCTL  all of a Link test's start: the usage check,
#       link_ns_enter and link_ns_multicast, then STEMD, STEMCTL and D (a fresh temporary folder)
#       set, and a trap on exit that sends SIGTERM to the daemons in F_PID, A_PID and B_PID (the
#       test sets them; empty: none), waits for them and removes D.
link_ns_enter() {
  local name=$1 secs=$2 script=$3 t
  shift 3
  [ "${LINK_NS_INSIDE:-}" = 1 ] && return 0
  for t in unshare ip python3; do
    command -v "$t" >/dev/null 2>&1 || { echo "$name: SKIP ($t not installed)"; exit 77; }
  done
  [ "$(id -u)" -eq 0 ] || { echo "$name: SKIP (needs root for a private network namespace)"; exit 77; }
  export LINK_NS_INSIDE=1
  if [ "$secs" -gt 0 ]; then exec timeout "$secs" unshare -n "$script" "$@"; fi
  exec unshare -n "$script" "$@"
}

link_ns_multicast() {
  if ! { ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo; }; then
    echo "$1: SKIP (no multicast on the namespace's loopback)"
    exit 77
  fi
}

link_ns_begin() {
  local name=$1 secs=$2 script=$3
  shift 3
  if [ $# -ne 2 ]; then
    echo "usage: $script STEMD STEMCTL" >&2
    exit 1
  fi
  link_ns_enter "$name" "$secs" "$script" "$@"
  link_ns_multicast "$name"
  # shellcheck disable=SC2034  # read by the test that sourced this file
  STEMD=$1 STEMCTL=$2
  D=$(mktemp -d "/tmp/stemd-$name.XXXXXX")
  # shellcheck disable=SC2034
  F_PID='' A_PID='' B_PID=''
  trap link_ns_cleanup EXIT
}

# shellcheck disable=SC2317  # called by the trap
link_ns_cleanup() {
  local p
  for p in $F_PID $A_PID $B_PID; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$D"
}
