#!/usr/bin/env bash
# alsa_file_tap.sh STEMD GEN VERIFY — issue 14, item 2: PortAudio's ALSA host API (what a
# Raspberry Pi OS Lite user gets) with no sound card. A temporary HOME holds an .asoundrc that
# defines two PCMs with ALSA's `file` plugin over a `null` slave: they write, raw, every byte
# stemd plays. stemd picks them by their ALSA names (--device stemd_tap, --device default),
# --list-devices shows both, and what was written holds the fixture BIT-EXACT (float32
# interleaved stereo at 48 kHz: no conversion on the way, so tolerance 0). The audio thread
# must run SCHED_FIFO where this process may use real-time scheduling (the PortAudio ALSA
# callback ran SCHED_OTHER before stemd asked for it), else the log must say it fell back.
# The `null` slave is not paced by a clock: stemd played faster than real time into it (350x to
# 2,500x: 250 s of audio in 0.1 s), its SCHED_FIFO audio thread spinning a whole core — in the CI
# of stop 38 that starved the tests running beside it (pipewire_play_jack failed) and this one's
# own control thread (default.raw passed 1 GB before the fixture had even started). So the file
# plugin writes into a pipe (`file "|command"`) whose reader, alsa_pace.py, copies to the raw file
# no faster than 4x real time: the pipe fills and ALSA's write blocks the callback, as a card's clock would. The
# test still stops stemd as soon as the fixture has ended and caps the file size.
# snd-aloop would give a paced card, but loading kernel modules is not possible in the test
# containers (no /dev/snd, no modprobe rights), so it is not used. A busy hw device (EBUSY)
# needs a card: its message is unit-tested on a fake /proc (FakeProc.* in stemd_unit_tests).
# Exit 0 pass, 1 fail, 77 skip (sox or python3 missing).
set -uo pipefail
STEMD=$1 GEN=$2 VERIFY=$3
NAME=alsa_file_tap
for t in sox python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "$NAME: SKIP ($t not installed)"; exit 77; }
done
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-alsa.XXXXXX")
STEMD_PID=""
cleanup() {
  [ -n "$STEMD_PID" ] && kill -KILL "$STEMD_PID" 2>/dev/null
  if [ "${STEMD_E2E_KEEP:-0}" = 1 ]; then echo "$NAME: kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT
fail() {
  echo "$NAME: FAIL: $*" >&2
  for f in "$D"/*.log; do [ -f "$f" ] && { echo "--- $f"; grep -v "^ALSA lib" "$f" | tail -15; } >&2; done
  exit 1
}
mkdir -p "$D/home"
PACE="$(cd "$(dirname "$0")" && pwd)/alsa_pace.py"
PACE_BPS=$((48000 * 2 * 4 * 4))   # 48 kHz, 2 channels, float32: 4x real time
cat >"$D/home/.asoundrc" <<ASOUNDRC
pcm.stemd_tap {
  type file
  slave.pcm "null"
  file "|python3 $PACE $D/tap.raw $PACE_BPS"
  format "raw"
}
pcm.!default {
  type file
  slave.pcm "null"
  file "|python3 $PACE $D/default.raw $PACE_BPS"
  format "raw"
}
ASOUNDRC
export HOME="$D/home"                 # alsa-lib reads ~/.asoundrc
unset LD_LIBRARY_PATH JACK_DEFAULT_SERVER
RATE=48000 PERIOD=1024
"$GEN" "$D/fixture.wav" --seconds 4 --rate "$RATE" --channels 2 --format pcm16 --kind mix --seed 42 || fail "fixture"

"$STEMD" --list-devices >"$D/list.log" 2>&1 || fail "--list-devices exited $?"
grep -Eq "^ +\*? *[0-9]+ +stemd_tap +ALSA" "$D/list.log" || fail "--list-devices does not show the PCM stemd_tap"
grep -Eq "^ +\*? *[0-9]+ +default +ALSA" "$D/list.log" || fail "--list-devices does not show the PCM default"

rt_ok=0
chrt -f 1 true 2>/dev/null && rt_ok=1
play() {  # play DEVICE RAWFILE: the fixture into the PCM, stopped once it has ended
  local dev=$1 raw=$2 log="$D/stemd-$1.log"
  "$STEMD" --backend portaudio --device "$dev" --sample-rate "$RATE" --buffer-size "$PERIOD" --osc-port 0 \
    --play "$D/fixture.wav" --log-level info >"$log" 2>&1 &
  STEMD_PID=$!
  local deadline=$((SECONDS + 20))
  until grep -q "ended: end of file" "$log"; do
    kill -0 "$STEMD_PID" 2>/dev/null || fail "stemd ($dev) exited early"
    [ "$SECONDS" -lt "$deadline" ] || fail "the fixture did not end within 20 s ($dev)"
    # unpaced: never let a stuck test fill the disk
    [ "$(stat -c %s "$raw" 2>/dev/null || echo 0)" -lt 1000000000 ] || fail "$raw over 1 GB"
    sleep 0.02
  done
  kill -TERM "$STEMD_PID"
  local rc=0
  for _ in $(seq 100); do kill -0 "$STEMD_PID" 2>/dev/null || break; sleep 0.05; done
  wait "$STEMD_PID" || rc=$?
  STEMD_PID=""
  [ "$rc" -eq 0 ] || fail "stemd ($dev) exited $rc after SIGTERM"
  # the pacer may still be copying what was left in its pipe
  for _ in $(seq 100); do pgrep -f -- "$PACE $raw" >/dev/null || break; sleep 0.05; done
  grep -q "started: portaudio device .*'$dev' (ALSA)" "$log" || fail "stemd did not open the ALSA PCM '$dev'"
  if [ "$rt_ok" = 1 ]; then
    grep -q "audio thread: SCHED_FIFO" "$log" || fail "the audio thread is not SCHED_FIFO though real time is allowed"
  else
    grep -q "audio thread: SCHED_OTHER (not real-time)" "$log" || fail "no 'audio thread: SCHED_OTHER' line"
  fi
  sox -t raw -r "$RATE" -e floating-point -b 32 -c 2 "$raw" "$D/$dev.wav" || fail "sox"
  rm -f "$raw"
  "$VERIFY" --ref "$D/fixture.wav" --capture "$D/$dev.wav" --period "$PERIOD" --tolerance 0 ||
    fail "what '$dev' received does not hold the fixture bit-exactly"
  grep -v "^ALSA lib" "$log" | grep -E "started:|audio thread:" || true
}
play stemd_tap "$D/tap.raw"
play default "$D/default.raw"
[ "$rt_ok" = 1 ] || echo "$NAME: note: real-time scheduling is not allowed here; checked the fallback line"
echo "$NAME: PASS"
