#!/usr/bin/env bash
# media_root_late.sh STEMD STEMCTL: a --media-root that is not there at start — a USB disk or a
# network share mounted after stemd starts at boot. Before, stemd exited 2 ("--media-root …: No
# such file or directory"); with RestartSec=1 systemd gave up after five tries and the box stayed
# silent even once the disk came. Now:
#  1. --check-config warns and passes (the unit runs it as ExecStartPre);
#  2. stemd starts, says why loads will be refused; a load is refused naming the root and errno;
#  3. while it waits, the kept source shows in stemctl status and list, the health line (systemd's
#     STATUS=) and the web's /api/status — before, they all showed an empty, healthy daemon and
#     only the start-up warning said why nothing played (new-user pass 29, M2);
#  4. the directory appears: a client's load goes ahead, and the state file's source (kept while
#     it waited) is restored with its voice, and nothing says it waits any more.
# Runs in a network namespace of its own (fixed ports). Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
STEMD=$1
STEMCTL=$2
command -v unshare >/dev/null && command -v ip >/dev/null || { echo "media_root_late: no unshare/ip: skipped"; exit 77; }
unshare --net true 2>/dev/null || { echo "media_root_late: cannot make a network namespace: skipped"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/stemd-lateroot.XXXXXX")
trap 'rm -rf "$D"' EXIT

unshare --net bash -s "$STEMD" "$STEMCTL" "$D" "$(cd "$(dirname "$0")" && pwd)" <<'INNER'
set -uo pipefail
STEMD=$1; STEMCTL=$2; D=$3
ROOT=$D/disk/stems
NAME=media_root_late
# shellcheck source=netns_common.sh
source "$4/netns_common.sh"
ip link set lo up || fail "ip link set lo up"
ctl() { "$STEMCTL" --port 57120 "$@"; }

# 1. --check-config: a warning, exit 0.
out=$("$STEMD" --check-config --config none --media-root "$ROOT" 2>&1)
rc=$?
[ "$rc" = 0 ] || fail "--check-config exited $rc with a missing media root: $out"
echo "$out" | grep -qF -- "--media-root $ROOT: No such file or directory — a start goes ahead" ||
  fail "--check-config did not warn: $out"

# 2. Start with the root missing and a state file naming a file on it.
printf 'stemd-state 1\n/stemd/load 1 "%s" "a"\n/stemd/play 1 1 true 0 frames 1\nend\n' "$ROOT/a.wav" >"$D/stemd.state"
"$STEMD" --backend null --config none --osc-port 57120 --http-port 8089 --media-root "$ROOT" \
  --state-file "$D/stemd.state" --restore-voices --health-interval 1 >"$D/stemd.log" 2>&1 &
PID=$!
wait_for " started: " 10 || fail "did not start with its media root missing"
grep -qF -- "--media-root $ROOT: No such file or directory — starting anyway" "$D/stemd.log" ||
  fail "no start-up warning naming the missing root"
# The OSC line agrees with the warning (it said "loads wait for it" while they were refused).
grep -qF "media root $ROOT (not there yet: loads are refused until it is)" "$D/stemd.log" ||
  fail "the OSC line does not say loads are refused: $(grep -F 'media root' "$D/stemd.log")"
grep -qF "source 1 not restored yet: --media-root $ROOT: No such file or directory" "$D/stemd.log" ||
  fail "the state file's source was not kept while the root is missing"
err=$(ctl load 2 b.wav 2>&1) && fail "a load under a missing root was taken: $err"
echo "$err" | grep -qF -- "--media-root $ROOT: No such file or directory (not there: a disk or share not mounted yet?" ||
  fail "the refusal does not name the missing root: $err"
code=$(python3 -c 'import sys,urllib.request,urllib.error
try: urllib.request.urlopen("http://127.0.0.1:8089/api/files"); print(200)
except urllib.error.HTTPError as e: print(e.code)')
[ "$code" = 503 ] || fail "/api/files under a missing root answered $code, not 503"

# 3. The source waiting shows everywhere a technician looks.
WAITS="1 source waiting for its file: --media-root $ROOT: No such file or directory"
out=$(ctl status 2>&1)
echo "$out" | grep -qF "sources waiting" && echo "$out" | grep -qF "$WAITS" ||
  fail "stemctl status does not show the source waiting: $out"
out=$(ctl list 2>&1)
echo "$out" | grep -qF "waiting: $WAITS" || fail "stemctl list does not show the source waiting: $out"
api=$(python3 -c 'import json,urllib.request
s=json.load(urllib.request.urlopen("http://127.0.0.1:8089/api/status"))["status"]
print(s.get("sources_waiting"), s.get("sources_waiting_for"))')
case "$api" in "1 $WAITS"*) ;; *) fail "/api/status does not count the source waiting: $api" ;; esac
wait_for "health: " 5
grep -F "health: " "$D/stemd.log" | grep -qF "$WAITS" ||
  fail "the health line does not say the source waits: $(grep -F 'health: ' "$D/stemd.log" | tail -1)"

# 4. The disk comes: loads go ahead, the kept source is restored with its voice.
mkdir -p "$ROOT"
python3 - "$ROOT" <<'PY'
import struct, sys, wave
for name in ("a.wav", "b.wav"):
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
        w.writeframes(struct.pack("<hh", 1000, -1000) * 48000)
PY
ctl load 2 b.wav >/dev/null 2>&1 || fail "a load once the root is there was refused: $(ctl load 2 b.wav 2>&1)"
wait_for "--media-root $ROOT: there now" 5 || fail "no line saying the root is there now"
wait_for "state file $D/stemd.state: source 1 restored: $ROOT/a.wav is there now" 15 ||
  fail "the kept source was not restored once its root appeared"
for _ in $(seq 40); do
  ctl voices 2>/dev/null | grep -q "playing" && break
  sleep 0.1
done
ctl voices 2>/dev/null | grep -q "playing" || fail "the restored voice does not play: $(ctl voices 2>&1)"
out=$(ctl status 2>&1)
echo "$out" | grep -qF "sources waiting" && fail "stemctl status still shows a source waiting: $out"
ctl list 2>&1 | grep -qF "waiting" && fail "stemctl list still shows a source waiting: $(ctl list 2>&1)"
kill -0 "$PID" || fail "stemd died"
echo "media_root_late: ok"
INNER
