#!/usr/bin/env bash
# alsa_rt_priority.sh STEMD — new-user pass 23, MEDIUM 4: on PortAudio's ALSA host API (the Pi
# Lite path) the callback thread ran SCHED_FIFO 1, PortAudio's choice, and the loader SCHED_FIFO 1
# too (--loader-priority's default), while the log said the loader was "below the audio thread's";
# two SCHED_FIFO threads of one priority do not preempt each other. Now stemd raises the callback
# thread to SCHED_FIFO 70 from its main thread, or, where it may not, moves the loader below it.
# Played into an ALSA `file` PCM over `null` in a temporary ~/.asoundrc (as alsa_file_tap.sh does:
# no sound card), the threads' policies are read from /proc/PID/task/*/stat while it runs:
#   1. real time allowed (root, or an rtprio limit ≥ 70): one thread at SCHED_FIFO 70 (the audio
#      thread), above every other; the loader at SCHED_FIFO 1;
#   2. an rtprio limit of 1 and no CAP_SYS_NICE (setpriv): the audio thread stays at SCHED_FIFO 1
#      and the loader goes to normal scheduling — no other real-time thread — and the log says so;
#   3. an rtprio limit of 50: the audio thread raised to 50, the loader at 1 below it.
# 2 and 3 run where the rtprio hard limit is ≥ 50 (root without CAP_SYS_RESOURCE cannot raise a
# hard limit of 0): else only 1, and the unit tests RtPriority.* and Loader.FollowsTheCap… cover them.
# Exit 0 pass, 1 fail, 77 skip (no real-time scheduling here, or ALSA's file plugin missing).
set -uo pipefail
STEMD=$1
NAME=alsa_rt_priority
chrt -f 1 true 2>/dev/null || { echo "$NAME: SKIP (real-time scheduling not permitted here)"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-alsa-rt.XXXXXX")
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
# Paced at real time by alsa_pace.py (see alsa_file_tap.sh): over the bare `null` slave the
# SCHED_FIFO 70 callback thread spun a whole core for the test's three runs.
PACE="$(cd "$(dirname "$0")" && pwd)/alsa_pace.py"
cat >"$D/home/.asoundrc" <<ASOUNDRC
pcm.stemd_tap {
  type file
  slave.pcm "null"
  file "|python3 $PACE /dev/null $((48000 * 2 * 4))"
  format "raw"
}
ASOUNDRC
export HOME="$D/home"
unset LD_LIBRARY_PATH JACK_DEFAULT_SERVER

# Each thread of PID: "TID POLICY PRIORITY" (stat fields 41 and 40, after the comm in parentheses).
threads() {
  local t
  for t in /proc/"$1"/task/*/stat; do
    sed -E 's/^([0-9]+) \(.*\) /\1 /' "$t" 2>/dev/null | awk '{print $1, $40, $39}'
  done
}

# run TAG PREFIX…: stemd on the file PCM under PREFIX (a limit, dropped capabilities), until its
# "audio thread:" line; then the threads are read into $D/TAG.threads and stemd is stopped.
run() {
  local tag=$1
  shift
  local log="$D/$tag.log"
  "$@" "$STEMD" --config none --backend portaudio --device stemd_tap --buffer-size 1024 --osc-port 0 \
    --log-level info >"$log" 2>&1 &
  STEMD_PID=$!
  local deadline=$((SECONDS + 20))
  until grep -q "audio thread:" "$log"; do
    kill -0 "$STEMD_PID" 2>/dev/null || {
      grep -q "cannot open\|Unknown PCM\|No such device" "$log" && {
        echo "$NAME: SKIP (ALSA's file PCM does not open here)"
        exit 77
      }
      fail "stemd ($tag) exited early"
    }
    [ "$SECONDS" -lt "$deadline" ] || fail "no 'audio thread:' line within 20 s ($tag)"
    sleep 0.05
  done
  sleep 0.3  # the loader applies its cap at its next pass (woken at once)
  threads "$STEMD_PID" >"$D/$tag.threads"
  kill -TERM "$STEMD_PID"
  local rc=0
  wait "$STEMD_PID" || rc=$?
  STEMD_PID=""
  [ "$rc" -eq 0 ] || fail "stemd ($tag) exited $rc after SIGTERM"
  grep -q "started: portaudio device .*'stemd_tap' (ALSA)" "$log" || fail "stemd ($tag) did not open the ALSA PCM"
  grep -v "^ALSA lib" "$log" | grep -E "loader thread:|audio thread:"
}
# Threads of a policy (1 SCHED_FIFO, 0 SCHED_OTHER) at a priority, in TAG's list.
count() { awk -v p="$2" -v r="$3" '$2 == p && $3 == r' "$D/$1.threads" | wc -l; }
realtime() { awk '$2 == 1 || $2 == 2' "$D/$1.threads" | wc -l; }

# 1. Real time allowed: the audio thread at 70 (or at a lower rtprio limit of this user), the loader at 1.
want=70
soft=$(ulimit -Sr)
[ "$(id -u)" != 0 ] && [ "$soft" != unlimited ] && [ "$soft" -lt 70 ] && want=$soft
[ "$want" -ge 2 ] || { echo "$NAME: SKIP (the rtprio limit $soft leaves no room above the loader's 1)"; exit 77; }
run full
[ "$(count full 1 "$want")" = 1 ] || fail "no thread at SCHED_FIFO $want: $(tr '\n' ';' <"$D/full.threads")"
[ "$(count full 1 1)" = 1 ] || fail "the loader is not at SCHED_FIFO 1: $(tr '\n' ';' <"$D/full.threads")"
[ "$(realtime full)" = 2 ] || fail "other real-time threads: $(tr '\n' ';' <"$D/full.threads")"
grep -q "audio thread: SCHED_FIFO priority $want (raised from 1, PortAudio's ALSA host API's choice); the loader thread's SCHED_FIFO 1 is below it" \
  "$D/full.log" || fail "the 'audio thread:' line does not say it was raised above the loader"

# 2 and 3 need a process without CAP_SYS_NICE (root's capability outranks the rtprio limit).
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null 2>&1 || { echo "$NAME: PASS (1 of 3: setpriv missing to drop CAP_SYS_NICE)"; exit 0; }
  DROP=(setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice)
else
  DROP=()
fi
hard=$(ulimit -Hr)
if [ "$hard" != unlimited ] && [ "$hard" -lt 50 ]; then
  echo "$NAME: PASS (1 of 3: the rtprio hard limit $hard is below 50)"
  exit 0
fi
# 2. Not permitted above 1: the loader goes to normal scheduling below the audio thread.
run limit1 prlimit --rtprio=1 "${DROP[@]}"
[ "$(count limit1 1 1)" = 1 ] || fail "the audio thread is not at SCHED_FIFO 1: $(tr '\n' ';' <"$D/limit1.threads")"
[ "$(realtime limit1)" = 1 ] || fail "the loader is real-time beside the audio thread at 1: $(tr '\n' ';' <"$D/limit1.threads")"
grep -q "audio thread: SCHED_FIFO priority 1 (PortAudio's ALSA host API's choice; raising it to 70 was not permitted: SCHED_FIFO 70: Operation not permitted.*the loader thread goes from SCHED_FIFO 1 to normal scheduling, below it" \
  "$D/limit1.log" || fail "the 'audio thread:' line does not say the raise was refused and the loader went below"
grep -q "is below it" "$D/limit1.log" && fail "the log claims the loader is below while both were at 1"
# 3. An rtprio limit of 50: raised to the limit, the loader at 1 below it.
run limit50 prlimit --rtprio=50 "${DROP[@]}"
[ "$(count limit50 1 50)" = 1 ] || fail "the audio thread is not at SCHED_FIFO 50: $(tr '\n' ';' <"$D/limit50.threads")"
[ "$(count limit50 1 1)" = 1 ] || fail "the loader is not at SCHED_FIFO 1: $(tr '\n' ';' <"$D/limit50.threads")"
echo "$NAME: PASS"
