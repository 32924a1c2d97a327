#!/usr/bin/env bash
# monitor_panels.sh STEMD SRC_DIR [SCREENSHOT]: the monitor page's Health and Media panels for a
# new user (tests/browser/panels.test.js, new-user pass 24, LOW 4, 8, 9): stemd on the null
# backend with --http-port 0, the page from SRC_DIR/web and no --media-root.
# Exit 0 pass, 1 fail, 77 skip (no chromium, node or playwright-core).
set -uo pipefail
STEMD=$1
SRC=$2
SHOT=${3:-}
HERE="$SRC/tests/browser"
# shellcheck source=browser_check.sh
source "$HERE/browser_check.sh"
browser_require monitor_panels node
browser_workdir monitor_panels panels
url=$(browser_stemd stemd.log)
[ -n "$url" ] || fail "stemd did not start its web monitor"
echo "monitor_panels: page $url (no --media-root)"
rc=0
timeout 90 node "$HERE/panels.test.js" "$url" ${SHOT:+"$SHOT"} || rc=$?
[ "$rc" -eq 0 ] || fail "panels.test.js exited $rc"
echo "monitor_panels: PASS"
