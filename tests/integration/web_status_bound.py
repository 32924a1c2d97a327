#!/usr/bin/env python3
"""web_status_bound.py STEMD SRC_DIR [OSC_PORT HTTP_PORT]: GET /api/status stays bounded however the voices are named
(outside pass 25, N4).

A voice's name is a client's choice (/stemd/load ID PATH NAME, up to --max-string 1,024 bytes) and
JSON writes a control byte as \\u0001 (6 bytes): 4,000 voices so named made one status answer
25.5 MB, built on the control thread (0.7 s of it per poll: one open page stalled OSC), and 31
clients that asked and did not read held 0.46 GB outside --max-memory-mb.

One stemd on the null backend; an OSC client loads 1,000 ids of one small WAV with names of 1,024
control bytes and plays them looping. Checks:
  - the answer lists the first 500 voices by id, with "voices_total" 1000 and "voices_cut" 500,
    each name cut to 64 bytes + "…" (name_cut), and is at most 600 kB (it was 6.3 MB);
  - four pages polling as the page does (every 250 ms) while an OSC client pings: every ping is
    answered, and the monitor says what the last list cost (voices_build_us);
  - 30 clients that send GET /api/status and read nothing: the answers held wait within the
    answers' budget (monitor.answer_bytes ≤ 8 MiB), those past it are refused 503 with the reason
    (counted: answers_refused), the daemon's RSS grows by less than 40 MB (it grew by ~190 MB),
    and once they close, the status answers again.
Exit 0 pass, 1 fail."""
import json, os, re, socket, struct, subprocess, sys, tempfile, threading, time, urllib.request, wave

STEMD, SRC = sys.argv[1:3]
OSC_ARG, HTTP_ARG = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("0", "0")  # 0: any free port
sys.path.insert(0, os.path.join(SRC, "tests", "tools"))
from hostile_client import Client, osc_bundle, osc_message, is_done  # noqa: E402

failures = []
NOW = b"\0\0\0\0\0\0\0\1"
VOICES, NAME = 1000, "\x01" * 1024
BUDGET = 8 << 20  # WebConfig::max_answers_bytes' default


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for_log(path, pattern, seconds=10):
    end = time.monotonic() + seconds
    while True:
        m = re.search(pattern, open(path).read())
        if m or time.monotonic() > end:
            return m
        time.sleep(0.1)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get_status(port, query=""):
    """(HTTP status, body bytes) of GET /api/status."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status{query}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:  # no answer within 10 s
        return 0, b"{}"


def monitor_of(port):
    return json.loads(get_status(port)[1]).get("monitor", {})


tmp = tempfile.mkdtemp(prefix="stemd-status-")
media = os.path.join(tmp, "media")
os.makedirs(media)
with wave.open(os.path.join(media, "tone.wav"), "wb") as w:
    w.setnchannels(2)
    w.setsampwidth(2)
    w.setframerate(48000)
    w.writeframes(struct.pack("<hh", 800, -800) * 48000)
log = open(os.path.join(tmp, "stemd.log"), "w+")
env = dict(os.environ, STEMD_NO_CONFIG_SEARCH="1")
proc = subprocess.Popen([STEMD, "--backend", "null", "-b", "1024", "--osc-port", OSC_ARG, "--http-port", HTTP_ARG,
                         "--web-root", os.path.join(SRC, "web"), "--media-root", media, "--http-max-clients", "40"],
                        stdout=log, stderr=subprocess.STDOUT, env=env)
try:
    m = wait_for_log(log.name, r"web monitor on http://127\.0\.0\.1:(\d+)/")
    o = m and wait_for_log(log.name, r"OSC on udp 127\.0\.0\.1:(\d+)", 1)
    if not (m and o):
        print(open(log.name).read())
        sys.exit("FAIL: stemd did not start")
    PORT, OSC_PORT = int(m.group(1)), int(o.group(1))
    c = Client(OSC_PORT)
    loaded = sum(is_done(c.request("/stemd/load", i, "tone.wav", NAME, timeout=5)) for i in range(1, VOICES + 1))
    check(loaded == VOICES, f"{VOICES} ids loaded with names of 1,024 control bytes ({loaded})")
    plays = [osc_message("/stemd/play", i, 0.01, True) for i in range(1, VOICES + 1)]
    for k in range(0, VOICES, 200):
        c.send(osc_bundle(NOW, *plays[k:k + 200]))
    c.recv_all(timeout=1)
    time.sleep(0.3)

    # --- one answer: bounded, the first 500 by id, the rest counted, names cut
    code, body = get_status(PORT)
    j = json.loads(body)
    ids = [v["id"] for v in j["voices"]]
    print(f"  one answer: {len(body)} bytes, {len(ids)} voices listed", flush=True)
    check(code == 200 and len(body) <= 600_000, f"GET /api/status with {VOICES} such voices is ≤ 600 kB ({len(body)} bytes)")
    check(j.get("voices_total") == VOICES and j.get("voices_cut") == VOICES - 500 and ids == list(range(1, 501)),
          f"the first 500 by id listed, voices_total {j.get('voices_total')}, voices_cut {j.get('voices_cut')}")
    names = [v["name"] for v in j["voices"]]
    check(all(n == "\x01" * 64 + "…" and v.get("name_cut") is True for n, v in zip(names, j["voices"])),
          f"each name cut to 64 bytes + '…', name_cut ({sorted({len(n) for n in names})})")
    check(isinstance(j.get("monitor", {}).get("voices_build_us"), int), "the monitor says what the last list cost")

    # --- four pages polling, an OSC client pinging all along: every ping is answered
    stop, pings, polls = False, [], []

    def pinger():
        pc = Client(OSC_PORT)
        while not stop:
            pings.append(is_done(pc.request("/stemd/ping", timeout=5)))
            time.sleep(0.05)

    def page(k):
        while not stop:
            code, body = get_status(PORT, f"?page=p{k}")
            polls.append((code, len(body)))
            time.sleep(0.25)

    threads = [threading.Thread(target=pinger)] + [threading.Thread(target=page, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop = True
    for t in threads:
        t.join()
    check(len(pings) > 0 and all(pings), f"OSC pings while four pages poll: {sum(pings)} of {len(pings)} answered")
    check(len(polls) > 0 and all(code == 200 and n <= 600_000 for code, n in polls),
          f"{len(polls)} polls, each 200 and ≤ 600 kB (largest {max((n for _, n in polls), default=0)})")

    # --- 30 clients ask and do not read: held within the budget, the rest refused 503
    rss0 = rss_kb(proc.pid)
    socks, peak = [], rss0
    for _ in range(30):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", PORT))
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    time.sleep(1.5)  # each is answered (or refused) in a fraction of a second
    peak = max(peak, rss_kb(proc.pid))
    # What the answers waiting hold: the monitor's answer_bytes, or with the budget full the
    # probe's own 503, whose reason says it ("busy: answers of N bytes wait …").
    code, body = get_status(PORT)
    probe = json.loads(body or b"{}")
    if code == 200:
        held = probe.get("monitor", {}).get("answer_bytes", -1)
    else:
        m = re.search(r"answers of (\d+) bytes wait", probe.get("error", ""))
        held = int(m.group(1)) if m else -1
    peak = max(peak, rss_kb(proc.pid))
    refused = 0
    for s in socks:
        s.settimeout(2)
        try:
            refused += s.recv(12).startswith(b"HTTP/1.1 503")
        except socket.timeout:
            pass
    print(f"  30 non-reading clients: {held} bytes of answers held, {refused} refused 503 (the probe: {code}); "
          f"RSS {rss0 // 1024} → {peak // 1024} MB", flush=True)
    check(0 < held <= BUDGET, f"the answers held wait within the budget ({held} bytes)")
    check(refused >= 1, f"the answers past the budget are refused 503 ({refused})")
    check(peak - rss0 < 40 * 1024, f"the daemon's RSS grew by {(peak - rss0) // 1024} MB (< 40 MB)")
    for s in socks:
        s.close()
    time.sleep(0.5)
    code, body = get_status(PORT)
    after = json.loads(body).get("monitor", {}) if code == 200 else {}
    check(code == 200 and after.get("answer_bytes", 1 << 40) < 700_000 and after.get("answers_refused", 0) >= refused,
          f"once they closed the status answers again ({code}: answer_bytes {after.get('answer_bytes')}, "
          f"answers_refused {after.get('answers_refused')})")
    check(is_done(c.request("/stemd/ping", timeout=5)), "OSC answers")
finally:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
if failures:
    print(open(log.name).read()[-3000:])
print("FAIL" if failures else "PASS")
sys.exit(1 if failures else 0)
