"""The client/controller protocol: JSON lines over a Unix socket.

A request is ``{"op": NAME, "args": {...}}``; the answer is ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": TYPE, "message": TEXT}`` where TYPE
names a class of :mod:`fleetslurm.errors`. The server learns the caller's uid
from SO_PEERCRED, so ownership needs no passwords.

This module is imported by every command: keep it to the standard library.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from . import errors
from .paths import StatePaths, check_socket, private_dir, state_paths

__all__ = ["Client", "Server", "connect", "ensure_controller"]

_MAX_LINE = 64 * 1024 * 1024


def _error_from(reply: dict) -> errors.FleetError:
    cls = getattr(errors, str(reply.get("error", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.FleetError)):
        cls = errors.ControllerError
    message = str(reply.get("message", "unknown error"))
    if cls is errors.UsageError:
        return errors.UsageError(message, prog=str(reply.get("prog", "fleetslurm")),
                                 hint=bool(reply.get("hint")), code=reply.get("code"))
    if issubclass(cls, errors.TransportError):
        return cls(message, reply.get("node"))
    return cls(message)


class Client:
    """One connection to the controller. Use as a context manager."""

    #: whether ensure_controller started the controller this client talks to
    started = False

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")

    def set_timeout(self, seconds: Optional[float]) -> None:
        """Give up on an answer after ``seconds`` (None: wait as long as it takes)."""
        self._sock.settimeout(seconds)

    def call(self, op: str, **args: Any) -> Any:
        data = json.dumps({"op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
        try:
            self._sock.sendall(data)
            line = self._file.readline(_MAX_LINE)
        except socket.timeout as exc:
            raise errors.ControllerError(
                f"the controller did not answer {op!r} within {self._sock.gettimeout():g} s; "
                "see `fleetslurm controller status` and its log") from exc
        except OSError as exc:
            raise errors.ControllerError(
                f"lost the connection to the controller ({exc.strerror}); "
                "see `fleetslurm controller status`") from exc
        if not line:
            raise errors.ControllerError(
                "the controller closed the connection; see `fleetslurm controller status` "
                "and its log")
        reply = json.loads(line)
        if reply.get("ok"):
            return reply.get("result")
        raise _error_from(reply)

    def close(self) -> None:
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(paths: Optional[StatePaths] = None) -> Client:
    """Connect to a running controller; ControllerError when none answers,
    StoreError when the socket or its directory is not the caller's own."""
    paths = paths or state_paths()
    check_socket(paths.socket)  # another user's listener must not get our request
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(paths.socket))
    except OSError as exc:
        sock.close()
        raise errors.ControllerError(
            f"no controller answers at {paths.socket} ({exc.strerror})") from exc
    _check_peer(sock, paths.socket)
    return Client(sock)


def _check_peer(sock: socket.socket, path: Path) -> None:
    """The listener's uid (SO_PEERCRED, fixed when it listened) must be ours or
    root's: closes the gap between check_socket's look and the connect."""
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid not in (os.geteuid(), 0):
        sock.close()
        raise errors.StoreError(
            f"{path}: the process listening there (pid {pid}) runs as uid {uid}, not as you "
            f"(uid {os.geteuid()}): refusing to talk to it; remove {path.parent} (it is not "
            "your controller's), or set FLEETSLURM_HOME to a directory of your own")


def ensure_controller(config: Optional[str] = None, paths: Optional[StatePaths] = None,
                      timeout: float = 60.0) -> Client:
    """Connect, starting a controller first when none runs (the embedded default)."""
    paths = paths or state_paths()
    try:
        return connect(paths)
    except errors.ControllerError:
        pass
    client = _start_controller(config, paths, timeout)
    client.started = True
    return client


def _start_controller(config: Optional[str], paths: StatePaths, timeout: float) -> Client:
    import subprocess

    private_dir(paths.home)
    cmd = [sys.executable, "-m", "fleetslurm.daemon"]
    if config:
        cmd += ["--config", config]
    env = dict(os.environ)
    env["FLEETSLURM_HOME"] = str(paths.home)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, timeout=timeout)
    if proc.returncode not in (0, 3):  # 3: another controller won the race
        text = proc.stderr.decode(errors="replace").strip()
        raise errors.ControllerError(text or f"the controller failed to start; see {paths.log_file}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(paths)
        except errors.ControllerError:
            if time.monotonic() > deadline:
                raise errors.ControllerError(
                    f"the controller did not come up within {timeout:.0f} s; see {paths.log_file}")
            time.sleep(0.02)


Handler = Callable[[str, dict, int], Any]


class Server:
    """Accepts clients on the controller's socket; each request is passed with
    the caller's uid to ``handler`` (which may block until the controller's
    loop has answered it)."""

    def __init__(self, path: Path, handler: Handler) -> None:
        import threading

        self.path = path
        self.handler = handler
        private_dir(path.parent)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # the socket file itself: owner only
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        self._sock.listen(128)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="rpc-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed:
                    return
                continue
            import threading

            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="rpc-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        import struct

        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            f = conn.makefile("rb")
            while True:
                line = f.readline(_MAX_LINE)
                if not line:
                    return
                try:
                    req = json.loads(line)
                    op, args = str(req["op"]), dict(req.get("args") or {})
                except (ValueError, KeyError, TypeError):
                    reply = {"ok": False, "error": "ControllerError",
                             "message": "malformed request"}
                else:
                    reply = self._call(op, args, uid)
                conn.sendall(json.dumps(reply, separators=(",", ":"), default=str).encode()
                             + b"\n")
        except OSError:
            return
        finally:
            conn.close()

    def _call(self, op: str, args: dict, uid: int) -> dict:
        try:
            return {"ok": True, "result": self.handler(op, args, uid)}
        except errors.FleetError as exc:
            reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, errors.UsageError):
                reply.update(prog=exc.prog, hint=exc.hint, code=exc.code)
            if isinstance(exc, errors.TransportError):
                reply["node"] = exc.node
            return reply
        except Exception as exc:  # a bug: keep serving, tell the client
            import traceback

            traceback.print_exc()
            return {"ok": False, "error": "ControllerError",
                    "message": f"internal error in the controller: {type(exc).__name__}: {exc}"}
