"""Waiting for jobs to end without polling: the client side of the
controller's ``wait`` request (``ctld/waiters.py``).

The controller holds a wait request until the jobs it names have ended, or
for at most 30 s (then it answers "not yet" and the caller asks again), so
``sbatch -W``, ``Job.result()`` and DataBench's ``wait_for_jobs`` learn of a
job's end in the step that recorded it.

Standard library only (``sbatch -W`` imports it).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Any, Callable, Iterable, Optional

__all__ = ["HOLD", "block"]

#: seconds one wait request asks to be held (the controller's own bound is 30 s)
HOLD = 25.0
#: the answer's margin over HOLD: a client's timeout must be at least HOLD + this
MARGIN = 30.0


def block(call: Callable[..., Any], ids: Iterable[str], seconds: Optional[float]) -> bool:
    """Block until the controller says every job ``ids`` name is over
    (True), or ``seconds`` pass (False; None: no limit). ``call(op, **args)``
    sends one request. A controller without the ``wait`` request (one
    started before it existed) is polled instead, 0.1 s apart."""
    from .errors import ControllerError

    wanted = [str(i) for i in ids]
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        left = HOLD if deadline is None else min(HOLD, deadline - time.monotonic())
        if left <= 0:
            return False
        try:
            reply = call("wait", ids=wanted, timeout=left)
            if reply["done"]:
                return True
            if reply.get("retry"):  # the controller holds enough of our waits: poll
                time.sleep(max(0.0, min(float(reply["retry"]), left)))
        except ControllerError as exc:
            if "unknown request" not in str(exc):
                raise
            time.sleep(min(0.1, left))
            return False
