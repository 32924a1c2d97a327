#!/usr/bin/env bash
# link_peers_log.sh: what a box with --link tells its log and status (new-user pass 26, M3, L1, L7).
#
#   M3: a box that lost its peers said nothing: no line, the health line without Link, and
#       "joined" with no interface that could reach another box. Now daemon A (--link --bpm 120,
#       started with only loopback up) must warn that only this machine is reachable, log
#       "link: 0 peers → 1 peer" when B joins and "link: 1 peer → 0 peers …" when B is killed,
#       have "Link: 1 peer" in its health line, and say when an interface (a veth here) comes up.
#   L1: B (--bpm 100) in A's 120-bpm session must say its players run at rate 1.20.
#   L7: "(1 peers)" nowhere; `stemctl status` has a clock row with --link.
# Both daemons run in a private network namespace (unshare -n, loopback and a veth pair only),
# so nothing reaches another Link session on this machine. ~20 s.
#
#   tests/integration/link_peers_log.sh STEMD STEMCTL
# Exit 0 pass, 1 fail, 77 skip (not root, or no unshare/ip).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=link_ns_common.sh
. "$HERE/link_ns_common.sh"
link_ns_begin link_peers_log 55 "$0" "$@"
status=0
bad() { echo "link_peers_log: FAIL: $*"; status=1; }
# wait_log FILE TEXT SECONDS: until FILE holds TEXT (fixed string); false after SECONDS
wait_log() {
  local i=0
  until grep -qF -- "$2" "$1" 2>/dev/null; do
    [ "$i" -ge $(($3 * 10)) ] && return 1
    sleep 0.1
    i=$((i + 1))
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free_port) PB=$(free_port)
export STEMD_NO_CONFIG_SEARCH=1
"$STEMD" --backend null --osc-port "$PA" --link --bpm 120 --health-interval 1 --log-level info >"$D/a.log" 2>&1 &
A_PID=$!
ctl() { "$STEMCTL" --port "$1" --timeout 3 "${@:2}"; }
wait_log "$D/a.log" "link: joined" 10 || { bad "A did not join"; cat "$D/a.log"; exit 1; }

# --- M3: only loopback is up: A says only this machine is reachable -----------------------
wait_log "$D/a.log" "no network interface but loopback can carry Link's multicast" 2 ||
  bad "A did not warn that only loopback can carry Link's multicast"

# Link keeps the older of two sessions that meet, and takes either when they began within 0.5 s of
# each other (ableton/link/Sessions.hpp, SESSION_EPS): B starts 1.5 s after A's so that A's is kept.
sleep 1.5
"$STEMD" --backend null --osc-port "$PB" --link --bpm 100 --log-level info >"$D/b.log" 2>&1 &
B_PID=$!
peers=0
for _ in $(seq 100); do
  peers=$(ctl "$PA" status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("link_peers", 0))' 2>/dev/null)
  [ "${peers:-0}" -ge 1 ] 2>/dev/null && break
  sleep 0.1
done
[ "${peers:-0}" -ge 1 ] 2>/dev/null || { bad "the daemons did not find each other over Link"; tail -n 20 "$D/a.log"; exit 1; }

# --- M3: the peer that joined, in A's log and health line ----------------------------------
wait_log "$D/a.log" "link: 0 peers → 1 peer" 4 || bad "A did not log the peer that joined (link: 0 peers → 1 peer)"
wait_log "$D/a.log" ", Link: 1 peer" 4 || bad "A's health line does not have its Link peers (, Link: 1 peer)"
# --- L1: B's players take the session's tempo ÷ its own --bpm ------------------------------
wait_log "$D/b.log" "players at rate 1.20 (session 120.00 bpm ÷ --bpm 100" 4 ||
  bad "B did not say its players run at rate 1.20 in the 120-bpm session (--bpm 100)"
# --- L7: the short status has the clock's row with --link -----------------------------------
ST=$(ctl "$PA" status 2>&1)
printf '%s\n' "$ST" | grep -E '^  clock  +' || bad "stemctl status has no clock row with --link: $ST"

# --- M3: the peer that left -----------------------------------------------------------------
kill -KILL "$B_PID"
wait "$B_PID" 2>/dev/null
B_PID=''
wait_log "$D/a.log" "link: 1 peer → 0 peers: this box plays on alone" 12 ||
  bad "A did not log the peer that left (link: 1 peer → 0 peers …)"

# --- M3: an interface that can reach other boxes comes up -----------------------------------
if ip link add v0 type veth peer name v1 2>/dev/null; then
  ip addr add 10.77.7.1/24 dev v0 && ip link set v0 up && ip link set v1 up
  wait_log "$D/a.log" "link: v0 can carry Link's multicast now" 8 ||
    bad "A did not say that v0 came up and can carry Link's multicast"
else
  echo "link_peers_log: (no veth in this kernel: the interface that comes up is not checked)"
fi

# --- L7: no "1 peers", and the peer lines stay few -----------------------------------------
if grep -h "1 peers" "$D/a.log" "$D/b.log"; then bad "\"1 peers\" in a log line"; fi
n=$(grep -c "link: [0-9]* peers\? →" "$D/a.log")
[ "$n" -le 4 ] || bad "A logged $n peer-count lines for two changes"
echo "link_peers_log: A's Link lines:"
grep -E "link:|Link: " "$D/a.log" | grep -v "^.*health:" | cut -c1-220
grep "health:" "$D/a.log" | tail -n 1 | cut -c1-260
echo "link_peers_log: B's:"
grep "link:" "$D/b.log" | cut -c1-220
if [ "$status" -eq 0 ]; then echo "link_peers_log: PASS"; else
  echo "--- a.log"; tail -n 25 "$D/a.log"; echo "link_peers_log: FAIL" >&2
fi
exit "$status"
