#!/usr/bin/env python3
"""stall_fs.py MOUNTPOINT [--hold-creates] [--hold-all-after FLAG] — a file system that stops
answering, for tests (root; /dev/fuse).

It speaks the kernel's FUSE protocol on /dev/fuse directly (no libfuse): the mount holds one file,
`stalled.wav`, whose open() is never answered, as with an NFS server or a USB bridge that hung,
and one folder, `stalled_dir`, whose opendir() (a listing) is never answered either. A process
that opens either waits in the kernel, uninterruptibly, until this server exits: then the
kernel aborts the connection, the open fails (ENOTCONN) and the waiting thread goes on. Prints
"mounted" once the mount is up, and one line per open it holds. The caller unmounts (umount -l).
The root's own listing answers at once (empty).

--hold-creates: the creation of a file (any other name: a state file's temporary file) is held too,
as a share that answers reads of what it has but hangs on the first write. Without it a creation
is refused (ENOSYS), as before.

--hold-all-after FLAG: once the file FLAG exists every request (a lookup, a getattr, an open…) is
held unanswered — a dead NFS server or sshfs whose ssh hung: even a stat of the mount's folders blocks.
Held then too: the FLUSH that close() sends (and waits for) on every file opened here.

--serve NAME=PATH (repeatable): a file NAME that reads as PATH's bytes, answered at once (direct
I/O: every read reaches this server) — a share that answers, until --hold-all-after's flag.

--read-delay MS: each read of a --serve file is answered MS milliseconds late — a share that answers,
slowly (a congested Wi-Fi NAS, SMB over a VPN). One request at a time: reads from two threads wait
for each other.
"""
import errno
import os
import struct
import sys
import time

import ctypes

OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_OPEN, OP_RELEASE, OP_FLUSH, OP_CREATE = 1, 2, 3, 14, 18, 25, 35
OP_INIT, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_INTERRUPT, OP_DESTROY, OP_BATCH_FORGET = 26, 27, 28, 29, 36, 38, 42
OP_READ, FOPEN_DIRECT_IO, SERVED_INO = 15, 1, 4
SERVED = []  # (name, path) of --serve, inodes SERVED_INO + index
ROOT, FILE_INO, FILE_NAME, FILE_SIZE = 1, 2, b"stalled.wav", 1 << 20
DIR_INO, DIR_NAME = 3, b"stalled_dir"


def attributes(ino):
    now = int(time.time())
    directory = ino in (ROOT, DIR_INO)
    mode = (0o040755 if directory else 0o100644)
    size = 0 if directory else FILE_SIZE
    if ino >= SERVED_INO:
        size = os.path.getsize(SERVED[ino - SERVED_INO][1])
    # struct fuse_attr: ino size blocks atime mtime ctime, their nsecs, mode nlink uid gid rdev blksize padding
    return struct.pack("<QQQQQQIIIIIIIIII", ino, size, (size + 511) // 512, now, now, now, 0, 0, 0, mode,
                       2 if directory else 1, 0, 0, 0, 4096, 0)


def main():
    mountpoint = sys.argv[1]
    hold_creates = "--hold-creates" in sys.argv[2:]
    for i, a in enumerate(sys.argv[2:-1], 2):
        if a == "--serve":
            name, _, path = sys.argv[i + 1].partition("=")
            SERVED.append((name.encode(), path))
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"stall_fs", mountpoint.encode(), b"fuse.stall_fs", 0, options) != 0:
        print("mount failed:", os.strerror(ctypes.get_errno()), flush=True)
        return 1
    print("mounted", flush=True)

    def answer(unique, error=0, data=b""):
        os.write(fd, struct.pack("<IiQ", 16 + len(data), -error, unique) + data)

    held = []  # the opens never answered (kept so nothing answers them by accident)
    args = sys.argv[2:]
    flag = args[args.index("--hold-all-after") + 1] if "--hold-all-after" in args else None
    read_delay = int(args[args.index("--read-delay") + 1]) / 1000 if "--read-delay" in args else 0
    while True:
        try:
            request = os.read(fd, 1 << 20)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            return 0  # ENODEV: unmounted
        length, op, unique, node = struct.unpack("<IIQQ", request[:24])
        body = request[40:length]
        if flag and op not in (OP_INIT, OP_FORGET, OP_BATCH_FORGET, OP_INTERRUPT, OP_DESTROY) and os.path.exists(flag):
            held.append(unique)
            print(f"request {op} held ({len(held)})", flush=True)
            continue
        if op == OP_INIT:
            minor = struct.unpack("<II", body[:8])[1]
            # fuse_init_out: major minor max_readahead flags max_background congestion_threshold
            # max_write time_gran max_pages map_alignment flags2, unused
            answer(unique, 0, struct.pack("<IIIIHHIIHHI", 7, min(minor, 31), 65536, 0, 16, 12, 65536, 1, 0, 0, 0) +
                   b"\0" * 28)
        elif op == OP_LOOKUP:
            name = body.split(b"\0")[0]
            served = [n for n, _ in SERVED]
            if node == ROOT and (name in (FILE_NAME, DIR_NAME) or name in served):
                ino = FILE_INO if name == FILE_NAME else DIR_INO if name == DIR_NAME else SERVED_INO + served.index(name)
                # fuse_entry_out: nodeid generation entry_valid attr_valid, their nsecs, attr
                answer(unique, 0, struct.pack("<QQQQII", ino, 0, 1, 1, 0, 0) + attributes(ino))
            else:
                answer(unique, errno.ENOENT)
        elif op == OP_GETATTR:
            answer(unique, 0, struct.pack("<QII", 1, 0, 0) + attributes(node))
        elif op == OP_OPEN and node >= SERVED_INO:
            answer(unique, 0, struct.pack("<QII", 0, FOPEN_DIRECT_IO, 0))
        elif op == OP_READ and node >= SERVED_INO:
            _, offset, size = struct.unpack("<QQI", body[:20])  # fuse_read_in: fh offset size
            if read_delay:
                time.sleep(read_delay)
                print(f"read of {SERVED[node - SERVED_INO][0].decode()} answered late", flush=True)
            with open(SERVED[node - SERVED_INO][1], "rb") as f:
                f.seek(offset)
                answer(unique, 0, f.read(size))
        elif op == OP_OPEN and node == FILE_INO:
            held.append(unique)
            print(f"open of {FILE_NAME.decode()} held ({len(held)})", flush=True)
        elif op == OP_OPENDIR and node == DIR_INO:
            held.append(unique)
            print(f"opendir of {DIR_NAME.decode()} held ({len(held)})", flush=True)
        elif op == OP_CREATE and hold_creates:
            held.append(unique)
            name = body[16:].split(b"\0")[0].decode(errors="replace")  # fuse_create_in: flags mode umask open_flags
            print(f"create of {name} held ({len(held)})", flush=True)
        elif op in (OP_OPEN, OP_OPENDIR):
            answer(unique, 0, struct.pack("<QII", 0, 0, 0))
        elif op == OP_READDIR:
            answer(unique, 0, b"")
        elif op in (OP_RELEASE, OP_RELEASEDIR, OP_FLUSH):
            answer(unique)
        elif op in (OP_FORGET, OP_BATCH_FORGET, OP_INTERRUPT):
            pass  # no answer; an interrupt of a held open is ignored (that is the stall)
        elif op == OP_DESTROY:
            return 0
        else:
            answer(unique, errno.ENOSYS)


if __name__ == "__main__":
    sys.exit(main())
