"""QOS and association limits (SLURM's ``AccountingStorageEnforce=limits``):
whether starting a pending job would take its user, QOS or account over a
limit, and SLURM's pending reason if so.

What running jobs hold is counted afresh at the start of each pass
(:func:`count_usage`) and added to as the pass starts jobs (:func:`add`), so
a pass never starts a job that takes a limit over, and a job held by a limit
reserves nothing: lower-priority jobs may backfill past it, as in SLURM.

Checked in SLURM's order (acct_policy.c: the job's QOS first, then its
association): MaxWall, the group limits, then the per-user ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Optional

from fleetslurm.scheduler.events import AssocLimits, QosLimits, Tres
from fleetslurm.scheduler.policy import Vec

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry

__all__ = ["Usage", "count_usage", "add", "limit_reason", "held_by"]

#: (jobs, cpus, mem_mb, gpus)
_Counts = list[int]


@dataclass
class Usage:
    """What running jobs hold, per (QOS, user), QOS, account and (account, user)."""

    qos_user: dict[tuple[str, str], _Counts] = field(default_factory=dict)
    qos: dict[str, _Counts] = field(default_factory=dict)
    acct: dict[str, _Counts] = field(default_factory=dict)
    acct_user: dict[tuple[str, str], _Counts] = field(default_factory=dict)

    def get(self, table: dict, key: object) -> _Counts:
        return table.get(key) or [0, 0, 0, 0]


def _bump(table: dict, key: object, vec: Vec, sign: int) -> None:
    row = table.setdefault(key, [0, 0, 0, 0])
    row[0] += sign
    row[1] += sign * vec[0]
    row[2] += sign * vec[1]
    row[3] += sign * vec[2]


def add(usage: Usage, job: "JobEntry", vec: Vec, sign: int = 1) -> None:
    """Count (``sign=-1``: uncount) a running job holding ``vec``."""
    req = job.req
    _bump(usage.qos_user, (req.qos, req.user), vec, sign)
    _bump(usage.qos, req.qos, vec, sign)
    _bump(usage.acct, req.account, vec, sign)
    _bump(usage.acct_user, (req.account, req.user), vec, sign)


def held(job: "JobEntry") -> Vec:
    """What a running job holds."""
    return (job.cpus, job.mem_mb, len(job.gpu_ids))


def count_usage(running: Iterable["JobEntry"]) -> Usage:
    usage = Usage()
    for job in running:
        add(usage, job, held(job))
    return usage


def _over(limit: Tres, have: _Counts, vec: Vec) -> Optional[int]:
    """Which TRES (0 cpu, 1 mem, 2 gpu) ``have + vec`` takes over ``limit``, or None."""
    for i, cap in enumerate((limit.cpu, limit.mem_mb, limit.gpu)):
        if cap is not None and vec[i] > 0 and have[i + 1] + vec[i] > cap:
            return i
    return None


#: SLURM's reason per (kind of limit, TRES)
_QOS_GRP = ("QOSGrpCpuLimit", "QOSGrpMemLimit", "QOSGrpGRES")
_QOS_PU = ("QOSMaxCpuPerUserLimit", "QOSMaxMemoryPerUser", "QOSMaxGRESPerUser")
_ASSOC_GRP = ("AssocGrpCpuLimit", "AssocGrpMemLimit", "AssocGrpGRES")


def held_by(qos: Optional[QosLimits], assoc: Optional[AssocLimits], usage: Usage,
            job: "JobEntry", vec: Vec) -> Optional[tuple[str, str]]:
    """The limit starting ``job`` with ``vec`` would break: (SLURM's reason, the
    limit in words, for ``explain``), or None."""
    req = job.req
    minutes = req.time_limit
    if qos is not None:
        if qos.max_wall is not None and (minutes is None or minutes > qos.max_wall):
            return ("QOSMaxWallDurationPerJobLimit",
                    f"QOS {qos.name} MaxWall={qos.max_wall} min")
        have = usage.get(usage.qos, qos.name)
        if qos.grp_jobs is not None and have[0] + 1 > qos.grp_jobs:
            return ("QOSGrpJobsLimit", f"QOS {qos.name} GrpJobs={qos.grp_jobs}")
        i = _over(qos.grp_tres, have, vec)
        if i is not None:
            return (_QOS_GRP[i], f"QOS {qos.name} GrpTRES={_tres_word(qos.grp_tres, i)}"
                                 f" ({_held(have, i)} held by its running jobs)")
        mine = usage.get(usage.qos_user, (qos.name, req.user))
        if qos.max_jobs_pu is not None and mine[0] + 1 > qos.max_jobs_pu:
            return ("QOSMaxJobsPerUserLimit",
                    f"QOS {qos.name} MaxJobsPerUser={qos.max_jobs_pu} ({mine[0]} of "
                    f"{req.user}'s jobs run in it)")
        i = _over(qos.max_tres_pu, mine, vec)
        if i is not None:
            return (_QOS_PU[i], f"QOS {qos.name} MaxTRESPerUser={_tres_word(qos.max_tres_pu, i)}"
                                f" ({_held(mine, i)} held by {req.user}'s running jobs)")
    if assoc is not None:
        if assoc.max_wall is not None and (minutes is None or minutes > assoc.max_wall):
            return ("AssocMaxWallDurationPerJobLimit",
                    f"account {assoc.account} MaxWall={assoc.max_wall} min")
        have = usage.get(usage.acct, assoc.account)
        if assoc.grp_jobs is not None and have[0] + 1 > assoc.grp_jobs:
            return ("AssocGrpJobsLimit", f"account {assoc.account} GrpJobs={assoc.grp_jobs}")
        i = _over(assoc.grp_tres, have, vec)
        if i is not None:
            return (_ASSOC_GRP[i],
                    f"account {assoc.account} GrpTRES={_tres_word(assoc.grp_tres, i)}"
                    f" ({_held(have, i)} held by its running jobs)")
        mine = usage.get(usage.acct_user, (assoc.account, req.user))
        if assoc.max_jobs is not None and mine[0] + 1 > assoc.max_jobs:
            return ("AssocMaxJobsLimit", f"account {assoc.account} MaxJobs={assoc.max_jobs}"
                                         f" ({mine[0]} of {req.user}'s jobs run in it)")
    return None


def _tres_word(t: Tres, i: int) -> str:
    return (f"cpu={t.cpu}", f"mem={t.mem_mb}M", f"gres/gpu={t.gpu}")[i]


def _held(have: _Counts, i: int) -> str:
    return (f"{have[1]} CPUs", f"{have[2]} MB", f"{have[3]} GPUs")[i]


def limit_reason(qos: Optional[QosLimits], assoc: Optional[AssocLimits], usage: Usage,
                 job: "JobEntry", vec: Vec) -> Optional[str]:
    """SLURM's pending reason if starting ``job`` with ``vec`` breaks a limit, else None."""
    hit = held_by(qos, assoc, usage, job, vec)
    return None if hit is None else hit[0]
