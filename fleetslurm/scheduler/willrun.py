"""``sbatch --test-only``: when and where a job would start, without submitting it.

The estimate is backfill's own: each candidate node's free resources over
time (running jobs end at start + time limit), minus the reservations the
last scheduling pass planned for pending jobs (a new job is queued behind
them), and the earliest window that holds the job for its whole time limit.
A ``--begin`` time moves the start no earlier than it. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from fleetslurm.scheduler.backfill import node_profile
from fleetslurm.scheduler.eligibility import static_nodes
from fleetslurm.scheduler.lifecycle import PENDING
from fleetslurm.scheduler.policy import need_of, placement_key
from fleetslurm.scheduler.records import JobEntry

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.events import JobRequest
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["WillRun", "will_run"]

# taken from a profile before --begin: nothing fits then
_ALL = (1 << 40, 1 << 40, 1 << 40)


@dataclass(frozen=True)
class WillRun:
    """The expected start of a job not submitted: time, node, CPUs, partition."""

    start: float
    node: str
    cpus: int
    partition: str


def will_run(st: "SchedulerView", req: "JobRequest", now: float) -> Optional[WillRun]:
    """The earliest start of ``req`` behind every job already queued, or None
    when no node could hold it for its time limit (never in this fleet)."""
    job = JobEntry(req=req, phase=PENDING)
    st._prepare(job)
    shape = job.shape
    names = static_nodes(st, shape)  # type: ignore[arg-type]
    # down or not responding nodes cannot be planned on; with none up, the
    # estimate is what SLURM gives a node that returns idle
    cands = [n for n in names if st._nodes[n].available] or list(names)
    best = None
    for name in cands:
        node = st._nodes[name]
        prof = node_profile(st, node, now)
        for jid, (at, where) in st._expected.items():
            other = st._jobs.get(jid)
            if where == name and other is not None and other.phase == PENDING:
                prof.take(at, other.dur, need_of(other.shape, node.spec))  # type: ignore[arg-type]
        if req.begin_time is not None and req.begin_time > now:
            prof.take(now, req.begin_time - now, _ALL)
        need = need_of(shape, node.spec)  # type: ignore[arg-type]
        at = prof.earliest(need, job.dur)
        if at is None:
            continue
        key = (at, placement_key(node.spec, shape[3] > 0, 0))  # type: ignore[index]
        if best is None or key < best[0]:
            best = (key, name, need[0])
    if best is None:
        return None
    (at, _), name, cpus = best
    return WillRun(start=at, node=name, cpus=cpus, partition=st._partition_of(req))
