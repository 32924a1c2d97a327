#!/usr/bin/env bash
# docs_links.sh SOURCE_DIR: the documentation stays inside the repository and its links work.
# For README.md, docs/*.md and every other Markdown file of the tree (build directories and npm's
# node_modules aside):
#   - every relative link ([text](path), ![img](path), [id]: path) resolves to a file or directory
#     inside SOURCE_DIR, and a #fragment names a heading of the target (GitHub's anchors);
#   - no link leaves the repository: no http(s)://, ftp://, file:, mailto: or absolute path, no
#     relative path that climbs out of SOURCE_DIR (../shared/…) — and no bare URL in the text;
#   - the README's first 40 lines hold the two developer commands (set up and run the daemon, set
#     up and pass the tests) and the user's quick start (install, enable the service, load, play).
# Links inside code blocks and code spans are text, not links. Exit 0 pass, 1 fail.
set -uo pipefail
src=$(cd "${1:?usage: docs_links.sh SOURCE_DIR}" && pwd)
command -v python3 >/dev/null || { echo "docs_links: SKIP (no python3)"; exit 77; }
exec python3 - "$src" <<'PY'
import os, re, sys, unicodedata

root = os.path.realpath(sys.argv[1])
failures = []

def fail(msg):
    failures.append(msg)
    print("docs_links: FAIL: " + msg)

def md_files():
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        dirs[:] = [x for x in dirs if not (x.startswith(".") or x == "node_modules" or (rel == "." and x.startswith("build")))]
        for f in files:
            if f.endswith(".md"):
                yield os.path.join(d, f)

FENCE = re.compile(r"^\s*(```|~~~)")

def strip_code(text):
    """Blank out fenced code blocks and inline code spans, keeping line numbers."""
    out, in_fence = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
            out.append("")
            continue
        out.append("" if in_fence else re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line))
    return out

def slug(heading):
    h = re.sub(r"`", "", heading.strip()).lower()
    h = "".join(c for c in h if c in " -_" or unicodedata.category(c)[0] in "LN")
    return h.replace(" ", "-")

anchor_cache = {}

def anchors(path):
    if path not in anchor_cache:
        seen, result, in_fence = {}, set(), False
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if FENCE.match(line):
                    in_fence = not in_fence
                    continue
                m = None if in_fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    s = slug(m.group(1))
                    n = seen.get(s, 0)
                    result.add(s if n == 0 else f"{s}-{n}")
                    seen[s] = n + 1
        anchor_cache[path] = result
    return anchor_cache[path]

INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
BARE_URL = re.compile(r"\b(?:https?|ftp)://\S+")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

checked = 0
for path in sorted(md_files()):
    name = os.path.relpath(path, root)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    for lineno, line in enumerate(strip_code(text), 1):
        where = f"{name}:{lineno}"
        targets = [m.group(1) for m in INLINE.finditer(line)]
        m = REFDEF.match(line)
        if m:
            targets.append(m.group(1))
        for m in AUTOLINK.finditer(line):
            fail(f"{where}: link leaves the repository: <{m.group(1)}>")
        for m in BARE_URL.finditer(INLINE.sub("", line)):
            fail(f"{where}: URL in the text (links must stay in the repository): {m.group(0)}")
        for t in targets:
            checked += 1
            if not t:
                fail(f"{where}: empty link")
                continue
            if SCHEME.match(t) or t.startswith("//"):
                fail(f"{where}: link leaves the repository: {t}")
                continue
            if t.startswith("/"):
                fail(f"{where}: absolute path (not relative to the repository): {t}")
                continue
            file_part, _, frag = t.partition("#")
            target = os.path.realpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if target != root and not target.startswith(root + os.sep):
                fail(f"{where}: link climbs out of the repository: {t}")
                continue
            if not os.path.exists(target):
                fail(f"{where}: broken link: {t} (no {os.path.relpath(target, root)})")
                continue
            if frag:
                if not target.endswith(".md") or os.path.isdir(target):
                    fail(f"{where}: #{frag} on a file that is not Markdown: {t}")
                elif frag not in anchors(target):
                    fail(f"{where}: no heading for #{frag} in {os.path.relpath(target, root)}")

# The README's first screen: the two developer commands and the user's quick start.
readme = os.path.join(root, "README.md")
with open(readme, encoding="utf-8") as fh:
    first = "".join(fh.readlines()[:40])
for needle, what in [
    ("scripts/setup.sh && scripts/run.sh", "the command that sets up and runs the daemon"),
    ("scripts/test.sh", "the command that sets up and passes the tests"),
    ("cpack", "building the .deb"),
    ("apt install ./", "installing the .deb"),
    ("systemctl enable --now stemd", "starting the service"),
    ("stemctl load", "loading a file"),
    ("stemctl play", "playing it"),
]:
    if needle not in first:
        fail(f"README.md: {what} ('{needle}') is not in the first 40 lines")

if failures:
    print(f"docs_links: {len(failures)} problem(s), {checked} links checked")
    sys.exit(1)
print(f"docs_links: PASS ({checked} links checked)")
PY
