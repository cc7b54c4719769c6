"""SLURM's commands inside a job, on any machine: shims and per-job sockets.

The agent writes one small executable per SLURM command into
``<workdir>/bin`` (0755): a standard-library stub that runs fleetslurm's own
command front ends (``fleetslurm.cli``), carried in the agent's archive
(``node/artifact.py``). A job launched with ``injob`` gets that directory
first on its ``PATH`` and ``FLEETSLURM_CONTROLLER`` set to a socket of its
own, ``<workdir>/injob/<key>`` (0600, its user's): the commands speak the
controller's protocol (rpc.py's JSON lines) to it, and the agent passes each
request on to the controller as an ``rpc`` event naming the job. The
controller answers as the job's owner, whom it knows from the job it
launched here; the request carries no identity. Only the job's user may
connect (the socket's mode, and SO_PEERCRED checked on every connection).

Everything runs in the agent's single-threaded poll loop: non-blocking
sockets, one request in flight per connection (rpc.py's client waits for
each answer), bounded buffers: a request line is at most MAX_LINE (the
controller's own socket's limit), and of a job's connections only one at a
time may hold more than SMALL_LINE of it, until it is answered (the others
are not read until then, as rpc.Server's big-line slots): a job's requests hold at most
about MAX_LINE + MAX_CONNECTIONS * SMALL_LINE of the agent's memory, not
MAX_CONNECTIONS * MAX_LINE. Standard library only.
"""
from __future__ import annotations

import json
import os
import select
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

from .fsio import log

#: the commands a job finds (fleetslurm.shims.COMMANDS: tests check they agree)
COMMANDS = ("sbatch", "squeue", "sinfo", "scancel", "sacct", "scontrol", "srun",
            "sacctmgr", "sshare", "sprio", "sstat")
#: fleetslurm.shims.MARKER, on each shim's second line (srun's step-0 script looks for it)
MARKER = "# fleetslurm-shim:"
#: a request line's limit: rpc.Server.MAX_LINE (a 4 MiB script, JSON-escaped,
#: and its environment; sbatch refuses a longer script itself, with SLURM's words)
MAX_LINE = 32 << 20
#: what any connection may hold of a request (rpc.Server.SMALL_LINE); one
#: connection per job at a time may hold more, up to MAX_LINE
SMALL_LINE = 256 << 10
#: connections one job may hold open at once
MAX_CONNECTIONS = 16
#: refused connections kept until their client has read why (more are closed at once)
MAX_REFUSED = 16
#: AF_UNIX's sun_path, less its terminating NUL
_MAX_SOCKET_PATH = 107

_SHIM = """{shebang}{marker} `{name}` runs fleetslurm's {name} from this machine's agent archive; written by the agent
import glob, os, sys
if sys.version_info < (3, 10):
    sys.stderr.write("{name}: error: fleetslurm's commands need Python 3.10 or newer; this "
                     "machine's agent runs %d.%d: set the machine's `python` in the fleet "
                     "config to a newer one\\n" % sys.version_info[:2])
    sys.exit(1)
found = sorted(glob.glob({pattern!r}))
if not found:
    sys.stderr.write("{name}: error: fleetslurm's agent archive is gone from " + {workdir!r}
                     + ": the controller puts it back when it next connects\\n")
    sys.exit(1)
# the commands compiled (see InJob.compile_clients), else from the archive itself
lib = os.path.join(os.path.dirname(found[-1]), "clients", os.path.basename(found[-1])[6:-4])
sys.path.insert(0, lib if os.path.isdir(lib) else found[-1])
from fleetslurm.cli.main import main
sys.argv[0] = {name!r}
sys.exit(main())
"""


# Run as ``python -IS -c _COMPILE ARCHIVE DEST``: the archive's ``fleetslurm/``
# extracted and compiled into DEST.tmpPID, renamed DEST when whole (a shim
# never sees half of it); other versions' directories removed.
_COMPILE = """import compileall, os, shutil, sys, zipfile
archive, dest = sys.argv[1], sys.argv[2]
os.umask(0o022)
parent = os.path.dirname(dest)
os.makedirs(parent, exist_ok=True)
tmp = "%s.tmp%d" % (dest, os.getpid())
with zipfile.ZipFile(archive) as z:
    for n in z.namelist():
        if n.startswith("fleetslurm/"):
            z.extract(n, tmp)
if compileall.compile_dir(tmp, quiet=2):
    try:
        os.rename(tmp, dest)
    except OSError:
        pass
shutil.rmtree(tmp, ignore_errors=True)
keep = os.path.basename(dest)
for old in os.listdir(parent):
    if old != keep and not old.startswith(keep + ".tmp"):
        shutil.rmtree(os.path.join(parent, old), ignore_errors=True)
"""


def shim_text(name: str, python: str, workdir: str) -> str:
    """The shim for command ``name``: ``python`` in isolated mode (no site,
    no PYTHON* variables: nothing of the machine's own Python packages),
    importing the commands from ``workdir``'s agent archive."""
    import glob  # (here: out of the heap every fork of the agent copies)

    if len(python) <= 120 and not any(c.isspace() for c in python):
        shebang = "#!%s -IS\n" % python
    else:  # a path a shebang line cannot take: through sh (shims.py does the same)
        import shlex

        shebang = "#!/bin/sh\n''''exec %s -IS \"$0\" \"$@\" #'''\n" % shlex.quote(python)
    return _SHIM.format(shebang=shebang, marker=MARKER, name=name, workdir=workdir,
                        pattern=os.path.join(glob.escape(workdir), "agent-*.pyz"))


def archive_of(module_file: str) -> "Optional[str]":
    """The agent archive a module was imported from (None: from a source tree)."""
    d = os.path.dirname(os.path.dirname(module_file))
    return d if d.endswith(".pyz") and os.path.isfile(d) else None


class _Conn:
    __slots__ = ("sock", "fd", "key", "cid", "inbuf", "outbuf", "waiting", "paused", "big_out")

    def __init__(self, sock: socket.socket, key: str, cid: int) -> None:
        self.sock, self.fd, self.key, self.cid = sock, sock.fileno(), key, cid
        self.inbuf = b""
        self.outbuf = b""
        self.waiting = False  # a request is with the controller
        self.paused = False  # not read: another connection of its job holds a big request
        #: its request with the controller is a big one: it keeps its job's
        #: slot until answered (the agent's queue to the controller holds
        #: one big request of a job at a time, too)
        self.big_out = False

    def mask(self) -> int:
        """The poll events it waits for."""
        return (0 if self.paused else select.POLLIN) | (select.POLLOUT if self.outbuf else 0)


class _Listener:
    __slots__ = ("sock", "key", "uid", "path", "conns", "big", "paused")

    def __init__(self, sock: socket.socket, key: str, uid: int, path: str) -> None:
        self.sock, self.key, self.uid, self.path = sock, key, uid, path
        self.conns: List[_Conn] = []
        self.big: Optional[_Conn] = None  # the one connection past SMALL_LINE
        self.paused: List[_Conn] = []  # those waiting for it to be through


class InJob:
    """The agent's in-job sockets. ``send`` queues an event for the
    controller; ``poller`` is the agent's poll object."""

    def __init__(self, workdir: str, poller: "Any", send: "Callable[[Dict[str, Any]], None]",
                 archive: "Optional[str]", python: str) -> None:
        self.workdir = workdir
        self.poller = poller
        self.send = send
        self.bin_dir: Optional[str] = None
        self.listeners: Dict[int, _Listener] = {}  # listening fd ->
        self.by_key: Dict[str, _Listener] = {}
        self.conns: Dict[int, _Conn] = {}  # connection fd ->
        self.by_cid: Dict[int, _Conn] = {}
        #: refused connections, until their client closes: fd -> (socket, job key)
        self.refused: Dict[int, Any] = {}
        self.next_cid = 1
        self.archive, self.python = archive, python
        self._shims_tried = False

    def shims(self) -> "Optional[str]":
        """The directory of the shims, written at the first job that asks
        for them (an agent whose jobs never do, the submit host's, leaves
        its workdir as it was); None without an archive to run them from."""
        if not self._shims_tried and self.archive is not None:
            self._shims_tried = True
            try:
                self.bin_dir = self._write_shims(self.archive, self.python)
            except OSError as exc:
                log(self.workdir, "no in-job commands: cannot write the shims: %s" % exc)
        return self.bin_dir

    def _write_shims(self, archive: str, python: str) -> str:
        # the archive is code only; jobs of any user run the commands from it
        os.chmod(archive, 0o644)
        bin_dir = os.path.join(self.workdir, "bin")
        os.makedirs(bin_dir, mode=0o755, exist_ok=True)
        os.chmod(bin_dir, 0o755)
        for name in COMMANDS:
            path = os.path.join(bin_dir, name)
            text = shim_text(name, python, self.workdir)
            try:
                with open(path) as f:
                    if f.read() == text:
                        continue
            except OSError:
                pass
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        self.compile_clients(archive, python)
        return bin_dir

    def compile_clients(self, archive: str, python: str) -> None:
        """Start a process (``_COMPILE``) that puts the archive's commands,
        compiled, in ``<workdir>/clients/<hash>``, unless they are there: a
        command imported from the zip is compiled on every call (zipimport
        writes no bytecode), some 50 ms for sbatch's or sacct's modules. The
        agent neither waits nor compiles in its own heap, which every fork
        copies; the shims use the archive until the directory appears."""
        name = os.path.basename(archive)
        dest = os.path.join(self.workdir, "clients", name[len("agent-"):-len(".pyz")])
        if os.path.isdir(dest):
            return
        devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
        try:
            os.posix_spawn(python, [python, "-IS", "-c", _COMPILE, archive, dest],
                           {"PATH": "/usr/bin:/bin"}, file_actions=devnull)
        except OSError as exc:
            log(self.workdir, "the commands for jobs stay uncompiled: %s" % exc)

    def fds(self) -> "List[int]":
        """Every fd held here (a supervisor closes them)."""
        return list(self.listeners) + list(self.conns) + list(self.refused)

    def socket_path(self, key: str) -> str:
        """Where job ``key``'s socket is: in the workdir, or (a path too long
        for AF_UNIX) in a directory of this agent's user under /tmp."""
        path = os.path.join(self.workdir, "injob", key)
        if len(path.encode()) <= _MAX_SOCKET_PATH:
            return path
        import hashlib

        tag = hashlib.sha256(self.workdir.encode()).hexdigest()[:12]
        return os.path.join("/tmp", "fleetslurm-injob-%d-%s" % (os.geteuid(), tag),
                            hashlib.sha256(key.encode()).hexdigest()[:24])

    def _own_dir(self, d: str) -> None:
        """``d`` exists, is ours and closed to others but for passing through."""
        try:
            os.mkdir(d, 0o711)
        except FileExistsError:
            pass
        st = os.lstat(d)
        if not os.path.isdir(d) or os.path.islink(d) or st.st_uid != os.geteuid():
            raise OSError("%s is not a directory of the agent's own" % d)
        if st.st_mode & 0o777 != 0o711:
            os.chmod(d, 0o711)

    def open_job(self, key: str, uid: "Optional[int]", gid: "Optional[int]") -> "Optional[str]":
        """Listen on job ``key``'s socket, for user ``uid`` (None: ours);
        its path, or None when it cannot be had (the job then runs without)."""
        if self.shims() is None:
            return None
        self.close_job(key)
        path = self.socket_path(key)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._own_dir(os.path.dirname(path))
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            old = os.umask(0o177)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            owner = os.geteuid() if uid is None else uid
            if owner != os.geteuid():
                os.chown(path, owner, -1 if gid is None else gid)
            sock.listen(MAX_CONNECTIONS)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log(self.workdir, "job %s: no in-job commands: socket %s: %s" % (key, path, exc))
            return None
        lst = _Listener(sock, key, owner, path)
        self.listeners[sock.fileno()] = lst
        self.by_key[key] = lst
        self.poller.register(sock.fileno(), select.POLLIN)
        return path

    def reopen(self, key: str, jobdir: str) -> None:
        """A running job adopted from an earlier agent: listen again where it
        had its socket (its commands connect anew for each request)."""
        if key in self.by_key or not os.path.exists(self.socket_path(key)):
            return
        try:
            st = os.stat(jobdir)
        except OSError:
            return
        self.open_job(key, st.st_uid, st.st_gid)

    def close_job(self, key: str) -> None:
        """Job ``key`` ended (or is forgotten): its socket and connections go."""
        lst = self.by_key.pop(key, None)
        if lst is None:
            try:  # one an earlier agent left (the job ended while none ran)
                os.unlink(self.socket_path(key))
            except OSError:
                pass
            return
        self.listeners.pop(lst.sock.fileno(), None)
        self.poller.unregister(lst.sock.fileno())
        lst.sock.close()
        try:
            os.unlink(lst.path)
        except OSError:
            pass
        for conn in list(lst.conns):
            self._drop(conn)
        for fd, (sock, k) in list(self.refused.items()):
            if k == key:
                self._forget_refused(fd)

    def on_fd(self, fd: int, events: int) -> bool:
        """Handle poll ``events`` on ``fd``; False when ``fd`` is not ours."""
        lst = self.listeners.get(fd)
        if lst is not None:
            self._accept(lst)
            return True
        if fd in self.refused:
            try:  # what it sent is not read; its end closing ends ours
                data = self.refused[fd][0].recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                data = b""
            if not data:
                self._forget_refused(fd)
            return True
        conn = self.conns.get(fd)
        if conn is None:
            return False
        if conn.paused and events & (select.POLLHUP | select.POLLERR):
            self._drop(conn)  # (poll reports a hang-up even when not asked)
            return True
        if events & select.POLLOUT:
            self._write(conn)
        if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and fd in self.conns \
                and not conn.paused:
            self._read(conn)
        return True

    def reply(self, cid: "Any", reply: "Any") -> None:
        """The controller's answer to connection ``cid`` (gone: dropped)."""
        conn = self.by_cid.get(cid) if isinstance(cid, int) else None
        if conn is None:
            return
        conn.outbuf += (json.dumps(reply, separators=(",", ":")) + "\n").encode()
        self._write(conn)

    # -- connections -----------------------------------------------------------
    def _accept(self, lst: _Listener) -> None:
        try:
            sock, _ = lst.sock.accept()
        except OSError:
            return
        sock.setblocking(False)
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
        except OSError:
            sock.close()
            return
        if uid != lst.uid:
            self._refuse_conn(sock, lst.key, "AccessDenied", "this socket belongs to job %s's "
                              "user (uid %d), not to uid %d" % (lst.key, lst.uid, uid))
            return
        if len(lst.conns) >= MAX_CONNECTIONS:
            self._refuse_conn(sock, lst.key, "ControllerError", "job %s has %d connections to "
                              "the controller open already; close some and try again"
                              % (lst.key, MAX_CONNECTIONS))
            return
        conn = _Conn(sock, lst.key, self.next_cid)
        self.next_cid += 1
        lst.conns.append(conn)
        self.conns[sock.fileno()] = conn
        self.by_cid[conn.cid] = conn
        self.poller.register(sock.fileno(), select.POLLIN)

    def _refuse_conn(self, sock: socket.socket, key: str, error: str, message: str) -> None:
        """Say why, and keep the connection until its client closes it: a
        client writes its request first, and a connection closed before that
        would tell it only "broken pipe"."""
        _refuse(sock, error, message)
        if len(self.refused) >= MAX_REFUSED:
            sock.close()
            return
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self.refused[sock.fileno()] = (sock, key)
        self.poller.register(sock.fileno(), select.POLLIN)

    def _forget_refused(self, fd: int) -> None:
        sock, _key = self.refused.pop(fd)
        self.poller.unregister(fd)
        sock.close()

    def _drop(self, conn: _Conn) -> None:
        if self.conns.pop(conn.fd, None) is not None:
            self.poller.unregister(conn.fd)
        self.by_cid.pop(conn.cid, None)
        lst = self.by_key.get(conn.key)
        if lst is not None and conn in lst.conns:
            lst.conns.remove(conn)
            if conn in lst.paused:
                lst.paused.remove(conn)
        conn.sock.close()
        if lst is not None and lst.big is conn:
            lst.big = None
            self._resume(lst)

    def _claim(self, conn: _Conn) -> None:
        """After ``conn``'s buffer changed: past SMALL_LINE it takes its job's
        big slot, or stops being read until that slot is free; back within
        SMALL_LINE it gives the slot up."""
        lst = self.by_key.get(conn.key)
        if lst is None or conn.fd not in self.conns:
            return
        if len(conn.inbuf) < SMALL_LINE and not conn.big_out:
            if conn.paused:  # (its own request went out meanwhile)
                conn.paused = False
                lst.paused.remove(conn)
                self.poller.modify(conn.fd, conn.mask())
            if lst.big is conn:
                lst.big = None
                self._resume(lst)
            return
        if lst.big is None:
            lst.big = conn
        if lst.big is not conn and not conn.paused:
            conn.paused = True
            lst.paused.append(conn)
            self.poller.modify(conn.fd, conn.mask())

    def _resume(self, lst: _Listener) -> None:
        """The job's big slot is free: read its paused connections again."""
        paused, lst.paused = lst.paused, []
        for conn in paused:
            conn.paused = False
            if conn.fd in self.conns:
                self.poller.modify(conn.fd, conn.mask())
                self._claim(conn)

    def _read(self, conn: _Conn) -> None:
        lst = self.by_key.get(conn.key)
        limit = MAX_LINE + 1 if lst is not None and lst.big is conn else SMALL_LINE
        if len(conn.inbuf) >= limit:
            return  # (not reached: such a connection holds the slot or is paused)
        try:
            data = conn.sock.recv(min(1 << 20, limit - len(conn.inbuf)))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)  # an answer still on its way is dropped with it
            return
        conn.inbuf += data
        self._next(conn)
        if conn.fd not in self.conns:
            return
        if len(conn.inbuf) > MAX_LINE:
            _refuse(conn.sock, "ControllerError", "request too large: over %d bytes (a batch "
                    "script may have at most 4 MiB)" % MAX_LINE)
            self._drop(conn)
            return
        self._claim(conn)

    def _next(self, conn: _Conn) -> None:
        """Pass the connection's next complete request on, if none is out."""
        if conn.waiting:
            return
        nl = conn.inbuf.find(b"\n")
        if nl < 0:
            return
        line, conn.inbuf = conn.inbuf[:nl], conn.inbuf[nl + 1:]
        lst = self.by_key.get(conn.key)
        conn.big_out = lst is not None and lst.big is conn
        self._claim(conn)
        try:
            req = json.loads(line)
            op, args = req["op"], req.get("args") or {}
            if not isinstance(op, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            _refuse(conn.sock, "ControllerError", 'malformed request: each line must be a '
                    'JSON object {"op": NAME, "args": {...}}')
            self._drop(conn)
            return
        conn.waiting = True
        from . import protocol

        self.send(protocol.ev_rpc(conn.key, conn.cid, op, args))

    def _write(self, conn: _Conn) -> None:
        try:
            while conn.outbuf:
                n = conn.sock.send(conn.outbuf[:1 << 20])
                conn.outbuf = conn.outbuf[n:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(conn)
            return
        self.poller.modify(conn.fd, conn.mask())
        if conn.outbuf:
            return
        conn.waiting = False
        if conn.big_out:  # answered: its job's slot may go to the next
            conn.big_out = False
            self._claim(conn)
        self._next(conn)


def _refuse(sock: socket.socket, error: str, message: str) -> None:
    """One error line in rpc.py's form (best effort; ``error`` names a class
    of fleetslurm.errors); the caller closes the connection."""
    try:
        sock.send((json.dumps({"ok": False, "error": error, "message": message})
                   + "\n").encode())
    except OSError:
        pass
