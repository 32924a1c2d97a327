#!/usr/bin/env bash
# jack_probe_helper.sh STEMD POSITION_SIGNAL_PY STEMCTL: follow-ups to outside pass 26, M1. The
# helper that asks the audio server before stemd opens its device (`stemd --internal-state-io
# audio-probe`, src/app/device_probe.hpp):
#   1. its JACK client says what it is: "stemd-probe" (jack_evmon sees it register), never a
#      second "stemd" that the server renames "stemd-01" during a stall (before: it did);
#   2. against a frozen server its life is bounded: killed after 10 s and reaped (no zombie), a
#      fresh one asks again (before: the first one waited for as long as the server was frozen);
#   3. it never outlives stemd: a SIGKILL of stemd (the service manager's after its stop timeout,
#      a crash) ends the helper too (before: it stayed, stuck in jack_client_open);
#   and once the server runs again it has no client of a killed helper left, and stemd plays.
# No wall-clock performance is asserted: the waits are bounds.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
STEMD=$1
POS=$2
STEMCTL=$3
TEST_NAME=jack_probe_helper
# shellcheck source-path=SCRIPTDIR source=jack_device_common.sh
source "$(dirname "$0")/jack_device_common.sh"
for t in jack_evmon jack_lsp stdbuf; do
  command -v "$t" >/dev/null 2>&1 || { echo "$TEST_NAME: SKIP ($t not installed)"; exit 77; }
done
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
export RUNTIME_DIRECTORY="$D/run"
mkdir -p "$RUNTIME_DIRECTORY"

# The pid of stemd's audio-probe helper, or nothing.
helper_of() {
  local p
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "audio-probe" && { echo "$p"; return; }
  done
}
gone() { [ ! -e "/proc/$1" ]; }  # neither running nor a zombie (a zombie keeps its /proc entry)
# Dead: gone, or a zombie of whoever adopted it once stemd was gone (reaped by them, not stemd).
dead() { gone "$1" || ps -o stat= -p "$1" 2>/dev/null | grep -q "^Z"; }

stdbuf -oL jack_evmon >"$D/evmon.log" 2>&1 &
testbed_track_pid $!
sleep 0.5

# ---- 1. the helper's JACK client name, at start and during a stall ----
device_stemd --log-level debug
testbed_wait_for 10 grep -q "voice .* started" "$D/stemd.log" || fail "stemd did not start playing"
sleep 1
for _ in 1 2; do
  freeze
  sleep 1.6 # the stall's helper starts 1 s into it and waits on the frozen server
  thaw
  testbed_wait_for 10 sh -c "'$STEMCTL' -p $PORT -t 1 status 2>/dev/null | grep -Eiq 'device[ :]+running'" ||
    fail "run 1: stemd did not play on after a 1.6-s stall"
  sleep 1.5
done
clients=$(grep -o "Client [^ ]* registered" "$D/evmon.log" | sort | uniq -c | tr '\n' ';')
echo "$TEST_NAME: run 1: JACK clients registered: $clients"
grep -q "Client stemd-probe registered" "$D/evmon.log" ||
  fail "run 1: no JACK client 'stemd-probe' registered (the helper's): $clients"
! grep -q "Client stemd-0[0-9] registered" "$D/evmon.log" ||
  fail "run 1: a second 'stemd' client was renamed by the server (the helper's during the stall): $clients"
grep -q "Client stemd registered" "$D/evmon.log" || fail "run 1: stemd's own client 'stemd' did not register: $clients"

# ---- 2. a helper waiting on a frozen server is given up on after 10 s and reaped ----
freeze
P1=""
for _ in $(seq 50); do # the stall's helper starts 1 s into the freeze
  P1=$(helper_of "$STEMD_PID")
  [ -n "$P1" ] && break
  sleep 0.1
done
[ -n "$P1" ] || fail "run 2: no audio-probe helper of stemd 5 s into the freeze"
testbed_wait_for 20 gone "$P1" ||
  fail "run 2: the helper $P1 still exists 20 s into the freeze ($(ps -o stat=,etime=,args= -p "$P1"))"
P2=""
for _ in $(seq 100); do
  P2=$(helper_of "$STEMD_PID")
  [ -n "$P2" ] && [ "$P2" != "$P1" ] && break
  P2=""
  sleep 0.1
done
[ -n "$P2" ] || fail "run 2: no fresh helper asks the frozen server 10 s after the first was given up on"
zombies=$(ps -o pid=,stat= --ppid "$STEMD_PID" | awk '$2 ~ /^Z/' | tr '\n' ' ')
[ -z "$zombies" ] || fail "run 2: zombie children of stemd: $zombies"
echo "$TEST_NAME: run 2: the helper $P1 was given up on and reaped; $P2 asks again"

# ---- 3. SIGKILL of stemd: its helper ends with it ----
kill -KILL "$STEMD_PID"
testbed_wait_pid "$STEMD_PID" 5
if ! testbed_wait_for 3 dead "$P2"; then
  LEFT=$P2
  fail "run 3: the helper $P2 outlived stemd by 3 s ($(ps -o stat=,ppid=,args= -p "$P2"))"
fi
thaw
echo "$TEST_NAME: run 3: stemd SIGKILLed during the freeze: its helper ended with it"

# ---- the server runs again: no killed helper's client is left, and stemd plays ----
sleep 1
lsp=$(jack_lsp 2>&1)
! grep -q "stemd" <<<"$lsp" || fail "after the freeze: JACK still has ports of stemd or its helpers: $lsp"
mv "$D/stemd.log" "$D/stemd.1.log"
device_stemd
testbed_wait_for 15 sh -c "'$STEMCTL' -p $PORT -t 1 status 2>/dev/null | grep -Eq 'voices +1 playing\$'" ||
  fail "after the freeze: a new stemd does not play"
kill -TERM "$STEMD_PID"
rc=0
testbed_wait_pid "$STEMD_PID" 5 || rc=$?
[ "$rc" -eq 0 ] || fail "stemd exited $rc after SIGTERM (124: still running after 5 s)"
echo "$TEST_NAME: PASS"
