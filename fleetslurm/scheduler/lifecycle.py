"""The job lifecycle as one explicit transition table, and the error for anything else.

Inside the scheduler a job is in one of three phases: PENDING, RUNNING, or
ENDED (its final SLURM state, COMPLETED, FAILED..., is kept beside the phase).
Every event or action that touches a job is looked up in :data:`TRANSITIONS`;
a pair that is not there raises :class:`InvalidTransition` with the job's
recent history, so a controller bug shows what led up to it.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from fleetslurm.errors import FleetError

__all__ = [
    "PENDING",
    "RUNNING",
    "ENDED",
    "TRANSITIONS",
    "HISTORY_LENGTH",
    "InvalidTransition",
    "History",
    "next_phase",
]

PENDING = "PENDING"
RUNNING = "RUNNING"
ENDED = "ENDED"

#: (phase before or None for an unknown job, event/action name) -> phase after
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "JobSubmitted"): PENDING,
    (None, "JobRestored"): RUNNING,
    (PENDING, "StartJob"): RUNNING,
    (PENDING, "JobEnded"): ENDED,
    (RUNNING, "JobEnded"): ENDED,
    (RUNNING, "JobRequeued"): PENDING,
    (PENDING, "JobHeld"): PENDING,
    (RUNNING, "JobHeld"): RUNNING,      # takes effect if the job is requeued
    (PENDING, "JobReleased"): PENDING,
    (RUNNING, "JobReleased"): RUNNING,
    (PENDING, "JobUpdated"): PENDING,
    (RUNNING, "JobUpdated"): RUNNING,
    # a finished job requeued by `scontrol requeue` comes back as new
    (ENDED, "JobSubmitted"): PENDING,
    # a job given up for lost (NODE_FAIL without requeue) turns out to be running
    (ENDED, "JobRestored"): RUNNING,
}

#: how many transitions a job or node remembers for error messages
HISTORY_LENGTH = 20


class History:
    """The last :data:`HISTORY_LENGTH` transitions of one job or node, as text lines."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: deque[str] = deque(maxlen=HISTORY_LENGTH)

    def add(self, now: float, what: str) -> None:
        """Remember that ``what`` happened at ``now``."""
        self._lines.append(f"t={now:.3f} {what}")

    def lines(self) -> tuple[str, ...]:
        """Oldest first."""
        return tuple(self._lines)


class InvalidTransition(FleetError):
    """An event or action that the lifecycle does not allow (a controller bug).

    ``subject`` names the job or node (``"job 7"``); ``history`` holds its last
    transitions, oldest first, and is part of the message.
    """

    def __init__(self, message: str, subject: str = "", history: Iterable[str] = ()):
        self.subject = subject
        self.history = tuple(history)
        text = message
        if subject:
            if self.history:
                text += f"\nhistory of {subject} (oldest first):\n  " + "\n  ".join(self.history)
            else:
                text += f"\n{subject} has no recorded history"
        super().__init__(text)


def next_phase(phase: str | None, what: str, job_id: int, history: Iterable[str] = ()) -> str:
    """The phase after ``what`` happens to a job in ``phase``; raise if not allowed."""
    try:
        return TRANSITIONS[(phase, what)]
    except KeyError:
        state = "unknown to the scheduler" if phase is None else phase
        allowed = sorted(w for (p, w) in TRANSITIONS if p == phase)
        raise InvalidTransition(
            f"{what} is not allowed for job {job_id}, which is {state}"
            f" (allowed: {', '.join(allowed) or 'nothing'})",
            subject=f"job {job_id}",
            history=history,
        ) from None
