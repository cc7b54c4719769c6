"""SLURM's ``priority/multifactor``: age, fair-share, job size, partition, QOS and nice.

Pure functions of (usage, shares tree, jobs, weights, ``now``): no clock, no
store. The controller keeps the decayed usage, calls :func:`fair_tree` and
:func:`job_priorities` every ``PriorityCalcPeriod`` and feeds the numbers to
the scheduler (:class:`~fleetslurm.scheduler.events.PrioritiesSet`).

Fair share uses **Fair Tree**, SLURM's default since 19.05 (``PriorityFlags``
without ``NO_FAIR_TREE``), not the classic algorithm, because:

- it ranks users instead of multiplying shares down the tree, so the factor
  does not lose precision with depth and two users never end up with factors
  so close that age or size decide instead of use;
- siblings are compared only with siblings: every user of an account that is
  under-served ranks above every user of an over-served sibling account, so
  an account's users cannot spoil another account's standing;
- a new user (no usage) ranks first at once, which is what a lab expects.

The factors and the sum follow ``priority_multifactor.c`` (SLURM 22.05):

- age = min(wait since eligible / ``PriorityMaxAge``, 1);
- fair-share = the user association's Fair Tree rank / number of user
  associations (the best-served-least user gets 1.0);
- job size (``PriorityFavorSmall=NO``) = (nodes/total nodes + CPUs/total CPUs) / 2,
  with ``PriorityFavorSmall=YES`` = ((N - nodes)/N + (C - CPUs)/C) / 2;
- partition = the partition's ``PriorityJobFactor`` / the largest one;
- QOS = the QOS's ``Priority`` / the largest QOS priority;
- priority = sum of weight * factor - nice, truncated to an integer, at least 1
  (0 is kept for held jobs).

Usage is in billing units times seconds: allocated CPUs, or with
``TRESBillingWeights`` the weighted sum of CPUs, memory and GPUs. It decays
with ``PriorityDecayHalfLife``: usage ``u`` that is ``t`` seconds old counts
``u * 2**(-t / half_life)``. SLURM applies the decay every calculation
period; :func:`charge` integrates it exactly, which is the limit of SLURM's
steps as the period shrinks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from fleetslurm.errors import InvalidValue

__all__ = [
    "DAY",
    "Weights",
    "BillingWeights",
    "parse_billing_weights",
    "ShareNode",
    "AssocShare",
    "UsageRecord",
    "PendingJob",
    "JobFactors",
    "decay",
    "charge",
    "decayed_usage",
    "fair_tree",
    "job_factors",
    "job_priorities",
    "max_priority",
]

DAY = 86400.0

#: one user association: (account, user)
Assoc = tuple[str, str]


@dataclass(frozen=True)
class Weights:
    """slurm.conf's ``PriorityWeight*``, ``PriorityMaxAge`` (seconds), ``PriorityFavorSmall``.

    SLURM's defaults: every weight 0 (so priority is 1 for every job and the
    queue stays first come, first served), max age 7 days.
    """

    age: int = 0
    fairshare: int = 0
    job_size: int = 0
    partition: int = 0
    qos: int = 0
    max_age_s: float = 7 * DAY
    favor_small: bool = False

    def total(self) -> int:
        """The sum of the weights: the largest priority a job with nice >= 0 can get."""
        return self.age + self.fairshare + self.job_size + self.partition + self.qos


# --------------------------------------------------------------------------- billing


@dataclass(frozen=True)
class BillingWeights:
    """``TRESBillingWeights``: billing units per CPU, per MB of memory, per GPU.

    ``None`` (not configured): a job is billed its allocated CPUs, as SLURM does.
    """

    cpu: float = 1.0
    mem_per_mb: float = 0.0
    gpu: float = 0.0

    def billing(self, cpus: int, mem_mb: int = 0, gpus: int = 0) -> float:
        """Billing units of an allocation (SLURM's sum, not ``MAX_TRES``)."""
        return self.cpu * cpus + self.mem_per_mb * mem_mb + self.gpu * gpus


_UNIT_MB = {"": 1.0, "K": 1.0 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}
_BILLING_ITEM = re.compile(r"^\s*([A-Za-z/]+)\s*=\s*([0-9]*\.?[0-9]+)\s*([KMGTkmgt]?)\s*$")


def parse_billing_weights(text: str) -> BillingWeights:
    """Parse ``CPU=1.0,Mem=0.25G,GRES/gpu=2.0`` (SLURM's syntax; names case-insensitive).

    A memory weight's unit suffix says per how much memory (``0.25G``: 0.25
    per GB); without one it is per MB. A TRES left out weighs 0, so
    ``GRES/gpu=2`` alone bills GPUs only, as in SLURM. Empty text: CPUs only.
    Raises :class:`InvalidValue` naming the bad item.
    """
    if not text.strip():
        return BillingWeights()
    cpu = mem = gpu = 0.0
    for item in text.split(","):
        m = _BILLING_ITEM.match(item)
        if not m:
            raise InvalidValue(f"invalid TRESBillingWeights item {item.strip()!r} in {text!r}: "
                               "use NAME=NUMBER, e.g. CPU=1.0,Mem=0.25G,GRES/gpu=2.0")
        name, value, unit = m.group(1).lower(), float(m.group(2)), m.group(3).upper()
        if name == "cpu" and not unit:
            cpu = value
        elif name == "mem":
            mem = value / _UNIT_MB[unit]
        elif name in ("gres/gpu", "gpu") and not unit:
            gpu = value
        else:
            raise InvalidValue(f"invalid TRESBillingWeights item {item.strip()!r} in {text!r}: "
                               "the TRES fleetslurm bills are CPU, Mem (unit K, M, G or T) and GRES/gpu")
    return BillingWeights(cpu=cpu, mem_per_mb=mem, gpu=gpu)


# --------------------------------------------------------------------------- usage and decay


def decay(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """``usage`` after ``elapsed_s`` seconds of decay (half-life 0: no decay, as SLURM)."""
    if half_life_s <= 0 or elapsed_s <= 0:
        return usage
    return usage * 2.0 ** (-elapsed_s / half_life_s)


def charge(billing: float, start: float, end: float, now: float, half_life_s: float) -> float:
    """Decayed usage at ``now`` of ``billing`` units used from ``start`` to ``end``.

    Each second of use decays from the moment it was used:
    ``billing * integral(2**(-(now - t) / H), t=start..end)``. Nothing before
    ``start`` or after ``min(end, now)`` counts.
    """
    end = min(end, now)
    if end <= start or billing <= 0:
        return 0.0
    if half_life_s <= 0:
        return billing * (end - start)
    k = math.log(2.0) / half_life_s
    return billing * (math.exp(-k * (now - end)) - math.exp(-k * (now - start))) / k


@dataclass(frozen=True)
class UsageRecord:
    """A job's use: ``billing`` units (CPUs, or per ``TRESBillingWeights``) from
    ``start`` to ``end`` (a running job: ``end`` = now)."""

    user: str
    account: str
    start: float
    end: float
    billing: float


def decayed_usage(records: Iterable[UsageRecord], now: float,
                  half_life_s: float) -> dict[Assoc, float]:
    """Raw usage (decayed billing-seconds) per (account, user) at ``now``."""
    out: dict[Assoc, float] = {}
    for r in records:
        key = (r.account, r.user)
        out[key] = out.get(key, 0.0) + charge(r.billing, r.start, r.end, now, half_life_s)
    return out


# --------------------------------------------------------------------------- Fair Tree


@dataclass(frozen=True)
class ShareNode:
    """An association: an account with children, or a user (a leaf) under its account.

    ``shares`` is ``Fairshare=`` (RawShares). The tree's root is the account
    ``root``; fleetslurm's default tree is root -> one account per user ->
    that user, every share 1.
    """

    name: str
    shares: int = 1
    children: tuple["ShareNode", ...] = ()
    is_user: bool = False


@dataclass(frozen=True)
class AssocShare:
    """One association's row of ``sshare -l``.

    ``user`` is "" for an account. ``level_fs`` is ``inf`` for an association
    without usage and with shares. ``fairshare`` is the Fair Tree factor for a
    user, ``None`` for an account (sshare leaves it blank).
    """

    account: str
    user: str
    depth: int
    raw_shares: int
    norm_shares: float
    raw_usage: float
    effective_usage: float
    level_fs: float
    fairshare: Optional[float] = None


@dataclass
class _Node:
    key: Assoc
    name: str
    is_user: bool
    level_fs: float
    children: list["_Node"] = field(default_factory=list)


def _level_fs(shares_norm: float, usage_efctv: float) -> float:
    # SLURM: S == 0 -> 0 (lowest); U == 0 with S > 0 -> infinity (highest)
    if shares_norm == 0:
        return 0.0
    if usage_efctv == 0:
        return math.inf
    return shares_norm / usage_efctv


def fair_tree(root: ShareNode, usage: Mapping[Assoc, float]) -> dict[Assoc, AssocShare]:
    """Run Fair Tree over ``root`` with raw usage per (account, user).

    Returns a row per association, keyed (account, "") for an account and
    (account, user) for a user, in the tree's order (``sshare``'s). Usage of
    an account is the sum of its subtree's; usage for a (account, user) not in
    the tree is ignored (SLURM has no association to charge). Shares are
    normalised among siblings (``NormShares``), usage within the parent
    (``EffectvUsage``), as Fair Tree does.
    """
    rows: dict[Assoc, AssocShare] = {}

    def subtree_usage(node: ShareNode, account: str) -> float:
        if node.is_user:
            return float(usage.get((account, node.name), 0.0))
        return sum(subtree_usage(c, node.name) for c in node.children)

    def visit(node: ShareNode, account: str, depth: int, parent_usage: float,
              level_shares: int) -> _Node:
        raw = subtree_usage(node, account)
        s = max(0, node.shares) / level_shares if level_shares > 0 else 0.0
        u = raw / parent_usage if parent_usage > 0 else 0.0
        key: Assoc = (account, node.name) if node.is_user else (node.name, "")
        lf = _level_fs(s, u)
        rows[key] = AssocShare(account=account if node.is_user else node.name,
                               user=node.name if node.is_user else "", depth=depth,
                               raw_shares=node.shares, norm_shares=s, raw_usage=raw,
                               effective_usage=u, level_fs=lf)
        out = _Node(key, node.name, node.is_user, lf)
        if not node.is_user:
            total = sum(max(0, c.shares) for c in node.children)
            out.children = [visit(c, node.name, depth + 1, raw, total) for c in node.children]
        return out

    root_usage = subtree_usage(root, root.name)
    rows[(root.name, "")] = AssocShare(account=root.name, user="", depth=0, raw_shares=root.shares,
                                       norm_shares=1.0, raw_usage=root_usage,
                                       effective_usage=1.0 if root_usage else 0.0, level_fs=math.inf)
    total = sum(max(0, c.shares) for c in root.children)
    top = [visit(c, root.name, 1, root_usage, total) for c in root.children]

    users = sum(1 for k in rows if k[1])
    factors: dict[Assoc, float] = {}
    counter = {"rank": users, "rnt": users}

    def rank(siblings: list[_Node], account_tied: bool) -> None:
        # highest level_fs first; on a tie users before accounts (SLURM's _cmp_level_fs);
        # the name only makes the order of equal entries reproducible
        ordered = sorted(siblings, key=lambda n: (-n.level_fs, not n.is_user, n.name))
        prev: Optional[float] = None
        i = 0
        while i < len(ordered):
            node = ordered[i]
            tied = account_tied if i == 0 else (prev == node.level_fs)
            if node.is_user:
                if not tied:
                    counter["rank"] = counter["rnt"]
                factors[node.key] = counter["rank"] / users
                counter["rnt"] -= 1
            else:
                # sibling accounts with the same level_fs have their children merged
                merged = list(node.children)
                j = i + 1
                while (j < len(ordered) and not ordered[j].is_user
                       and ordered[j].level_fs == node.level_fs):
                    merged.extend(ordered[j].children)
                    j += 1
                rank(merged, tied)
                i = j - 1
            prev = node.level_fs
            i += 1

    rank(top, False)
    return {k: _with_factor(row, factors.get(k)) for k, row in rows.items()}


def _with_factor(row: AssocShare, factor: Optional[float]) -> AssocShare:
    if factor is None:
        return row
    return AssocShare(**{**row.__dict__, "fairshare": factor})


# --------------------------------------------------------------------------- job priority


@dataclass(frozen=True)
class PendingJob:
    """What multifactor needs of a pending job. ``eligible_time`` is when it became
    eligible (SLURM's accrue time: submit, or ``--begin`` if later)."""

    job_id: int
    user: str
    account: str
    partition: str
    eligible_time: float
    cpus: int = 1
    nodes: int = 1
    qos: str = "normal"
    nice: int = 0


@dataclass(frozen=True)
class JobFactors:
    """``sprio -l``'s columns for one job: the normalised factors in [0, 1], nice and
    the resulting priority."""

    job_id: int
    user: str
    account: str
    partition: str
    qos: str
    age: float
    fairshare: float
    job_size: float
    partition_factor: float
    qos_factor: float
    nice: int
    priority: int


def job_factors(job: PendingJob, weights: Weights, fairshare: Mapping[Assoc, float],
                partition_factors: Mapping[str, int], qos_priorities: Mapping[str, int],
                total_nodes: int, total_cpus: int, now: float) -> JobFactors:
    """The factors and priority of one job.

    ``fairshare`` is (account, user) -> Fair Tree factor (a job whose
    association is unknown gets 0, as SLURM logs "has no association");
    ``partition_factors`` is partition -> ``PriorityJobFactor``;
    ``qos_priorities`` is QOS -> ``Priority``.
    """
    wait = max(0.0, now - job.eligible_time)
    age = 1.0 if weights.max_age_s <= 0 else min(1.0, wait / weights.max_age_s)
    fs = float(fairshare.get((job.account, job.user), 0.0))
    size = 0.0
    if total_nodes > 0 and total_cpus > 0:
        if weights.favor_small:
            size = max(0, total_nodes - job.nodes) / total_nodes
            size = (size + (total_cpus - job.cpus) / total_cpus) / 2
        else:
            size = (job.nodes / total_nodes + job.cpus / total_cpus) / 2
        size = min(1.0, max(0.0, size))
    top_part = max(partition_factors.values(), default=0)
    part = partition_factors.get(job.partition, 0) / top_part if top_part > 0 else 0.0
    top_qos = max(qos_priorities.values(), default=0)
    qos = qos_priorities.get(job.qos, 0) / top_qos if top_qos > 0 else 0.0
    total = (weights.age * age + weights.fairshare * fs + weights.job_size * size
             + weights.partition * part + weights.qos * qos - job.nice)
    # SLURM: priority 0 is reserved for held jobs; the sum is truncated to uint32
    priority = int(min(max(total, 1.0), float(0xFFFFFFFF)))
    return JobFactors(job_id=job.job_id, user=job.user, account=job.account,
                      partition=job.partition, qos=job.qos, age=age, fairshare=fs,
                      job_size=size, partition_factor=part, qos_factor=qos, nice=job.nice,
                      priority=priority)


def job_priorities(jobs: Iterable[PendingJob], weights: Weights, fairshare: Mapping[Assoc, float],
                   partition_factors: Mapping[str, int], qos_priorities: Mapping[str, int],
                   total_nodes: int, total_cpus: int, now: float) -> dict[int, JobFactors]:
    """:func:`job_factors` for every job, by job id."""
    return {j.job_id: job_factors(j, weights, fairshare, partition_factors, qos_priorities,
                                  total_nodes, total_cpus, now) for j in jobs}


def max_priority(weights: Weights) -> int:
    """The largest priority a job with ``nice >= 0`` can have (at least 1)."""
    return max(1, weights.total())
