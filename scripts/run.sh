#!/usr/bin/env bash
# Builds stemd if needed (release preset) and runs it with its defaults plus any arguments:
#   scripts/run.sh                        # PortAudio's default device (null backend if none)
#   scripts/run.sh --play song.wav --loop
#   scripts/run.sh --list-devices
#   scripts/run.sh --jack-dummy --play song.wav
#       no sound card? starts a private JACK dummy server (real-time paced, as a sound card
#       would be) and plays into it; stopped with the daemon.
set -euo pipefail
# The daemon runs in the caller's directory: relative paths (--play song.wav, --config) are the
# caller's. Only the build runs in the source tree.
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/release/src/stemd
if [ ! -x "$bin" ] || [ -n "$(cd "$root" && find src include CMakeLists.txt -newer "$bin" -print -quit 2>/dev/null)" ]; then
  (
    cd "$root"
    [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null
    cmake --build --preset release -j"$(nproc)" --target stemd >&2
  )
fi

if [ "${1:-}" = "--jack-dummy" ]; then
  shift
  period=1024
  for ((i = 1; i <= $#; i++)); do
    case "${!i}" in
      --buffer-size|-b) j=$((i + 1)); period="${!j}" ;;
      --buffer-size=*) period="${!i#--buffer-size=}" ;;
    esac
  done
  # shellcheck source=scripts/testbed.sh
  # shellcheck source-path=SCRIPTDIR source=testbed.sh
  . "$root/scripts/testbed.sh"
  testbed_start "$period" 48000
  echo "run.sh: private JACK dummy server '$JACK_DEFAULT_SERVER' at $period frames" >&2
  "$bin" --backend portaudio --device system "$@" &
  pid=$!
  testbed_track_pid "$pid"
  trap 'kill -TERM "$pid" 2>/dev/null' INT TERM
  status=0
  wait "$pid" || status=$?
  # A signal to this script interrupts `wait`; the daemon is fading out: take its own status.
  if [ "$status" -gt 128 ]; then status=0; wait "$pid" || status=$?; fi
  exit "$status"
fi
exec "$bin" "$@"
