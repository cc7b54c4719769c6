"""The controller's side of ``priority/multifactor``: usage and periodic priorities.

The arithmetic is pure (:mod:`fleetslurm.scheduler.multifactor`); this module
moves numbers between it, the store and the scheduler:

- when a task ends, its billing-seconds are charged to its association
  (account, user) in the store's ``usage`` table, decayed to that moment, so a
  restart keeps fair share (SLURM keeps it in slurmdbd);
- every ``PriorityCalcPeriod`` (and at the first step), usage is decayed to
  now, running tasks' use so far is added (SLURM charges running jobs each
  period), Fair Tree ranks the users and every pending job gets its priority,
  sent to the scheduler as one :class:`PrioritiesSet` after the step's events;
- a job submitted in between gets its priority in its own step (SLURM
  prioritises a new job at once), and the ranking is redone then too, at most
  once a second, so a user who arrives behind a long queue is ranked on
  current usage rather than on usage up to a period old.

The numbers are kept for ``sprio`` and ``sshare``. Priorities themselves are
not stored: they are a pure function of the stored usage and the clock, so a
restarted controller computes the same ones at its first step.

Without a ``priority`` section (or with ``priority/basic``) nothing here runs
and jobs are ordered as before.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from ..config import FleetConfig
from ..scheduler.events import JobSubmitted, PrioritiesSet
from ..scheduler.multifactor import (
    AssocShare, BillingWeights, JobFactors, PendingJob, ShareNode, Weights, charge, decay,
    fair_tree, job_priorities, parse_billing_weights,
)
from ..slurm.assoc import account_of
from ..slurm.units import parse_time_limit

if TYPE_CHECKING:
    from .context import Context

__all__ = ["FairShare"]


def _account(task: dict, user: str) -> str:
    """The account a task's use is charged to: its own (``-A``, or the user's
    default when it was submitted)."""
    return (task.get("req") or {}).get("account") or account_of(user)


class FairShare:
    """Fair-share usage and multifactor priorities of one controller."""

    def __init__(self, config: FleetConfig) -> None:
        cfg = config.priority
        self.enabled = cfg is not None and cfg.PriorityType == "priority/multifactor"
        self.shares: dict[str, int] = dict(cfg.Fairshare) if cfg else {}
        self.weights = Weights()
        self.half_life_s = 7 * 86400.0
        self.period_s = 300.0
        self.billing: BillingWeights = BillingWeights()
        if cfg is not None:
            self.weights = Weights(
                age=cfg.PriorityWeightAge, fairshare=cfg.PriorityWeightFairshare,
                job_size=cfg.PriorityWeightJobSize, partition=cfg.PriorityWeightPartition,
                qos=cfg.PriorityWeightQOS,
                max_age_s=60.0 * (parse_time_limit(cfg.PriorityMaxAge) or 0),
                favor_small=cfg.PriorityFavorSmall)
            self.half_life_s = 60.0 * (parse_time_limit(cfg.PriorityDecayHalfLife) or 0)
            self.period_s = 60.0 * cfg.PriorityCalcPeriod
            self.billing = parse_billing_weights(cfg.TRESBillingWeights)
        self._partition_factors = {n: p.priority for n, p in config.partitions.items()}
        #: the controller's association tree (:class:`.assocs.Associations`, set by
        #: the controller; None: the default tree)
        self.book: Any = None
        #: QOS -> Priority (the QOS factor), set by the controller from its limits
        self.qos_priorities: dict[str, int] = {n: q.Priority for n, q in config.qos.items()}
        self._at = -math.inf
        #: the last computation, for sprio and sshare
        self.factors: dict[int, JobFactors] = {}
        self.assocs: dict[tuple[str, str], AssocShare] = {}
        self.computed_at: Optional[float] = None
        self.held: frozenset[int] = frozenset()
        #: bumped at every computation: squeue's cached texts hold until it changes
        self.version = 0

    # -- usage -------------------------------------------------------------
    def task_ended(self, ctx: "Context", task: dict, now: float) -> None:
        """Charge an ended task's run (read back from the store) to its association."""
        if not self.enabled:
            return
        row = ctx.store.task(task["task_id"])
        if row is not None:
            self.charge_run(ctx, row, row.get("end_time") or now, now)

    def charge_run(self, ctx: "Context", row: dict, end: float, now: float,
                   sign: float = 1.0) -> None:
        """Charge a task row's run from its start to ``end`` (a requeued run: now);
        ``sign=-1`` takes back such a charge (never below zero)."""
        if not self.enabled or row.get("start_time") is None:
            return  # never ran: nothing used
        job = ctx.store.job(row["job_id"])
        if job is None:
            return
        user = job["user"]
        used = self.billing.billing(row.get("alloc_cpus") or 1, row.get("alloc_mem_mb") or 0,
                                    len(row.get("gpu_ids") or ()))
        key = (_account(row, user), user)
        raw, as_of = ctx.store.usage().get(key, (0.0, now))
        raw = decay(raw, now - as_of, self.half_life_s)
        raw = max(0.0, raw + sign * charge(used, row["start_time"], end, now, self.half_life_s))
        ctx.store.set_usage(key[0], key[1], raw, now)

    def usage_now(self, ctx: "Context", now: float) -> dict[tuple[str, str], float]:
        """Raw usage per association at ``now``: stored usage decayed, plus running tasks."""
        out = {k: decay(raw, now - as_of, self.half_life_s)
               for k, (raw, as_of) in ctx.store.usage().items()}
        for t in ctx.store.tasks("state = 'RUNNING'"):  # not the pending queue: it may be long
            if t.get("start_time") is None:
                continue
            job = ctx.store.job(t["job_id"])
            if job is None:
                continue
            key = (_account(t, job["user"]), job["user"])
            used = self.billing.billing(t.get("alloc_cpus") or 1, t.get("alloc_mem_mb") or 0,
                                        len(t.get("gpu_ids") or ()))
            out[key] = out.get(key, 0.0) + charge(used, t["start_time"], now, now, self.half_life_s)
        return out

    def tree(self, users: set[str]) -> ShareNode:
        """The association tree (:mod:`.assocs`: by default root -> one account
        per user -> that user) with its shares (Fairshare)."""
        if self.book is None:  # no controller's associations: the default tree
            kids: list[ShareNode] = [ShareNode("root", 1, is_user=True)]
            for u in sorted(users - {"root"}):
                acct = account_of(u)
                kids.append(ShareNode(acct, self.shares.get(acct, 1),
                                      (ShareNode(u, 1, is_user=True),)))
            return ShareNode("root", 1, tuple(kids))
        book = self.book
        rows = book.tree(users)
        users_of: dict[str, list[str]] = {}
        subs: dict[str, list[str]] = {}
        for a in rows:
            if a.user:
                users_of.setdefault(a.account, []).append(a.user)
            elif a.parent_name:
                subs.setdefault(a.parent_name, []).append(a.account)

        def node(account: str) -> ShareNode:
            kids = [ShareNode(u, book.shares(account, u), is_user=True)
                    for u in users_of.get(account, ())]
            kids += [node(s) for s in subs.get(account, ())]
            return ShareNode(account, book.shares(account) if account != "root" else 1,
                             tuple(kids))

        return node("root")

    def force_recompute(self) -> None:
        """Shares or the tree changed (sacctmgr): rank again at the next step."""
        self._at = -math.inf

    # -- periodic ------------------------------------------------------------
    def events_for_step(self, ctx: "Context", events: list, now: float) -> list:
        """What to add after this step's ``events``: every ``PriorityCalcPeriod`` new
        priorities for all pending jobs; otherwise priorities for the jobs submitted
        in this step (SLURM gives a new job its priority at once), from the last
        fair-share ranking."""
        if not self.enabled:
            return []
        new = [ev.job for ev in events if isinstance(ev, JobSubmitted)]
        kept = dict(self.factors)
        # the ranking follows usage every period, and also (at most once a second) when
        # jobs arrive: a user who just came must not wait a period behind a busy one
        if now - self._at >= self.period_s or (new and now - self._at >= 1.0):
            self._at = now
            usage = self.usage_now(ctx, now)
            pending = ctx.sched.pending_requests() + new
            users = {u for (_a, u) in usage} | {r.user for r in pending}
            if self.book is None:
                users |= set(self.shares)  # the default tree: an account per user
            self.assocs = fair_tree(self.tree(users), usage)
            kept = {}
            self.computed_at = now
        elif new:
            pending = new
        else:
            return []
        fs = {k: r.fairshare for k, r in self.assocs.items() if r.fairshare is not None}
        nodes = [ctx.node_spec(n) for n in ctx.config.machines]
        jobs = [PendingJob(r.job_id, r.user, r.account or account_of(r.user),
                           r.partition or ctx.config.default_partition,
                           max(r.submit_time, r.begin_time or 0.0), r.cpus, 1, r.qos, r.nice)
                for r in pending]
        fresh = job_priorities(jobs, self.weights, fs, self._partition_factors, self.qos_priorities,
                               len(nodes), sum(n.cpus for n in nodes), now)
        kept.update(fresh)
        everyone = ctx.sched.pending_requests() + new
        pending_now = {r.job_id for r in everyone}
        # sprio leaves out held jobs (SLURM's priority 0), as of this computation
        self.held = frozenset(r.job_id for r in everyone if r.held)
        # replaced whole, never changed in place: query threads read it (sprio)
        self.factors = {j: f for j, f in kept.items() if j in pending_now}
        self.version += 1
        return [PrioritiesSet({j: f.priority for j, f in fresh.items()})]

    def priority_of(self, job_id: int) -> Optional[int]:
        """A pending job's multifactor priority (squeue %Q, scontrol's Priority), or None."""
        f = self.factors.get(job_id)
        return None if f is None or job_id in self.held else f.priority

    def snapshot(self) -> dict[str, Any]:
        """The last computation, for ``sprio`` and ``sshare`` (plain data)."""
        w, held = self.weights, self.held
        return {
            "enabled": self.enabled,
            "weights": {"age": w.age, "fairshare": w.fairshare, "jobsize": w.job_size,
                        "partition": w.partition, "qos": w.qos},
            "jobs": [dict(f.__dict__) for j, f in self.factors.items() if j not in held],
            # JSON has no infinity: Level FS of an association without usage is "inf"
            "assocs": [{**r.__dict__, "level_fs": "inf" if math.isinf(r.level_fs) else r.level_fs}
                       for r in self.assocs.values()],
        }
