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

__all__ = ["NodeLink", "QUIET_ACKS", "LATER_EVENTS", "Held", "HOLD_S", "MAY_WAIT"]

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


# -- messages that may wait to share a write ------------------------------
# Messages to agents that may wait a moment to share a write.
#
# Every message to an agent goes out after the commit of the step that queued
# it (see :mod:`.loop`), one write per machine per step (over SSH, one
# packet). A ``forget`` (the agent may delete an ended run's directory; its
# output is home and its end committed) is the controller's acknowledgement
# of an end: nothing is lost by sending it a little later, since an agent
# reports an unforgotten run again at its next hello and the controller then
# forgets it again (``forget`` is idempotent). So a step whose only messages
# for a machine are forgets holds them, and they go out with that machine's
# next other message (usually the next job's launch a few milliseconds later)
# or after :data:`HOLD_S`: one SSH packet per job fewer each way (the agent's
# ``forgotten`` replies then share its write too).

#: seconds a held message waits at most for a write to ride along
HOLD_S = 0.25
#: the requests that may wait (see the module's docstring)
MAY_WAIT = frozenset({"forget"})


class Held:
    """Per machine, the messages held back and since when (the loop's thread only)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, list[dict]]] = {}

    def ride_along(self, per_node: dict[str, list[dict]], now: float) -> None:
        """Change this step's writes (machine -> messages, in order) in place:
        a machine's messages that may all wait are held; held ones go first
        in a machine's next write, or on their own once HOLD_S has passed."""
        for node in list(per_node):
            msgs = per_node[node]
            kept = self._held.get(node)
            if all(m.get("op") in MAY_WAIT for m in msgs):
                if kept is None:
                    kept = self._held[node] = (now, [])
                kept[1].extend(msgs)
                del per_node[node]
            elif kept is not None:
                per_node[node] = kept[1] + msgs
                del self._held[node]
        for node, (since, msgs) in list(self._held.items()):
            if now - since >= HOLD_S or now < since:  # (a clock set back: now)
                per_node[node] = msgs
                del self._held[node]

    def drain(self) -> dict[str, list[dict]]:
        """Every held message, per machine (the controller stops: they go now)."""
        out = {node: msgs for node, (_, msgs) in self._held.items()}
        self._held.clear()
        return out

    def next_due(self) -> Optional[float]:
        """When the oldest held message must go out, or None."""
        if not self._held:
            return None
        return min(since for since, _ in self._held.values()) + HOLD_S

    def __len__(self) -> int:
        return sum(len(msgs) for _, msgs in self._held.values())
