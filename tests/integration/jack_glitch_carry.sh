#!/usr/bin/env bash
# jack_glitch_carry.sh STEMD POSITION_SIGNAL_PY STEMCTL: outside pass 26, user M1 and L7.
# A device underflow (the JACK server frozen 0.3 s with SIGSTOP: an xrun), then the server dies
# and comes back (stemd hands over to a fresh image of itself). After the return, `stemctl
# status` (short and --json) and the web monitor's /api/status must still count the underflow,
# with its age, and say when the device was lost and for how long: they restarted at 0 and a
# week-long show that lost its DAC and glitched read as clean. At 44.1 kHz the new image's start
# line (no device open yet) gives the output latency at 44.1 kHz, not 1024/48000 (L7).
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_glitch_carry
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
command -v curl >/dev/null 2>&1 || { echo "$TEST_NAME: SKIP (curl not installed)"; exit 77; }
testbed_start 1024 44100 || fail "could not start jackd"
D=$TESTBED_DIR
HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
device_stemd --log-level debug --sample-rate 44100 --http-port "$HPORT"
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], "none"))' "$1"; }

# An underflow: the server stopped for 0.3 s misses its cycles (stemd's client "was not finished").
under=0
for _ in 1 2 3 4 5; do
  freeze; sleep 0.3; thaw; sleep 1
  under=$(ctl status --json | field device_underflows) || fail "no status"
  [ "$under" != none ] && [ "$under" -gt 0 ] && break
done
[ "$under" != none ] && [ "$under" -gt 0 ] || fail "no device underflow after freezing the server 5 times"
echo "$TEST_NAME: $under device underflow(s) before the loss"
# The callbacks' histogram since start (the web monitor's callback_hist: [upper_ns, count] pairs).
callbacks() {
  curl -s --max-time 3 "http://127.0.0.1:$HPORT/api/status" |
    python3 -c 'import json, sys; print(sum(n for _, n in json.load(sys.stdin)["callback_hist"]))' 2>&1
}
sleep 4  # more callbacks before the loss than the new image will have played when it is asked
cb_before=$(callbacks)
[ "$cb_before" -gt 0 ] 2>/dev/null || fail "no callback histogram before the loss: $cb_before"

testbed_kill_jackd  # the device disappears
t_lost=$(date +%s.%N)
testbed_wait_for 5 grep -q "resuming after the audio device was lost" "$D/stemd.log" || fail "no hand-over"
sleep 2
testbed_restart_jackd || fail "jackd did not restart"
t_back=$(date +%s.%N)
testbed_wait_for 10 grep -q "audio device back after" "$D/stemd.log" || fail "the device did not come back"
sleep 1.5
# The new image's own underflows (the first periods after the return may glitch on a loaded
# machine), as its health warnings count them: the status must hold those and the earlier ones.
new_since=$(sed -n '/resuming after the audio device was lost/,$p' "$D/stemd.log" |
  sed -n 's/.*device underflows +\([0-9]*\) (total.*/\1/p' | awk '{n += $1} END {print n + 0}')

# L7: the new image's start line, with no device open yet, at the configured 44.1 kHz.
second=$(grep " started: portaudio (no device open yet)" "$D/stemd.log" | head -1)
[ -n "$second" ] || fail "no start line of the resumed image"
grep -q "(output latency 23.2 ms)" <<<"$second" || fail "the resumed image's output latency is not 1024/44100: $second"

js=$(ctl status --json) || fail "no status after the return"
python3 - "$js" "$under" "$t_lost" "$t_back" "$new_since" <<'PY' || fail "the status after the return (above)"
import json, sys, time
s = json.loads(sys.argv[1]); under = int(sys.argv[2]); t_lost, t_back = float(sys.argv[3]), float(sys.argv[4])
new_since = int(sys.argv[5])
print(f"after the return: device_underflows {s['device_underflows']} (before the loss {under}, the new image's "
      f"own {new_since}), last {s['device_underflow_age_s']:.1f} s ago, losses {s.get('device_losses')}, "
      f"last loss {s.get('device_last_loss_age_s')} s ago for {s.get('device_last_loss_s')} s")
if s["device_underflows"] < under + new_since: sys.exit("the underflows before the loss are not counted any more")
if s["device_underflow_age_s"] < 0: sys.exit("the last underflow's age is 'none since start'")
if s.get("device_losses") != 1: sys.exit("device_losses is not 1")
if "device_last_loss_s" not in s: sys.exit("no device_last_loss_s")
away = t_back - t_lost
if not away - 0.5 <= s["device_last_loss_s"] <= away + 3: sys.exit(f"the loss lasted {away:.1f} s, status says otherwise")
ago = time.time() - t_lost
if abs(s["device_last_loss_age_s"] - ago) > 2: sys.exit(f"the loss began {ago:.1f} s ago, status says otherwise")
PY
st=$(ctl status) || fail "no short status"
grep -Eq "device +running \(lost 1 time since stemd started; the last 0:00:[0-9]{2} ago, for [0-9.]+ s\)" <<<"$st" ||
  fail "the short status's device row does not say when the device was lost and for how long: $st"
grep -Eq "device underflows +[1-9][0-9]* \(the last 0:00:[0-9]{2} ago\)" <<<"$st" ||
  fail "the short status lost the underflows: $st"
w=$(curl -s --max-time 3 "http://127.0.0.1:$HPORT/api/status" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["status"]["device_underflows"])' 2>&1)
[ "$w" -ge "$under" ] 2>/dev/null || fail "the web /api/status has device_underflows '$w' (before the loss: $under)"
# The histogram counts on across the hand-over (it restarted with the new image: session 27's note).
cb_after=$(callbacks)
[ "$cb_after" -gt "$cb_before" ] 2>/dev/null ||
  fail "the callbacks' histogram holds $cb_after callbacks after the return, $cb_before before the loss"
echo "$TEST_NAME: callbacks in the histogram: $cb_before before the loss, $cb_after after the return"
echo "$TEST_NAME: PASS"
