#!/usr/bin/env bash
# monitor_voices.sh STEMD SRC_DIR [SCREENSHOT]: the monitor page's voices, levels and link to the
# daemon in headless Chromium (tests/browser/voices.test.js, a new-user pass: pass 21 items 7, 9,
# 10, 11). stemd on the null backend with --http-port 0 and the page from SRC_DIR/web; the test
# kills it and starts it again on the same ports (its pids go to $D/*.pid: cleaned up here).
# Exit 0 pass, 1 fail, 77 skip (no chromium, node or playwright-core).
set -uo pipefail
STEMD=$1
SRC=$2
SHOT=${3:-}
HERE="$SRC/tests/browser"
# shellcheck source=browser_check.sh
source "$HERE/browser_check.sh"
browser_require monitor_voices node python3
browser_workdir monitor_voices voices
mkdir -p "$D/media" || fail "mkdir"
# Two 10-s stereo WAVs, and an hour and a minute of 8-bit mono at 1 kHz (3.7 MB): durations of an
# hour or more are shown h:mm:ss.s.
python3 - "$D/media" <<'PY' || fail "could not write the test files"
import struct, sys, wave
for name in ("a48.wav", "b48.wav"):
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
        w.writeframes(struct.pack("<hh", 3000, -3000) * 48000 * 10)
with wave.open(f"{sys.argv[1]}/hour.wav", "wb") as w:
    w.setnchannels(1); w.setsampwidth(1); w.setframerate(1000)
    w.writeframes(bytes([128, 140]) * (3660 * 1000 // 2))
PY
rc=0
STEMD_NO_CONFIG_SEARCH=1 timeout 100 node "$HERE/voices.test.js" "$STEMD" "$SRC/web" "$D" ${SHOT:+"$SHOT"} || rc=$?
[ "$rc" -eq 0 ] || fail "voices.test.js exited $rc"
echo "monitor_voices: PASS"
