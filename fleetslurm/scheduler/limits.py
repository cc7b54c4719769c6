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

__all__ = ["Usage", "count_usage", "add", "chain", "limit_reason", "held_by"]

#: (jobs, cpus, mem_mb, gpus)
_Counts = list[int]


@dataclass
class Usage:
    """What running jobs hold, per (QOS, user), QOS, account (its sub-accounts'
    jobs included: ``parents`` maps an account to the one above it) and
    (account, user)."""

    qos_user: dict[tuple[str, str], _Counts] = field(default_factory=dict)
    qos: dict[str, _Counts] = field(default_factory=dict)
    acct: dict[str, _Counts] = field(default_factory=dict)
    acct_user: dict[tuple[str, str], _Counts] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)

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
    for account in chain(req.account, usage.parents):
        _bump(usage.acct, account, vec, sign)
    _bump(usage.acct_user, (req.account, req.user), vec, sign)


def chain(account: str, parents: dict[str, str]) -> list[str]:
    """``account`` and the accounts above it, nearest first (a loop is cut)."""
    out = [account]
    while parents.get(out[-1]) and parents[out[-1]] not in out and len(out) < 64:
        out.append(parents[out[-1]])
    return out


def held(job: "JobEntry") -> Vec:
    """What a running job holds."""
    return (job.cpus, job.mem_mb, len(job.gpu_ids))


def count_usage(running: Iterable["JobEntry"], parents: Optional[dict[str, str]] = None) -> Usage:
    usage = Usage(parents=dict(parents or {}))
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
_ASSOC_PJ = ("AssocMaxCpuPerJobLimit", "AssocMaxMemPerJob", "AssocMaxGRESPerJob")


def held_by(qos: Optional[QosLimits], assocs: dict[tuple[str, str], AssocLimits], usage: Usage,
            job: "JobEntry", vec: Vec) -> Optional[tuple[str, str]]:
    """The limit starting ``job`` with ``vec`` would break: (SLURM's reason, the
    limit in words, for ``explain``), or None. ``assocs`` is every association's
    limits by (account, user or "")."""
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
    if not assocs:
        return None
    own = assocs.get((req.account, req.user))
    account = assocs.get((req.account, ""))
    # the per-job and per-user limits in force: the user's association's, else
    # the account's (the controller resolved what each inherits)
    eff = own or account
    where = (f"user {req.user} in account {req.account}" if own is not None
             else f"account {req.account}")
    if eff is not None:
        if eff.max_wall is not None and (minutes is None or minutes > eff.max_wall):
            return ("AssocMaxWallDurationPerJobLimit", f"{where} MaxWall={eff.max_wall} min")
        i = _over(eff.max_tres, [0, 0, 0, 0], vec)
        if i is not None:
            return (_ASSOC_PJ[i], f"{where} MaxTRES={_tres_word(eff.max_tres, i)} per job")
    # group limits: the user's association's, then each account's up to root
    levels: list[tuple[Optional[AssocLimits], _Counts, str]] = []
    if own is not None:
        levels.append((own, usage.get(usage.acct_user, (req.account, req.user)), where))
    for name in chain(req.account, usage.parents):
        levels.append((assocs.get((name, "")), usage.get(usage.acct, name), f"account {name}"))
    for rec, have, what in levels:
        if rec is None:
            continue
        if rec.grp_jobs is not None and have[0] + 1 > rec.grp_jobs:
            return ("AssocGrpJobsLimit", f"{what} GrpJobs={rec.grp_jobs}")
        i = _over(rec.grp_tres, have, vec)
        if i is not None:
            return (_ASSOC_GRP[i], f"{what} GrpTRES={_tres_word(rec.grp_tres, i)}"
                                   f" ({_held(have, i)} held by its running jobs)")
    if eff is not None:
        mine = usage.get(usage.acct_user, (req.account, req.user))
        if eff.max_jobs is not None and mine[0] + 1 > eff.max_jobs:
            return ("AssocMaxJobsLimit", f"{where} MaxJobs={eff.max_jobs}"
                                         f" ({mine[0]} of {req.user}'s jobs run in it)")
    return None


def _tres_word(t: Tres, i: int) -> str:
    return (f"cpu={t.cpu}", f"mem={t.mem_mb}M", f"gres/gpu={t.gpu}")[i]


def _held(have: _Counts, i: int) -> str:
    return (f"{have[1]} CPUs", f"{have[2]} MB", f"{have[3]} GPUs")[i]


def limit_reason(qos: Optional[QosLimits], assocs: dict[tuple[str, str], AssocLimits],
                 usage: Usage, job: "JobEntry", vec: Vec) -> Optional[str]:
    """SLURM's pending reason if starting ``job`` with ``vec`` breaks a limit, else None."""
    hit = held_by(qos, assocs, usage, job, vec)
    return None if hit is None else hit[0]
