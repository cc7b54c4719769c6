"""QOS, association limits and partition access: what the config and
sacctmgr set, checked at submission, and handed to the scheduler.

* The QOS set is the config's ``qos`` section (``normal`` always there, as
  SLURM's default QOS) with sacctmgr's changes on top, kept in the store's
  ``qos`` table (a changed QOS's whole record, or NULL once deleted): a
  restart keeps them, and the config stays the initial set.
* Association limits are the tree's (:mod:`.assocs`: the config's
  ``accounts`` section, with sacctmgr's changes of accounts and users).
* At submission (:func:`check_submit`): the job's account (``-A``, default
  the user's DefaultAccount) and QOS (``--qos``, default the association's
  DefaultQOS, else ``normal``) must exist, the user must have an association
  in the account and the QOS be in its QOS list (when it has one) (as
  ``accounting_storage_enforce``, SLURM's AccountingStorageEnforce, says:
  "none" accepts any, as a SLURM without accounting does), the
  partition's AllowGroups/AllowAccounts/AllowQos must admit them, and
  MaxSubmitJobsPerUser/MaxSubmitJobs must not be reached, and with
  ``enforce_part_limits`` (EnforcePartLimits) the time limit must be within
  the partition's MaxTime, each refused with SLURM's message. The running limits are the scheduler's
  (:mod:`fleetslurm.scheduler.limits`): a job over one stays PENDING.
"""

from __future__ import annotations

import os
import pwd
import grp
from typing import TYPE_CHECKING, Any, Optional

from ..config import FleetConfig, QosConfig
from ..errors import SubmitError
from ..model import ACTIVE_STATE_NAMES
from ..scheduler import LimitsSet, QosLimits, Tres
from ..slurm.arrays import IndexSet
from ..slurm.assoc import account_of
from ..slurm.tres import parse_tres
from ..slurm.units import parse_time_limit

if TYPE_CHECKING:
    from ..store import Store
    from .context import Context

__all__ = ["Limits", "check_submit", "check_update", "user_groups", "BAD_QOS", "BAD_ACCOUNT", "BAD_GROUP",
           "BAD_TIME", "SUBMIT_LIMIT"]

_FAILED = "Batch job submission failed: "
BAD_QOS = _FAILED + "Invalid qos specification"
BAD_ACCOUNT = _FAILED + "Invalid account or account/partition combination specified"
BAD_GROUP = _FAILED + "User's group not permitted to use this partition"
BAD_TIME = _FAILED + "Requested time limit is invalid (missing or exceeds some limit)"
SUBMIT_LIMIT = (_FAILED + "Job violates accounting/QOS policy (job submit limit, user's size "
                "and/or time limits)")


def _tres(text: str) -> Tres:
    t = parse_tres(text)
    return Tres(cpu=t.get("cpu"), mem_mb=t.get("mem"), gpu=t.get("gres/gpu"))


def _minutes(text: Optional[str]) -> Optional[int]:
    return None if text is None else parse_time_limit(text)


class Limits:
    """The QOS set and account limits in force (``qos`` and ``accounts`` are
    replaced whole, never changed in place: RPC threads may read them)."""

    def __init__(self, config: FleetConfig, store: "Store") -> None:
        from .assocs import Associations

        self.config = config
        self.qos: dict[str, QosConfig] = {}
        #: the association tree (accounts, users' associations, their limits)
        self.assocs = Associations(config)  # (read by reload)
        self.reload(store)

    def reload(self, store: "Store") -> None:
        """The config's QOS and associations with the store's changes on top."""
        self.assocs.reload(store)
        qos = dict(self.config.qos)
        for name, spec in store.qos_changes().items():
            if spec is None:
                qos.pop(name, None)
            else:
                qos[name] = QosConfig.model_validate(spec)
        self.qos = qos

    def event(self) -> LimitsSet:
        """The scheduler's copy of every limit (a QOS without any is left out,
        the associations' only when none sets one: with none at all, a pass
        checks nothing; none without AccountingStorageEnforce=limits)."""
        if not self.config.enforces("limits"):
            return LimitsSet()
        ev = LimitsSet(
            qos=tuple(QosLimits(
                name=n, priority=q.Priority, max_jobs_pu=q.MaxJobsPerUser,
                max_submit_pu=q.MaxSubmitJobsPerUser, max_tres_pu=_tres(q.MaxTRESPerUser),
                max_wall=_minutes(q.MaxWall), grp_tres=_tres(q.GrpTRES), grp_jobs=q.GrpJobs,
                description=q.Description or "") for n, q in self.qos.items()),
            accounts=self.assocs.event())
        return LimitsSet(
            qos=tuple(q for q in ev.qos
                      if _limited(q, "name", "priority", "description", "max_submit_pu")),
            accounts=ev.accounts)

    def priorities(self) -> dict[str, int]:
        """QOS -> Priority, for multifactor's QOS factor."""
        return {n: q.Priority for n, q in self.qos.items()}


def _limited(rec: Any, *besides: str) -> bool:
    """Whether a QosLimits/AssocLimits sets any limit."""
    for name, value in vars(rec).items():
        if name in besides or value is None:
            continue
        if isinstance(value, Tres) and not value.any():
            continue
        return True
    return False


def user_groups(uid: int) -> set[str]:
    """The names of the groups of user ``uid`` (primary and supplementary), from
    the system's databases; empty for a uid without a passwd entry."""
    try:
        pw = pwd.getpwuid(uid)
        gids = os.getgrouplist(pw.pw_name, pw.pw_gid)
    except (KeyError, OSError):
        return set()
    out = set()
    for gid in gids:
        try:
            out.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            out.add(str(gid))
    return out


def check_submit(ctx: "Context", uid: int, user: str, spec: dict, partition: str,
                 time_limit: Optional[int], count: int = 1) -> dict[str, Any]:
    """The job's ``qos`` and ``account`` (and ``time_limit``: a QOS MaxWall is
    the limit of a job that gives none), or SubmitError with SLURM's message.
    ``count`` is how many jobs the submission makes (an array's tasks)."""
    lim: Limits = ctx.limits
    cfg = ctx.config
    pcfg = cfg.partitions[partition]
    book = lim.assocs
    if user not in book.known:
        book.known = book.known | {user}  # replaced whole: RPC threads read it
    account = spec.get("account") or book.default_account(user) or account_of(user)
    if book.user_assoc(account, user) is None and cfg.enforces("associations"):
        raise SubmitError(BAD_ACCOUNT)
    eff = book.effective(account, user)
    qos_name = (spec.get("qos") or eff.get("DefaultQOS") or "normal").lower()
    qos = lim.qos.get(qos_name)
    if qos is None and cfg.enforces("qos"):
        raise SubmitError(BAD_QOS)
    if eff.get("QOS") and qos_name not in eff["QOS"] and cfg.enforces("qos"):
        raise SubmitError(BAD_QOS)  # not among the association's QOS
    if pcfg.allow_groups is not None and uid != 0 and not (
            set(pcfg.allow_groups) & (user_groups(uid) | {"ALL"})):
        raise SubmitError(BAD_GROUP)
    if pcfg.allow_accounts is not None and account not in pcfg.allow_accounts \
            and "ALL" not in pcfg.allow_accounts:
        raise SubmitError(BAD_ACCOUNT)
    if pcfg.allow_qos is not None and qos_name not in pcfg.allow_qos \
            and "ALL" not in pcfg.allow_qos:
        raise SubmitError(BAD_QOS)
    if cfg.enforce_part_limits != "NO" and time_limit is not None:
        part_max = pcfg.max_minutes()
        if part_max is not None and time_limit > part_max:
            raise SubmitError(BAD_TIME)
    if qos is None or not cfg.enforces("limits"):
        return {"qos": qos_name, "account": account, "time_limit": time_limit}
    max_submit = eff.get("MaxSubmitJobs")
    caps = [c for c in (qos.MaxSubmitJobsPerUser, max_submit) if c is not None]
    if caps:
        mine_qos, mine_acct = _active_jobs(ctx, uid, qos_name, account)
        if qos.MaxSubmitJobsPerUser is not None and mine_qos + count > qos.MaxSubmitJobsPerUser:
            raise SubmitError(SUBMIT_LIMIT)
        if max_submit is not None and mine_acct + count > max_submit:
            raise SubmitError(SUBMIT_LIMIT)
    if time_limit is None:
        walls = [w for w in (_minutes(qos.MaxWall), _minutes(eff.get("MaxWall")))
                 if w is not None]
        if walls:
            time_limit = min(walls)
    return {"qos": qos_name, "account": account, "time_limit": time_limit}


def _active_jobs(ctx: "Context", uid: int, qos: str, account: str) -> tuple[int, int]:
    """How many of the user's jobs are pending or running, in this QOS and in
    this account (an array counts its tasks)."""
    states = ",".join(f"'{s}'" for s in ACTIVE_STATE_NAMES)
    in_qos = in_acct = 0
    for task in ctx.store.tasks(f"state IN ({states}) AND job_id IN "
                                "(SELECT job_id FROM jobs WHERE uid = ?)", (uid,)):
        req = task["req"]
        n = len(IndexSet.from_text(task["array_pending"])) if task["array_pending"] else 1
        if req.get("qos", "normal") == qos:
            in_qos += n
        if req.get("account", account) == account:
            in_acct += n
    return in_qos, in_acct


def check_update(ctx: "Context", job: dict, task: dict, changes: dict, shown: str) -> dict:
    """``scontrol update JobId=N QOS=... Account=...`` of a pending job: the
    request's new ``qos``/``account``, or JobError with SLURM's message."""
    from ..errors import JobError

    out = {}
    cfg = ctx.config
    if "qos" in changes:
        qos = str(changes["qos"] or "normal").lower()
        pcfg = cfg.partitions.get(task["req"]["partition"])
        allowed = pcfg.allow_qos if pcfg is not None else None
        if (qos not in ctx.limits.qos and cfg.enforces("qos")) or (
                allowed is not None and qos not in allowed and "ALL" not in allowed):
            raise JobError(f"Invalid qos specification for job {shown}")
        out["qos"] = qos
    if "account" in changes:
        book = ctx.limits.assocs
        account = str(changes["account"] or book.default_account(job["user"])
                      or account_of(job["user"]))
        if book.user_assoc(account, job["user"]) is None and cfg.enforces("associations"):
            raise JobError("Invalid account or account/partition combination specified "
                           f"for job {shown}")
        out["account"] = account
    return out
