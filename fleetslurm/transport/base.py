"""The transport interface: how the controller reaches one machine's agent.

Every transport gives the same three things: a JSON-lines channel to the
node agent, file transfer in the agent's work directory, and close. Files
move two ways: ``put_bytes``/``get_bytes`` for small ones (scripts, the
agent, a slice of output for ``tail``), and ``put_file``/``get_file`` for
any size: chunked (bounded memory), resumable and verified (see ``chunked``).
Nothing above this layer branches on which transport it holds. Errors from
the OS, sockets or paramiko are mapped here into fleetslurm's TransportError
family (``raise ... from exc``).
"""

from __future__ import annotations

import abc
import json
from typing import BinaryIO, Optional

from ..errors import TransportError
from ..node.artifact import AGENT_FILE_RE, agent_archive, agent_file_name
from .chunked import Transferred

__all__ = ["AgentChannel", "Transport", "Transferred", "agent_source", "agent_file_name",
           "AGENT_FILE_RE"]


def agent_source() -> bytes:
    """The node agent as shipped to machines: one zip archive, run as
    ``python3 <agent_file_name(it)> --workdir DIR`` (see ``node.artifact``)."""
    return agent_archive()


class AgentChannel(abc.ABC):
    """A JSON-lines conversation with one running node agent."""

    node: str

    @abc.abstractmethod
    def send_line(self, line: bytes) -> None:
        """Write one encoded line; raise TransportError when the link is gone."""

    @abc.abstractmethod
    def recv_line(self) -> Optional[bytes]:
        """Block until the agent writes a line; None at end of stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop talking; the agent exits on end of input, its jobs keep running."""

    def send(self, msg: dict) -> None:
        self.send_line(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def recv(self) -> Optional[dict]:
        """The next message, or None at end of stream. Garbage lines are reported."""
        while True:
            line = self.recv_line()
            if line is None:
                return None
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise TransportError(
                    f"node {self.node}: the agent wrote a line that is not JSON: "
                    f"{line[:200]!r}; check its python3 and the agent log", self.node) from None
            if isinstance(msg, dict):
                return msg


class Transport(abc.ABC):
    """One machine. ``workdir`` is the agent's work directory on that machine."""

    node: str
    workdir: str
    #: True when the machine sees the submit host's files (output lands in place)
    shared_fs: bool
    #: True when the agent is a process of the controller's own host and user
    #: (no remote login in between): a job there reaches the controller's
    #: shims and socket first on its PATH
    local_process: bool = False

    @abc.abstractmethod
    def start_agent(self) -> AgentChannel:
        """Make sure the agent code is current on the machine and start it."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, path: str, mode: int = 0o600) -> None:
        """Write a file on the machine (parents created)."""

    @abc.abstractmethod
    def get_bytes(self, path: str, offset: int = 0, limit: Optional[int] = None) -> bytes:
        """Read a file (or part of it) from the machine."""

    @abc.abstractmethod
    def get_file(self, path: str, dest: str) -> Transferred:
        """Copy the machine's file ``path`` into the local file ``dest`` in chunks,
        continuing after the bytes ``dest`` already holds (a copy cut by a lost
        link resumes there), and verify it: size and sha256 computed on the
        machine against those of ``dest``.

        Raises FileMissing / FileUnreadable for the file there; NodeUnreachable
        when the link drops (``dest`` keeps what arrived: call again);
        TransferCorrupt when ``dest`` does not match (it is removed: call again
        to copy from the start); OSError when ``dest`` cannot be written here.
        """

    @abc.abstractmethod
    def put_file(self, src: BinaryIO, path: str, mode: int = 0o600) -> Transferred:
        """Copy the open local file ``src`` (from its start) to ``path`` on the
        machine in chunks, through ``.NAME.part`` beside it (resumed after what
        that holds), verified as ``get_file`` is, then renamed into place with
        ``mode`` (parents created). Raises as ``get_file`` does."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection."""
