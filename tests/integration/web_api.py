#!/usr/bin/env python3
"""web_api.py STEMD STEMCTL SRC_DIR: the web monitor's API and its refusals (issue 16).

One stemd on the null backend with --http-port 0 (any free port), small budgets
(--http-max-clients 6, --http-max-listeners 1). Checks:
  GET /api/status (the /stemd/status fields, voices, decks, master meters); the page's files;
  POST /api/osc through the Router (/done, /fail with the reason, same answers as OSC);
  a load and a play through the API, seen by stemctl and as a voice in /api/status;
  /ws/events gets the voice's notification; /ws/audio: header, then binary chunks whose frame
  stamps are consecutive; a second listener over --http-max-listeners is refused (503);
  bad requests: not JSON, wrong types, too many args, wrong method, unknown path, a path
  outside the page, a body and a head over their limits, garbage instead of HTTP — each a
  clear 4xx with a reason, and none changes the status (voices, sources, levels);
  connections over --http-max-clients, or over one address's share of them, are refused,
  counted, and the server still answers;
  GET /api/status: a fade's level heard and time left (volume_now, level_now, fade_s)
  GET /api/files (--media-root): sorted entries with sizes, capped at 1000 ("truncated"), a FIFO
  skipped without blocking, "..", absolute paths and symlinks out refused (403/400 with the
  reason), no --media-root → 409; a load and an unload from a plain OSC (UDP) client reach
  /ws/events, and so does a voice's end with its reason ("stopped"); peaks are held per page
  (?page=ID): two pages and anonymous requests never take each other's; the callback histogram
  is in the status; the README's curl line for POST /api/osc, sent with its -H and -d, is
  answered by the Router (it had no Content-Type: 415).
Exit 0 pass, 1 fail."""
import base64, json, os, re, shlex, socket, struct, subprocess, sys, tempfile, time, urllib.request, urllib.error, wave

STEMD, STEMCTL, SRC = sys.argv[1:4]
failures = []
# How much longer than natively to wait for stemd (start-up, replies): STEMD_TEST_TIME_SCALE, as
# scaled() in tests/common/fixtures.hpp reads it (scripts/test.sh --preset arm64 sets 10 for qemu).
try:
    SCALE = max(1.0, float(os.environ.get("STEMD_TEST_TIME_SCALE", "1")))
except ValueError:
    SCALE = 1.0
WAIT = 5 * SCALE  # a reply or a socket's, in seconds


def wait_for_log(path, pattern, seconds=10):
    """The first match of `pattern` in the log at `path`, polled for up to `seconds` × SCALE; None if none."""
    end = time.monotonic() + seconds * SCALE
    while True:
        m = re.search(pattern, open(path).read())
        if m or time.monotonic() > end:
            return m
        time.sleep(0.1)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def request(method, path, body=None, headers=None):
    req = urllib.request.Request(URL + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def osc(address, args=None, raw=None):
    body = raw if raw is not None else json.dumps({"address": address, "args": args or []}).encode()
    code, text, _ = request("POST", "/api/osc", body, {"Content-Type": "application/json"})
    return code, json.loads(text)


def status(query=""):
    return json.loads(request("GET", "/api/status" + query)[1])


def raw_http(data, read=True):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=WAIT)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
                if b"\r\n\r\n" in out and (b"content-length: 0" in out.lower() or out.endswith(b"}")):
                    break
        except socket.timeout:
            pass
    s.close()
    return out.decode(errors="replace")


def ws_open(path):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s, head.decode()


def ws_read(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    h = exact(2)
    op, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", exact(8))[0]
    return op, exact(n)


def osc_packet(address, *args):
    pad = lambda b: b + b"\0" * (4 - len(b) % 4)
    tags = "," + "".join("i" if isinstance(a, int) else "s" for a in args)
    return pad(address.encode()) + pad(tags.encode()) + b"".join(
        struct.pack(">i", a) if isinstance(a, int) else pad(a.encode()) for a in args)


def udp_osc(address, *args):
    """One OSC message from a plain UDP client (not the web API); returns the reply's address."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(osc_packet(address, *args), ("127.0.0.1", int(OSC_PORT)))
    reply = u.recv(65536)
    u.close()
    return reply[:reply.index(b"\0")].decode()


def wait_event(ws, pred, seconds=5):
    got = []
    ws.settimeout(seconds)
    try:
        while not any(pred(e) for e in got):
            got.append(json.loads(ws_read(ws)[1]))
    except (socket.timeout, EOFError):
        pass
    return next((e for e in got if pred(e)), None), got


tmp = tempfile.mkdtemp(prefix="stemd-web-")
media = os.path.join(tmp, "media")
os.makedirs(os.path.join(media, "sub"))
os.makedirs(os.path.join(media, "many"))
os.makedirs(os.path.join(tmp, "outside"))
for i in range(1005):  # over the listing's cap of 1000
    open(os.path.join(media, "many", f"f{i:04d}.wav"), "w").close()
open(os.path.join(media, "sub", "b.wav"), "w").write("12345")
os.mkfifo(os.path.join(media, "fifo"))
os.symlink(os.path.join(tmp, "outside"), os.path.join(media, "out-link"))
os.symlink("sub", os.path.join(media, "in-link"))
wav = os.path.join(media, "tone.wav")
with wave.open(wav, "wb") as w:
    w.setnchannels(2)
    w.setsampwidth(2)
    w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<hh", 8000, -8000) for _ in range(48000 * 2)))
log = open(os.path.join(tmp, "stemd.log"), "w+")
env = dict(os.environ, STEMD_NO_CONFIG_SEARCH="1")
proc = subprocess.Popen([STEMD, "--backend", "null", "--osc-port", "0", "--http-port", "0", "--web-root",
                         os.path.join(SRC, "web"), "--http-max-clients", "6", "--http-max-clients-per-address", "3", "--http-max-listeners", "1",
                         "--media-root", media, "--http-host", "Stemd-Test.lan"],
                        stdout=log, stderr=subprocess.STDOUT, env=env)
try:
    m = wait_for_log(log.name, r"web monitor on http://127\.0\.0\.1:(\d+)/")
    o = m and wait_for_log(log.name, r"OSC on udp 127\.0\.0\.1:(\d+)", 1)
    if not (m and o):
        print(open(log.name).read())
        sys.exit("FAIL: stemd did not start its web monitor")
    PORT, OSC_PORT = int(m.group(1)), o.group(1)
    URL = f"http://127.0.0.1:{PORT}"

    # --- status and page
    st = status()
    check(st["status"]["sample_rate"] == 48000 and "callback_p99_us" in st["status"] and "budget_us" in st["status"],
          "GET /api/status has /stemd/status's fields")
    check(len(st["decks"]) == 4 and "meter" in st["master"] and "peak_db" in st["decks"][0]["meter"],
          "status has four decks and the master with meters")
    code, page, hdr = request("GET", "/")
    check(code == 200 and "stemd" in page and hdr["Content-Type"].startswith("text/html"), "GET / serves the page")
    check(request("GET", "/worklet.js")[0] == 200 and request("GET", "/app.js")[0] == 200, "the page's scripts are served")

    # --- the API through the Router
    code, j = osc("/stemd/ping")
    check(code == 200 and j["reply"] == "/done" and j["address"] == "/stemd/ping", f"/stemd/ping → /done ({j})")
    code, j = osc("/stemd/play", [99])
    check(code == 422 and j["reply"] == "/fail" and "99" in json.dumps(j) and j.get("reason"), f"play of an empty id → /fail with a reason ({j})")
    code, j = osc("/stemd/load", [3, wav])
    check(code == 200 and j["reply"] == "/done", f"load through the API ({j})")
    ev, head = ws_open("/ws/events")
    check(head.startswith("HTTP/1.1 101"), "/ws/events upgrades")
    code, j = osc("/stemd/play", [3, 1.0, 1])
    check(code == 200 and j["reply"] == "/done", f"play through the API ({j})")
    voices = json.loads(subprocess.check_output([STEMCTL, "--port", OSC_PORT, "voices", "--json"]))
    check(any(v["id"] == 3 for v in voices), f"stemctl sees the voice started over HTTP ({voices})")
    got = []
    ev.settimeout(WAIT)
    try:
        while not any(e.get("event") == "/stemd/voice/started" for e in got):
            op, data = ws_read(ev)
            got.append(json.loads(data))
    except (socket.timeout, EOFError):
        pass
    check(any(e.get("event") == "api" and e.get("address") == "/stemd/play" for e in got), "/ws/events: the API's answers")
    check(any(e.get("event") == "/stemd/voice/started" for e in got), f"/ws/events: the voice's start ({got[:4]})")
    ev.close()

    # --- loads by any client reach /ws/events: a plain OSC client over UDP, not the web API
    ev, head = ws_open("/ws/events")
    check(udp_osc("/stemd/load", 5, "tone.wav") == "/done", "an OSC client (UDP) loads id 5")
    e, got = wait_event(ev, lambda e: e.get("event") == "/stemd/source/loaded")
    check(e is not None and e["args"][:2] == [5, "tone"] and abs(e["args"][2] - 2.0) < 1e-6,
          f"/ws/events: the OSC client's load (/stemd/source/loaded 5 tone 2.0) ({got[:4]})")
    check(udp_osc("/stemd/unload", 5) == "/done", "the OSC client unloads id 5")
    e, got = wait_event(ev, lambda e: e.get("event") == "/stemd/source/unloaded")
    check(e is not None and e["args"] == [5], f"/ws/events: the OSC client's unload ({got[:4]})")
    ev.close()
    time.sleep(0.3)
    st = status()
    check(len(st["voices"]) == 1 and st["voices"][0]["id"] == 3 and 0 <= st["voices"][0]["ring_fill"] <= 1
          and st["voices"][0]["position_s"] > 0, f"status lists the voice with its position and ring fill ({st['voices']})")
    deck = next(d for d in st["decks"] if d["name"] == st["voices"][0]["deck"])  # id 3: deck D
    check(deck["meter"]["rms_db"] > -30 and st["master"]["meter"]["peak_db"] > -30,
          f"the voice's deck and the master meters move ({deck['name']}: {deck['meter']}, master {st['master']['meter']})")
    # A fade under way shows where it is heard and how long it has left, not only its target.
    check(osc("/stemd/fade", [3, 0.5, 10])[0] == 200 and osc("/stemd/deck", ["D", 0.5, 10])[0] == 200, "a 10-s fade")
    time.sleep(0.5)
    st = status()
    v, deck = st["voices"][0], next(d for d in st["decks"] if d["name"] == "D")
    check(v["volume"] == 0.5 and 0.9 < v["volume_now"] < 1.0 and 8 < v["fade_s"] < 10,
          f"status: volume 0.5 (set), volume_now {v['volume_now']} (heard), fade_s {v['fade_s']} left")
    check(deck["level"] == 0.5 and 0.9 < deck["level_now"] < 1.0 and 8 < deck["fade_s"] < 10,
          f"status: deck D level 0.5, level_now {deck['level_now']}, fade_s {deck['fade_s']}")
    check(st["master"]["fade_s"] == 0 and st["master"]["level_now"] == st["master"]["level"], "the master is not fading")
    check(osc("/stemd/volume", [3, 1, 0])[0] == 200 and osc("/stemd/deck", ["D", 1, 0])[0] == 200, "back to 1")
    time.sleep(0.2)
    # Pollers share the voice list (built on the control thread) for 100 ms while nothing changes:
    # two dozen of them at 1,500 voices delayed OSC by 0.1-0.8 s. A change is seen at once.
    built = status()["monitor"]["voices_built"]
    t0 = time.monotonic()
    for _ in range(20):
        status()
    spent = time.monotonic() - t0
    now_built = status()["monitor"]["voices_built"]
    check(now_built - built <= 2 + 12 * spent, f"21 polls in {spent:.2f} s built the voice list {now_built - built} times")
    r7 = osc("/stemd/volume", [3, 0.7, 0])
    v7 = status()["voices"][0]["volume"]
    check(r7[0] == 200 and abs(v7 - 0.7) < 1e-6,
          f"a change shows in the next status, kept list or not ({r7}, {v7})")
    check(osc("/stemd/volume", [3, 1, 0])[0] == 200 and abs(status()["voices"][0]["volume"] - 1) < 1e-6, "back to 1")
    # /done means the change is queued for the audio thread, not yet heard: a block rendered at
    # 0.7 before the callback took it can still reach a listener who joins now (CI's ASan run saw
    # 5610 = 0.7 × 8000 in the first chunk). Wait until the audio thread reports it heard.
    deadline = time.monotonic() + 5
    while abs(status()["voices"][0]["volume_now"] - 1) > 1e-6 and time.monotonic() < deadline:
        time.sleep(0.01)

    # --- /ws/audio
    a, head = ws_open("/ws/audio")
    check(head.startswith("HTTP/1.1 101"), "/ws/audio upgrades")
    op, data = ws_read(a)
    hdr = json.loads(data)
    check(op == 1 and hdr == {"sample_rate": 48000, "channels": 2, "format": "s16le", "chunk_frames": 256}, f"first message: the header ({hdr})")
    resets0 = status()["status"]["clock_resets"]
    frames = []
    for _ in range(10):
        op, data = ws_read(a)
        check(op == 2 and (len(data) - 8) % 1024 == 0 and len(data) > 8, "binary: 8-byte stamp + whole chunks") if len(frames) == 0 else None
        f = struct.unpack("<q", data[:8])[0]
        frames.append((f, (len(data) - 8) // 4, struct.unpack("<hh", data[8:12])))
    # Consecutive, unless the stream clock jumped (a late cycle on a busy machine moves the frame
    # counter on with the device's time, and the stamps show it: CI with a build beside it).
    consecutive = all(frames[i + 1][0] == frames[i][0] + frames[i][1] for i in range(len(frames) - 1))
    jumped = status()["status"]["clock_resets"] > resets0
    check(consecutive or jumped, f"frame stamps are consecutive, or the clock jumped ({frames[:3]}, clock_resets from {resets0})")
    check(all(abs(l - 8000) < 2 and abs(r + 8000) < 2 for _, _, (l, r) in frames), "the samples are the mix (±8000 as played)")
    b, head2 = ws_open("/ws/audio")
    check(head2.startswith("HTTP/1.1 503"), f"a second listener over --http-max-listeners 1 is refused ({head2.splitlines()[0]})")
    b.close()
    a.close()

    # --- bad requests: a clear 4xx with a reason, no state changed
    before = status()
    keep = lambda s: (json.dumps(s["voices"], sort_keys=True).replace(str(s["voices"][0]["position_s"]), ""),
                      s["status"]["sources"], [d["level"] for d in s["decks"]], s["master"]["level"])
    bad = [
        (osc(None, raw=b"{not json"), 400, "not JSON"),
        (osc(None, raw=b"[1,2]"), 400, "JSON object"),
        (osc(None, raw=json.dumps({"address": 5}).encode()), 400, "address"),
        (osc(None, raw=json.dumps({"address": "/stemd/master", "args": {"a": 1}}).encode()), 400, "array"),
        (osc(None, raw=json.dumps({"address": "/stemd/master", "args": [[1]]}).encode()), 400, "args[0]"),
        (osc(None, raw=json.dumps({"address": "/stemd/master", "args": list(range(65))}).encode()), 400, "at most 64"),
        (osc("/stemd/master", [7.5]), 422, "0..4"),
        (osc("/stemd/notify", [1]), 400, "/ws/events"),
        (osc("/stemd/masterr", [0.5]), 422, "did you mean"),
        (osc("/stemd/unload", [3, "x", 4]), 422, ""),
        # JSON says what a value is: no OSC coercion (true → 1, 3.5 → 3 stopped voice 3)
        (osc("/stemd/master", [False]), 400, "argument 1 (volume): false is not a number"),
        (osc("/stemd/stop", [3.5]), 400, "argument 1 (id): 3.5 is not an integer"),
        (osc("/stemd/play", [3, True]), 400, "argument 2 (volume): true is not a number"),
        # nor a JSON string where a number goes ("0" muted the master, " 3" stopped voice 3: attack pass 23)
        (osc("/stemd/master", ["0"]), 400, "is a string, not a number"),
        (osc("/stemd/stop", [" 3"]), 400, "is a string, not an integer"),
        # OSC strings end at their first NUL: the file before it was loaded, the address before it run
        (osc("/stemd/load", [9, "tone.wav\u0000.x"]), 400, "NUL"),
        (osc("/stemd/master\u0000x", [0.5]), 400, "NUL"),
    ]
    for (code, j), want, words in bad:
        text = json.dumps(j)
        check(code == want and words.lower() in text.lower() and ("error" in j or "reason" in j), f"bad request → {want} naming '{words}' ({text[:120]})")
    code, text, hdr = request("GET", "/api/osc")
    check(code == 405 and "POST" in hdr.get("Allow", ""), "GET /api/osc → 405, Allow: POST")
    check(request("POST", "/api/status", b"{}")[0] == 405, "POST /api/status → 405")
    check(request("GET", "/nope")[0] == 404, "unknown path → 404")
    # The page's HEAD (link checkers, monitoring probes): the GET's headers, no body. Was 405.
    code, text, hdr = request("HEAD", "/")
    page_len = len(request("GET", "/")[1].encode())
    check(code == 200 and text == "" and hdr.get("Content-Length") == str(page_len),
          f"HEAD / → 200, Content-Length {hdr.get('Content-Length')} of {page_len}, no body")
    check(request("DELETE", "/")[0] == 405, "DELETE / → 405")
    # A WebSocket's address opened as a page: 426 with Upgrade, not 404 ("no such thing").
    code, text, hdr = request("GET", "/ws/events")
    check(code == 426 and hdr.get("Upgrade", "").lower() == "websocket" and "WebSocket" in text,
          f"GET /ws/events without the upgrade → 426 ({code}: {text[:80]})")
    check(" 404 " in raw_http(b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").split("\r\n")[0] + " ", "a path outside the page → 404")
    big = b"x" * (17 * 1024)
    r = raw_http(b"POST /api/osc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    check(r.startswith("HTTP/1.1 413") and "too large" in r, f"a body over 16 KiB → 413 ({r[:40]!r})")
    r = raw_http(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"y" * 9000 + b"\r\n\r\n")
    check(r.startswith("HTTP/1.1 413"), f"a head over 8 KiB → 413 ({r[:40]!r})")
    r = raw_http(b"\x16\x03\x01garbage not http\r\n\r\n")
    check(r.startswith("HTTP/1.1 400") and "bad request" in r, f"garbage → 400 ({r[:40]!r})")
    # --- /ws/events opened and closed many times on a quiet daemon: each closed listener's entry
    # (and the memory allocated with it) was kept until the next event pruned the list — +5 MB
    # per 16,000 connections, without bound while nothing happens (an outside test pass)
    for _ in range(300):
        s, head = ws_open("/ws/events")
        s.close()
    time.sleep(0.3)
    s, head = ws_open("/ws/events")  # joining prunes the closed ones
    held = status()["monitor"]["listeners_held"]
    s.close()
    check(held <= 10, f"300 /ws/events opened and closed: {held} broadcast entries held (≤ 10)")

    # --- another site's page in the visitor's browser (an outside test pass: a page on another
    # origin set the master to 0 with a no-cors text/plain POST, and opened /ws/audio), and a
    # page that renamed itself to this machine (DNS rebinding: Host evil.example)
    master = status()["master"]["level"]
    body = json.dumps({"address": "/stemd/master", "args": [0.0]}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        code, text, _ = request("POST", "/api/osc", body, {"Content-Type": ctype} if ctype else {})
        check(code == 415 and "application/json" in text, f"POST /api/osc as {ctype} → 415 ({code} {text[:80]})")
    # The README's curl line for POST /api/osc, sent as curl sends it (its -H and -d): it lacked
    # the Content-Type, and a curl -d is a form (application/x-www-form-urlencoded) → 415.
    lines = [l for l in open(os.path.join(SRC, "README.md")) if "curl" in l and "/api/osc" in l]
    check(len(lines) == 1, f"the README has one curl line for POST /api/osc ({len(lines)})")
    if lines:
        words = shlex.split(lines[0][lines[0].index("curl"):].split("`")[0])
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}  # curl's default with -d
        data = None
        for i, w in enumerate(words[:-1]):
            if w in ("-H", "--header"):
                k, v = words[i + 1].split(":", 1)
                hdrs[k.strip()] = v.strip()
            elif w in ("-d", "--data", "--data-raw"):
                data = words[i + 1].encode()
        target = next((w for w in words if "/api/osc" in w), "")
        code, text, _ = request("POST", target[target.index("/api/osc"):], data, hdrs)
        check(code in (200, 422) and json.loads(text).get("reply") in ("/done", "/fail"),
              f"the README's curl line is answered by the Router, not refused ({code} {text[:100]})")
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{PORT + 1}"):
        code, text, _ = request("POST", "/api/osc", body, {"Content-Type": "application/json", "Origin": origin})
        check(code == 403 and "another origin" in text, f"POST /api/osc from Origin {origin} → 403 ({code} {text[:80]})")
        s = socket.create_connection(("127.0.0.1", PORT), timeout=WAIT)
        s.sendall((f"GET /ws/audio HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = s.recv(4096).decode(errors="replace")
        s.close()
        check(head.startswith("HTTP/1.1 403"), f"/ws/audio from Origin {origin} → 403 ({head[:30]!r})")
    r = raw_http(b"GET /api/status HTTP/1.1\r\nHost: evil.example:%d\r\n\r\n" % PORT)
    check(r.startswith("HTTP/1.1 403") and "not a name this machine answers to" in r, f"Host evil.example → 403 ({r[:40]!r})")
    check(status()["master"]["level"] == master, f"no cross-site request changed the master ({master})")
    code, _, _ = request("POST", "/api/osc", json.dumps({"address": "/stemd/master", "args": [master]}).encode(),
                         {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{PORT}"})
    check(code == 200, f"the page's own origin (http://127.0.0.1:{PORT}) is answered ({code})")
    for host in ("localhost", socket.gethostname(), socket.gethostname() + ".local", f"[::1]", "stemd-test.lan"):
        r = raw_http(b"GET /api/status HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), PORT))
        check(r.startswith("HTTP/1.1 200"), f"Host {host} is this machine → 200 ({r[:30]!r})")
    # DNS rebinding with this machine's own name under the attacker's domain (outside pass 24,
    # F5: it was answered, the master set to 0); and a name given with --http-host is matched
    # exactly, not as a suffix.
    for host in (socket.gethostname() + ".attacker.example", "x.stemd-test.lan"):
        r = raw_http(b"GET /api/status HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), PORT))
        check(r.startswith("HTTP/1.1 403") and "--http-host " + host in r, f"Host {host} → 403 naming --http-host ({r[:40]!r})")
    after = status()
    check(keep(before)[1:] == keep(after)[1:] and len(after["voices"]) == 1, "no bad request changed the state")
    check(after["monitor"]["bad_requests"] >= 10, f"bad requests counted ({after['monitor']['bad_requests']})")

    # --- connection budget, and each address's share of it (3 of 6, given explicitly: it then
    # holds loopback too; the default's exception for loopback is checked on the second daemon)
    # Each held connection answers one request first (keep-alive): the server has then accepted
    # it. A fixed 0.3 s was not always enough under ASan on a loaded machine (the 7th was
    # accepted as the 6th and answered).
    def connect_from(source):
        c = socket.socket()
        c.settimeout(WAIT)
        c.bind((source, 0))
        c.connect(("127.0.0.1", PORT))
        c.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return c

    def answered(c):  # the head of an answer; False when the server closed the connection
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                chunk = c.recv(4096)
                if not chunk:
                    return False
                got += chunk
        except (ConnectionResetError, socket.timeout):
            return False
        return True

    held = []
    for _ in range(3):
        held.append(connect_from("127.0.0.1"))
        check(answered(held[-1]), "a connection within 127.0.0.1's share is served")
    one_more = connect_from("127.0.0.1")
    check(not answered(one_more), "a 4th connection from 127.0.0.1 (over its share of 3) is closed at once")
    one_more.close()
    for _ in range(3):
        held.append(connect_from("127.0.0.2"))
        check(answered(held[-1]), "another address is served while 127.0.0.1 holds its share")
    extra = connect_from("127.0.0.3")
    check(not answered(extra), "a connection over --http-max-clients 6 is closed at once")
    extra.close()
    for s in held:
        s.close()
    time.sleep(0.3)
    st = status()
    check(st["monitor"]["refused"] >= 1, f"the refusal is counted ({st['monitor']['refused']})")

    # --- the media root, listed for the page's file browser
    code, text, _ = request("GET", "/api/files")
    j = json.loads(text)
    names = [(e["name"], e["dir"], e.get("size")) for e in j.get("entries", [])]
    check(code == 200 and names == [("in-link", True, None), ("many", True, None), ("sub", True, None),
                                    ("tone.wav", False, os.path.getsize(wav))] and j["parent"] is None,
          f"GET /api/files: the root's folders and files, sorted, with sizes ({code} {names})")
    check(j.get("skipped") == 2 and not j.get("truncated"), f"a FIFO and a symlink out are left out ({j.get('skipped')})")
    code, text, _ = request("GET", "/api/files?dir=in-link")
    j = json.loads(text)
    check(code == 200 and [e["path"] for e in j["entries"]] == ["in-link/b.wav"] and j["entries"][0]["size"] == 5
          and j["parent"] == "", f"a folder through a symlink inside the root ({text[:160]})")
    code, text, _ = request("GET", "/api/files?dir=many")
    j = json.loads(text)
    check(code == 200 and len(j["entries"]) == 1000 and j["truncated"] and j["entries"][0]["name"] == "f0000.wav"
          and j["entries"][-1]["name"] == "f0999.wav", f"1005 files: the first 1000 by name, truncated ({code})")
    for q, want, words in (("..", 403, "outside the media root"), ("sub/../..", 403, "outside the media root"),
                           ("out-link", 403, "outside the media root"), ("%2Fetc", 400, "absolute"),
                           ("fifo", 400, "not a directory"), ("tone.wav", 400, "not a directory"),
                           ("nope", 404, "no such directory"), ("%zz", 400, "escape")):
        t0 = time.monotonic()
        code, text, _ = request("GET", "/api/files?dir=" + q)
        check(code == want and words in json.loads(text).get("error", ""),
              f"/api/files?dir={q} → {want} naming '{words}' ({code} {text[:100]}, {time.monotonic() - t0:.2f} s)")
    check(request("POST", "/api/files", b"{}")[0] == 405, "POST /api/files → 405")

    # --- peaks held per page: the voice stops; each page and the anonymous requests keep their own
    a0, b0 = status("?page=pageA"), status("?page=pageB")
    ev, head = ws_open("/ws/events")
    osc("/stemd/stop", [3])
    for _ in range(50):
        if not status()["voices"]:  # anonymous requests: they must not take the pages' peaks
            break
        time.sleep(0.1)
    e, got = wait_event(ev, lambda e: e.get("event") == "/stemd/voice/ended")
    check(e is not None and e["args"][0] == 3 and e["args"][2:] == ["stopped"],
          f"/ws/events: the voice's end with its reason (/stemd/voice/ended 3 voice \"stopped\") ({got[:4]})")
    ev.close()
    time.sleep(0.2)
    a1, b1, anon = status("?page=pageA"), status("?page=pageB"), status()
    a2, b2 = status("?page=pageA"), status("?page=pageB")
    pk = lambda s: round(s["master"]["meter"]["peak_db"], 1)
    check(pk(a1) > -20 and pk(b1) > -20, f"both pages see the peak of what played since they last asked "
          f"(A {pk(a1)}, B {pk(b1)} dBFS)")
    check(pk(a2) < -100 and pk(b2) < -100, f"and after that, the silence since (A {pk(a2)}, B {pk(b2)} dBFS)")
    check(request("GET", "/api/status?page=a%20b")[0] == 400, "a page name that is not [A-Za-z0-9_-] → 400")
    hist = a2["callback_hist"]
    for _ in range(int(50 * SCALE)):  # the histogram counts since start: let 100+ callbacks run
        if sum(c for _, c in hist) > 100:
            break
        time.sleep(0.1)
        hist = status()["callback_hist"]
    check(len(hist) > 0 and sum(c for _, c in hist) > 100 and all(u > 0 for u, _ in hist),
          f"the callback histogram ([[upper ns, count]…]) is in the status ({hist[:3]})")
finally:
    proc.terminate()
    rc = proc.wait(10 * SCALE)
    check(rc == 0, f"stemd exits 0 on SIGTERM ({rc})")
# --- start-up refusals: beyond loopback without --allow, a page directory without index.html;
# and --no-osc: the API still answers through the Instance's own control thread
for args, want in ((["--http-bind", "0.0.0.0"], "give --allow"), (["--web-root", tmp], "no index.html"),
                   (["--http-host", "pi.lan:8080"], "without a port")):
    r = subprocess.run([STEMD, "--backend", "null", "--osc-port", "0", "--http-port", "0", "--duration", "0.2"] + args,
                       capture_output=True, text=True, env=env, timeout=20 * SCALE)
    check(r.returncode == 2 and want in r.stdout + r.stderr, f"{' '.join(args)} → exit 2 naming '{want}' ({r.returncode})")
# --http-host in the config file, as --check-config sees it: a name with a port is named by its
# line; a list of names is taken.
for hosts, rc_want, want in (('["pi.lan", "pi.lan:8080"]', 2, ":3: key 'http-host'"), ('["pi.lan", "stemd.example.org"]', 0, "OK")):
    conf = os.path.join(tmp, "hosts.conf")
    with open(conf, "w") as f:
        f.write(f"[osc]\nhttp-port = 0\nhttp-host = {hosts}\n")
    r = subprocess.run([STEMD, "--check-config", "--config", conf, "--backend", "null", "--web-root", os.path.join(SRC, "web")],
                       capture_output=True, text=True, env=env, timeout=20 * SCALE)
    check(r.returncode == rc_want and want in r.stdout + r.stderr,
          f"--check-config with http-host = {hosts} → exit {rc_want} saying '{want}' ({r.returncode} {(r.stdout + r.stderr)[-200:]!r})")
log2 = open(os.path.join(tmp, "no-osc.log"), "w+")
p2 = subprocess.Popen([STEMD, "--backend", "null", "--no-osc", "--http-port", "0", "--web-root", os.path.join(SRC, "web")],
                      stdout=log2, stderr=subprocess.STDOUT, env=env)
try:
    m = wait_for_log(log2.name, r"web monitor on http://127\.0\.0\.1:(\d+)/")
    URL = f"http://127.0.0.1:{m.group(1)}" if m else URL
    code, j = osc("/stemd/load", [1, wav]) if m else (0, {})
    check(code == 200 and j.get("reply") == "/done", f"--no-osc: a load through the API is answered ({j})")
    check(m is not None and status()["status"]["sources"] == 1, "--no-osc: the status follows")
    code, text, _ = request("GET", "/api/files") if m else (0, "{}", None)
    check(code == 409 and "--media-root" in json.loads(text).get("error", ""),
          f"no --media-root: /api/files → 409 saying so ({code} {text[:120]})")
    # The default share (half of 32) does not hold loopback: every local tab and tool is
    # 127.0.0.1, and a crowd of local tabs must not lock the operator's page out. Before: the
    # 17th local connection was closed at once with 15 slots free.
    if m:
        PORT = int(m.group(1))
        local = [connect_from("127.0.0.1") for _ in range(20)]
        served = sum(answered(c) for c in local)
        check(served == 20, f"20 local connections (over the default half of 32) are all served ({served})")
        for c in local:
            c.close()
finally:
    p2.terminate()
    p2.wait(10 * SCALE)
if failures:
    print(open(log.name).read()[-3000:])
    print(open(log2.name).read()[-1500:])
    print(f"web_api: FAIL ({len(failures)}): " + "; ".join(failures))
    sys.exit(1)
print("web_api: PASS")
