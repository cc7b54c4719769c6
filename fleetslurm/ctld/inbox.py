"""What reaches the controller's loop through its inbox: one frozen dataclass
per kind of message, dispatched by type (``loop.Controller.step``).

Clients' requests come from the RPC threads (:class:`Request`); link news and
agent messages from each machine's :class:`~.nodelink.NodeLink` threads;
:class:`Staged` and :class:`Collected` from the background copies (staging,
collect); :class:`Wake` only wakes the loop (a stop). Link messages carry
the link's generation: news from a channel already dropped is ignored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

__all__ = ["Pending", "Request", "Wake", "Connected", "ConnectFailed", "LinkLost",
           "AgentMessage", "Staged", "Collected", "Message", "LinkMessage"]


class Pending:
    """A client request waiting for the loop's answer: its RPC thread waits
    on ``event`` for ``result`` or ``error``; or, without a thread waiting
    (``ctld/injob.py``), ``then(pending)`` is called once it is answered."""

    __slots__ = ("op", "args", "uid", "event", "result", "error", "then")

    def __init__(self, op: str, args: dict, uid: int,
                 then: Optional[Callable[["Pending"], None]] = None) -> None:
        self.op, self.args, self.uid = op, args, uid
        self.event = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.then = then

    def done(self) -> None:
        """Answered (``result`` or ``error`` set): wake the waiter, or call ``then``."""
        self.event.set()
        if self.then is not None:
            self.then(self)


@dataclass(frozen=True)
class Request:
    """A client request that changes state (queries never reach the loop)."""

    pending: Pending


@dataclass(frozen=True)
class Wake:
    """Nothing to do: wakes the loop (so that it sees a stop)."""


@dataclass(frozen=True)
class Connected:
    """The link to ``node``'s agent is up (the hello request goes out next)."""

    node: str
    gen: int


@dataclass(frozen=True)
class ConnectFailed:
    """Connecting to ``node`` failed: ``error`` says why, ``kind`` is the
    error's class name (some kinds are definitive: the machine refuses us)."""

    node: str
    gen: int
    error: str
    kind: str


@dataclass(frozen=True)
class LinkLost:
    """The link to ``node``'s agent broke (or the agent closed it)."""

    node: str
    gen: int
    error: str


@dataclass(frozen=True)
class AgentMessage:
    """One message from ``node``'s agent (an event: ``msg["ev"]``)."""

    node: str
    gen: int
    msg: dict


@dataclass(frozen=True)
class Staged:
    """A run's staged input files were put on ``node`` (``error`` empty), or
    not: ``fatal`` fails the job, else the agent's next hello launches the
    run again. ``machine``: the fault was the machine's (it is drained, the
    job requeued), not the job's or the controller's own (the job fails).
    ``launch`` is the launch message to send once staged."""

    node: str
    task_id: int
    run_key: str
    launch: dict
    error: str
    fatal: bool
    machine: bool = False


@dataclass(frozen=True)
class Collected:
    """A run's output was copied home from ``node`` (``error`` empty), or not;
    with ``kept`` the agent keeps the run's directory aside."""

    node: str
    task_id: int
    run_key: str
    error: str
    kept: bool


LinkMessage = Union[Connected, ConnectFailed, LinkLost, AgentMessage]
Message = Union[Request, Wake, Connected, ConnectFailed, LinkLost, AgentMessage, Staged,
                Collected]
