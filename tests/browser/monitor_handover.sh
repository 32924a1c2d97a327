#!/usr/bin/env bash
# monitor_handover.sh STEMD STEMCTL SRC_DIR: what a user watches across a lost device's hand-over
# to a fresh image of stemd (outside pass 28, user L2, L4, L7). stemd plays on the JACK test bed
# (scripts/testbed.sh) with --link, --state-file and the web monitor on a fixed port; the page is
# open in headless Chromium (tests/browser/handover.test.js) while the server is killed and started
# again. Checked:
#   1. the page's Events show "/stemd/device/lost …" and then "/stemd/device/restored …", each once,
#      without a reload: its event socket reconnects by itself to the new image, which sends what
#      the page missed (the last events, carried across the exec); and so do a page's opened while
#      the new image waits for the device;
#   2. the new image's Link join line gives the latency the callbacks measured, not 0.0 ms;
#   3. the status totals (frames, OSC messages, loader reads, state writes) count on from the
#      service's start, not from the exec.
# Link runs only in a private network namespace (tests/integration/link_ns_common.sh): so does the
# whole test. Ports: $STEMD_TEST_OSC_PORT and $STEMD_TEST_HTTP_PORT when set (else free ones).
# $STEMD_TEST_WEB_ROOT: the page's files (default SRC_DIR/web). Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 STEMD STEMCTL SRC_DIR" >&2
  exit 1
fi
STEMD=$1
STEMCTL=$2
SRC=$3
HERE="$SRC/tests/browser"
WEB=${STEMD_TEST_WEB_ROOT:-$SRC/web}
# shellcheck source=browser_check.sh
source "$HERE/browser_check.sh"
browser_require monitor_handover jackd jack_wait python3 node
# shellcheck source=../integration/link_ns_common.sh
source "$SRC/tests/integration/link_ns_common.sh"
link_ns_enter monitor_handover 180 "$0" "$@"
link_ns_multicast monitor_handover
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$SRC/scripts/testbed.sh"
fail() {
  echo "monitor_handover: FAIL: $*" >&2
  [ -f "$D/stemd.log" ] && grep -v "ALSA\|cannot find card" "$D/stemd.log" | tail -25 >&2
  exit 1
}
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OSC=${STEMD_TEST_OSC_PORT:-$(free_port)}
HTTP=${STEMD_TEST_HTTP_PORT:-$(free_port)}
python3 - "$D/tone.wav" <<'PY' || fail "fixture"
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
w.writeframes(b"".join(struct.pack("<hh", v, v) for v in (int(8000 * math.sin(i * 0.0458)) for i in range(48000 * 60))))
w.close()
PY
# A fixed --http-port: the page reconnects to the address it was loaded from.
"$STEMD" --backend portaudio --device system --buffer-size 1024 --osc-port "$OSC" --http-port "$HTTP" \
  --web-root "$WEB" --link --state-file "$D/state" --play "$D/tone.wav" >"$D/stemd.log" 2>&1 &
pid=$!
testbed_track_pid "$pid"
testbed_wait_for 10 grep -qs "web monitor on http://" "$D/stemd.log" || fail "stemd did not start its web monitor"
testbed_wait_for 10 grep -qs "output latency .* compensated" "$D/stemd.log" || true
ctl() { "$STEMCTL" -p "$OSC" "$@"; }
timeout 120 node "$HERE/handover.test.js" "http://127.0.0.1:$HTTP" "$D" &
node_pid=$!
testbed_wait_for 30 test -f "$D/ready" || fail "the page did not get ready"
for _ in 1 2 3 4 5; do ctl ping >/dev/null || fail "ping"; done
ctl master 0.9 >/dev/null || fail "master"  # a change: a state write
sleep 2.5
before=$(ctl status --json) || fail "no status before the loss"
testbed_kill_jackd
testbed_wait_for 10 grep -q "resuming after the audio device was lost" "$D/stemd.log" || fail "no hand-over"
two_monitors() { [ "$(grep -c "web monitor on http://" "$D/stemd.log")" -ge 2 ]; }  # the old image's, the new one's
testbed_wait_for 10 two_monitors || fail "the new image did not open its web monitor"
touch "$D/handed"
testbed_wait_for 30 test -f "$D/late_ready" || fail "the second page did not get ready"
testbed_restart_jackd || fail "jackd did not restart"
testbed_wait_for 15 grep -q "audio device back after" "$D/stemd.log" || fail "the device did not come back"
# The three checks each say what failed; the test fails at the end if any did.
problems=0
problem() { echo "monitor_handover: FAIL: $*" >&2; problems=$((problems + 1)); }
rc=0
wait "$node_pid" || rc=$?
[ "$rc" -eq 0 ] || problem "handover.test.js exited $rc (the pages' Events)"
kill -0 "$pid" 2>/dev/null || fail "stemd is not running (the same PID) after the hand-over"
testbed_wait_for 10 grep -q "resume: 1 of 1 voices back" "$D/stemd.log" || fail "the voice did not play again"
sleep 1
after=$(ctl status --json) || fail "no status after the return"
# 2. The Link join lines: the first image's and the new one's.
grep "link: joined" "$D/stemd.log" | sed 's/^/monitor_handover: /'
[ "$(grep -c "link: joined" "$D/stemd.log")" -eq 2 ] || problem "not two Link join lines (one per image)"
! grep "link: joined" "$D/stemd.log" | tail -n1 | grep -q "output latency 0.0 ms" ||
  problem "the new image's Link join line says output latency 0.0 ms"
# 3. The totals.
python3 - "$before" "$after" <<'PY' || problem "the status totals (see above)"
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bad = []
for k in ("frames", "messages", "loader_reads", "state_writes"):
    print(f"monitor_handover: {k} {b.get(k)} before the loss, {a.get(k)} after the return")
    if a.get(k, -1) < b.get(k, 0): bad.append(k)
if a["uptime_s"] < b["uptime_s"]: bad.append("uptime_s")
if bad: sys.exit("restarted with the new image: " + ", ".join(bad))
PY
[ "$problems" -eq 0 ] || fail "$problems of the checks (above)"
echo "monitor_handover: PASS"
