"""The two small programs an SSH copy runs on the machine (``python3 -c``,
stdlib only, Python 3.8+), one per direction.

``SEND PATH OFFSET``: hashes PATH from its start and writes its bytes from
OFFSET on to stdout, up to the size it had when it was opened; then writes
``{"size": N, "sha256": HEX}`` to stderr and exits 0. ``RECV PATH OFFSET
MODE``: keeps PATH's first OFFSET bytes (hashed), appends stdin to them, and
writes ``{"size": N, "sha256": HEX}`` to stdout once the data is on disk
(fsync). Either one that cannot open, read or write its file writes
``{"errno": E, "error": TEXT}`` to stderr and exits 3.
"""

from __future__ import annotations

__all__ = ["SEND", "RECV", "FAILED"]

#: the exit status of a program that wrote an error record
FAILED = 3

_COMMON = r'''
import hashlib, json, os, sys
def fail(e):
    sys.stderr.write(json.dumps({"errno": e.errno, "error": e.strerror or str(e)}))
    sys.exit(3)
def put(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
'''

SEND = _COMMON + r'''
path, offset = sys.argv[1], int(sys.argv[2])
h = hashlib.sha256()
pos = 0
try:
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    while pos < size:
        want = min(1 << 20, size - pos)
        if pos < offset:
            want = min(want, offset - pos)
        chunk = os.read(fd, want)
        if not chunk:
            break
        h.update(chunk)
        if pos >= offset:
            put(1, chunk)
        pos += len(chunk)
except OSError as e:
    fail(e)
sys.stderr.write(json.dumps({"size": pos, "sha256": h.hexdigest()}))
'''

RECV = _COMMON + r'''
path, offset, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 8)
h = hashlib.sha256()
try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, mode)
    os.ftruncate(fd, min(offset, os.fstat(fd).st_size))
    pos = 0
    while True:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            break
        h.update(chunk)
        pos += len(chunk)
    os.lseek(fd, pos, 0)
    src = sys.stdin.buffer
    while True:
        chunk = src.read1(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        put(fd, chunk)
        pos += len(chunk)
    os.fsync(fd)
except OSError as e:
    fail(e)
sys.stdout.write(json.dumps({"size": pos, "sha256": h.hexdigest()}))
'''
