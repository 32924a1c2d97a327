# shellcheck shell=bash
# Sourced by monitor_browser.sh and monitor_layout.sh (tests/browser).
# browser_require NAME TOOL…: exits 77 (the test's skip), saying "NAME: SKIP (…)", unless every
# TOOL is on PATH, chromium is there ($CHROMIUM, else /usr/bin/chromium) and playwright-core is
# installed beside this file (scripts/setup.sh: tests/browser/fetch_modules.py).
browser_require() {
  local name=$1 t
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || { echo "$name: SKIP ($t not installed)"; exit 77; }
  done
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "$name: SKIP (no chromium)"; exit 77; }
  [ -d "$(dirname "${BASH_SOURCE[0]}")/node_modules/playwright-core" ] ||
    { echo "$name: SKIP (no playwright-core: run scripts/setup.sh, or python3 tests/browser/fetch_modules.py)"; exit 77; }
}
