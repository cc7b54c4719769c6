"""LocalTransport: the agent runs as a subprocess of the controller (the
embedded default, and any machine configured with ``"transport": "local"``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO, BinaryIO, Optional

from ..errors import FileMissing, FileUnreadable, NodeUnreachable, TransportError
from .base import AGENT_FILE_RE, AgentChannel, Transport, agent_file_name, agent_source
from .chunked import ReceivingFile, Transferred, part_path, send_from

__all__ = ["LocalTransport"]


class _PipeChannel(AgentChannel):
    def __init__(self, node: str, proc: subprocess.Popen) -> None:
        self.node = node
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[bytes] = proc.stdin
        self._out: IO[bytes] = proc.stdout

    def send_line(self, line: bytes) -> None:
        try:
            self._in.write(line)
            self._in.flush()
        except (OSError, ValueError) as exc:
            raise NodeUnreachable(f"node {self.node}: the agent is gone ({exc})", self.node) from exc

    def recv_line(self) -> Optional[bytes]:
        try:
            line = self._out.readline()
        except (OSError, ValueError):
            return None
        return line or None

    def close(self) -> None:
        for f in (self._in,):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self._out.close()
        except OSError:
            pass


class LocalTransport(Transport):
    """Runs the node agent on this machine."""

    def __init__(self, node: str, workdir: "str | Path", python: Optional[str] = None,
                 log_path: "str | Path | None" = None) -> None:
        self.node = node
        self.workdir = str(Path(workdir).expanduser().absolute())
        self.python = python or sys.executable
        self.shared_fs = True
        self.local_process = True
        self.log_path = log_path

    def start_agent(self) -> AgentChannel:
        try:
            os.makedirs(self.workdir, mode=0o700, exist_ok=True)
            agent = self._install_agent()
            log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
            try:
                proc = subprocess.Popen(
                    [self.python, agent, "--workdir", self.workdir],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    close_fds=True,
                    # its own session: a terminal's Ctrl-C for the client that
                    # started the controller must not reach the agent
                    start_new_session=True,
                )
            finally:
                if log is not subprocess.DEVNULL:
                    log.close()  # type: ignore[union-attr]
        except OSError as exc:
            raise TransportError(f"node {self.node}: cannot start the agent with "
                                 f"{self.python}: {exc.strerror}", self.node) from exc
        return _PipeChannel(self.node, proc)

    def _install_agent(self) -> str:
        """The agent archive in the workdir, as ``agent-<sha256[:12]>.pyz`` (written
        unless it is there already), as SSHTransport puts it on a machine; older
        agents there are removed (a running agent has read its archive already)."""
        src = agent_source()
        name = agent_file_name(src)
        path = os.path.join(self.workdir, name)
        try:
            if os.stat(path).st_size == len(src):
                return path
        except FileNotFoundError:
            pass
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(src)
        os.replace(tmp, path)  # two starting at once each write a whole file
        for old in os.listdir(self.workdir):
            if AGENT_FILE_RE.match(old) and old != name:
                try:
                    os.unlink(os.path.join(self.workdir, old))
                except OSError:
                    pass
        return path

    def put_bytes(self, data: bytes, path: str, mode: int = 0o600) -> None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise TransportError(f"node {self.node}: cannot write {path}: {exc.strerror}",
                                 self.node) from exc

    def get_bytes(self, path: str, offset: int = 0, limit: Optional[int] = None) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except OSError as exc:
            kind = FileMissing if isinstance(exc, FileNotFoundError) else FileUnreadable
            raise kind(f"node {self.node}: cannot read {path}: {exc.strerror}",
                       self.node) from exc

    def get_file(self, path: str, dest: str) -> Transferred:
        try:
            src = open(path, "rb")
            size = os.fstat(src.fileno()).st_size
        except OSError as exc:
            kind = FileMissing if isinstance(exc, FileNotFoundError) else FileUnreadable
            raise kind(f"node {self.node}: cannot read {path}: {exc.strerror}",
                       self.node) from exc
        with src, ReceivingFile(dest) as home:
            size, sha = send_from(src, home.offset, home.write, size)
            return home.finish(size, sha, self.node, path)

    def put_file(self, src: BinaryIO, path: str, mode: int = 0o600) -> Transferred:
        part = part_path(path)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with ReceivingFile(part, mode) as there:
                size, sha = send_from(src, there.offset, there.write)
                done = there.finish(size, sha, self.node, path)
            os.chmod(part, mode)
            os.replace(part, path)
        except OSError as exc:
            raise TransportError(f"node {self.node}: cannot write {path}: {exc.strerror}",
                                 self.node) from exc
        return done

    def close(self) -> None:
        pass
