#!/usr/bin/env bash
# monitor_browser.sh STEMD STEMCTL SRC_DIR [SCREENSHOT]: the web monitor in headless Chromium
# (issue 16). A private JACK dummy server (scripts/testbed.sh), stemd playing into it with
# --http-port 0, --media-root and the page from SRC_DIR/web, then tests/browser/monitor.test.js drives
# Debian's chromium through playwright-core (fetched by scripts/setup.sh: fetch_modules.py here).
# Exit 0 pass, 1 fail, 77 skip (no chromium, node, playwright-core or JACK).
set -uo pipefail
STEMD=$1
STEMCTL=$2
SRC=$3
SHOT=${4:-}
HERE="$SRC/tests/browser"
# shellcheck source=browser_check.sh
source "$HERE/browser_check.sh"
browser_require monitor_browser jackd jack_wait sox node
# shellcheck source-path=SCRIPTDIR source=../../scripts/testbed.sh
source "$SRC/scripts/testbed.sh"
fail() { echo "monitor_browser: FAIL: $*" >&2; [ -f "$D/stemd.log" ] && tail -20 "$D/stemd.log" >&2; exit 1; }
testbed_start 1024 48000 || fail "could not start jackd"
D=$TESTBED_DIR
mkdir -p "$D/media/stems" || fail "mkdir"
sox -n -r 48000 -b 16 -c 2 "$D/media/tone.wav" synth 4 sine 330 vol 0.5 2>/dev/null || fail "sox"
cp "$D/media/tone.wav" "$D/media/stems/bass.wav"
"$STEMD" --backend portaudio --device system --buffer-size 1024 --osc-port 0 --http-port 0 \
  --web-root "$SRC/web" --media-root "$D/media" >"$D/stemd.log" 2>&1 &
pid=$!
testbed_track_pid "$pid"
testbed_wait_for 10 grep -qs "web monitor on http://" "$D/stemd.log" || fail "stemd did not start its web monitor"
url=$(grep -o 'web monitor on http://[^ ]*' "$D/stemd.log" | head -n1 | sed 's/web monitor on //')
osc=$(grep -o 'OSC on udp 127\.0\.0\.1:[0-9]*' "$D/stemd.log" | head -n1 | sed 's/.*://')
echo "monitor_browser: stemd $pid, page $url, OSC $osc"
# A second daemon whose device is not there: its --play voice waits for it. The page listed no
# voice (the status said voices_waiting 1); it shows it with its state now.
"$STEMD" --backend portaudio --device no-such-card --osc-port 0 --http-port 0 --web-root "$SRC/web" \
  --play "$D/media/tone.wav" >"$D/waiting.log" 2>&1 &
wpid=$!
testbed_track_pid "$wpid"
testbed_wait_for 10 grep -qs "web monitor on http://" "$D/waiting.log" || fail "the waiting stemd did not start its web monitor"
export WAITING_URL
WAITING_URL=$(grep -o 'web monitor on http://[^ ]*' "$D/waiting.log" | head -n1 | sed 's/web monitor on //')
rc=0
timeout 90 node "$HERE/monitor.test.js" "$url" "$STEMCTL" "$osc" "$pid" "$(cd "$D/media" && pwd -P)/tone.wav" ${SHOT:+"$SHOT"} || rc=$?
kill -TERM "$pid" "$wpid" 2>/dev/null
testbed_wait_pid "$pid" 10 || true
testbed_wait_pid "$wpid" 10 || true
[ "$rc" -eq 0 ] || fail "monitor.test.js exited $rc"
echo "monitor_browser: PASS"
