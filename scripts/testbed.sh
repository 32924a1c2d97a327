# shellcheck shell=bash
# testbed.sh: the headless real-time test bed, as a bash library for stemd's tests.
#
# Source it, then:
#   testbed_start [PERIOD=1024] [RATE=48000]  private jackd (dummy driver; real-time with
#                                             TESTBED_JACKD_RT=1 where allowed, then
#                                             TESTBED_JACKD_REALTIME=1) named
#                                             ${TESTBED_SERVER_PREFIX:-stemd-test}-$$-$RANDOM, exported as
#                                             JACK_DEFAULT_SERVER; temp dir $TESTBED_DIR
#   testbed_add_server VAR                    one more private jackd (same period and rate, after
#                                             testbed_start), for tests that need two devices
#                                             (tests/integration/jack_sync.sh): its name goes
#                                             into VAR; run a client on it with
#                                             JACK_DEFAULT_SERVER=$VAR. Stopped by testbed_stop.
#   capture_start OUT.wav                     jack_capture of what reaches
#                                             system:playback_1/2 (via the dummy driver's
#                                             monitor ports), 32-bit float stereo;
#                                             returns once recording
#   capture_stop                              SIGINT: jack_capture finishes the file
#   testbed_xruns                             xruns jackd logged so far
#   capture_xruns                             xruns jack_capture saw (after capture_stop)
#   testbed_track_pid PID                     kill PID too on cleanup (e.g. the daemon)
#   testbed_wait_pid PID SECONDS              wait for a child with a timeout (124)
#   testbed_stop                              stop everything, keep nothing running
#   pipewire_start [PERIOD=1024] [RATE=48000] a private headless PipeWire (no D-Bus, no session
#                                             manager) with one null sink, stemd-test-sink
#                                             (ports playback_FL/FR, monitor_FL/FR), F32 at RATE,
#                                             quantum PERIOD; XDG_RUNTIME_DIR is exported to a
#                                             directory of $TESTBED_DIR, so its clients find it
#                                             and nobody else's PipeWire is touched. Returns 77
#                                             when pipewire is not installed.
#   pipewire_jack_env                         exports LD_LIBRARY_PATH to pipewire's libjack
#                                             (what pw-jack does): JACK clients started
#                                             afterwards, capture_start too, use PipeWire
#   pipewire_link_stream NODE                 with no session manager, sets NODE's ports up
#                                             (PortConfig dsp) and links its output_FL/FR to
#                                             the sink (what WirePlumber would do)
#   pipewire_stop                             stop it (testbed_stop does too)
# capture_start records TESTBED_CAPTURE_PORTS when set ("stemd-test-sink:monitor_FL
# stemd-test-sink:monitor_FR" under PipeWire), else system:monitor_1/2.
# An EXIT trap (plus INT/TERM) runs testbed_cleanup, so a failing test never leaves jackd
# or jack_capture behind; $TESTBED_DIR is removed unless TESTBED_KEEP=1. Processes are
# only ever killed by the PIDs recorded here, never by name: parallel tests and the
# developer's own JACK session are left alone. See /work/shared/testbed.md for the facts
# this relies on (dummy driver pacing, jack_wait, bit-exact float capture).

TESTBED_DIR="${TESTBED_DIR:-}"
TESTBED_DIR_OWNED=0
TESTBED_JACKD_PID=""
TESTBED_PIPEWIRE_PID=""
TESTBED_CAPTURE_PID=""
TESTBED_CAPTURE_FILE=""
TESTBED_PIDS=()
TESTBED_EXTRA_JACKD_PIDS=()   # testbed_add_server's servers, and their names
TESTBED_EXTRA_SERVERS=()
TESTBED_PERIOD=""
TESTBED_RATE=""
TESTBED_JACKD_RTFLAGS=(--no-realtime)

_testbed_log() { echo "testbed: $*" >&2; }

# Poll until "$@" succeeds or SECONDS pass; 20 ms steps keep start-up waits short.
testbed_wait_for() {
  local seconds=$1; shift
  local deadline=$(( $(date +%s%N) + seconds * 1000000000 ))
  until "$@"; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# Wait for a background child of this shell, at most SECONDS; its exit status, or 124 if
# it is still running (bash's `wait` alone cannot time out).
testbed_wait_pid() {
  local pid=$1 seconds=$2
  testbed_wait_for "$seconds" _testbed_gone "$pid" || return 124
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}
_testbed_gone() { ! kill -0 "$1" 2>/dev/null; }

testbed_track_pid() { TESTBED_PIDS+=("$1"); }

# Stop one recorded process: SIG (default TERM), then KILL if it lingers.
_testbed_kill() {
  local pid=$1 sig=${2:-TERM} seconds=${3:-5}
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -s "$sig" "$pid" 2>/dev/null
  local rc=0
  testbed_wait_pid "$pid" "$seconds" || rc=$?
  if [ "$rc" -eq 124 ]; then
    _testbed_log "pid $pid ignored SIG$sig for ${seconds}s, killing"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  return 0
}

_testbed_jack_running() { [ "$(timeout 2 jack_wait -c 2>/dev/null)" = running ]; }
_testbed_jackd_alive_and_running() {
  kill -0 "$TESTBED_JACKD_PID" 2>/dev/null || return 2
  _testbed_jack_running
}

testbed_start() {
  local period=${1:-1024} rate=${2:-48000}
  if ! command -v jackd >/dev/null 2>&1; then
    _testbed_log "jackd is not installed"; return 77
  fi
  if [ -n "$TESTBED_JACKD_PID" ]; then
    _testbed_log "already started"; return 1
  fi
  if [ -z "$TESTBED_DIR" ]; then
    TESTBED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stemd-testbed.XXXXXX")
    TESTBED_DIR_OWNED=1   # only a directory made here is removed on cleanup
  fi
  export TESTBED_DIR
  trap testbed_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # A private server: parallel test runs (and a developer's own JACK) never collide, and
  # clients never auto-start a default server behind the test's back.
  # TESTBED_SERVER_PREFIX: another first part of its name (an engineer's own, on a shared machine).
  export JACK_DEFAULT_SERVER="${TESTBED_SERVER_PREFIX:-stemd-test}-$$-$RANDOM"
  export JACK_NO_START_SERVER=1
  export TESTBED_PERIOD=$period TESTBED_RATE=$rate   # for tests that need them
  # A simple command, so $! is jackd itself and not a subshell. No -v: verbose jackd
  # logs ~6 MB/s of notifications and jack_wait then never reported "running" here.
  # -m gives the dummy driver monitor ports (system:monitor_N, outputs carrying exactly
  # what reached system:playback_N): the capture taps them, see capture_start.
  # TESTBED_JACKD_RT=1: a real-time server (-R -P 70) where this process may use SCHED_FIFO,
  # so its clients' process threads run SCHED_FIFO as on a tuned machine; else --no-realtime.
  TESTBED_JACKD_RTFLAGS=(--no-realtime)
  if [ "${TESTBED_JACKD_RT:-0}" = 1 ] && chrt -f 1 true 2>/dev/null; then TESTBED_JACKD_RTFLAGS=(-R -P 70); fi
  TESTBED_JACKD_REALTIME=0
  [ "${TESTBED_JACKD_RTFLAGS[0]}" = -R ] && TESTBED_JACKD_REALTIME=1
  export TESTBED_JACKD_REALTIME
  jackd "${TESTBED_JACKD_RTFLAGS[@]}" -n "$JACK_DEFAULT_SERVER" -d dummy -m -r "$rate" -p "$period" \
    >"$TESTBED_DIR/jackd.log" 2>&1 &
  TESTBED_JACKD_PID=$!
  local deadline=$(( $(date +%s%N) + 10000000000 )) rc
  while :; do
    _testbed_jackd_alive_and_running && break
    rc=$?
    if [ "$rc" -eq 2 ]; then
      _testbed_log "jackd exited during start-up; its log:"; cat "$TESTBED_DIR/jackd.log" >&2
      wait "$TESTBED_JACKD_PID" 2>/dev/null; TESTBED_JACKD_PID=""
      return 1
    fi
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      _testbed_log "jackd not running after 10 s; its log:"; cat "$TESTBED_DIR/jackd.log" >&2
      _testbed_kill "$TESTBED_JACKD_PID"; TESTBED_JACKD_PID=""
      return 1
    fi
    sleep 0.02
  done
  _testbed_log "jackd $JACK_DEFAULT_SERVER up (pid $TESTBED_JACKD_PID, -p $period -r $rate, dir $TESTBED_DIR)"
}

# One more private server, like testbed_start's (dummy driver, same period and rate, its log
# jackd-N.log), named after it. Its name is stored in the variable named by $1.
testbed_add_server() {
  local var=$1 n name pid
  [ -n "$TESTBED_JACKD_PID" ] || { _testbed_log "testbed_add_server before testbed_start"; return 1; }
  n=$(( ${#TESTBED_EXTRA_SERVERS[@]} + 2 ))
  name="$JACK_DEFAULT_SERVER-$n"
  jackd "${TESTBED_JACKD_RTFLAGS[@]}" -n "$name" -d dummy -m -r "$TESTBED_RATE" -p "$TESTBED_PERIOD" \
    >"$TESTBED_DIR/jackd-$n.log" 2>&1 &
  pid=$!
  TESTBED_EXTRA_JACKD_PIDS+=("$pid")
  TESTBED_EXTRA_SERVERS+=("$name")
  if ! testbed_wait_for 10 sh -c "kill -0 $pid 2>/dev/null && [ \"\$(JACK_DEFAULT_SERVER=$name timeout 2 jack_wait -c 2>/dev/null)\" = running ]"; then
    _testbed_log "second jackd $name not running after 10 s; its log:"; cat "$TESTBED_DIR/jackd-$n.log" >&2
    return 1
  fi
  printf -v "$var" '%s' "$name"
  _testbed_log "jackd $name up (pid $pid, -p $TESTBED_PERIOD -r $TESTBED_RATE)"
}

# Xruns jackd logged so far. The dummy driver logs each as
# "JackTimedDriver::Process XRun = N usec" (without -v); the engine logs late clients
# with "XRun" too. Counted by line: a count to compare, not an exact event total.
testbed_xruns() {
  if [ -z "$TESTBED_DIR" ] || [ ! -f "$TESTBED_DIR/jackd.log" ]; then echo 0; return; fi
  grep -c 'XRun' "$TESTBED_DIR/jackd.log" || true
}

capture_start() {
  local out=$1
  [ -n "$TESTBED_JACKD_PID$TESTBED_PIPEWIRE_PID" ] || { _testbed_log "capture_start before testbed_start"; return 1; }
  local ports p port_args=()
  read -r -a ports <<<"${TESTBED_CAPTURE_PORTS:-system:monitor_1 system:monitor_2}"
  for p in "${ports[@]}"; do port_args+=(--port "$p"); done
  [ -z "$TESTBED_CAPTURE_PID" ] || { _testbed_log "a capture is already running"; return 1; }
  rm -f "$out" "$TESTBED_DIR/capture.timing" "$TESTBED_DIR/capture.close"
  # Hooks are jack_capture's only signal that it is recording (timing: first frame
  # received) and its own xrun count (close: FILE XRUNS IO_ERRORS). It runs them
  # fire-and-forget, with a full path.
  # shellcheck disable=SC2016  # $@, $2, $3 belong to the hook scripts
  printf '#!/bin/sh\necho "$@" > "%s/capture.timing"\n' "$TESTBED_DIR" >"$TESTBED_DIR/hook_timing.sh"
  # shellcheck disable=SC2016
  printf '#!/bin/sh\necho "$2 $3" > "%s/capture.close"\n' "$TESTBED_DIR" >"$TESTBED_DIR/hook_close.sh"
  chmod +x "$TESTBED_DIR/hook_timing.sh" "$TESTBED_DIR/hook_close.sh"
  # --daemon = no stdin, no console output. Default sample format is 32-bit float;
  # -f wav with 2 ports gives a plain stereo WAV. It records the monitor ports, not
  # system:playback_1/2: given input ports, jack_capture follows whatever connects to
  # them, but only after noticing the connection, and the first period the player sent
  # was measured lost that way; the monitor ports carry every frame from the start.
  jack_capture --daemon -f wav -c 2 \
    "${port_args[@]}" \
    -Ht "$TESTBED_DIR/hook_timing.sh" -Hc "$TESTBED_DIR/hook_close.sh" \
    "$out" >"$TESTBED_DIR/jack_capture.log" 2>&1 &
  TESTBED_CAPTURE_PID=$!
  TESTBED_CAPTURE_FILE=$out
  if ! testbed_wait_for 5 test -s "$TESTBED_DIR/capture.timing"; then
    _testbed_log "jack_capture did not start recording within 5 s"
    cat "$TESTBED_DIR/jack_capture.log" >&2
    _testbed_kill "$TESTBED_CAPTURE_PID" INT; TESTBED_CAPTURE_PID=""
    return 1
  fi
}

# SIGINT (or SIGTERM: both measured to work) makes jack_capture drain its buffer, patch
# the WAV header and exit 0 within ~70 ms; SIGKILL would leave a header claiming 0 frames.
capture_stop() {
  local pid=$TESTBED_CAPTURE_PID rc=0
  [ -n "$pid" ] || return 0
  TESTBED_CAPTURE_PID=""
  kill -INT "$pid" 2>/dev/null
  testbed_wait_pid "$pid" 10 || rc=$?
  if [ "$rc" -eq 124 ]; then
    _testbed_log "jack_capture ignored SIGINT for 10 s"; kill -KILL "$pid"; wait "$pid" 2>/dev/null
    return 1
  fi
  if [ "$rc" -ne 0 ]; then
    _testbed_log "jack_capture exited $rc"; cat "$TESTBED_DIR/jack_capture.log" >&2; return 1
  fi
  # The close hook runs asynchronously after the file is closed.
  testbed_wait_for 2 test -s "$TESTBED_DIR/capture.close" || true
  if [ ! -s "$TESTBED_CAPTURE_FILE" ] || [ "$(stat -c %s "$TESTBED_CAPTURE_FILE")" -le 44 ]; then
    _testbed_log "capture $TESTBED_CAPTURE_FILE is empty"; return 1
  fi
}

# Xruns jack_capture itself counted during the last capture ("" if unknown).
capture_xruns() {
  [ -s "$TESTBED_DIR/capture.close" ] && cut -d' ' -f1 "$TESTBED_DIR/capture.close"
}

testbed_stop() {
  capture_stop || true
  local pid
  for pid in "${TESTBED_PIDS[@]}"; do _testbed_kill "$pid" TERM 5; done
  TESTBED_PIDS=()
  pipewire_stop
  local i
  for i in "${!TESTBED_EXTRA_JACKD_PIDS[@]}"; do
    _testbed_kill "${TESTBED_EXTRA_JACKD_PIDS[$i]}" TERM 8
    rm -f /dev/shm/jack_sem.*_"${TESTBED_EXTRA_SERVERS[$i]}"_* /dev/shm/jack_"${TESTBED_EXTRA_SERVERS[$i]}"_* 2>/dev/null
  done
  TESTBED_EXTRA_JACKD_PIDS=()
  TESTBED_EXTRA_SERVERS=()
  # A SIGKILLed server stays in JACK's registry (8 entries, reclaimed only under the same
  # name): run it once more and stop it cleanly, or the machine runs out of servers.
  if [ -z "$TESTBED_JACKD_PID" ] && [ "${TESTBED_JACKD_KILLED:-0}" = 1 ]; then testbed_restart_jackd || true; fi
  if [ -n "$TESTBED_JACKD_PID" ]; then
    # 8 s: on SIGTERM jackd waits up to 5 s for each client that died without closing
    # (measured after a SIGKILLed daemon); only a jackd killed with SIGKILL would leave
    # its semaphores and sockets behind in /dev/shm.
    _testbed_kill "$TESTBED_JACKD_PID" TERM 8
    TESTBED_JACKD_PID=""
    # The server name is unique to this run, so whatever carries it is ours to remove.
    rm -f /dev/shm/jack_sem.*_"$JACK_DEFAULT_SERVER"_* /dev/shm/jack_"$JACK_DEFAULT_SERVER"_* 2>/dev/null
  fi
}

# The device disappears: SIGKILL the server, as a USB interface pulled out would (capture,
# if running, is stopped first: it dies with the server otherwise). Same name, period and
# rate come back with testbed_restart_jackd.
testbed_kill_jackd() {
  capture_stop || true
  [ -n "$TESTBED_JACKD_PID" ] || return 0
  kill -KILL "$TESTBED_JACKD_PID" 2>/dev/null
  wait "$TESTBED_JACKD_PID" 2>/dev/null
  TESTBED_JACKD_PID=""
  TESTBED_JACKD_KILLED=1
  rm -f /dev/shm/jack_sem.*_"$JACK_DEFAULT_SERVER"_* /dev/shm/jack_"$JACK_DEFAULT_SERVER"_* 2>/dev/null
}

# The same server again (after testbed_kill_jackd): clients started with the old
# environment find it under the same name. Its log is appended to jackd.log.
testbed_restart_jackd() {
  [ -z "$TESTBED_JACKD_PID" ] || { _testbed_log "jackd still running"; return 1; }
  jackd "${TESTBED_JACKD_RTFLAGS[@]}" -n "$JACK_DEFAULT_SERVER" -d dummy -m -r "$TESTBED_RATE" -p "$TESTBED_PERIOD" \
    >>"$TESTBED_DIR/jackd.log" 2>&1 &
  TESTBED_JACKD_PID=$!
  TESTBED_JACKD_KILLED=0
  testbed_wait_for 10 _testbed_jackd_alive_and_running || { _testbed_log "jackd did not come back"; return 1; }
}

testbed_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  testbed_stop
  if [ "$TESTBED_DIR_OWNED" = 1 ] && [ -d "$TESTBED_DIR" ]; then
    if [ "${TESTBED_KEEP:-0}" = 1 ]; then
      _testbed_log "kept $TESTBED_DIR"
    else
      rm -rf "$TESTBED_DIR"
    fi
  fi
  return "$rc"
}

# ---- PipeWire, headless -------------------------------------------------------------------
# No D-Bus, no WirePlumber: the modules a client needs (native protocol, access, client-node,
# adapter, metadata, link factory), a dummy driver and one null sink whose ports the config
# sets up itself (adapter.auto-port-config: the session manager's job otherwise). The quantum
# is pinned to PERIOD and the rate to RATE so nothing is resampled or re-blocked.
_testbed_pipewire_conf() {
  local period=$1 rate=$2
  cat <<EOF
context.properties = {
    core.daemon = true
    core.name = pipewire-0
    support.dbus = false
    default.clock.rate = $rate
    default.clock.allowed-rates = [ $rate ]
    default.clock.quantum = $period
    default.clock.min-quantum = $period
    default.clock.max-quantum = $period
    log.level = 2
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    support.*       = support/libspa-support
}
context.modules = [
    { name = libpipewire-module-rt args = { nice.level = -11 rt.prio = 70 } flags = [ ifexists nofail ] }
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-access args = { } }
    { name = libpipewire-module-metadata }
    { name = libpipewire-module-spa-node-factory }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-client-device }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-link-factory }
]
context.objects = [
    { factory = spa-node-factory
      args = { factory.name = support.node.driver node.name = Dummy-Driver
               node.group = pipewire.dummy priority.driver = 20000 } }
    { factory = adapter
      args = {
          factory.name     = support.null-audio-sink
          node.name        = stemd-test-sink
          media.class      = Audio/Sink
          object.linger    = true
          audio.format     = F32
          audio.rate       = $rate
          audio.channels   = 2
          audio.position   = [ FL FR ]
          monitor.channel-volumes = false
          adapter.auto-port-config = { mode = dsp monitor = true position = preserve }
      } }
]
EOF
}

_testbed_pipewire_sink_up() {
  kill -0 "$TESTBED_PIPEWIRE_PID" 2>/dev/null || return 2
  timeout 2 pw-link -i 2>/dev/null | grep -q '^stemd-test-sink:playback_FR$'
}

pipewire_start() {
  local period=${1:-1024} rate=${2:-48000}
  local t
  for t in pipewire pw-link pw-cli; do
    command -v "$t" >/dev/null 2>&1 || { _testbed_log "$t is not installed"; return 77; }
  done
  [ -z "$TESTBED_PIPEWIRE_PID" ] || { _testbed_log "pipewire already started"; return 1; }
  if [ -z "$TESTBED_DIR" ]; then
    TESTBED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stemd-testbed.XXXXXX")
    TESTBED_DIR_OWNED=1
  fi
  export TESTBED_DIR
  trap testbed_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # A runtime directory of our own: the socket pipewire-0 in it is this test's, and clients
  # (pipewire-alsa, pipewire-jack, pw-link) find it through the same variables.
  mkdir -p "$TESTBED_DIR/pw-run" && chmod 700 "$TESTBED_DIR/pw-run"
  export XDG_RUNTIME_DIR="$TESTBED_DIR/pw-run" PIPEWIRE_RUNTIME_DIR="$TESTBED_DIR/pw-run"
  unset PIPEWIRE_REMOTE DBUS_SESSION_BUS_ADDRESS
  export TESTBED_PERIOD=$period TESTBED_RATE=$rate
  _testbed_pipewire_conf "$period" "$rate" >"$TESTBED_DIR/pipewire.conf"
  pipewire -c "$TESTBED_DIR/pipewire.conf" >>"$TESTBED_DIR/pipewire.log" 2>&1 &
  TESTBED_PIPEWIRE_PID=$!
  local rc=0
  testbed_wait_for 10 _testbed_pipewire_sink_up || rc=$?
  if [ "$rc" -ne 0 ]; then
    _testbed_log "pipewire's sink not up within 10 s; its log:"; cat "$TESTBED_DIR/pipewire.log" >&2
    _testbed_kill "$TESTBED_PIPEWIRE_PID"; TESTBED_PIPEWIRE_PID=""
    return 1
  fi
  _testbed_log "pipewire up (pid $TESTBED_PIPEWIRE_PID, quantum $period, $rate Hz, runtime $XDG_RUNTIME_DIR)"
}

pipewire_jack_env() {
  local arch lib
  arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null)
  for lib in "/usr/lib/$arch/pipewire-0.3/jack" /usr/lib/pipewire-0.3/jack /usr/lib64/pipewire-0.3/jack; do
    if [ -e "$lib/libjack.so.0" ]; then
      export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      return 0
    fi
  done
  _testbed_log "pipewire's libjack (pipewire-jack) is not installed"
  return 77
}

pipewire_link_stream() {
  local node=$1 id
  id=$(timeout 3 pw-cli ls Node 2>/dev/null |
    awk -v n="node.name = \"$node\"" '/^\tid /{id=$2} index($0, n){print id; exit}' | tr -d ,)
  [ -n "$id" ] || { _testbed_log "no PipeWire node named '$node'"; return 1; }
  timeout 3 pw-cli s "$id" PortConfig "{ direction: Output, mode: dsp, format: { mediaType: audio,
    mediaSubtype: raw, format: F32P, rate: $TESTBED_RATE, channels: 2, position: [ FL, FR ] } }" >/dev/null ||
    { _testbed_log "PortConfig on node $id failed"; return 1; }
  testbed_wait_for 3 sh -c "timeout 2 pw-link -o | grep -qx '$node:output_FR'" ||
    { _testbed_log "node '$node' has no output ports"; return 1; }
  timeout 3 pw-link "$node:output_FL" stemd-test-sink:playback_FL &&
    timeout 3 pw-link "$node:output_FR" stemd-test-sink:playback_FR
}

pipewire_stop() {
  [ -n "$TESTBED_PIPEWIRE_PID" ] || return 0
  _testbed_kill "$TESTBED_PIPEWIRE_PID" TERM 5
  TESTBED_PIPEWIRE_PID=""
}

# testbed_position_unbroken POS_PY CAPTURE NAME [SLIPS_ALLOWED [PERIOD]]: CAPTURE holds the
# position signal of tests/tools/position_signal.py, sounding, running on frame by frame for at
# least a second (48000 frames). A break is allowed only if it is one whole PERIOD skipped or
# repeated (what a JACK xrun does to the dummy driver's cycle or to jack_capture, testbed.md) and
# only as many times as SLIPS_ALLOWED (the xruns jackd and jack_capture counted during the capture;
# default 0). Any other break — a wrong frame, a partial period — fails. Prints the scan;
# non-zero (with the reason) otherwise.
testbed_position_unbroken() {
  local pos=$1 cap=$2 name=$3 slips=${4:-0} period=${5:-0} scan
  scan=$(python3 "$pos" scan "$cap") || { echo "$name: could not scan $cap" >&2; return 1; }
  echo "$name: capture: $scan"
  python3 - "$scan" "$slips" "$period" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
allowed, period = int(sys.argv[2]), int(sys.argv[3])
if s["first_sound"] is None: sys.exit("the capture is silent: the --play file did not play")
if s["steady_from"] is None: sys.exit("no steady position run in the capture (not the fixture)")
slips = [b for b in s["breaks"] if period > 0 and b.get("got") is not None
         and abs(b["got"] - b["expected"]) == period]
other = [b for b in s["breaks"] if b not in slips]
if other: sys.exit(f"the voice did not run on unbroken: {other}")
if len(slips) > allowed:
    sys.exit(f"{len(slips)} whole-period slips but only {allowed} xruns counted: {slips}")
if s["run"] < 48000: sys.exit(f"only {s['run']} frames of the fixture in the capture")
print(f"fixture from frame {s['position']}, {s['run']} frames unbroken"
      + (f", {len(slips)} whole-period slip(s) within {allowed} counted xrun(s)" if slips else ""))
PY
}
