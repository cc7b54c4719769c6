"""Requests that wait for jobs to end (the ``wait`` request): ``sbatch -W``,
``Job.result()``, DataBench's ``wait_for_jobs`` and the Python API's waits.

The loop keeps each one (its RPC thread blocks on the request's event, the
loop does not) and answers it after the commit of the step in which the
last of its jobs ended, so a waiter learns of the end at once instead of at
its next poll. A wait is bounded (at most :data:`MAX_WAIT` seconds, answered
``{"done": false}`` then): the client asks again, so no RPC thread is held
for longer, and a controller that stops answers its waiters first.

A job is over here when none of the tasks its id names is in an active
state (and no index of a pending array is left without a task); the client
checks its own idea of "finished" on the records afterwards (a job over and
then requeued: the client waits again).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from ..model import ACTIVE_STATE_NAMES
from .inbox import Pending

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["MAX_WAIT", "Waiters", "job_over", "jobs_over"]

#: the longest a wait request is held before it is answered "not yet"
MAX_WAIT = 30.0
#: wait requests held per user at most: each holds one of the user's
#: connections (rpc.Server serves 128 at a time per user), and a user's
#: squeue must not queue behind a crowd of waiting threads. Past it a wait is
#: answered at once, "not yet, look again in RETRY seconds" (a poll)
MAX_PER_UID = 32
RETRY = 0.25
_ACTIVE_CLAUSE = "state IN (%s)" % ",".join(f"'{s}'" for s in ACTIVE_STATE_NAMES)


def job_over(store: "Store", text: str) -> bool:
    """Whether the job id ``text`` names has ended (an unknown or malformed
    id counts as ended: there is nothing to wait for)."""
    from ..errors import FleetError
    from ..jobids import select

    try:
        sel = select(store, str(text))
    except FleetError:
        return True
    if sel.picks:
        return False  # an index of a pending array that has no task yet
    if not sel.jobs and not sel.tasks:
        return True
    row = store._x(
        f"SELECT 1 FROM tasks WHERE {_ACTIVE_CLAUSE} AND "
        "(job_id IN (SELECT value FROM json_each(?)) "
        "OR task_id IN (SELECT value FROM json_each(?))) LIMIT 1",
        (json.dumps(sorted(sel.jobs)), json.dumps(sorted(sel.tasks)))).fetchone()
    return row is None


def jobs_over(store: "Store", ids: list[str]) -> list[str]:
    """``ids`` less those at their front that have ended: empty when all
    have. Each look stops at the first job still on, so a wait for 10,000
    jobs costs one look per job over the whole wait, not 10,000 per end."""
    i = 0
    while i < len(ids) and job_over(store, ids[i]):
        i += 1
    return ids[i:]


class Waiters:
    """The wait requests the loop holds, each with its deadline."""

    def __init__(self) -> None:
        self._new: list[tuple[Pending, float]] = []
        self._held: list[tuple[Pending, float]] = []

    def __len__(self) -> int:
        return len(self._new) + len(self._held)

    def add(self, pending: Pending, now: float) -> None:
        """A wait request (``ids``, ``timeout`` seconds): looked at after the commit."""
        timeout = pending.args.get("timeout")
        timeout = MAX_WAIT if timeout is None else max(0.0, min(float(timeout), MAX_WAIT))
        if sum(1 for p, _ in self._held + self._new if p.uid == pending.uid) >= MAX_PER_UID:
            timeout = 0.0  # looked at once, then answered with a RETRY
            pending.args["_retry"] = True
        self._new.append((pending, now + timeout))

    def next_deadline(self) -> Optional[float]:
        """The earliest deadline of a held request (the loop wakes up for it)."""
        return min((d for _, d in self._held), default=None)

    def due(self, store: "Store", now: float, ended: bool) -> list[Pending]:
        """The requests to answer now (their ``result`` set): the new ones and,
        when a task ended in this step (``ended``), the held ones whose jobs
        are over; and those whose time is up. Called after the commit."""
        out: list[Pending] = []
        look = self._new + (self._held if ended else [])
        keep = [] if ended else self._held
        self._new, self._held = [], []
        for pending, deadline in look:
            left = jobs_over(store, pending.args["ids"])
            if not left:
                pending.result = {"done": True}
                out.append(pending)
            else:
                pending.args["ids"] = left  # those over are not looked at again
                keep.append((pending, deadline))
        for pending, deadline in keep:
            if deadline <= now:
                pending.result = {"done": False}
                if pending.args.get("_retry"):
                    pending.result["retry"] = RETRY
                out.append(pending)
            else:
                self._held.append((pending, deadline))
        return out

    def refuse_all(self, error: BaseException) -> list[Pending]:
        """Every request held, with ``error`` (the controller stops)."""
        out = [p for p, _ in self._new + self._held]
        self._new, self._held = [], []
        for p in out:
            p.error = error
        return out
