"""Driving a Controller in-process, one ``step(now)`` at a time, for the tests
that run it against FakeTransport or local machines without its daemon."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from fleetslurm.ctld.inbox import Pending, Request
from fleetslurm.ctld.loop import Controller


def pump(ctl: Controller, until: Callable[[], object], clock: Optional[list] = None,
         tick: float = 0.0, timeout: float = 20.0) -> None:
    """Step until ``until()``. With ``clock`` (a one-item list) the controller's
    clock is that value, advanced ``tick`` per step; without, the wall clock."""
    deadline = time.time() + timeout
    while not until():
        assert time.time() < deadline, "condition not reached"
        if clock is None:
            ctl.step(time.time())
        else:
            clock[0] += tick
            ctl.step(clock[0])
        time.sleep(0.01)


def submit(ctl: Controller, now: float, options: dict, *, script: str, cwd: str,
           uid: Optional[int] = None, env: Optional[dict] = None, **request: object) -> int:
    """Submit through the controller's own request path (as sbatch's RPC does)
    and step once; returns the job id, or raises the request's error."""
    p = Pending("submit", {"options": options, "script": script, "script_args": [],
                            "env": {"PATH": "/usr/bin:/bin"} if env is None else env,
                            "cwd": cwd, "script_name": "s", **request},
                 os.getuid() if uid is None else uid)
    ctl.inbox.put(Request(p))
    ctl.step(now)
    if p.error:
        raise p.error
    return p.result["job_id"]
