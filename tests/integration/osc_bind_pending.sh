#!/usr/bin/env bash
# osc_bind_pending.sh STEMD STEMCTL: a daemon bound (--osc-bind, --http-bind) to an address the
# machine does not have yet — a Pi that starts stemd before its DHCP lease, an IPv6 address still
# tentative — starts anyway with a warning, says when the address appears, and answers OSC from
# then on. Before, it exited 2 ("Cannot assign requested address"), systemd restarted it every
# second and gave up after five tries: the box stayed silent until someone logged in.
# Runs in a network namespace of its own (unshare --net), where the address is added with `ip`.
# Exit 0 pass, 1 fail, 77 skipped (no unshare/ip, or not allowed to make a network namespace).
set -uo pipefail
STEMD=$1
STEMCTL=$2
command -v unshare >/dev/null && command -v ip >/dev/null || { echo "osc_bind_pending: no unshare/ip: skipped"; exit 77; }
unshare --net true 2>/dev/null || { echo "osc_bind_pending: cannot make a network namespace: skipped"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-bindpending.XXXXXX")
trap 'rm -rf "$D"' EXIT

# Everything below runs inside the namespace; its exit status is the test's.
unshare --net bash -s "$STEMD" "$STEMCTL" "$D" "$(cd "$(dirname "$0")" && pwd)" <<'INNER'
set -uo pipefail
STEMD=$1; STEMCTL=$2; D=$3
ADDR=192.0.2.1  # TEST-NET-1
NAME=osc_bind_pending
# shellcheck source=netns_common.sh
source "$4/netns_common.sh"
ip link set lo up || fail "ip link set lo up"

"$STEMD" --backend null --osc-bind "$ADDR" --allow 192.0.2.0/24 --osc-port 57120 \
  --osc-tcp-port 57121 --http-bind "$ADDR" --http-port 8089 >"$D/stemd.log" 2>&1 &
PID=$!
wait_for " started: " 10 || fail "did not start with an address the machine lacks"
grep -qF -- "--osc-bind $ADDR: no network interface has this address yet" "$D/stemd.log" ||
  fail "no warning that the address is not configured"
grep -qF -- "--http-bind $ADDR: no network interface has this address yet" "$D/stemd.log" ||
  fail "no warning that the web monitor's address is not configured"

ip addr add "$ADDR/32" dev lo || fail "ip addr add"
wait_for "--osc-bind $ADDR: the address is configured now" 5 || fail "the address's arrival was not logged"
out=$("$STEMCTL" --host "$ADDR" --port 57120 --timeout 3 ping 2>&1) || fail "no OSC answer over UDP once configured: $out"
out=$("$STEMCTL" --host "$ADDR" --port 57121 --tcp --timeout 3 ping 2>&1) || fail "no OSC answer over TCP once configured: $out"
if command -v curl >/dev/null; then
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$ADDR:8089/") || true
  [ "$code" = 200 ] || fail "the web monitor did not answer once configured (HTTP $code)"
fi

wait_for "--http-bind $ADDR: the address is configured now" 5 || fail "the web monitor's address's arrival was not logged"

# The address goes (a lease lost) and comes back: both are said, and OSC answers again.
ip addr del "$ADDR/32" dev lo || fail "ip addr del"
wait_for "--osc-bind $ADDR: no network interface has this address any more" 5 || fail "the address's loss was not logged"
ip addr add "$ADDR/32" dev lo || fail "ip addr add (again)"
i=0
until [ "$(grep -cF -- "--osc-bind $ADDR: the address is configured now" "$D/stemd.log")" -ge 2 ]; do
  [ $i -ge 100 ] && fail "the address's return was not logged"
  sleep 0.05; i=$((i + 1))
done
out=$("$STEMCTL" --host "$ADDR" --port 57120 --timeout 3 ping 2>&1) || fail "no OSC answer after the address came back: $out"

kill -TERM "$PID"
wait "$PID"; rc=$?
PID=""
[ "$rc" -eq 0 ] || fail "exit $rc after SIGTERM"

# A v4-mapped address with net.ipv6.bindv6only=1: the probe binds as the real socket does (IPv4
# let in), so an address the machine lacks is not called configured (it was, 100 ms after start).
if sysctl -qw net.ipv6.bindv6only=1 2>/dev/null; then
  "$STEMD" --backend null --osc-bind ::ffff:192.0.2.8 --allow 192.0.2.0/24 --osc-port 57122 >"$D/m.log" 2>&1 &
  PID=$!
  wait_for " started: " 10 "$D/m.log"
  grep -qF -- "--osc-bind ::ffff:192.0.2.8: no network interface has this address yet" "$D/m.log" ||
    { cat "$D/m.log" >&2; fail "v4-mapped: no pending warning"; }
  sleep 2.5
  grep -qF "configured now" "$D/m.log" && { cat "$D/m.log" >&2; fail "v4-mapped: called configured while missing"; }
  kill -TERM "$PID"; wait "$PID"; PID=""
  sysctl -qw net.ipv6.bindv6only=0
fi

# A bind error that is not a missing address still stops the start (the port in use).
"$STEMD" --backend null --osc-bind "$ADDR" --allow 192.0.2.0/24 --osc-port 57120 >"$D/a.log" 2>&1 &
PID=$!
wait_for " started: " 10 "$D/a.log"
out=$("$STEMD" --backend null --osc-bind "$ADDR" --allow 192.0.2.0/24 --osc-port 57120 --duration 1 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -qF "port 57120 is in use" <<<"$out" || fail "port in use: exit $rc: $out"
kill -TERM "$PID"; wait "$PID"; PID=""
# A link-local address with its interface (the kind an IPv6 box has first at boot): pending, then
# configured, then answered (it was "not a numeric IPv4/IPv6 address").
"$STEMD" --backend null --osc-bind 'fe80::1%lo' --allow fe80::/10 --osc-port 57123 >"$D/ll.log" 2>&1 &
PID=$!
wait_for " started: " 10 "$D/ll.log"
grep -qF -- "--osc-bind fe80::1%lo: no network interface has this address yet" "$D/ll.log" ||
  { cat "$D/ll.log" >&2; fail "link-local: no pending warning"; }
ip -6 addr add fe80::1/64 dev lo nodad || fail "ip -6 addr add fe80::1"
wait_for "--osc-bind fe80::1%lo: the address is configured now" 5 "$D/ll.log"
grep -qF "configured now" "$D/ll.log" || { cat "$D/ll.log" >&2; fail "link-local: its arrival was not logged"; }
out=$("$STEMCTL" --host 'fe80::1%lo' --port 57123 --timeout 3 ping 2>&1) || fail "link-local: no OSC answer: $out"
kill -TERM "$PID"; wait "$PID"; PID=""

# A link-local address whose interface is not there yet (a USB or Wi-Fi adapter, a bridge made
# later at boot) is waited for as a late address is: it exited 2 (no network interface "eth9").
# The web monitor's --http-bind too (it exited 2: no network interface "eth9").
"$STEMD" --backend null --osc-bind 'fe80::1%eth9' --allow fe80::/10 --osc-port 57124 --osc-tcp-port 57125 \
  --http-bind 'fe80::1%eth9' --http-port 8090 >"$D/if.log" 2>&1 &
PID=$!
wait_for " started: " 10 "$D/if.log"
kill -0 "$PID" 2>/dev/null || { cat "$D/if.log" >&2; fail "late interface: stemd exited"; }
grep -qF -- '--osc-bind fe80::1%eth9: no network interface "eth9" yet' "$D/if.log" ||
  { cat "$D/if.log" >&2; fail "late interface: no warning naming it"; }
grep -qF -- '--http-bind fe80::1%eth9: no network interface "eth9" yet' "$D/if.log" ||
  { cat "$D/if.log" >&2; fail "late interface: no --http-bind warning naming it"; }
# The interface appears (a dummy; a veth pair where the kernel has no dummy driver).
ip link add eth9 type dummy 2>/dev/null || ip link add eth9 type veth peer name eth9p ||
  fail "cannot add an interface"
wait_for 'network interface "eth9" is there now' 5 "$D/if.log"
grep -qF 'network interface "eth9" is there now' "$D/if.log" ||
  { cat "$D/if.log" >&2; fail "late interface: its arrival was not logged"; }
wait_for '--http-bind fe80::1%eth9: network interface "eth9" is there now: web monitor on http://[fe80::1' 5 "$D/if.log" ||
  { cat "$D/if.log" >&2; fail "late interface: its arrival was not logged for --http-bind"; }
ip link set eth9 up && { ! ip link show eth9p >/dev/null 2>&1 || ip link set eth9p up; } || fail "ip link set up"
ip -6 addr add fe80::1/64 dev eth9 nodad || fail "ip -6 addr add fe80::1 dev eth9"
wait_for "--osc-bind fe80::1%eth9: the address is configured now" 5 "$D/if.log"
grep -qF "configured now" "$D/if.log" || { cat "$D/if.log" >&2; fail "late interface: the address's arrival"; }
out=$("$STEMCTL" --host 'fe80::1%eth9' --port 57124 --timeout 3 ping 2>&1) || fail "late interface: no UDP answer: $out"
out=$("$STEMCTL" --host 'fe80::1%eth9' --port 57125 --tcp --timeout 3 ping 2>&1) ||
  fail "late interface: no TCP answer: $out"
wait_for "--http-bind fe80::1%eth9: the address is configured now" 5 "$D/if.log" ||
  { cat "$D/if.log" >&2; fail "late interface: --http-bind's address arrival"; }
if command -v curl >/dev/null; then
  code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' -g 'http://[fe80::1%eth9]:8090/api/status')
  [ "$code" = 200 ] || fail "late interface: the web monitor answered $code, not 200"
fi
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=""
[ "$rc" -eq 0 ] || fail "late interface: exit $rc after SIGTERM"
# A malformed address or interface name is still refused at start.
for bad in 'fe80::zz%eth9' 'fe80::1%eth/9' 'fe80::1%an-interface-name-too-long'; do
  out=$("$STEMD" --backend null --osc-bind "$bad" --allow fe80::/10 --osc-port 57126 --duration 1 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "--osc-bind $bad: exit $rc, not 2: $out"
done
echo "osc_bind_pending: pass"
INNER
