#!/usr/bin/env bash
# monitor_layout.sh STEMD SRC_DIR [SCREENSHOT]: the monitor page's layout and EQ controls in
# headless Chromium (tests/browser/layout.test.js). Two stemd on the null backend with
# --http-port 0 and the page from SRC_DIR/web: one as is, one with --disable-filters.
# Exit 0 pass, 1 fail, 77 skip (no chromium, node or playwright-core).
set -uo pipefail
STEMD=$1
SRC=$2
SHOT=${3:-}
HERE="$SRC/tests/browser"
# shellcheck source=browser_check.sh
source "$HERE/browser_check.sh"
browser_require monitor_layout node python3
browser_workdir monitor_layout layout
mkdir -p "$D/media" || fail "mkdir"
python3 - "$D/media" <<'PY' || fail "could not write the test files"
import struct, sys, wave
for name in ("a_rather_long_stem_name_bass_124bpm_take_3.wav", "short.wav"):
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
        w.writeframes(struct.pack("<hh", 3000, -3000) * 48000 * 2)
PY
url=$(browser_stemd plain.log --media-root "$D/media")
[ -n "$url" ] || fail "stemd did not start its web monitor"
url2=$(browser_stemd no-filters.log --media-root "$D/media" --disable-filters)
[ -n "$url2" ] || fail "stemd --disable-filters did not start its web monitor"
echo "monitor_layout: pages $url and $url2 (--disable-filters)"
rc=0
timeout 90 node "$HERE/layout.test.js" "$url" "$url2" ${SHOT:+"$SHOT"} || rc=$?
[ "$rc" -eq 0 ] || fail "layout.test.js exited $rc"
echo "monitor_layout: PASS"
