# shellcheck shell=bash
# Sourced by the monitor_*.sh tests (tests/browser).
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

# browser_workdir NAME TAG: D, a new directory /tmp/stemd-TAG.XXXXXX for the daemons' logs (*.log)
# and pids (*.pid, one a file); on exit each of those pids gets SIGTERM (SIGKILL after 5 s) and D
# is removed. Pids in files: a daemon started in a command substitution (a subshell) never
# reached an array of the caller's — every run of monitor_layout left both daemons running.
# Defines fail MSG: "NAME: FAIL: MSG", the logs' last lines, exit 1.
browser_workdir() {
  BROWSER_NAME=$1
  D=$(mktemp -d "/tmp/stemd-$2.XXXXXX")
  trap browser_cleanup EXIT
}
browser_cleanup() {
  local p
  for p in $(cat "$D"/*.pid 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
  for p in $(cat "$D"/*.pid 2>/dev/null); do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$D"
}
fail() {
  echo "$BROWSER_NAME: FAIL: $*" >&2
  for l in "$D"/*.log; do [ -f "$l" ] && tail -10 "$l" >&2; done
  exit 1
}

# browser_stemd LOG [FLAGS…]: stemd on the null backend with --osc-port 0, --http-port 0, the page
# from $SRC/web and FLAGS, its output in $D/LOG and its pid in $D/LOG.pid (browser_workdir first;
# STEMD and SRC are the test's). Prints its page's URL (no trailing /) once the log names it —
# nothing when it does not within 10 s. Safe in a command substitution: the pid is in a file.
browser_stemd() {
  local log="$D/$1"
  shift
  STEMD_NO_CONFIG_SEARCH=1 "$STEMD" --backend null --osc-port 0 --http-port 0 --web-root "$SRC/web" "$@" >"$log" 2>&1 &
  echo $! >"$log.pid"
  for _ in $(seq 100); do
    grep -qs "web monitor on http://" "$log" && break
    sleep 0.1
  done
  grep -o 'web monitor on http://[^ ]*' "$log" | head -n1 | sed 's/web monitor on //; s:/$::'
}
