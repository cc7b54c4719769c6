"""SFTP file helpers for SSHTransport: put/get, mkdir -p, remote ``~``.

Writes go to a temp file that is renamed into place, so a reader never sees
half a file; a short file after a pipelined write is reported as a full disk.
Errors go through the transport's mapping (``fail``), which tells a dropped
connection from a file error; ``file_error`` names the file error and the fix.
"""

from __future__ import annotations

import errno
import posixpath
import stat
import uuid
from typing import Any, Callable, Optional

from ..errors import FileMissing, FileUnreadable, TransportError

__all__ = ["SFTPFiles", "file_error", "link_lost"]

#: ``fail(exc, path, doing)``: the error to raise for a failed file operation
ErrorMap = Callable[[BaseException, str, str], TransportError]


def link_lost(exc: BaseException) -> bool:
    """Does this error from the SFTP session mean the session itself is gone?"""
    return isinstance(exc, EOFError) or "closed" in str(exc).lower()


def file_error(node: str, user: Optional[str], exc: BaseException, path: str,
               doing: str) -> TransportError:
    """A failed file operation on a live connection, with what to do about it."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return FileMissing(f"node {node}: cannot {doing} {path}: no such file or directory", node)
    if doing == "read":
        why = (f"permission denied; make it readable for {user or 'the user'}"
               if code == errno.EACCES else str(exc) or type(exc).__name__)
        return FileUnreadable(f"node {node}: cannot read {path}: {why}", node)
    if code in (errno.ENOSPC, errno.EDQUOT) or str(exc) == "Failure" or "space" in str(exc):
        why = ("the SFTP server reported a failure, most often a full disk; "
               "free disk space on the machine")
    elif code == errno.EACCES:
        why = f"permission denied; make it writable for {user or 'the user'}"
    else:
        why = str(exc) or type(exc).__name__
    return TransportError(f"node {node}: cannot {doing} {path}: {why}", node)


class SFTPFiles:
    """One SFTP session to a node, with the directories it has made or seen.
    Not thread-safe: the transport serializes calls."""

    def __init__(self, sftp: Any, node: str, fail: ErrorMap) -> None:
        self.sftp = sftp
        self.node = node
        self._fail = fail
        self._dirs: set[str] = set()

    def close(self) -> None:
        self.sftp.close()

    def absolute(self, path: str) -> str:
        """``path`` made absolute and normalized; ``~`` and relative paths start
        at the remote home."""
        if path.startswith("~") and not (path == "~" or path.startswith("~/")):
            raise TransportError(f"node {self.node}: workdir {path!r}: ~user paths are not "
                                 "supported; use an absolute path or ~/...", self.node)
        if not path.startswith("/"):
            rel = path[2:] if path.startswith("~/") else "" if path == "~" else path
            path = posixpath.join(self.sftp.normalize("."), rel)
        return posixpath.normpath(path)

    def makedirs(self, path: str) -> None:
        """``mkdir -p`` with mode 0700."""
        sftp = self.sftp
        if path in self._dirs or path in ("/", ""):
            return
        try:
            if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                raise TransportError(f"node {self.node}: {path} exists and is not a directory; "
                                     "move it away or choose another path", self.node)
        except FileNotFoundError:
            self.makedirs(posixpath.dirname(path))
            try:
                sftp.mkdir(path, 0o700)
            except OSError as exc:
                try:
                    sftp.stat(path)  # created meanwhile by someone else
                except OSError:
                    raise self._fail(exc, path, "create") from exc
        except OSError as exc:
            raise self._fail(exc, path, "create") from exc
        self._dirs.add(path)

    def write(self, path: str, data: bytes, mode: int) -> None:
        """Temp file then rename: a reader never sees half a file."""
        sftp = self.sftp
        self.makedirs(posixpath.dirname(path))
        tmp = f"{posixpath.dirname(path)}/.{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with sftp.open(tmp, "wb") as f:
                f.chmod(mode)  # before any data lands, so it is never readable by others
                f.set_pipelined(True)
                f.write(data)
                # paramiko drops the status of pipelined writes (a full disk
                # would pass unseen); the server handles requests in order, so
                # a short file here means a write failed
                if f.stat().st_size != len(data):
                    raise OSError("Failure")
            sftp.posix_rename(tmp, path)
        except (OSError, EOFError) as exc:
            try:
                sftp.remove(tmp)
            except Exception:
                pass
            raise self._fail(exc, path, "write") from exc

    def read(self, path: str, offset: int = 0, limit: Optional[int] = None) -> bytes:
        """Up to ``limit`` bytes (all by default) from ``offset`` on."""
        try:
            with self.sftp.open(path, "rb") as f:
                size = f.stat().st_size or 0
                n = size - offset if limit is None else min(limit, size - offset)
                if n <= 0:
                    return b""
                # readv pipelines the requests: one round trip, not one per 32 KiB
                return b"".join(f.readv([(offset, n)]))
        except (OSError, EOFError) as exc:
            raise self._fail(exc, path, "read") from exc
