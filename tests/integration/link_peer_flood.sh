#!/usr/bin/env bash
# link_peer_flood.sh: a Link peer that changes the session's tempo all the time, to absurd values.
#
# Any host on the LAN can join the Ableton Link session (docs/security.md). Here daemon B
# (--bpm 240, so /set_tempo takes 60–960) plays that peer: 4 s of /set_tempo alternating 61 and
# 958 bpm. Daemon A (--link --bpm 120) plays a stem and must:
#   - log the session's tempo changes at most 5 lines a second (a peer must not flood the log;
#     before: one line per change the daemon saw, ≈ 10 a second);
#   - say when the session's tempo is beyond what its players follow (0.25–4 × --bpm: held at
#     480 bpm), as a warning;
#   - keep playing, answer a ping, and stay within Link's 20–999 bpm.
# Both daemons run in a private network namespace (unshare -n, loopback only), so the flood
# never reaches another Link session on this machine.
#
#   tests/integration/link_peer_flood.sh STEMD STEMCTL
# Exit 0 pass, 1 fail, 77 skip (not root, or no unshare/ip).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=link_ns_common.sh
. "$HERE/link_ns_common.sh"
link_ns_begin link_peer_flood 0 "$0" "$@"
fail() { echo "link_peer_flood: FAIL: $*" >&2; tail -n 20 "$D/a.log" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free_port) PB=$(free_port)
python3 - "$D/s.wav" <<'PY' || fail "fixture"
import sys, wave, math, struct
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(48000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 441 * i / 48000))) for i in range(48000)))
PY
export STEMD_NO_CONFIG_SEARCH=1
"$STEMD" --backend null --osc-port "$PA" --link --bpm 120 --log-level info >"$D/a.log" 2>&1 & A_PID=$!
"$STEMD" --backend null --osc-port "$PB" --link --bpm 240 --log-level info >"$D/b.log" 2>&1 & B_PID=$!
ctl() { "$STEMCTL" --port "$1" --timeout 3 "${@:2}"; }
peers=0
for _ in $(seq 100); do
  peers=$(ctl "$PA" status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("link_peers", 0))' 2>/dev/null)
  [ "${peers:-0}" -ge 1 ] && break
  sleep 0.1
done
[ "${peers:-0}" -ge 1 ] || fail "the daemons did not find each other over Link (peers: ${peers:-?})"
ctl "$PA" -q send /load_buffer i:100 "s:$D/s.wav" || fail "/load_buffer"
ctl "$PA" -q send /play_stem i:100 f:1.0 f:0.8 i:1 || fail "/play_stem"
LINES0=$(grep -c "link: session tempo" "$D/a.log")

SECONDS_FLOOD=4
python3 - "$PB" "$SECONDS_FLOOD" <<'PY' || fail "the flood"
import socket, struct, sys, time
def pad(b): return b + b"\0" * (4 - len(b) % 4)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, n = time.time() + float(sys.argv[2]), 0
while time.time() < end:
    s.sendto(pad(b"/set_tempo") + pad(b",f") + struct.pack(">f", (61.0, 958.0)[n % 2]), ("127.0.0.1", int(sys.argv[1])))
    n += 1
    time.sleep(0.002)
print(f"link_peer_flood: {n} tempo changes sent to the peer in {sys.argv[2]} s")
PY
sleep 1.2   # the last line's second passes; the suppressed count is logged
kill -0 "$A_PID" 2>/dev/null || fail "daemon A died"
ctl "$PA" -q ping || fail "daemon A does not answer a ping"
ST=$(ctl "$PA" status --json) || fail "status"
BPM=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tempo_bpm"])' "$ST")
PLAYING=$(ctl "$PA" voices --json | python3 -c 'import json,sys; print(sum(v["state"] == "playing" for v in json.load(sys.stdin)))')
LINES=$(( $(grep -c "link: session tempo" "$D/a.log") - LINES0 ))
HELD=$(grep -c "players held at 480.0 bpm" "$D/a.log")
MAX_LINES=$(( 5 * (SECONDS_FLOOD + 1) ))
echo "link_peer_flood: A logged $LINES tempo lines (at most $MAX_LINES), $HELD 'held' warnings; tempo now $BPM bpm; $PLAYING playing"
grep "link: session tempo\|suppressed" "$D/a.log" | tail -n 4
status=0
[ "$LINES" -le "$MAX_LINES" ] || { echo "FAIL: a peer's tempo changes flood the log ($LINES lines)"; status=1; }
[ "$HELD" -ge 1 ] || { echo "FAIL: no warning that the players are held at 4 × --bpm"; status=1; }
# The suppressed count names what was suppressed (it said "OSC link tempo: … more suppressed").
if grep -q "OSC link" "$D/a.log"; then echo "FAIL: a Link line is labelled OSC"; status=1; fi
python3 -c 'import sys; b=float(sys.argv[1]); sys.exit(0 if 20 <= b <= 999 else 1)' "$BPM" || { echo "FAIL: tempo $BPM"; status=1; }
[ "$PLAYING" = 1 ] || { echo "FAIL: A's stem stopped"; status=1; }
if [ "$status" -eq 0 ]; then echo "link_peer_flood: PASS"; else
  tail -n 20 "$D/a.log"; echo "link_peer_flood: FAIL" >&2; fi
exit "$status"
