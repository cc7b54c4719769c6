"""Streamed, resumable, verified copies for SSHTransport.

Each copy runs one of ``stream_remote``'s programs on the machine over its own
exec channel on the machine's one connection: the bytes flow as plain channel
data (no SFTP request per 32 KiB), in packets of up to ``PACKET`` bytes, and
the channel's window (``WINDOW``) bounds what paramiko buffers for a reader
slower than the link. A copy home collects the packets in a ``BatchedPipe``
and takes them 1-4 MiB at a time (one hash update and one write each, not
one per 32 KiB packet). The SFTP session is not held meanwhile, so ``tail``,
launches and other copies to the same machine go on.

Errors: a lost link (end of stream without an exit status, or a stalled
one) raises NodeUnreachable and leaves the bytes that arrived in place for
the next copy to continue from; the program's own error record becomes
FileMissing / FileUnreadable / TransportError through the transport's file
error mapping; a mismatch raises TransferCorrupt.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import socket
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Protocol

from ..errors import TransferCorrupt, TransportError
from .chunked import ReceivingFile, Transferred, part_path, send_from
from .stream_remote import FAILED, RECV, SEND

if TYPE_CHECKING:
    from ..config import MachineConfig
    from ..errors import NodeUnreachable
    from .ssh_files import SFTPFiles

__all__ = ["get_file", "put_file", "WINDOW", "PACKET"]

#: the channel window: at most this much arrives ahead of the reader
WINDOW = 8 << 20
#: the largest packet the machine may send (sshd reads the program's pipe
#: 32 KiB at a time, so most are 32 KiB; bigger ones when it has fallen behind)
PACKET = 128 << 10
#: a copy's reader is woken once this much has arrived (see ``ssh_pipe``)
BATCH = 1 << 20
#: and takes at most this much at once
TAKE = 4 << 20
#: no byte for this long on a copy's channel: the link is taken as lost
STALL_S = 60.0
#: a resumed copy's program first hashes what the other end already holds;
#: its first byte may take that long more, at this many bytes a second
#: (a slow disk)
PREFIX_RATE = 20e6


class SSHTransport(Protocol):
    """What a copy uses of ``ssh.SSHTransport`` (named here, so this module
    does not import the one that imports it)."""

    node: str
    machine: "MachineConfig"
    _sftp_lock: threading.Lock

    def _connection(self) -> Any: ...

    def _exec_python(self, chan: Any, argv: list[str]) -> None: ...

    def _alive(self) -> bool: ...

    def _sftp_session(self) -> "SFTPFiles": ...

    def _lost(self, exc: BaseException, doing: str) -> "NodeUnreachable": ...

    def _file_error(self, exc: BaseException, path: str, doing: str) -> TransportError: ...


class _Errno(OSError):
    """The remote program's error record, as an OSError for ``file_error``."""


def _open(t: "SSHTransport", argv: list[str], doing: str, offset: int,
          batched: bool = False) -> Any:
    client = t._connection()
    try:
        chan = client.get_transport().open_session(window_size=WINDOW, max_packet_size=PACKET,
                                                   timeout=10.0)
        if batched:  # before the program starts: no byte has come yet
            from .ssh_pipe import BatchedPipe

            chan.in_buffer = BatchedPipe(BATCH)
        chan.settimeout(STALL_S + offset / PREFIX_RATE)
        t._exec_python(chan, ["-c", *argv])
    except TransportError:  # (with "become": sudo refused, named as such)
        raise
    except Exception as exc:  # paramiko raises OSError, EOFError or SSHException
        raise t._lost(exc, doing) from exc
    return chan


def _mapped(t: "SSHTransport", exc: Exception, doing: str) -> Exception:
    """What a failed copy raises: our own errors as they are, an OSError with
    an errno from this host's disk (the caller's to handle) as it is, and
    anything from the channel (paramiko's OSError, EOFError, SSHException, a
    stall) as a lost link."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, socket.timeout) \
            and exc.errno is not None:
        return exc
    return t._lost(exc, doing)


def _close(chan: Any) -> None:
    try:
        chan.close()
    except Exception:  # the connection is gone already: nothing left to close
        pass


@contextlib.contextmanager
def _copying(t: "SSHTransport", chan: Any, doing: str) -> Iterator[None]:
    """Around a copy over ``chan``: what fails is raised as :func:`_mapped`
    says, and the channel is closed whatever happens."""
    try:
        yield
    except Exception as exc:
        mapped = _mapped(t, exc, doing)
        if mapped is exc:
            raise
        raise mapped from exc
    finally:
        _close(chan)


def _read_all(recv: Callable[[int], bytes]) -> bytes:
    out = b""
    while True:
        data = recv(65536)
        if not data:
            return out
        out += data


def _outcome(t: "SSHTransport", chan: Any, record: bytes, path: str, doing: str,
             verb: str) -> dict:
    """The program's closing record, or the error its ending means."""
    if not chan.status_event.wait(10.0) or not t._alive():
        raise t._lost(EOFError("the channel closed before the copy ended"), doing)
    status = chan.exit_status
    try:
        data = json.loads(record.decode() or "null")
    except ValueError:
        data = None
    if status == FAILED and isinstance(data, dict) and "errno" in data:
        exc = _Errno(data.get("errno"), data.get("error") or "failed")
        raise t._file_error(exc, path, verb) from None
    if status != 0 or not isinstance(data, dict) or "sha256" not in data:
        text = record.decode("utf-8", "replace").strip()[-300:] or "no message"
        raise TransportError(f"node {t.node}: cannot {verb} {path}: the copy program exited "
                             f"with status {status}: {text}; check \"python\" for machine "
                             f"{t.node} in the config", t.node)
    return data


def get_file(t: "SSHTransport", path: str, dest: str) -> Transferred:
    """Copy ``path`` from the machine into ``dest`` here, continuing after what
    ``dest`` holds (see ``Transport.get_file``)."""
    doing = f"copying {path}"
    with ReceivingFile(dest) as home:
        chan = _open(t, [SEND, path, str(home.offset)], doing, home.offset, batched=True)
        with _copying(t, chan, doing):
            while True:
                # a batch: one hash update and one write, not one per packet
                # (at most TAKE, which with the window and the hashing
                # thread's queue bounds what this copy holds)
                data = chan.recv(TAKE)
                if not data:
                    break
                if home.size == home.offset:
                    chan.settimeout(STALL_S)  # the prefix is hashed there: bytes flow
                home.write(data)
            record = _read_all(chan.recv_stderr)
            info = _outcome(t, chan, record, path, doing, "read")
        return home.finish(int(info["size"]), str(info["sha256"]), t.node, f"{path}")


def put_file(t: "SSHTransport", src: BinaryIO, path: str, mode: int) -> Transferred:
    """Copy the open file ``src`` to ``path`` on the machine through
    ``.NAME.part`` beside it, continuing after what that holds, then rename
    it into place (see ``Transport.put_file``)."""
    part = part_path(path)
    doing = f"copying to {path}"
    files = t._sftp_session()
    with t._sftp_lock:
        files.makedirs(posixpath.dirname(path))
        try:
            offset = files.sftp.stat(part).st_size or 0
        except FileNotFoundError:
            offset = 0
        except (OSError, EOFError) as exc:
            raise t._file_error(exc, part, "write") from exc
    # (the first window's bytes are taken while the program there still
    # hashes the part: the longer wait holds for the whole copy)
    chan = _open(t, [RECV, part, str(offset), f"{mode & 0o7777:o}"], doing, offset)
    with _copying(t, chan, doing):
        size, sha = send_from(src, offset, chan.sendall)
        chan.shutdown_write()
        record = _read_all(chan.recv)
        info = _outcome(t, chan, record or _read_all(chan.recv_stderr), part, doing, "write")
    if int(info["size"]) != size or info["sha256"] != sha:
        with t._sftp_lock:
            try:
                files.sftp.remove(part)
            except (OSError, EOFError):
                pass
        raise TransferCorrupt(f"node {t.node}: the copy of {path} there does not match the "
                              f"file here ({info['size']} bytes there, {size} here); it was "
                              "discarded and will be copied again from the start", t.node)
    with t._sftp_lock:
        try:
            files.sftp.posix_rename(part, path)
        except (OSError, EOFError) as exc:
            raise t._file_error(exc, path, "write") from exc
    return Transferred(size=size, sha256=sha, offset=offset, moved=size - offset)
