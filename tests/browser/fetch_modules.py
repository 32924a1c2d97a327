#!/usr/bin/env python3
"""fetch_modules.py [DIR]: installs the browser tests' npm packages without npm.

What `npm ci` did in tests/browser, for a lock file of dependency-free packages (playwright-core
has none): each "node_modules/NAME" entry of DIR/package-lock.json is fetched from the npm
registry (https://registry.npmjs.org/NAME/-/BASENAME-VERSION.tgz, or $STEMD_NPM_REGISTRY), its
sha512 checked against the lock's "integrity", and unpacked into DIR/node_modules/NAME; the lock
is then copied to DIR/node_modules/.package-lock.json (scripts/setup.sh compares the two to know
when to fetch again). Why not npm: Debian's npm package brings about 250 node-* packages to a
fresh machine, which took 80 s of scripts/setup.sh's 6 minutes (a Debian 12 chroot, docs/testing.md)
to install one tarball.

Refuses (exit 1, nothing half-installed) a lock entry with dependencies, a digest that differs, and
a tarball member outside its package/ folder or that is not a plain file or folder.
"""
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request


def fail(msg):
    print(f"fetch_modules: {msg}", file=sys.stderr)
    sys.exit(1)


def fetch(url):
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return r.read()
        except OSError as e:  # URLError is an OSError
            if attempt == 2:
                fail(f"{url}: {e}")
    return b""


def unpack(data, dest):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            name = m.name
            if not name.startswith("package/") or name.startswith("/") or ".." in name.split("/"):
                fail(f"tarball member outside package/: {name}")
            if not (m.isfile() or m.isdir()):
                fail(f"tarball member is not a plain file or folder: {name}")
            rel = name[len("package/"):]
            if not rel:
                continue
            target = os.path.join(dest, rel)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)


def main():
    here = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__))
    lock_path = os.path.join(here, "package-lock.json")
    with open(lock_path, encoding="utf-8") as f:
        lock = json.load(f)
    registry = os.environ.get("STEMD_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    modules = os.path.join(here, "node_modules")
    os.makedirs(modules, exist_ok=True)
    for key, entry in lock.get("packages", {}).items():
        if not key.startswith("node_modules/"):
            continue
        name = key[len("node_modules/"):]
        if entry.get("dependencies"):
            fail(f"{name} has dependencies of its own: use npm ci")
        version, integrity = entry["version"], entry.get("integrity", "")
        algo, _, want = integrity.partition("-")
        if algo != "sha512" or not want:
            fail(f"{name}: no sha512 integrity in the lock")
        url = entry.get("resolved") or f"{registry}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
        data = fetch(url)
        got = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if got != want:
            fail(f"{url}: sha512 {got} is not the lock's {want}")
        staging = tempfile.mkdtemp(prefix=".fetch-", dir=modules)
        try:
            unpack(data, staging)
            os.chmod(staging, 0o755)  # mkdtemp's 0700 would keep other users (a test run as one) out
            dest = os.path.join(modules, name)
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.rename(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"fetch_modules: {name} {version} ({len(data)} bytes, sha512 checked)")
    shutil.copyfile(lock_path, os.path.join(modules, ".package-lock.json"))


if __name__ == "__main__":
    main()
