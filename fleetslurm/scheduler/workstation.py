"""Workstations: machines someone sits at, as HTCondor's desktop pools treat
them. Pure: decided from a node's :class:`~fleetslurm.scheduler.events.NodePolicy`,
its last :class:`~fleetslurm.scheduler.events.NodeMeasured` and ``now``.

A machine with a policy takes no new job while (checked in this order):

- it is outside its ``available`` hours: ``Outside its hours``;
- its owner was active within ``owner_idle_s``: ``Owner active``;
- its foreign load is above ``max_foreign_load``: ``Foreign load 3.2 > 1.0``;
- its free memory is under ``min_free_mem_mb``: ``Free memory 900 MB < 2048 MB``.

The first two mean the owner wants the machine: its running jobs are then
suspended (``suspend``: SIGSTOP, resumed with SIGCONT when the owner leaves
and the hours allow) or requeued (``requeue``), or left to finish
(``stop_starting``). Load and memory only stop new jobs: a job suspended
for them would free nothing the owner's work needs that a job's end does not.
Until a machine's first heartbeat with measurements (after a connect or a
controller restart) it takes no new job (``Not measured yet``) and its
suspended jobs stay suspended; one value not reported (the foreign load
needs two readings: a new agent's first keeps the last known) blocks nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from fleetslurm.hours import within
from fleetslurm.scheduler.events import EvictJob, ResumeJob, SuspendJob

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry, NodeEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["OWNER_ACTIVE", "OUTSIDE_HOURS", "NOT_MEASURED", "busy_reason", "owner_wants_it", "apply",
           "spread_load", "describe", "suspended_for"]

OWNER_ACTIVE = "Owner active"
OUTSIDE_HOURS = "Outside its hours"
NOT_MEASURED = "Not measured yet"

PolicyAction = Union[SuspendJob, ResumeJob, EvictJob]


def owner_wants_it(node: "NodeEntry", now: float) -> Optional[str]:
    """``Outside its hours`` or ``Owner active`` when the owner's claim on the
    machine stands now, else None."""
    pol = node.spec.policy
    if pol is None:
        return None
    if not within(pol.windows, now):
        return OUTSIDE_HOURS
    m = node.measured
    if pol.owner_idle_s is not None and m is not None and m.owner_idle_s is not None \
            and m.owner_idle_s < pol.owner_idle_s:
        return OWNER_ACTIVE
    return None


def busy_reason(node: "NodeEntry", now: float) -> Optional[str]:
    """Why the machine takes no new job now by its policy, or None."""
    pol = node.spec.policy
    if pol is None:
        return None
    claim = owner_wants_it(node, now)
    if claim is not None:
        return claim
    m = node.measured
    if m is None:
        if pol.owner_idle_s is None and pol.max_foreign_load is None \
                and pol.min_free_mem_mb is None:
            return None  # hours alone: nothing to measure
        # (after a connect or a restart, until its first heartbeat: its owner
        # may be there)
        return NOT_MEASURED
    if pol.max_foreign_load is not None and m.foreign_load is not None \
            and m.foreign_load > pol.max_foreign_load:
        return f"Foreign load {m.foreign_load:.1f} > {pol.max_foreign_load:.1f}"
    if pol.min_free_mem_mb is not None and m.free_mem_mb is not None \
            and m.free_mem_mb < pol.min_free_mem_mb:
        return f"Free memory {m.free_mem_mb} MB < {pol.min_free_mem_mb} MB"
    return None


def suspended_for(job: "JobEntry", now: float) -> float:
    """Seconds the job has spent suspended, the current suspension included:
    its time limit's clock stood still that long (as SLURM's does)."""
    extra = now - job.suspended_at if job.suspended_at is not None else 0.0
    return job.suspended_s + max(0.0, extra)


def apply(st: "SchedulerView", now: float) -> list[PolicyAction]:
    """Work out every node's busy reason for this pass, and what its policy
    does to the jobs running there: suspend, resume or requeue them."""
    out: list[PolicyAction] = []
    for name, node in st._nodes.items():
        node.busy_reason = busy_reason(node, now)
        if not node.jobs or node.down_reason is not None:
            continue  # a machine that does not answer cannot be signalled
        pol = node.spec.policy
        mode = pol.when_owner_active if pol is not None else "stop_starting"
        claim = owner_wants_it(node, now) if node.busy_reason is not None else None
        for jid in sorted(node.jobs):
            job = st._jobs[jid]
            if claim is not None and mode == "suspend" and job.suspended_at is None:
                job.suspended_at = now
                job.history.add(now, f"SuspendJob on {name} ({claim})")
                out.append(SuspendJob(jid, name, claim))
            elif claim is not None and mode == "requeue" and not job.evicting:
                job.evicting = True
                job.history.add(now, f"EvictJob on {name} ({claim})")
                out.append(EvictJob(jid, name, claim))
            elif (claim is None or mode != "suspend") and job.suspended_at is not None \
                    and (node.measured is not None or pol is None or pol.owner_idle_s is None):
                # (nothing measured since a restart: the owner may still be
                # there; it resumes on the first heartbeat that says not)
                # the owner left (or the policy no longer suspends): it runs again
                job.suspended_s += max(0.0, now - job.suspended_at)
                job.suspended_at = None
                job.history.add(now, f"ResumeJob on {name}")
                out.append(ResumeJob(jid, name))
    return out


def spread_load(node: "NodeEntry") -> float:
    """How loaded a node is for ``spread`` placement: the foreign load it
    measured plus the CPUs fleetslurm's jobs hold there (counted at once, not
    a heartbeat later), per CPU."""
    m = node.measured
    foreign = m.foreign_load if m is not None and m.foreign_load is not None else 0.0
    return (foreign + node.used_cpus) / max(1, node.spec.cpus)


def describe(node: "NodeEntry") -> str:
    """The busy reason with what was measured, for ``explain``."""
    reason = node.busy_reason or ""
    m, pol = node.measured, node.spec.policy
    if reason == OWNER_ACTIVE and m is not None and m.owner_idle_s is not None and pol is not None:
        return (f"{reason}: last activity {m.owner_idle_s / 60:.1f} min ago, its policy wants "
                f"{(pol.owner_idle_s or 0) / 60:g} min idle")
    if reason == OUTSIDE_HOURS and pol is not None:
        return f"{reason}: available {', '.join(w.text for w in pol.windows)}"
    return reason
