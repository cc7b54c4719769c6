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
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Any, Callable, Optional

from . import errors
from .paths import StatePaths, check_socket, lab_paths, private_dir, public_dir, state_paths

__all__ = ["Client", "Server", "answer", "connect", "ensure_controller", "Target", "target"]

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

    def __init__(self, sock: socket.socket, proc: Any = None) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        #: the ``ssh HOST fleetslurm lab bridge`` this client talks through
        self._proc = proc

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
            if self._proc is not None:
                raise errors.ControllerLost(self._bridge_failure()) from exc
            raise errors.ControllerLost(
                f"lost the connection to the controller ({exc.strerror}); "
                "see `fleetslurm controller status`") from exc
        if not line:
            if self._proc is not None:
                raise errors.ControllerLost(self._bridge_failure())
            raise errors.ControllerLost(
                "the controller closed the connection; see `fleetslurm controller status` "
                "and its log")
        reply = json.loads(line)
        if reply.get("ok"):
            return reply.get("result")
        raise _error_from(reply)

    def _bridge_failure(self) -> str:
        """What ssh (or the bridge on the head) said when the connection ended."""
        proc, self._proc = self._proc, None
        self._sock.close()
        try:
            proc.wait(timeout=10)
        except Exception:
            proc.kill()
            proc.wait()
        said = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        proc.stderr and proc.stderr.close()
        where = " ".join(proc.args) if isinstance(proc.args, list) else str(proc.args)
        return (f"the connection through `{where}` ended (exit {proc.returncode})"
                + (f": {said}" if said else "") + "; check that `ssh` to the head works "
                "without a password (keys or agent, ~/.ssh/config) and that `fleetslurm lab "
                "status` there says the lab's controller runs")

    def close(self) -> None:
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass
        proc, self._proc = self._proc, None
        if proc is not None:  # our end closed: ssh sees EOF, the bridge ends
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Target:
    """Which controller a command talks to (see :func:`target`).

    ``kind``: ``personal`` (the caller's own, started on demand: ``paths``),
    ``lab`` (the lab's, at ``paths.socket``), ``socket`` (a socket path named
    by FLEETSLURM_CONTROLLER) or ``ssh`` (``ssh`` to ``host``, then ``fleetslurm
    lab bridge`` there). Only a personal controller is ever started by a client."""

    def __init__(self, kind: str, paths: Optional[StatePaths] = None,
                 owners: tuple[int, ...] = (), ssh: Optional[dict] = None) -> None:
        self.kind = kind
        self.paths = paths
        self.owners = owners
        self.ssh = ssh or {}

    def __repr__(self) -> str:
        return f"Target({self.kind!r}, {self.paths!r}, {self.ssh!r})"

    def describe(self) -> str:
        if self.kind == "ssh":
            return f"ssh://{self.ssh['dest']}" + (f":{self.ssh['port']}" if self.ssh.get(
                "port") else "")
        return str(self.paths.socket) if self.paths else "?"


def _parse_ssh(value: str) -> dict:
    """``ssh://[user@]host[:port]`` -> {"dest": "[user@]host", "port": port or None}."""
    rest = value[len("ssh://"):].rstrip("/")
    port = None
    if rest.count(":") == 1:
        rest, _, port_text = rest.partition(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise errors.ConfigError(
                f"FLEETSLURM_CONTROLLER={value}: {port_text!r} is not a port; write "
                "ssh://[user@]host[:port]")
        port = int(port_text)
    user, _, host = rest.rpartition("@")
    if not host or host.startswith("-") or user.startswith("-") or any(
            c.isspace() for c in rest):
        raise errors.ConfigError(f"FLEETSLURM_CONTROLLER={value}: not ssh://[user@]host[:port]")
    return {"dest": rest, "port": port}


def target(environ: Optional[dict] = None) -> Target:
    """The controller to use, in this order: FLEETSLURM_CONTROLLER
    (``personal``, a socket path, or ``ssh://[user@]host[:port]``); the lab's
    socket when the lab's config (``/etc/fleetslurm/fleet_config.json``) exists;
    else the caller's own personal controller."""
    env = os.environ if environ is None else environ
    value = (env.get("FLEETSLURM_CONTROLLER") or "").strip()
    lab = lab_paths(env)  # type: ignore[arg-type]
    if env.get("FLEETSLURM_STEPS_DIR") and env.get("FLEETSLURM_CONTROLLER_HOST"):
        # inside a job on its controller's host: FLEETSLURM_HOME (set by the
        # launch) names the controller that started it, whatever the
        # submitter's exported FLEETSLURM_CONTROLLER said (ssh://head, personal)
        home = state_paths(env)  # type: ignore[arg-type]
        if lab.configured() and home.home == lab.state_home:
            return Target("lab", lab.state(), lab.listener_uids())
        return Target("personal", home)
    if value == "personal":
        return Target("personal", state_paths(env))  # type: ignore[arg-type]
    if value.startswith("ssh://"):
        return Target("ssh", ssh=_parse_ssh(value))
    if value:
        if not value.startswith("/"):
            raise errors.ConfigError(
                f"FLEETSLURM_CONTROLLER={value}: use `personal`, the absolute path of a "
                "controller's socket, or ssh://[user@]host[:port]")
        sock = Path(value)
        owners = (os.geteuid(), 0) + (lab.listener_uids() if lab.configured() else ())
        return Target("socket", StatePaths(sock.parent, socket=sock), owners)
    if lab.configured():
        return Target("lab", lab.state(), lab.listener_uids())
    return Target("personal", state_paths(env))  # type: ignore[arg-type]


def connect(paths: Optional[StatePaths] = None) -> Client:
    """Connect to a running controller (``paths``, else the one :func:`target`
    names); ControllerError when none answers, StoreError when the socket or
    its directory is not the caller's own (or the lab's)."""
    if paths is None:
        tgt = target()
        if tgt.kind == "ssh":
            return _connect_ssh(tgt)
        if tgt.kind != "personal":
            return _connect_socket(tgt.paths.socket, tgt.owners)  # type: ignore[union-attr]
        paths = tgt.paths
    owners = None
    if paths.public:  # type: ignore[union-attr]
        lab = lab_paths()
        owners = (os.geteuid(),) + lab.listener_uids()
    return _connect_socket(paths.socket, owners)  # type: ignore[union-attr]


def _connect_socket(path: Path, owners: Optional[tuple[int, ...]]) -> Client:
    check_socket(path, owners)  # another user's listener must not get our request
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise errors.ControllerError(
            f"no controller answers at {path} ({exc.strerror})") from exc
    _check_peer(sock, path, owners)
    return Client(sock)


#: what runs on the head for ``ssh://``: FLEETSLURM_REMOTE_COMMAND replaces it
#: (fleetslurm in a virtualenv that a non-interactive ssh session's PATH lacks)
BRIDGE_COMMAND = "fleetslurm lab bridge"


def _connect_ssh(tgt: Target) -> Client:
    """``ssh [-p PORT] [user@]host fleetslurm lab bridge``, with the user's
    own ssh (keys, agent, ~/.ssh/config), never asking for a password; its
    stdin and stdout are one end of a socket pair, so the client speaks the
    same JSON lines as over the Unix socket."""
    import shutil
    import subprocess

    ssh = shutil.which("ssh")
    if ssh is None:
        raise errors.ConfigError(
            f"FLEETSLURM_CONTROLLER={tgt.describe()} needs the `ssh` command, which is not on "
            "PATH; install OpenSSH's client")
    remote = os.environ.get("FLEETSLURM_REMOTE_COMMAND") or BRIDGE_COMMAND
    cmd = [ssh, "-o", "BatchMode=yes", "-T"]
    if tgt.ssh.get("port"):
        cmd += ["-p", str(tgt.ssh["port"])]
    cmd += ["--", tgt.ssh["dest"], remote]
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(cmd, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        ours.close()
        raise errors.ControllerError(f"cannot run {ssh}: {exc.strerror}") from None
    finally:
        theirs.close()
    return Client(ours, proc)


def _check_peer(sock: socket.socket, path: Path,
                owners: Optional[tuple[int, ...]] = None) -> None:
    """The listener's uid (SO_PEERCRED, fixed when it listened) must be ours or
    root's (or the lab's service account's, ``owners``): closes the gap
    between check_socket's look and the connect."""
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid not in (owners or (os.geteuid(), 0)):
        sock.close()
        raise errors.StoreError(
            f"{path}: the process listening there (pid {pid}) runs as uid {uid}, not as you "
            f"(uid {os.geteuid()})" + (" nor as the lab's service account" if owners else "")
            + f": refusing to talk to it; remove {path.parent} (it is not "
            "your controller's), or set FLEETSLURM_HOME to a directory of your own")


def ensure_controller(config: Optional[str] = None, paths: Optional[StatePaths] = None,
                      timeout: float = 60.0) -> Client:
    """Connect, starting a controller first when none runs (the embedded
    default): only a personal one. The lab's controller (and any named by
    FLEETSLURM_CONTROLLER but ``personal``) is never started by a client: one
    that does not answer is an error saying what to do."""
    if paths is None:
        tgt = target()
        if tgt.kind != "personal":
            return _connect_shared(tgt)
        paths = tgt.paths
    assert paths is not None
    if paths.public:
        return _connect_shared(Target("lab", paths, lab_paths().listener_uids()))
    try:
        return connect(paths)
    except errors.ControllerError:
        pass
    client = _start_controller(config, paths, timeout)
    client.started = True
    return client


def _connect_shared(tgt: Target) -> Client:
    """A connection to the lab's controller (or one named by
    FLEETSLURM_CONTROLLER); never starts one."""
    try:
        if tgt.kind == "ssh":
            return _connect_ssh(tgt)
        return _connect_socket(tgt.paths.socket, tgt.owners)  # type: ignore[union-attr]
    except errors.ControllerError as exc:
        if tgt.kind == "lab":
            raise errors.ControllerError(
                f"the lab's controller does not answer at {tgt.paths.socket} "  # type: ignore[union-attr]
                f"({str(exc).rpartition('(')[2].rstrip(')')}): this machine has a lab "
                f"(its config is {lab_paths().config}), so no private controller is started; "
                "see `fleetslurm lab status`, and ask the lab's admin to start it "
                "(`systemctl start fleetslurm`, or `fleetslurm lab start` as root); "
                "FLEETSLURM_CONTROLLER=personal uses a controller of your own instead") from None
        raise errors.ControllerError(
            f"{exc}: FLEETSLURM_CONTROLLER={os.environ.get('FLEETSLURM_CONTROLLER')} names "
            "that controller, so no private one is started; start it, or unset "
            "FLEETSLURM_CONTROLLER") from None


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


if TYPE_CHECKING:
    Handler = Callable[[str, dict, int], Any]


class _Refused(Exception):
    """A connection the server answers with one error line, then closes."""


class Server:
    """Accepts clients on the controller's socket; each request is passed with
    the caller's uid to ``handler`` (which may block until the controller's
    loop has answered it).

    One thread per connection, within limits, so no client can take the
    controller's memory or threads: a request line of at most ``max_line``
    bytes (lines over ``small_line`` are read ``big_slots`` at a time, which
    bounds the memory all connections together hold), ``idle_timeout``
    seconds for the next request, at most ``max_per_uid`` connections served
    per user (the next ``max_parked`` wait, without a thread, for one of that
    user's to close; past that a connection gets an error line and is closed)
    and ``max_connections`` in all (further clients wait in the listen
    queue): a burst is slowed down, not refused, and no user can take every
    connection. A connection that sends something that is not a request gets
    an error line and is closed at once."""

    #: a 4 MiB script (SLURM's max_script_size), JSON-escaped, and its environment
    MAX_LINE = 32 * 1024 * 1024
    SMALL_LINE = 256 * 1024
    BIG_SLOTS = 2
    IDLE_TIMEOUT = 60.0
    MAX_CONNECTIONS = 256
    MAX_PER_UID = 128
    MAX_PARKED = 256

    def __init__(self, path: Path, handler: Handler, *, max_line: Optional[int] = None,
                 small_line: Optional[int] = None, big_slots: Optional[int] = None,
                 idle_timeout: Optional[float] = None, max_connections: Optional[int] = None,
                 max_per_uid: Optional[int] = None, max_parked: Optional[int] = None,
                 public: bool = False, identity: bool = False) -> None:
        import threading

        self.path = path
        self.handler = handler
        #: call ``handler(op, args, uid, gid)``: the caller's gid from SO_PEERCRED too
        self.identity = identity
        self.max_line = max_line or self.MAX_LINE
        self.small_line = small_line or self.SMALL_LINE
        self.idle_timeout = idle_timeout or self.IDLE_TIMEOUT
        self.max_connections = max_connections or self.MAX_CONNECTIONS
        self.max_per_uid = max_per_uid or self.MAX_PER_UID
        self.max_parked = max_parked or self.MAX_PARKED
        #: uid -> connections waiting for one of that user's to close
        self._parked: dict[int, list[socket.socket]] = {}
        self._big = threading.BoundedSemaphore(big_slots or self.BIG_SLOTS)
        self._lock = threading.Condition()  # notified when a connection closes
        self._open: dict[int, int] = {}  # uid -> open connections
        self._answering = 0  # requests read and not yet answered
        self._gids: dict[int, int] = {}  # id(parked connection) -> its peer's gid
        # a lab's socket: every local user may connect (its directory 0755,
        # the socket 0666); who each one is comes from SO_PEERCRED, per request
        (public_dir if public else private_dir)(path.parent)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # the socket file itself: owner only
        try:
            self._sock.bind(str(path))
            if public:
                os.chmod(path, 0o666)
        finally:
            os.umask(old)
        self._sock.listen(1024)  # where a burst waits while all connections are taken
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="rpc-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, drain: float = 5.0) -> None:
        """Stop accepting; wait up to ``drain`` seconds for the requests being
        answered to get their answers out. Without the wait a ``shutdown``'s
        own answer raced the process's exit and the caller read a closed
        connection instead of its "ok"."""
        import time

        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        deadline = time.monotonic() + drain
        with self._lock:
            while self._answering and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            parked = [c for waiting in self._parked.values() for c in waiting]
            self._parked.clear()
            self._lock.notify_all()
        for conn in parked:
            conn.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    def connections(self) -> int:
        """How many client connections are open now."""
        with self._lock:
            return sum(self._open.values())

    def _accept_loop(self) -> None:
        import struct

        while not self._closed:
            with self._lock:
                while sum(self._open.values()) >= self.max_connections and not self._closed:
                    self._lock.wait(1.0)
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)  # out of file descriptors: do not spin
                continue
            try:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
                _pid, uid, gid = struct.unpack("3i", creds)
                self._gids[id(conn)] = gid  # read by _leave if the connection is parked
                serve = self._admit(uid, conn)
            except (OSError, _Refused) as exc:
                self._gids.pop(id(conn), None)
                if isinstance(exc, _Refused):
                    self._refuse(conn, str(exc))
                conn.close()
                continue
            if serve:
                self._gids.pop(id(conn), None)
                self._start(conn, uid, gid)

    def _start(self, conn: socket.socket, uid: int, gid: int = -1) -> None:
        import threading

        threading.Thread(target=self._serve, args=(conn, uid, gid), daemon=True,
                         name="rpc-conn").start()

    def _admit(self, uid: int, conn: socket.socket) -> bool:
        """Count the connection in (True: serve it now) or park it (False)."""
        with self._lock:
            if self._open.get(uid, 0) < self.max_per_uid:
                self._open[uid] = self._open.get(uid, 0) + 1
                return True
            parked = self._parked.setdefault(uid, [])
            if len(parked) >= self.max_parked:
                raise _Refused(f"too many connections from your user ({self.max_per_uid} "
                               f"served, {self.max_parked} waiting) to the controller; "
                               "close some and try again")
            parked.append(conn)
            return False

    def _leave(self, uid: int) -> None:
        """A connection of ``uid`` closed: its slot goes to that user's
        oldest waiting connection, else back to everyone."""
        with self._lock:
            parked = self._parked.get(uid)
            nxt = parked.pop(0) if parked else None
            if parked is not None and not parked:
                del self._parked[uid]
            if nxt is None:
                self._open[uid] -= 1
                if not self._open[uid]:
                    del self._open[uid]
                self._lock.notify_all()
        if nxt is not None and not self._closed:
            self._start(nxt, uid, self._gids.pop(id(nxt), -1))
        elif nxt is not None:
            nxt.close()

    @staticmethod
    def _refuse(conn: socket.socket, message: str) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(json.dumps({"ok": False, "error": "ControllerError",
                                     "message": message}).encode() + b"\n")
        except OSError:
            pass

    def _read_line(self, conn: socket.socket, buf: bytearray) -> tuple[Optional[bytes], bool]:
        """The next request line (None at the end) and whether it holds one
        of the big-line slots (the caller releases it once answered).
        _Refused for a line over ``max_line`` or no slot within the idle time."""
        big = False
        seen = 0
        try:
            while True:
                i = buf.find(b"\n", seen)
                if i >= 0:
                    line = bytes(buf[:i])
                    del buf[:i + 1]
                    return line, big
                seen = len(buf)
                if seen > self.max_line:
                    raise _Refused(f"request too large: over {self.max_line} bytes (a batch "
                                   "script may have at most 4 MiB)")
                if not big and seen > self.small_line:
                    if not self._big.acquire(timeout=self.idle_timeout):
                        raise _Refused("the controller is busy reading other large requests; "
                                       "try again")
                    big = True
                chunk = conn.recv(min(1 << 20, self.max_line + 1 - seen))
                if not chunk:
                    if big:
                        self._big.release()
                    return None, False  # a request cut off is no request
                buf += chunk
        except BaseException:
            if big:
                self._big.release()
            raise

    def _serve(self, conn: socket.socket, uid: int, gid: int = -1) -> None:
        buf = bytearray()
        try:
            conn.settimeout(self.idle_timeout)
            while True:
                line, big = self._read_line(conn, buf)
                if line is None:
                    return
                try:
                    try:
                        req = json.loads(line)
                        op, args = req["op"], req.get("args")
                        if not isinstance(op, str) or not isinstance(args, (dict, type(None))):
                            raise TypeError
                    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                        raise _Refused("malformed request: each line must be a JSON object "
                                       '{"op": NAME, "args": {...}}') from None
                    with self._lock:
                        self._answering += 1
                    try:
                        reply = self._call(op, args or {}, uid, gid)
                        conn.sendall(json.dumps(reply, separators=(",", ":"),
                                                default=str).encode() + b"\n")
                    finally:
                        with self._lock:
                            self._answering -= 1
                            self._lock.notify_all()
                finally:
                    if big:
                        self._big.release()
        except _Refused as exc:
            self._refuse(conn, str(exc))
        except OSError:  # idle too long (socket.timeout), or the client went away
            return
        finally:
            self._leave(uid)
            conn.close()

    def _call(self, op: str, args: dict, uid: int, gid: int = -1) -> dict:
        if self.identity:
            return answer(self.handler, op, args, uid, gid)
        return answer(lambda o, a, u, _g: self.handler(o, a, u), op, args, uid, gid)


def answer(handler: Callable[[str, dict, int, int], Any], op: str, args: dict, uid: int,
           gid: int = -1) -> dict:
    """The reply object for one request: ``handler(op, args, uid, gid)``'s
    result, or the error it raised as the client rebuilds it (``_error_from``).
    The socket's requests and those from inside jobs on other machines
    (``ctld/injob.py``) are answered by this one function."""
    try:
        return {"ok": True, "result": handler(op, args, uid, gid)}
    except errors.FleetError as exc:
        reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, errors.UsageError):
            reply.update(prog=exc.prog, hint=exc.hint, code=exc.code)
        if isinstance(exc, errors.TransportError):
            reply["node"] = exc.node
        return reply
    except Exception as exc:  # a bug: keep serving, tell the client
        return {"ok": False, "error": "ControllerError",
                "message": str(errors.internal_error(exc))}
