"""Real sshd "machines" on loopback addresses, for the multi-machine tests.

Each machine is one ``/usr/sbin/sshd -D`` bound only to its own address and
port (``127.0.0.2:22xx``, ``127.0.0.3:22yy``, ...), with its own ed25519 host
key, ``sshd_config``, authorized_keys (one client key shared by the pool) and
agent work directory ``<root>/work``. They all run on this host, so the sizes
they declare in ``fleet_config.json`` differ from what their agents detect;
declared resources are authoritative, which is what lets one 2-core host play
a fleet of differently sized machines.

How every process "launched through" a machine is found (see :meth:`Machine.kill`):

1. the sshd listener and its descendants (per-connection sshd processes, the
   shells/agents they exec, and supervisors/jobs still attached to an agent);
2. every session/process group recorded by a supervisor under the machine's
   root (``**/jobs/<key>/supervisor.json``: ``pid`` is the supervisor, a
   session leader, ``job_pid`` the job's process-group leader) -- this catches
   jobs whose agent already died and which were re-parented away;
3. every process whose command line mentions the machine's root directory
   (agents and supervisors of workdirs placed anywhere under it, job shells).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

SSHD = "/usr/sbin/sshd"

#: declared sizes of m1, m2, m3, m4 (later machines reuse the first)
SIZES: tuple[dict, ...] = (
    {"cpus": 2, "memory_gb": 2},
    {"cpus": 4, "memory_gb": 8},
    {"cpus": 8, "memory_gb": 16, "gpu_available": True, "gpus": 2},
    {"cpus": 2, "memory_gb": 4, "features": ["ssd"]},
)


def keygen(path: Path, comment: str) -> None:
    """A passphrase-less ed25519 key pair at ``path`` / ``path.pub``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)


def free_port(address: str, preferred: int) -> int:
    """``preferred`` when nothing listens there on ``address``, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port on {address}")


def _port_block() -> int:
    """Each pytest-xdist worker's own range of preferred ports (gw0: 0, gw1:
    10, ...): a machine keeps its port when it is killed and started again,
    and another worker's machine must not take it in between."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 10 * int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgid, sid) for every process, from /proc/PID/stat."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2:].split()
        table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]))
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _protected() -> set[int]:
    """This process and its ancestors: never ours to kill."""
    out, table, pid = set(), _proc_table(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        pid = table.get(pid, (0, 0, 0))[0]
    return out


def kill_pids(pids: Iterable[int]) -> None:
    """Stop every pid, then SIGKILL each (gone ones ignored), and wait briefly
    until they are gone. Stopped first, so the set dies as a machine does, all
    at once: a process killed early is not seen dying by one still running
    (an agent reporting its killed supervisor's job lost before the agent
    itself is killed would have that job requeued once more)."""
    pids = set(pids) - _protected()
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    deadline = time.monotonic() + 3
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if os.path.exists(f"/proc/{p}")
                and _state(p) not in ("Z", "X", "")}
        if pids:
            time.sleep(0.01)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:].split()[0].decode()
    except (OSError, ValueError, IndexError):
        return ""


class Machine:
    """One sshd "machine". Created and started by :class:`SshdPool`."""

    def __init__(self, name: str, index: int, root: Path, client_key: Path) -> None:
        self.name = name
        #: m1 -> 127.0.0.2, m2 -> 127.0.0.3, ...
        self.address = f"127.0.0.{index + 2}"
        self.port = free_port(self.address, 2200 + _port_block() + index + 2)
        self.root = root
        self.etc = root / "etc"
        self.workdir = root / "work"
        self.client_key = client_key
        self.size = dict(SIZES[index] if index < len(SIZES) else SIZES[0])
        self.etc.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(exist_ok=True)
        self.original_host_key = self.etc / "host_ed25519"
        keygen(self.original_host_key, f"{name}-host")
        self.host_key = self.original_host_key
        self._generation = 0
        self.log_path = self.etc / "sshd.log"
        shutil.copyfile(f"{client_key}.pub", self.etc / "authorized_keys")
        self.proc: Optional[subprocess.Popen] = None

    # -- what a client needs to know -------------------------------------------
    @property
    def public_key_line(self) -> str:
        """The host's public key, ``ssh-ed25519 AAAA... comment``."""
        return Path(f"{self.host_key}.pub").read_text().strip()

    @property
    def host_pattern(self) -> str:
        """The known_hosts name OpenSSH uses for a non-22 port."""
        return f"[{self.address}]:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        """What ``fleetslurm nodes trust`` records for this machine."""
        kind, b64 = self.public_key_line.split()[:2]
        return f"{self.host_pattern} {kind} {b64}"

    def config_entry(self, **overrides: object) -> dict:
        """This machine's ``machines`` entry in fleet_config.json."""
        entry: dict = {"hostname": self.address, "ip": self.address, "port": self.port,
                       **self.size, "ssh_user": "root", "ssh_key_path": str(self.client_key),
                       "workdir": str(self.workdir), "python": "python3",
                       "description": f"loopback sshd {self.name}"}
        entry.update(overrides)
        return entry

    # -- lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> Path:
        path = self.etc / "sshd_config"
        path.write_text("\n".join([
            f"ListenAddress {self.address}:{self.port}",
            "AddressFamily inet",
            f"HostKey {self.host_key}",
            f"PidFile {self.etc / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.etc / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "AllowTcpForwarding yes",
            "MaxStartups 100",
            "MaxSessions 100",
            "LogLevel ERROR",
            # bash sources ~/.bashrc for ssh commands only at shell level 1; here
            # root's .bashrc runs `pyenv rehash` (slow, and it waits on a lock
            # that a killed session can leave behind), so skip it
            "SetEnv SHLVL=1",
            "Subsystem sftp internal-sftp",
        ]) + "\n")
        return path

    def launch(self) -> None:
        """Start sshd without waiting for it to listen (see :meth:`wait_listening`)."""
        if self.running:
            return
        config = self._write_config()
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep chroot
        # -D: stay in the foreground, so this Popen *is* the listener
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(self.log_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_listening(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(f"sshd for {self.name} exited: {log[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd for {self.name} does not listen on "
                                       f"{self.address}:{self.port}") from None
                time.sleep(0.005)

    def start(self) -> None:
        """Bring the machine (back) up with its current host key."""
        self.launch()
        self.wait_listening()

    def rekey(self) -> None:
        """Give the machine a new host key (as a reinstall would) and restart sshd."""
        self._generation += 1
        self.host_key = self.etc / f"host_ed25519.{self._generation}"
        keygen(self.host_key, f"{self.name}-host-{self._generation}")
        self._stop_listener()
        self.start()

    def restore_key(self) -> None:
        """Back to the original host key (restarts sshd if it changed)."""
        if self.host_key != self.original_host_key:
            self.host_key = self.original_host_key
            self._stop_listener()
            self.start()

    def _stop_listener(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        self.proc = None

    # -- killing -----------------------------------------------------------------
    def kill(self, jobs: bool = True) -> None:
        """The machine dies: its sshd, every SSH session and agent, and (with
        ``jobs``) every supervisor and job started through it.

        With ``jobs=False`` only the link dies (sshd and agents); supervisors and
        jobs keep running, as they would when just the network drops.
        """
        self._kill(listener=True, jobs=jobs)

    def kill_sessions(self, jobs: bool = True) -> None:
        """Like :meth:`kill` but sshd keeps listening: every connection drops."""
        self._kill(listener=False, jobs=jobs)

    def _kill(self, listener: bool, jobs: bool) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        doomed: set[int] = set()
        if self.proc is not None:
            top = self.proc.pid
            stack = list(children.get(top, []))
            while stack:
                pid = stack.pop()
                if jobs:
                    doomed.add(pid)
                    stack.extend(children.get(pid, []))
                elif _comm(pid).startswith("sshd"):
                    # sshd processes and whatever they exec'd directly (the
                    # shell or agent); an agent's forked supervisors survive
                    doomed.add(pid)
                    doomed.update(c for c in children.get(pid, []))
                    stack.extend(children.get(pid, []))
        if jobs:
            doomed |= self._job_processes(table)
        if listener:
            self._stop_listener()
        kill_pids(doomed)

    def _job_processes(self, table: dict[int, tuple[int, int, int]]) -> set[int]:
        """Everything recorded by supervisors or naming this machine's root."""
        import json

        groups: set[int] = set()
        for record in self.root.rglob("supervisor.json"):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            groups.update(int(data[k]) for k in ("pid", "job_pid") if data.get(k))
        root = str(self.root)
        return {pid for pid, (_, pgid, sid) in table.items()
                if sid in groups or pgid in groups or pid in groups or root in _cmdline(pid)}

    def freeze(self) -> set[int]:
        """The machine hangs: SIGSTOP its sshd (listener and sessions), agents,
        supervisors and jobs. Returns the pids, for :meth:`thaw`."""
        table = _proc_table()
        pids = self._job_processes(table)
        if self.proc is not None:
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            stack = [self.proc.pid]
            while stack:
                pid = stack.pop()
                pids.add(pid)
                stack.extend(children.get(pid, []))
        pids -= _protected()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        return pids

    def thaw(self, pids: Iterable[int]) -> None:
        """Undo :meth:`freeze`."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass

    def reset(self) -> None:
        """After a test: no sessions or jobs, the original key, sshd up, empty workdir."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a test that froze it may have failed
        self.kill_sessions(jobs=True)
        self.restore_key()
        if not self.running:
            self.start()
        for child in self.root.iterdir():
            if child != self.etc:
                subprocess.run(["chmod", "-R", "u+rwx", str(child)], check=False,
                               stderr=subprocess.DEVNULL)
                shutil.rmtree(child, ignore_errors=True)
        self.workdir.mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"Machine({self.name!r}, {self.address}:{self.port})"


class SshdPool:
    """The session's machines, created on first use and reused by every test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client_key = root / "client_ed25519"
        keygen(self.client_key, "fleetslurm-tests")
        self.machines: list[Machine] = []

    def get(self, n: int) -> list[Machine]:
        """The first ``n`` machines, all listening."""
        while len(self.machines) < n:
            i = len(self.machines)
            self.machines.append(Machine(f"m{i + 1}", i, self.root / "machines" / f"m{i + 1}",
                                         self.client_key))
        wanted = self.machines[:n]
        for m in wanted:  # start them together: each sshd takes a few ms
            m.launch()
        for m in wanted:
            m.wait_listening()
        return wanted

    def shutdown(self) -> list[str]:
        """Kill everything; returns descriptions of processes that survived."""
        for m in self.machines:
            m.kill(jobs=True)
        root = str(self.root)
        table = _proc_table()
        kill_pids(pid for pid in table if root in _cmdline(pid))
        return [f"{pid}: {_cmdline(pid)}" for pid in _proc_table()
                if root in _cmdline(pid) and _state(pid) not in ("Z", "X", "")]
