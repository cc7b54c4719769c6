"""NodeLink: the controller's connection to one machine's agent.

Connecting and reading happen in background threads that only post messages
to the controller's inbox; all decisions stay in the controller's ``step``.
Every message carries the link's generation, so news from a dropped channel
is never mistaken for news from the current one.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Any, Optional

from ..errors import FleetError, TransportError
from ..transport.base import AgentChannel, Transport
from .inbox import AgentMessage, ConnectFailed, Connected, LinkLost

__all__ = ["NodeLink", "QUIET_ACKS", "LATER_EVENTS"]

#: the agent's acknowledgements of a request the controller acts on no
#: further (agent_events.on_agent has no branch for them): only news that the
#: machine answers
QUIET_ACKS = frozenset({"forgotten", "cancelling", "signalled", "limit_set"})
#: seconds within which such an acknowledgement is not passed on after an
#: earlier message from the same channel (the machine's liveness, last_heard,
#: is then at most this late; node timeouts are counted in heartbeats)
ACK_NEWS_S = 1.0
#: agent events that need no step of their own: `started` only records the
#: run's pid (its start was committed before its launch was sent), so it
#: waits for the loop's next step, at the latest its tick (at most a
#: second), instead of costing every job a transaction of its own
LATER_EVENTS = frozenset({"started"})


class NodeLink:
    """One machine. ``status``: ``connecting`` | ``up`` | ``lost``."""

    def __init__(self, name: str, transport: Transport, inbox: "queue.Queue[Any]",
                 later: "Optional[collections.deque[Any]]" = None) -> None:
        self.name = name
        self.transport = transport
        self.inbox = inbox
        #: where news that needs no step of its own waits for the loop's next
        #: one (LATER_EVENTS; None: the inbox, at once)
        self.later = later
        self.status = "lost"
        self.generation = 0
        self.channel: Optional[AgentChannel] = None
        self.last_heard: Optional[float] = None
        self.last_attempt: float = float("-inf")
        #: when this controller first tried to reach it (see ctld.health.periodic)
        self.first_attempt: Optional[float] = None
        self.failures = 0
        self.error: str = ""
        self.facts: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- connecting (background) ---------------------------------------------
    def connect(self, now: float, synchronous: bool = False) -> None:
        """Start (re)connecting; the result arrives in the inbox as
        :class:`~.inbox.Connected` or :class:`~.inbox.ConnectFailed`."""
        with self._lock:
            self.generation += 1
            gen = self.generation
            self.status = "connecting"
            self.last_attempt = now
            if self.first_attempt is None:
                self.first_attempt = now
            old, self.channel = self.channel, None
        if old is not None:
            threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()
        if synchronous:
            self._connect(gen)
        else:
            threading.Thread(target=self._connect, args=(gen,), daemon=True,
                             name=f"connect-{self.name}").start()

    def _connect(self, gen: int) -> None:
        try:
            channel = self.transport.start_agent()
        except FleetError as exc:
            self.inbox.put(ConnectFailed(self.name, gen, str(exc), type(exc).__name__))
            return
        except Exception as exc:  # a transport bug must not kill the controller
            self.inbox.put(ConnectFailed(self.name, gen,
                                         f"node {self.name}: {type(exc).__name__}: {exc}",
                                         "TransportError"))
            return
        with self._lock:
            if gen != self.generation:
                _close_quietly(channel)
                return
            self.channel = channel
        threading.Thread(target=self._read, args=(channel, gen), daemon=True,
                         name=f"read-{self.name}").start()
        self.inbox.put(Connected(self.name, gen))

    def _read(self, channel: AgentChannel, gen: int) -> None:
        posted = float("-inf")  # when this thread last woke the loop
        try:
            while True:
                msg = channel.recv()
                if msg is None:
                    break
                now = time.monotonic()
                if msg.get("ev") in QUIET_ACKS and now - posted < ACK_NEWS_S:
                    # an acknowledgement the loop does nothing with but note
                    # that the machine answers, which a message this thread
                    # posted less than ACK_NEWS_S ago already told: a step
                    # (a transaction) per job's `forgotten` saved
                    continue
                if msg.get("ev") in LATER_EVENTS and self.later is not None:
                    # the loop takes these at its next step (another
                    # message's, or its tick's), before that step's inbox
                    self.later.append(AgentMessage(self.name, gen, msg))
                    continue
                posted = now
                self.inbox.put(AgentMessage(self.name, gen, msg))
        except TransportError as exc:
            self.inbox.put(LinkLost(self.name, gen, str(exc)))
            return
        except Exception as exc:
            self.inbox.put(LinkLost(self.name, gen, f"{type(exc).__name__}: {exc}"))
            return
        self.inbox.put(LinkLost(self.name, gen, "the agent closed its channel"))

    # -- talking (controller thread) ---------------------------------------------
    def send_many(self, msgs: list) -> bool:
        """Send requests in one write (over SSH: one packet); False when the
        link is not usable (the caller keeps the jobs' committed state and
        reconciles when the agent says hello again)."""
        channel = self.channel
        if channel is None:
            return False
        import json

        data = b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in msgs)
        try:
            channel.send_line(data)
            return True
        except TransportError as exc:
            self.error = str(exc)
            return False

    def drop(self) -> None:
        with self._lock:
            self.generation += 1
            old, self.channel = self.channel, None
            self.status = "lost"
        if old is not None:
            threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()

    def close(self) -> None:
        self.drop()
        try:
            self.transport.close()
        except Exception:
            pass


def _close_quietly(channel: AgentChannel) -> None:
    try:
        channel.close()
    except Exception:
        pass
