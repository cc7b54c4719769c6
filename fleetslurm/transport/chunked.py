"""Chunked, resumable, verified file copies: the parts every transport shares.

A copy moves a file in chunks of at most ``CHUNK`` bytes, so memory stays
bounded whatever the file's size. It continues after the bytes the receiving
file already holds, so a copy cut by a lost link resumes there instead of
starting again. It is verified: the sending end hashes the whole file
(sha256) as it reads it, the receiving end hashes what it holds (what was
there before and what arrived), and both the sizes and the digests must agree;
a receiving file that does not match is removed, so the next copy starts
from zero.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional

from ..errors import TransferCorrupt

__all__ = ["CHUNK", "Transferred", "ReceivingFile", "send_from", "part_path"]

#: bytes read, written and held per step of a copy
CHUNK = 1 << 20
#: a receiving file hashes in a thread of its own once this much has come
#: (hashlib lets go of the GIL: the hash then runs beside the writes and the
#: link's reads instead of between them; a small file is not worth a thread)
HASH_THREAD_AFTER = 8 << 20
#: writes the hashing thread may lag behind (an SSH copy's are at most 4 MiB each)
HASH_BEHIND = 4


@dataclass(frozen=True)
class Transferred:
    """What one chunked copy did."""

    #: the file's size, as both ends counted it
    size: int
    #: its sha256 (hex), as both ends computed it
    sha256: str
    #: where this copy continued from (0: from the start)
    offset: int
    #: bytes that crossed the link this time (``size - offset``)
    moved: int


def part_path(path: str) -> str:
    """The file a put fills before it is renamed to ``path`` (same directory, so
    the rename is atomic; a stable name, so a cut copy resumes into it)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.part")


def send_from(src: BinaryIO, offset: int, sink: Callable[[bytes], None],
              size: Optional[int] = None) -> tuple[int, str]:
    """Read ``src`` from its start, hashing every byte, and pass the bytes from
    ``offset`` on to ``sink``; stop at ``size`` (what the file held when the copy
    began: a file still growing is copied as it was) or at its end.
    Returns ``(bytes read, sha256 hex)``."""
    h = hashlib.sha256()
    src.seek(0)
    pos = 0
    while size is None or pos < size:
        want = CHUNK if size is None else min(CHUNK, size - pos)
        if pos < offset:
            want = min(want, offset - pos)  # a chunk never straddles the offset
        chunk = src.read(want)
        if not chunk:
            break
        h.update(chunk)
        if pos >= offset:
            sink(chunk)
        pos += len(chunk)
    return pos, h.hexdigest()


class ReceivingFile:
    """The receiving end of a copy: a file on this host's disk, filled from
    its current end. ``offset`` is where the copy continues; the bytes before
    it are hashed once, when it is opened (a local disk reads far faster
    than a link moves them).

    Raises OSError when the file cannot be opened, read or written.
    """

    def __init__(self, path: str, mode: int = 0o600) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
        try:
            self._hash = hashlib.sha256()
            pos = 0
            while True:
                chunk = os.pread(self._fd, CHUNK, pos)
                if not chunk:
                    break
                self._hash.update(chunk)
                pos += len(chunk)
        except BaseException:
            os.close(self._fd)
            raise
        self.offset = self.size = pos
        self._behind: Optional["queue.Queue[Optional[bytes]]"] = None
        self._hasher: Optional[threading.Thread] = None
        self._failure: Optional[BaseException] = None

    def write(self, data: bytes) -> None:
        """Append ``data`` (all of it)."""
        if self._behind is None and self.size - self.offset >= HASH_THREAD_AFTER:
            self._behind = queue.Queue(HASH_BEHIND)
            self._hasher = threading.Thread(target=self._hash_behind, daemon=True,
                                            name="copy-sha256")
            self._hasher.start()
        if self._behind is not None:
            self._behind.put(data)
        else:
            self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.size += len(data)

    def _hash_behind(self) -> None:
        assert self._behind is not None
        while True:
            data = self._behind.get()
            if data is None:
                return
            if self._failure is None:
                try:
                    self._hash.update(data)
                except BaseException as exc:  # (MemoryError): kept for _digest;
                    self._failure = exc       # the queue is still drained, so no put blocks

    def _catch_up(self) -> None:
        """Let the hashing thread (if any) finish what it was given, and end it."""
        if self._hasher is not None and self._behind is not None:
            self._behind.put(None)
            self._hasher.join()
            self._hasher = None

    def _digest(self) -> str:
        """The sha256 of all the file holds."""
        self._catch_up()
        if self._failure is not None:
            raise self._failure
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._catch_up()  # (a copy that failed midway ends its thread too)

    def finish(self, size: int, sha256: str, node: str, what: str) -> Transferred:
        """Close and compare with what the sending end counted; a file that
        differs is removed (the next copy starts from zero) and raises
        TransferCorrupt naming ``what`` was copied from ``node``."""
        self.close()
        mine = self._digest()
        if self.size != size or mine != sha256:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            raise TransferCorrupt(
                f"node {node}: the copy of {what} does not match the file there "
                f"({self.size} bytes, sha256 {mine[:12]}... here; {size} bytes, sha256 "
                f"{sha256[:12]}... there); it was discarded and will be copied again "
                "from the start", node)
        return Transferred(size=size, sha256=sha256, offset=self.offset,
                           moved=size - self.offset)

    def __enter__(self) -> "ReceivingFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
