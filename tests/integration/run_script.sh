#!/usr/bin/env bash
# run_script.sh SRC_DIR: README's developer command, scripts/run.sh, run from another directory
# with a relative path, as a new user types it (`../stemd/scripts/run.sh --play song.wav`): the
# daemon resolves the path against the caller's directory (run.sh used to cd into the source
# tree first: "--play song.wav: /…/stemd/song.wav: No such file or directory").
# Skips (77) when build/release has no up-to-date stemd: run.sh would build one.
set -uo pipefail
SRC=$(cd "$1" && pwd)
BIN=$SRC/build/release/src/stemd
[ -x "$BIN" ] || { echo "run_script: SKIP (no $BIN)"; exit 77; }
if [ -n "$(cd "$SRC" && find src include CMakeLists.txt -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  echo "run_script: SKIP ($BIN is older than the sources: run.sh would rebuild it)"
  exit 77
fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
python3 - "$D/song.wav" <<'PY' || exit 1
import sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
w.writeframes(b"\0\1\0\1" * 4800); w.close()
PY
cd "$D" || exit 1
OUT=$(STEMD_NO_CONFIG_SEARCH=1 timeout 20 "$SRC/scripts/run.sh" --backend null --no-osc --duration 0.2 --play song.wav 2>&1)
RC=$?
if [ "$RC" -ne 0 ]; then
  echo "$OUT" | tail -5
  echo "run_script: FAIL: scripts/run.sh --play song.wav from the file's directory exited $RC" >&2
  exit 1
fi
echo "run_script: PASS (a relative --play path is the caller's)"
