"""Every invariant of :class:`~fleetslurm.scheduler.state.SchedulerState`, checked in one place.

Tests call ``validate()`` after each step; a failure names the job or node
and prints its recent history.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, NoReturn, Optional

from fleetslurm.scheduler.lifecycle import ENDED, PENDING, RUNNING
from fleetslurm.scheduler.policy import priority_key

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry, NodeEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["validate"]


def _fail(message: str, job: Optional["JobEntry"] = None, node: Optional["NodeEntry"] = None) -> NoReturn:
    lines = [message]
    if job is not None:
        lines.append(f"history of job {job.req.job_id} (oldest first):")
        lines.extend("  " + h for h in job.history.lines())
    if node is not None:
        lines.append(f"history of node {node.spec.name} (oldest first):")
        lines.extend("  " + h for h in node.history.lines())
    raise AssertionError("\n".join(lines))


def validate(st: "SchedulerView") -> None:
    """Raise AssertionError if any invariant does not hold."""
    jobs, nodes = st._jobs, st._nodes
    # nodes: allocations add up, nothing over-allocated, GPU ids unique
    for name, node in nodes.items():
        if name != node.spec.name:
            _fail(f"node key {name!r} holds spec of {node.spec.name!r}", node=node)
        cpus = mem = 0
        gpu_count: Counter[int] = Counter()
        for jid in node.jobs:
            job = jobs.get(jid)
            if job is None or job.phase != RUNNING or job.node != name:
                _fail(f"node {name} lists job {jid}, which is not running there", job, node)
            cpus += job.cpus
            mem += job.mem_mb
            gpu_count.update(job.gpu_ids)
        if (cpus, mem) != (node.used_cpus, node.used_mem):
            _fail(f"node {name} counts {node.used_cpus} CPUs, {node.used_mem} MB used "
                  f"but its jobs hold {cpus} CPUs, {mem} MB", node=node)
        dup = sorted(g for g, n in gpu_count.items() if n > 1)
        if dup:
            _fail(f"node {name}: GPU ids {dup} are allocated to more than one job", node=node)
        if set(gpu_count) != node.used_gpus:
            _fail(f"node {name}: used GPU ids {sorted(node.used_gpus)} differ from its jobs' "
                  f"{sorted(gpu_count)}", node=node)
        if node.over_capacity() and not node.shrunk:
            _fail(f"node {name} is over-allocated: {cpus}/{node.spec.cpus} CPUs, "
                  f"{mem}/{node.spec.mem_mb} MB, GPUs {sorted(gpu_count)} of {list(node.spec.gpu_ids)}",
                  node=node)
        if node.shrunk and not node.over_capacity():
            _fail(f"node {name} is marked shrunk but fits its jobs", node=node)
    # jobs: exactly one phase, consistent with nodes and the pending order
    order_ids = [k[-1] for k in st._order]
    if len(set(order_ids)) != len(order_ids):
        dup_ids = sorted(j for j, n in Counter(order_ids).items() if n > 1)
        _fail(f"jobs {dup_ids} appear twice in the pending order")
    if st._order != sorted(st._order):
        _fail("the pending order is not sorted")
    in_order = set(order_ids)
    keys = set(st._order)
    groups: dict[tuple[str, str], set[int]] = {}
    for jid, job in jobs.items():
        if job.req.job_id != jid:
            _fail(f"job key {jid} holds request of job {job.req.job_id}", job)
        if job.phase == PENDING:
            if jid not in in_order:
                _fail(f"pending job {jid} is missing from the pending order", job)
            part = st._parts.get(st._partition_of(job.req))
            if job.key not in keys or job.key != priority_key(job.req, part.priority if part else 0, job.computed):
                _fail(f"pending job {jid} is queued under a stale priority key", job)
        elif jid in in_order:
            _fail(f"job {jid} is {job.phase} but still in the pending order", job)
        if job.phase == RUNNING:
            node = nodes.get(job.node or "")
            if node is None or jid not in node.jobs:
                _fail(f"running job {jid} is not allocated on its node {job.node}", job, node)
        elif job.phase == ENDED:
            if not job.final or job.final in (PENDING, RUNNING):
                _fail(f"ended job {jid} has no final state ({job.final!r})", job)
        elif job.phase != PENDING:
            _fail(f"job {jid} is in unknown phase {job.phase!r}", job)
        if job.phase != ENDED:
            groups.setdefault((job.req.user, job.req.name), set()).add(jid)
        if job.phase != RUNNING and job.cpus:
            _fail(f"job {jid} is {job.phase} but holds an allocation", job)
    actual = {g: ids for g, ids in st._groups.items() if ids}
    if actual != groups:
        _fail("the (user, name) index of live jobs is out of date")

