"""Files on the submit host written with the job owner's identity.

A controller that runs as root (a lab's, SlurmUser=root) writes a job's
output, its ``--output``/``--error`` paths and its result files (Executor,
DataBench) for a user who chose those paths: a path that user may not write
must fail, never be written as root. :func:`as_owner` runs a small function
in a short-lived child that has become the user (supplementary groups, then
group, then user, from this host's user database); a file descriptor it
opens comes back to the controller over a socket pair (SCM_RIGHTS), so the
data is then written by the controller, into a file the user opened.

Elsewhere (a controller that is not root, or a job of root's own) the
function runs in the controller itself, as before.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Callable, Optional

__all__ = ["as_owner", "needs_switch"]


def needs_switch(owner: Optional[int]) -> bool:
    """Whether files for a job of ``owner`` are written by a child as that user."""
    return owner is not None and os.getuid() == 0 and owner != 0


def _identity(owner: int) -> "tuple[int, list[int]]":
    """The owner's primary gid and groups on this host (looked up before the
    fork: the child of a threaded controller calls nothing that may lock)."""
    import pwd

    try:
        pw = pwd.getpwuid(owner)
    except KeyError:
        raise PermissionError(f"uid {owner} (the job's owner) is unknown on this host: "
                              f"its files are not written as root") from None
    return pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid)


def as_owner(owner: Optional[int], fn: Callable[[], Optional[int]]) -> Optional[int]:
    """``fn()`` (which returns an open fd or None) with ``owner``'s identity;
    an OSError it raises is raised here, with its errno and file name."""
    if not needs_switch(owner):
        return fn()
    assert owner is not None
    gid, groups = _identity(owner)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - measured in the child
            code = 1
            try:
                parent.close()
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(owner)
                try:
                    fd = fn()
                except OSError as exc:
                    child.sendall(b"E" + json.dumps([exc.errno, exc.strerror,
                                                     exc.filename]).encode())
                else:
                    socket.send_fds(child, [b"K"], [] if fd is None else [fd])
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        child.close()
        child = None  # type: ignore[assignment]
        try:
            msg, fds, _flags, _addr = socket.recv_fds(parent, 65536, 1)
        finally:
            os.waitpid(pid, 0)
    finally:
        parent.close()
        if child is not None:
            child.close()
    if msg.startswith(b"K"):
        return fds[0] if fds else None
    for fd in fds:
        os.close(fd)
    if msg.startswith(b"E"):
        err, text, name = json.loads(msg[1:].decode())
        raise OSError(err, text, name)
    raise OSError(f"could not write as uid {owner}: the helper process failed")
