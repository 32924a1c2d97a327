#!/usr/bin/env bash
# Builds stemd if needed (release preset) and runs it with its defaults plus any arguments:
#   scripts/run.sh                        # PortAudio's default device (null backend if none)
#   scripts/run.sh --play song.wav --loop
#   scripts/run.sh --list-devices
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/src/stemd
if [ ! -x "$bin" ] || [ -n "$(find src include CMakeLists.txt -newer "$bin" -print -quit 2>/dev/null)" ]; then
  [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null
  cmake --build --preset release -j"$(nproc)" --target stemd >&2
fi
exec "$bin" "$@"
