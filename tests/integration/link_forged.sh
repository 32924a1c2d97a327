#!/usr/bin/env bash
# link_forged.sh: forged Ableton Link peers (outside pass 26, M2 and M3) against two daemons.
#
#   M2: one datagram claiming the session with beat origin 2^63−1 µbeats locked its tempo: every
#       later /set_tempo answered /done and the tempo snapped back. Now a /done must stick (A and
#       B take the tempo), and a /set_tempo the session would not take answers /fail; within a
#       few tries the boxes can be steered again (they leave the absurd session and join afresh).
#   M3: a forged founder whose clock is 4·10^18 µs ahead took the daemons into its session at
#       170 bpm, where Link's beat arithmetic overflows: the beat stood still (quantised starts
#       landed nowhere). Now the beat heard must keep advancing while the founder is there.
# Both daemons and the forger (link_forge.py) run in a private network namespace (unshare -n,
# loopback only): nothing reaches another Link session on this machine.
#
#   tests/integration/link_forged.sh STEMD STEMCTL
# Exit 0 pass, 1 fail, 77 skip (not root, or no unshare/ip).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=link_ns_common.sh
. "$HERE/link_ns_common.sh"
link_ns_begin link_forged 50 "$0" "$@"
status=0
bad() { echo "link_forged: FAIL: $*"; status=1; }
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free_port) PB=$(free_port)
export STEMD_NO_CONFIG_SEARCH=1
"$STEMD" --backend null --osc-port "$PA" --link --bpm 120 --log-level info >"$D/a.log" 2>&1 & A_PID=$!
"$STEMD" --backend null --osc-port "$PB" --link --bpm 120 --log-level info >"$D/b.log" 2>&1 & B_PID=$!
ctl() { "$STEMCTL" --port "$1" --timeout 3 "${@:2}"; }
field() {  # field PORT NAME: a status field
  ctl "$1" status --all --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2" 2>/dev/null
}
peers=0
for _ in $(seq 100); do
  peers=$(field "$PA" link_peers)
  [ "${peers:-0}" -ge 1 ] 2>/dev/null && break
  sleep 0.1
done
[ "${peers:-0}" -ge 1 ] 2>/dev/null || { bad "the daemons did not find each other over Link"; tail -n 20 "$D/a.log"; exit 1; }

# --- M2: the tempo lock -------------------------------------------------------------------
python3 "$HERE/link_forge.py" lock || bad "the forger"
sleep 1
steered=0
for bpm in 140 141 142 143 144; do
  reply=$(ctl "$PA" send /set_tempo "f:$bpm" 2>&1)
  echo "link_forged: A /set_tempo $bpm -> $reply"
  sleep 1.5
  ta=$(field "$PA" tempo_bpm) tb=$(field "$PB" tempo_bpm)
  echo "link_forged:   tempo A $ta, B $tb"
  if printf '%s' "$reply" | grep -q '/done'; then
    python3 -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 0.01 else 1)' "$ta" "$bpm" ||
      bad "/set_tempo $bpm answered /done, and A's tempo is $ta"
    if python3 -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 0.01 else 1)' "$tb" "$bpm"; then
      steered=1
      break
    fi
  elif ! printf '%s' "$reply" | grep -q 'Link session would not take the tempo'; then
    bad "/set_tempo $bpm: neither /done nor a /fail saying why: $reply"
  fi
done
[ "$steered" = 1 ] || bad "the session's tempo could not be set from A after the forged datagram"

# --- M3: a founder whose clock is 4·10^18 µs ahead ----------------------------------------
python3 "$HERE/link_forge.py" founder 8 & F_PID=$!
sleep 3
b1=$(field "$PA" beat); sleep 0.7; b2=$(field "$PA" beat); sleep 0.7; b3=$(field "$PA" beat)
echo "link_forged: with the forged founder: A's beat $b1, $b2, $b3; tempo $(field "$PA" tempo_bpm)," \
  "link_grid_rejected $(field "$PA" link_grid_rejected), link_rejoins $(field "$PA" link_rejoins)"
python3 -c 'import sys; b = [float(x) for x in sys.argv[1:]]; sys.exit(0 if b[0] + 0.5 < b[1] and b[1] + 0.5 < b[2] else 1)' \
  "$b1" "$b2" "$b3" || bad "A's beat does not advance with the forged founder there ($b1, $b2, $b3)"
kill -0 "$A_PID" 2>/dev/null || bad "daemon A died"
kill -0 "$B_PID" 2>/dev/null || bad "daemon B died"
grep -h "link:" "$D/a.log" | grep -v "session tempo" | tail -n 6
if [ "$status" -eq 0 ]; then echo "link_forged: PASS"; else
  tail -n 25 "$D/a.log"; echo "link_forged: FAIL" >&2; fi
exit "$status"
