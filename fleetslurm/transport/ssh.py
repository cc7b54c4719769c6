"""SSHTransport: one persistent paramiko connection per machine.

The agent runs over one exec channel, files move over one SFTP session, both
on the same connection, which is opened lazily and reopened by the next
``start_agent()`` once it has died. Every paramiko/socket/OS error is turned
here into a fleetslurm error naming the machine and the fix.

Host keys are checked by ``ssh_hostkeys`` (an unknown key is refused unless
``host_key_policy`` is ``accept-new``; a changed key is always refused); the
SFTP helpers live in ``ssh_files``, the streamed copies in ``ssh_stream``,
the connection's cipher and rekey settings in ``ssh_tuning``.
paramiko is imported inside functions only: the CLI must not pay for it.
"""

from __future__ import annotations

import errno
import logging
import re
import shlex
import socket
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Optional

from ..errors import AuthenticationFailed, NodeUnreachable, TransportError, WorkdirTaken
from ..paths import DEFAULT_WORKDIR, ROOT_WORKDIR
from . import ssh_become, ssh_stream, ssh_tuning
from .base import (AGENT_FILE_RE, AgentChannel, Transferred, Transport, agent_file_name,
                   agent_source)
from .ssh_files import SFTPFiles, file_error, link_lost
from .ssh_hop import Hop
from .ssh_route import route
from .ssh_hostkeys import (HostKeyPolicy, changed_host_key_error, fingerprint, host_pattern,
                           load_known_hosts, record_host_key, recorded_host_key)

if TYPE_CHECKING:
    import paramiko

    from ..config import FleetConfig, MachineConfig
    from ..paths import StatePaths

__all__ = ["SSHTransport", "fingerprint", "host_pattern", "record_host_key"]

log = logging.getLogger(__name__)

TIMEOUT = 10.0
#: in a workdir: which fleet uses it (see SSHTransport.owner)
OWNER_FILE = "fleet-owner.json"
#: the python's version, its path, the login's uid, and the first sftp-server
#: of ssh_become.SFTP_SERVERS there (for "become": "sudo")
_PY_PROBE = ("import os, sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable); "
             "print(os.geteuid()); print(next((p for p in {} if os.path.exists(p)), ''))"
             .format(repr(list(ssh_become.SFTP_SERVERS))))
# A silently dead peer (power cut, cable) sends no RST: let the kernel notice
# within ~30 s so a blocked read ends and the controller reconnects.
_TCP_OPTS = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3),
             ("TCP_USER_TIMEOUT", 30000))


def _tail(data: bytes, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text[-limit:] or "no message"


class _SSHChannel(AgentChannel):
    """The agent's stdin/stdout over one exec channel; stderr is drained so a
    chatty agent can never fill the channel window and stall."""

    def __init__(self, transport: "SSHTransport", chan: "paramiko.Channel") -> None:
        self.node = transport.node
        self._t = transport
        self._chan = chan
        self._buf = bytearray()
        self._send_lock = threading.Lock()
        self._stderr: deque[bytes] = deque(maxlen=64)
        self._reported = False
        self._spoke = False  # has the agent written its first JSON line yet?
        threading.Thread(target=self._drain, daemon=True, name=f"stderr-{self.node}").start()

    def _drain(self) -> None:
        try:
            while True:
                data = self._chan.recv_stderr(4096)
                if not data:
                    return
                self._stderr.append(data)
                log.debug("node %s agent stderr: %s", self.node, data.decode("utf-8", "replace"))
        except Exception:  # the link is gone; recv_line reports that
            return

    def send_line(self, line: bytes) -> None:
        with self._send_lock:
            try:
                self._chan.sendall(line)
            except Exception as exc:  # paramiko raises OSError, EOFError or SSHException
                raise NodeUnreachable(f"node {self.node}: the link to the agent is gone "
                                      f"({exc or type(exc).__name__}); it will be reconnected",
                                      self.node) from exc

    def recv_line(self) -> Optional[bytes]:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl + 1])
                del self._buf[:nl + 1]
                if not self._spoke and not line.lstrip().startswith(b"{"):
                    # a chatty ~/.bashrc or motd on the machine, before the agent runs
                    log.info("node %s: ignored shell output %r", self.node, line[:200])
                    continue
                self._spoke = True
                return line
            try:
                data = self._chan.recv(65536)
            except (OSError, EOFError):
                data = b""
            if not data:
                if self._buf:
                    line, self._buf = bytes(self._buf), bytearray()
                    return line
                self._report_exit()
                return None
            self._buf += data

    def _report_exit(self) -> None:
        """At end of stream: a failed start is an error, a dropped link is None."""
        if self._reported:
            return
        self._reported = True
        if not self._chan.status_event.wait(2.0):
            return  # no exit status: the connection itself died
        # (a missing python is caught before the agent starts, by _check_python)
        status = self._chan.exit_status
        if status not in (0, -1) and self._stderr:
            raise TransportError(f"node {self.node}: the agent exited with status {status}: "
                                 f"{_tail(b''.join(self._stderr))}; see "
                                 f"{self._t.workdir}/agent.log there", self.node)

    def close(self) -> None:
        try:
            self._chan.shutdown_write()  # EOF on the agent's stdin: it exits, jobs stay
        except Exception:
            pass
        self._chan.close()


class SSHTransport(Transport):
    """One machine reached over SSH; see the module docstring."""

    def __init__(self, node: str, machine: "MachineConfig", fleet: "FleetConfig",
                 paths: "StatePaths") -> None:
        self.node = node
        self.machine = machine
        self.fleet = fleet
        self.paths = paths
        self.shared_fs = machine.shared_fs
        #: best guess until connected; the absolute remote path afterwards
        self.workdir = machine.workdir
        #: the fleet using this machine ({"cluster_id", "cluster_name", ...}):
        #: the workdir is claimed for it, and refused when another fleet has it
        self.owner: Optional[dict] = None
        #: how many times the agent file was copied (tests check content addressing)
        self.agent_uploads = 0
        #: the machine's python version, known after start_agent()
        self.python_version: Optional[str] = None
        #: that python's absolute path, the login's uid and the machine's
        #: sftp-server (the configured one, else the first found), known with it
        self.python_path = machine.python
        self.login_uid: Optional[int] = None
        self.sftp_server = machine.sftp_server or ssh_become.SFTP_SERVERS[0]
        self._lock = threading.RLock()        # connecting
        self._sftp_lock = threading.Lock()    # the one SFTP session
        self._clients: list[Any] = []          # jump hosts first, the machine last
        self._files: Optional[SFTPFiles] = None

    def _hops(self) -> list[Hop]:
        """The jump hosts (ProxyJump) then the machine."""
        return route(self.node, self.machine)

    # -- connecting ------------------------------------------------------------
    def _alive(self) -> bool:
        if not self._clients:
            return False
        t = self._clients[-1].get_transport()
        return t is not None and t.is_active()

    def _connection(self) -> Any:
        """The live SSHClient to the machine, connecting first if needed."""
        with self._lock:
            if not self._alive():
                self._drop()
                self._connect(self._hops())
            return self._clients[-1]

    def _connect(self, hops: list[Hop], scan: Optional[list] = None) -> None:
        """Connect through ``hops``; with ``scan``, only fetch the last hop's host
        key into it, unchecked and unauthenticated (for ``nodes trust``)."""
        import paramiko

        prev: Any = None
        try:
            for i, hop in enumerate(hops):
                client = None
                try:
                    if scan is None or i < len(hops) - 1:
                        client = paramiko.SSHClient()
                        self._clients.append(client)
                        # before a socket exists to leak
                        load_known_hosts(client, self.node, self.paths)
                    if prev is None:
                        sock: Any = self._socket(hop)
                    else:
                        sock = prev.get_transport().open_channel(
                            "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                            timeout=TIMEOUT)
                    if scan is not None and i == len(hops) - 1:
                        t = paramiko.Transport(sock)
                        try:
                            t.start_client(timeout=TIMEOUT)
                            scan.append(t.get_remote_server_key())
                        finally:
                            t.close()
                        return
                    assert client is not None
                    client.set_missing_host_key_policy(HostKeyPolicy(
                        self.node, self.fleet.host_key_policy, self.paths.known_hosts, hop))
                    client.connect(hop.host, hop.port, username=hop.user,
                                   key_filename=list(hop.keys) or None, allow_agent=True,
                                   look_for_keys=True, sock=sock, timeout=TIMEOUT,
                                   banner_timeout=TIMEOUT, auth_timeout=TIMEOUT,
                                   channel_timeout=TIMEOUT, **ssh_tuning.connect_options())
                except TransportError:
                    raise
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise self._map(exc, hop, client) from exc
                ssh_tuning.after_connect(client.get_transport())
                prev = client
        except BaseException:
            self._drop()
            raise

    @staticmethod
    def _socket(hop: Hop) -> socket.socket:
        sock = socket.create_connection((hop.host, hop.port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _TCP_OPTS:
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        return sock

    def _map(self, exc: BaseException, hop: Hop, client: Any) -> TransportError:
        """The one place where connection errors become fleetslurm errors."""
        import paramiko

        if isinstance(exc, paramiko.BadHostKeyException):
            return changed_host_key_error(exc, hop, self.node, self.paths)
        # after key exchange, any SSHException comes from authentication (an
        # unreadable key file, "No authentication methods available", ...)
        kex_done = client is not None and getattr(client.get_transport(), "host_key", None)
        if isinstance(exc, paramiko.AuthenticationException) or (
                kex_done and type(exc) is paramiko.SSHException):
            keys = ", ".join(hop.keys) or "ssh-agent / default ~/.ssh keys"
            extra = "" if type(exc) is paramiko.AuthenticationException else f" ({exc})"
            return AuthenticationFailed(
                f"{hop.desc}: authentication failed for user {hop.user} with key {keys}{extra}; "
                f"check ssh_user and ssh_key_path in the config, or add the public key to "
                f"~{hop.user}/.ssh/authorized_keys there", self.node)
        if isinstance(exc, ConnectionRefusedError):
            why = "connection refused; is sshd running there and the address/port right?"
        elif isinstance(exc, TimeoutError):
            why = ("connection timed out; is the machine up and the address right "
                   "(a firewall may drop the packets)?")
        elif isinstance(exc, socket.gaierror):
            why = f"cannot resolve {hop.host} ({exc.strerror}); check hostname/ip in the config"
        elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            why = "no route to host; is the machine up and on this network?"
        elif isinstance(exc, paramiko.ChannelException):
            why = f"the jump host could not connect to it ({exc.text}); check ProxyJump"
        elif isinstance(exc, (paramiko.SSHException, EOFError)):
            why = (f"SSH handshake failed ({exc or type(exc).__name__}); is an SSH server "
                   "listening at that address and port?")
        else:
            why = f"{type(exc).__name__}: {exc}"
        return NodeUnreachable(f"{hop.desc}: {why}", self.node)

    def _lost(self, exc: BaseException, doing: str) -> NodeUnreachable:
        return NodeUnreachable(f"node {self.node}: connection lost while {doing} "
                               f"({exc or type(exc).__name__}); it will be reconnected", self.node)

    # -- the agent ---------------------------------------------------------------
    def start_agent(self) -> AgentChannel:
        import paramiko

        with self._lock:
            client = self._connection()
            try:
                if self.python_version is None:
                    self._check_python(client)
                files = self._sftp_session()
                if self.machine.become:
                    ssh_become.check(self.node, client, self._exec_python, self._login_name(),
                                     self.python_path, self.sftp_server, TIMEOUT)
                with self._sftp_lock:
                    workdir = self._prepare_workdir(files)
                    agent = self._install_agent(files, workdir)
                chan = client.get_transport().open_session(timeout=TIMEOUT)
                self._exec_python(chan, [agent, "--workdir", workdir])
            except TransportError:
                raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise self._lost(exc, "starting the agent") from exc
        return _SSHChannel(self, chan)

    def _check_python(self, client: Any) -> None:
        """Run the configured python once per connection: a clear error beats an
        agent that silently never says hello."""
        py = self.machine.python
        chan = client.get_transport().open_session(timeout=TIMEOUT)
        try:
            chan.settimeout(TIMEOUT)
            chan.exec_command(shlex.join([py, "-c", _PY_PROBE]))
            out = chan.makefile("rb").read()
            err = chan.makefile_stderr("rb").read()
            status = chan.exit_status if chan.status_event.wait(TIMEOUT) else -1
        finally:
            chan.close()
        version, *more = out.decode("utf-8", "replace").strip().splitlines() or [""]
        if status != 0 or not re.fullmatch(r"\d+\.\d+\.\d+", version):
            what = "was not found or is not executable" if status in (126, 127) else "failed"
            raise TransportError(
                f"node {self.node}: python {py!r} {what} there (exit {status}: {_tail(err)}); "
                f"install python3 >= 3.8 on the machine or set \"python\" for machine "
                f"{self.node} in the config to its path", self.node)
        if tuple(int(p) for p in version.split(".")[:2]) < (3, 8):
            raise TransportError(f"node {self.node}: python {py!r} is {version}; the agent needs "
                                 f"3.8 or newer: set \"python\" for machine {self.node} in the "
                                 "config", self.node)
        if len(more) >= 3 and more[1].isdigit():
            self.python_path = more[0] or py
            self.login_uid = int(more[1])
            self.sftp_server = self.machine.sftp_server or more[2] or self.sftp_server
        self.python_version = version

    def _exec_python(self, chan: Any, argv: list[str]) -> None:
        """Run the machine's python with ``argv`` on the exec channel ``chan``:
        as the ssh account, or with ``become`` as root through sudo and the
        entry program (``ssh_become``), whose first line on stdin is sent here."""
        if not self.machine.become:
            chan.exec_command(shlex.join([self.machine.python, *argv]))
            return
        self._sftp_session()  # the entry is installed with the session
        chan.exec_command(shlex.join(ssh_become.sudo_argv(self.python_path)))
        chan.sendall(ssh_become.request_line(argv))

    def _login_name(self) -> str:
        return self._hops()[-1].user

    @property
    def privileged(self) -> bool:
        """Does the agent run as root (a root login, or ``become``)? Known once
        connected."""
        return bool(self.machine.become) or self.login_uid == 0

    def _sftp_session(self) -> SFTPFiles:
        """The connection's one SFTP session (reconnecting first when it died).
        Lock order is always ``_lock`` then ``_sftp_lock``."""
        with self._lock:
            client = self._connection()
            if self._files is None and self.machine.become:
                if self.python_version is None:
                    self._check_python(client)  # finds the python and sftp-server paths
                sftp = ssh_become.open_sftp(self.node, client, self._login_name(),
                                            self.python_path, self.sftp_server, TIMEOUT)
                files = SFTPFiles(sftp, self.node, self._file_error)
                try:
                    ssh_become.install_entry(files, self._file_error)
                except BaseException:
                    files.close()
                    raise
                self._files = files
            elif self._files is None:
                try:
                    self._files = SFTPFiles(client.open_sftp(), self.node, self._file_error)
                except Exception as exc:
                    raise TransportError(f"node {self.node}: cannot open SFTP ({exc}); enable "
                                         "the sftp subsystem in the machine's sshd_config",
                                         self.node) from exc
            return self._files

    def _prepare_workdir(self, files: SFTPFiles) -> str:
        """The absolute workdir (``~`` is the remote home), created 0700; a
        privileged agent's default one under ROOT_WORKDIR (see there), unless
        its old place in the home exists (it has runs)."""
        wd = files.absolute(self.machine.workdir)
        default = self.fleet.machines.get(self.node)
        if (self.privileged and default is not None
                and "workdir" not in default.model_fields_set
                and (self.machine.workdir + "/").startswith(DEFAULT_WORKDIR + "/")):
            if self._exists(files, wd):
                log.info("node %s: the agent keeps its workdir %s (it was there before %s "
                         "became a privileged agent's default)", self.node, wd, ROOT_WORKDIR)
            else:
                wd = ROOT_WORKDIR + self.machine.workdir[len(DEFAULT_WORKDIR):]
                ssh_become.root_dirs(files, wd, self._file_error)
        files.makedirs(wd)
        if self.owner is not None:
            self._claim_workdir(files, wd, self.owner)
        self.workdir = wd
        return wd

    def _claim_workdir(self, files: SFTPFiles, wd: str, owner: dict) -> None:
        """Write ``owner`` into the workdir unless it is there already (created
        exclusively: of two fleets starting at once, one wins); a workdir of
        another fleet raises WorkdirTaken naming that fleet."""
        import json

        import paramiko

        path = f"{wd}/{OWNER_FILE}"
        for _ in range(3):
            try:
                with files.sftp.open(path, "r") as f:
                    text = f.read(65536)
            except FileNotFoundError:
                text = None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise self._file_error(exc, path, "read") from exc
            if text is not None:
                try:
                    theirs = json.loads(text)
                except ValueError:
                    theirs = None
                if not isinstance(theirs, dict) or not theirs.get("cluster_id"):
                    raise WorkdirTaken(
                        f"node {self.node}: workdir {wd} has an unreadable {OWNER_FILE}; if no "
                        f"other fleet uses this workdir, delete that file", self.node)
                if theirs["cluster_id"] == owner["cluster_id"]:
                    return
                raise WorkdirTaken(
                    f"node {self.node}: workdir {wd} belongs to fleet "
                    f"{theirs.get('cluster_name')!r} (cluster id {theirs['cluster_id']}, "
                    f"controller {theirs.get('controller')}, config {theirs.get('config')}); "
                    f"two fleets must not share a workdir (each would kill the other's jobs): "
                    f"give machine {self.node} another \"workdir\" in this fleet's config "
                    f"(or, if that fleet is gone for good, delete {path} there)", self.node)
            try:
                with files.sftp.open(path, "wx") as f:
                    f.write(json.dumps(owner, indent=1).encode() + b"\n")
                return
            except OSError as exc:
                if getattr(exc, "errno", None) not in (None, errno.EEXIST) and \
                        str(exc) != "Failure":
                    raise self._file_error(exc, path, "write") from exc
                # (SFTP says only "Failure" when the file appeared meanwhile): read it
            except (EOFError, paramiko.SSHException) as exc:
                raise self._file_error(exc, path, "write") from exc
        raise WorkdirTaken(f"node {self.node}: cannot claim workdir {wd} ({OWNER_FILE} keeps "
                           "changing): is another fleet starting on it?", self.node)

    def _install_agent(self, files: SFTPFiles, workdir: str) -> str:
        """Copy the agent archive as ``agent-<sha256[:12]>.pyz`` unless it is
        there already, and remove older agents."""
        sftp = files.sftp
        src = agent_source()
        name = agent_file_name(src)
        path = f"{workdir}/{name}"
        try:
            if sftp.stat(path).st_size == len(src):
                return path
        except FileNotFoundError:
            pass
        files.write(path, src, 0o600)
        self.agent_uploads += 1
        for old in sftp.listdir(workdir):
            if AGENT_FILE_RE.match(old) and old != name:
                try:
                    sftp.remove(f"{workdir}/{old}")  # a running agent has it loaded already
                except OSError:
                    pass
        return path

    def _exists(self, files: SFTPFiles, path: str) -> bool:
        import paramiko

        try:
            files.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._file_error(exc, path, "read") from exc

    # -- files -------------------------------------------------------------------
    def _file_error(self, exc: BaseException, path: str, doing: str) -> TransportError:
        if not self._alive() or link_lost(exc):
            return self._lost(exc, f"trying to {doing} {path}")
        user = "root" if self.machine.become else self.machine.ssh_user
        return file_error(self.node, user, exc, path, doing)

    def put_bytes(self, data: bytes, path: str, mode: int = 0o600) -> None:
        files = self._sftp_session()
        with self._sftp_lock:
            files.write(path, data, mode)

    def get_bytes(self, path: str, offset: int = 0, limit: Optional[int] = None) -> bytes:
        files = self._sftp_session()
        with self._sftp_lock:
            return files.read(path, offset, limit)

    def get_file(self, path: str, dest: str) -> Transferred:
        return ssh_stream.get_file(self, path, dest)

    def put_file(self, src: BinaryIO, path: str, mode: int = 0o600) -> Transferred:
        return ssh_stream.put_file(self, src, path, mode)

    # -- trust ---------------------------------------------------------------------
    def scan_host_key(self) -> tuple[str, Any]:
        """The machine's host key without checking it (``fleetslurm nodes trust``):
        ``(known_hosts name, key)``. Jump hosts on the way are checked as usual."""
        hops = self._hops()
        found: list[Any] = []
        with self._lock:
            self._drop()
            try:
                self._connect(hops, scan=found)
            finally:
                self._drop()
        return hops[-1].pattern, found[0]

    def recorded_host_key(self, pattern: str) -> Optional[tuple[Path, list[Any]]]:
        """The first known_hosts file listing ``pattern``, and its keys there."""
        return recorded_host_key(self.node, self.paths, pattern)

    def _drop(self) -> None:
        files, self._files = self._files, None
        clients, self._clients = self._clients, []
        self.python_version = None
        self.login_uid = None
        for obj in [files, *reversed(clients)]:
            try:
                if obj is not None:
                    obj.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()
