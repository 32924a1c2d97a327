#!/usr/bin/env bash
# jack_shutdown.sh STEMD [ROUNDS=3]: the JACK server dies at the moment stemd is told to stop
# (a system shutdown stops both). PortAudio's JACK host API then waits forever in
# Pa_StopStream; stemd must still save its state and exit 0 within --shutdown-fade-ms + 2 s of
# SIGTERM (issue 10, item 12). Each round: stemd plays a loop with --state-file on a private
# dummy jackd; jackd gets SIGKILL and stemd SIGTERM back to back; stemd must be gone within 5 s
# (fade 50 ms + 2 s + margin) with status 0 and a complete state file. Prints each round's
# time to exit. Then ROUNDS more with the server killed 30, 100 and 150 ms after SIGTERM, in
# the middle of the fade or of Pa_StopStream/Pa_CloseStream (PortAudio then hangs — the
# shutdown deadline ends it — or asserts: the abort becomes the normal exit). Exit 0 pass,
# 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
ROUNDS=${2:-3}
for t in jackd jack_wait sox; do
  command -v "$t" >/dev/null 2>&1 || { echo "jack_shutdown: SKIP ($t not installed)"; exit 77; }
done
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$(dirname "$0")/../../scripts/testbed.sh"
fail() { echo "jack_shutdown: FAIL: $*" >&2; exit 1; }
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
sox -n -r 48000 -b 16 -c 2 "$D/tone.wav" synth 3 sine 440 vol 0.3 2>/dev/null || fail "sox"
times=()
delays=()
for _ in $(seq 1 "$ROUNDS"); do delays+=(0); done
late=(0.03 0.1 0.15)
for i in $(seq 0 $((ROUNDS - 1))); do delays+=("${late[$((i % 3))]}"); done
round=0
for delay in "${delays[@]}"; do
  round=$((round + 1))
  [ "$round" -eq 1 ] || testbed_restart_jackd || fail "round $round: jackd did not come back"
  state="$D/state.$round"
  log="$D/stemd.$round.log"
  "$STEMD" --backend portaudio --device system --buffer-size 1024 --osc-port 0 --shutdown-fade-ms 50 \
    --state-file "$state" --play "$D/tone.wav" --loop >"$log" 2>&1 &
  pid=$!
  testbed_track_pid "$pid"
  testbed_wait_for 10 grep -qs " started: " "$log" || fail "round $round: stemd did not start: $(cat "$log")"
  sleep 0.5
  kill -0 "$pid" 2>/dev/null || fail "round $round: stemd died early: $(cat "$log")"
  if [ "$delay" = 0 ]; then  # both at once: the server dies, the daemon is told to stop
    kill -KILL "$TESTBED_JACKD_PID"
    kill -TERM "$pid"
    t0=$(date +%s%N)
  else  # the server dies while stemd fades out or stops the stream
    kill -TERM "$pid"
    t0=$(date +%s%N)
    sleep "$delay"
  fi
  testbed_kill_jackd  # (kills the server if still up,) reaps it, removes what it left in /dev/shm
  rc=0; testbed_wait_pid "$pid" 10 || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  times+=("$ms")
  grep -v "ALSA\|cannot find card" "$log" | grep -i "shutdown\|stopped\|state saved\|abort" | tail -4
  what="server killed $([ "$delay" = 0 ] && echo "at once" || echo "${delay} s after SIGTERM")"
  [ "$rc" -ne 124 ] || fail "round $round ($what): stemd still running 10 s after SIGTERM"
  [ "$rc" -eq 0 ] || fail "round $round ($what): stemd exited $rc after SIGTERM, expected 0: $(tail -5 "$log")"
  [ "$ms" -le 5000 ] || fail "round $round ($what): stemd took $ms ms to exit after SIGTERM (bound: 5000 ms)"
  if ! grep -q "^stemd-state 1$" "$state" || ! grep -q "^end$" "$state"; then
    fail "round $round: no complete state file"
  fi
  grep -q "^/stemd/load 1 " "$state" || fail "round $round: the state file lacks the loaded file: $(cat "$state")"
  echo "jack_shutdown: round $round ($what): exit 0 in $ms ms after SIGTERM, state file written"
done
echo "jack_shutdown: PASS (ms to exit after SIGTERM: server killed at once ${times[*]:0:$ROUNDS};" \
  "killed during the shutdown ${times[*]:$ROUNDS})"
