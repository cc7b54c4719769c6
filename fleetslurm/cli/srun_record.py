"""What srun inside a job records: the step with the controller (sacct's
``N.0``, ``N.1``...), and each task's process group where the job's
supervisor looks for steps to signal."""

from __future__ import annotations

import os
from typing import Any, Optional

from ..errors import FleetError

__all__ = ["Accounting", "local_step_id", "register", "oom_killed"]


class Accounting:
    """The step's record with the controller, best effort: a job on a machine
    that cannot reach the controller runs its steps unrecorded."""

    def __init__(self, job_id: str, run_key: Optional[str]) -> None:
        self.job_id, self.run_key = job_id, run_key
        self.step_id: Optional[int] = None
        self.kill_wait = 30
        self.node: Optional[str] = None

    def _client(self) -> Any:
        if not os.environ.get("FLEETSLURM_STEPS_DIR"):
            return None  # not inside a fleetslurm job: no controller knows it
        from ..rpc import connect

        try:
            return connect()
        except FleetError:
            return None

    def begin(self, name: str, ntasks: int, cpus: int) -> None:
        c = self._client()
        if c is None:
            return
        with c:
            reply = c.call("step_begin", job_id=self.job_id, run_key=self.run_key,
                           name=name, ntasks=ntasks, cpus=cpus)
        self.step_id = int(reply["step_id"])
        self.kill_wait = int(reply.get("kill_wait") or 30)
        self.node = reply.get("node")

    def end(self, **fields: Any) -> None:
        if self.step_id is None:
            return
        c = self._client()
        if c is None:
            return
        try:
            with c:
                c.call("step_end", job_id=self.job_id, run_key=self.run_key,
                       step_id=self.step_id, **fields)
        except FleetError:
            pass  # the tasks' results are already reported to the user


def local_step_id(job_id: str) -> int:
    """Without a controller, step ids count up in a private file per job run."""
    import tempfile

    from ..paths import take_next

    steps = os.environ.get("FLEETSLURM_STEPS_DIR")
    base = steps or tempfile.gettempdir()
    name = "step-counter" if steps else \
        f"fleetslurm-{os.getuid()}-steps-{job_id}-{os.getsid(0)}"
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        return take_next(os.path.join(base, name), 0)
    except OSError:
        return 0


def register(pgid: int, remove: bool = False, step_id: "int | None" = None,
             rank: "int | None" = None) -> None:
    """Record (or drop) a task's process group where the job's supervisor looks
    for steps to signal (scancel --signal, --signal=SIG@T, the job's end);
    the file holds the step's id and the task's rank, so the supervisor's
    samples are the step's and the task's (sstat N.S)."""
    steps = os.environ.get("FLEETSLURM_STEPS_DIR")
    if not steps:
        return
    path = os.path.join(steps, str(pgid))
    try:
        if remove:
            os.unlink(path)
        else:
            os.makedirs(steps, mode=0o700, exist_ok=True)
            with open(path, "w") as f:
                f.write("" if step_id is None else
                        str(step_id) if rank is None else f"{step_id} {rank}")
    except OSError:
        pass  # signals then miss this task; the job itself is unaffected


#: written by the job's supervisor (node/agent/oom.py): the step task groups
#: it killed because the job was over its memory limit, one pgid a line
OOM_FILE = "oom_killed"


def oom_killed() -> set[int]:
    """Process groups of this job's srun tasks the supervisor killed for memory."""
    steps = os.environ.get("FLEETSLURM_STEPS_DIR")
    if not steps:
        return set()
    try:
        with open(os.path.join(os.path.dirname(steps), OOM_FILE)) as f:
            return {int(w) for w in f.read().split() if w.isdigit()}
    except OSError:
        return set()
