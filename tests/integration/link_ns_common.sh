# shellcheck shell=bash
# Sourced by the Link tests (link_forged.sh, link_peer_flood.sh, link_peers_log.sh): each runs its
# daemons in a private network namespace (unshare -n, loopback only), so nothing reaches another
# Link session on this machine.
#   link_ns_enter NAME SECONDS SCRIPT ARGS...  outside the namespace: "NAME: SKIP" (exit 77)
#       without unshare, ip, python3 or root; otherwise SCRIPT ARGS run again in a fresh namespace
#       (under `timeout SECONDS`; 0: none) in this process's place. Inside, it returns.
#   link_ns_multicast NAME  inside: loopback up, multicast on and 224.0.0.0/4 routed to it (what
#       Link's discovery needs); "NAME: SKIP" (exit 77) when the namespace will not have it.
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
