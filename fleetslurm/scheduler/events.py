"""The scheduler's vocabulary: cluster descriptions, events in, actions out.

Everything here is a frozen dataclass. Events are past tense (something
happened that the scheduler must take into account); actions are imperative
(something the controller must now do). Times are UNIX epoch seconds (float);
time limits are minutes, ``None`` meaning UNLIMITED; memory is MB.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Union

__all__ = [
    "Unset",
    "UNSET",
    "NodeSpec",
    "NodePolicy",
    "PartitionSpec",
    "JobRequest",
    "NodeUp",
    "NodeDown",
    "NodeDrain",
    "NodeResume",
    "NodeMeasured",
    "UserNodeExcluded",
    "UserNodesCleared",
    "PartitionSet",
    "PrioritiesSet",
    "Tres",
    "QosLimits",
    "AssocLimits",
    "LimitsSet",
    "JobSubmitted",
    "ArrayTasks",
    "JobRestored",
    "JobEnded",
    "JobRequeued",
    "JobHeld",
    "JobReleased",
    "JobUpdated",
    "StartJob",
    "CancelJob",
    "SuspendJob",
    "ResumeJob",
    "EvictJob",
    "Event",
    "Action",
]


class Unset:
    """Type of :data:`UNSET`, the "leave this field alone" marker of :class:`JobUpdated`."""

    _instance: "Unset | None" = None

    def __new__(cls) -> "Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


#: marker for "not changed" in :class:`JobUpdated`
UNSET = Unset()


# --------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class NodePolicy:
    """A workstation's policy (the config's ``policy`` and ``available``).

    No new job while the owner was active within ``owner_idle_s``, while the
    measured foreign load is above ``max_foreign_load`` or the free memory
    under ``min_free_mem_mb`` (``None``: that check is off), or outside
    ``windows`` (:class:`fleetslurm.hours.Window`; empty: always). While the
    owner is active or the machine is outside its hours, its running jobs
    are left alone (``stop_starting``), suspended (``suspend``) or requeued
    (``requeue``).
    """

    max_foreign_load: float | None = None
    min_free_mem_mb: int | None = None
    owner_idle_s: float | None = None
    when_owner_active: str = "stop_starting"
    windows: tuple[Any, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One machine as the scheduler allocates it (declared resources).

    An empty ``partitions`` tuple puts the node in the default partition.
    Nodes with the lowest ``weight`` are allocated first (SLURM semantics).
    """

    name: str
    cpus: int
    mem_mb: int
    gpu_ids: tuple[int, ...] = ()
    partitions: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()
    weight: int = 1
    #: a workstation's policy; None: jobs start whatever the machine does
    policy: NodePolicy | None = None


@dataclass(frozen=True)
class PartitionSpec:
    """A partition. ``max_time`` is minutes, ``None`` for UNLIMITED;
    ``placement`` is ``pack`` (best fit) or ``spread`` (least loaded first)."""

    name: str
    priority: int = 1
    max_time: int | None = None
    default: bool = False
    up: bool = True
    placement: str = "pack"


@dataclass(frozen=True)
class JobRequest:
    """What a job asks for. Jobs are single-node: ``cpus`` is the total on that node.

    ``time_limit`` is minutes (``None``: the partition's MaxTime, else
    UNLIMITED); ``mem_mb=0`` reserves no memory; ``nodelist`` is the set of
    acceptable nodes (any one of them); ``constraint`` uses SLURM's feature
    syntax (``a``, ``a&b``, ``a|b``; ``&`` binds tighter); ``priority`` is an
    extra admin priority, higher first.
    """

    job_id: int
    user: str
    partition: str
    submit_time: float
    cpus: int = 1
    mem_mb: int = 0
    gpus: int = 0
    time_limit: int | None = None
    nice: int = 0
    nodelist: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    constraint: str = ""
    begin_time: float | None = None
    held: bool = False
    dependency: str = ""
    name: str = ""
    exclusive: bool = False
    priority: int = 0
    #: for a task of a job array: the array's job id and this task's index
    array_job_id: int | None = None
    array_task_id: int | None = None
    #: the job's QOS and account (its association), for QOS and association limits
    qos: str = "normal"
    account: str = ""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class NodeUp:
    """A node joins, returns to service after being unreachable, or changes size.

    Clears DOWN; an administrator's DRAIN stays until :class:`NodeResume`.
    """

    node: NodeSpec


@dataclass(frozen=True)
class NodeDown:
    """A node is unreachable: no new work. Jobs running there are left alone."""

    name: str
    reason: str


@dataclass(frozen=True)
class NodeDrain:
    """No new work on this node; ``drng`` while jobs run, ``drain`` once empty."""

    name: str
    reason: str


@dataclass(frozen=True)
class NodeResume:
    """The node is back from DRAIN and/or DOWN."""

    name: str


@dataclass(frozen=True)
class NodeMeasured:
    """What a machine's agent measured at its last heartbeat: its load
    average, the foreign load (CPUs busy with work that is not fleetslurm's),
    free memory (MB) and seconds since its owner's last activity (``None``:
    unknown, or nobody)."""

    name: str
    load1: float | None = None
    foreign_load: float | None = None
    free_mem_mb: int | None = None
    owner_idle_s: float | None = None


@dataclass(frozen=True)
class UserNodeExcluded:
    """``user``'s jobs may no longer be placed on ``node``: the user is unknown
    on that machine (its agent could not start a job as them). ``reason``
    is what ``explain`` shows."""

    user: str
    node: str
    reason: str = ""


@dataclass(frozen=True)
class UserNodesCleared:
    """Forget every user exclusion of ``node`` (its agent said hello again, or
    an administrator resumed or reconfigured it)."""

    node: str


@dataclass(frozen=True)
class PartitionSet:
    """Add or replace a partition."""

    partition: PartitionSpec


@dataclass(frozen=True)
class JobSubmitted:
    """A new PENDING job."""

    job: JobRequest


@dataclass(frozen=True)
class ArrayTasks:
    """The tasks of array ``array_job_id`` that the scheduler does not see one by one.

    An array's tasks are submitted (:class:`JobSubmitted` with
    ``array_job_id`` set) a few at a time; the rest are counted here so that
    a dependency on the whole array sees all of them: ``unsubmitted`` tasks
    still pending, ``ended_ok`` and ``ended_bad`` tasks that ended
    (COMPLETED / any other state, e.g. cancelled before being submitted).
    Each event replaces the previous counts.
    """

    array_job_id: int
    unsubmitted: int
    ended_ok: int = 0
    ended_bad: int = 0


@dataclass(frozen=True)
class JobRestored:
    """A job already RUNNING on ``node`` (controller restart): allocate, no action.
    ``suspended_at``: suspended by its node's policy since then; ``suspended_s``:
    seconds it was suspended before."""

    job: JobRequest
    node: str
    gpu_ids: tuple[int, ...]
    start_time: float
    suspended_at: float | None = None
    suspended_s: float = 0.0


@dataclass(frozen=True)
class JobEnded:
    """A running or pending job reached a final ``state`` (COMPLETED, FAILED, ...)."""

    job_id: int
    state: str
    end_time: float


@dataclass(frozen=True)
class JobRequeued:
    """A running job goes back to PENDING; ``submit_time`` replaces the old one if given."""

    job_id: int
    submit_time: float | None = None


@dataclass(frozen=True)
class JobHeld:
    """The job may not start until released (on a running job: after a requeue)."""

    job_id: int


@dataclass(frozen=True)
class JobReleased:
    """A held job may start again."""

    job_id: int


@dataclass(frozen=True)
class JobUpdated:
    """Change fields of a job's request; fields left at :data:`UNSET` are kept.

    On a running job the allocation is unchanged; a new ``time_limit`` moves
    its expected end, the other fields apply if it is requeued.
    """

    job_id: int
    user: str | Unset = UNSET
    partition: str | Unset = UNSET
    submit_time: float | Unset = UNSET
    cpus: int | Unset = UNSET
    mem_mb: int | Unset = UNSET
    gpus: int | Unset = UNSET
    time_limit: int | None | Unset = UNSET
    nice: int | Unset = UNSET
    nodelist: frozenset[str] | Unset = UNSET
    exclude: frozenset[str] | Unset = UNSET
    constraint: str | Unset = UNSET
    begin_time: float | None | Unset = UNSET
    held: bool | Unset = UNSET
    dependency: str | Unset = UNSET
    name: str | Unset = UNSET
    exclusive: bool | Unset = UNSET
    priority: int | Unset = UNSET
    qos: str | Unset = UNSET
    account: str | Unset = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields this update sets, as keyword arguments for ``dataclasses.replace``."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "job_id" and getattr(self, f.name) is not UNSET
        }


@dataclass(frozen=True)
class PrioritiesSet:
    """Multifactor priorities (job id -> priority, higher first) computed by
    :mod:`fleetslurm.scheduler.multifactor`.

    They order jobs within the same partition priority (PriorityTier) and
    admin priority; jobs not named keep theirs; ended or unknown jobs are
    skipped (the numbers may come from a snapshot a step old).
    """

    priorities: Mapping[int, int]


@dataclass(frozen=True)
class Tres:
    """Trackable resources of a limit: CPUs, memory (MB), GPUs (``gres/gpu``);
    ``None`` is no limit on that resource."""

    cpu: int | None = None
    mem_mb: int | None = None
    gpu: int | None = None

    def any(self) -> bool:
        return self.cpu is not None or self.mem_mb is not None or self.gpu is not None


@dataclass(frozen=True)
class QosLimits:
    """One QOS (``sacctmgr show qos``): its priority and limits, ``None`` for none.

    ``max_tres_pu``/``max_jobs_pu`` bound what one user's running jobs of this
    QOS hold; ``grp_tres`` what all its running jobs hold; ``max_wall``
    (minutes) a job's time limit; ``max_submit_pu`` is checked at submission.
    """

    name: str
    priority: int = 0
    max_jobs_pu: int | None = None
    max_submit_pu: int | None = None
    max_tres_pu: Tres = Tres()
    max_wall: int | None = None
    grp_tres: Tres = Tres()
    grp_jobs: int | None = None
    description: str = ""


@dataclass(frozen=True)
class AssocLimits:
    """An association's limits: an account's (``user`` empty) or a user's in
    an account. ``grp_tres``/``grp_jobs`` bound what all its running jobs
    hold (an account's: its sub-accounts' jobs too; ``parent`` names the
    account above it); ``max_jobs`` per user, ``max_wall`` (minutes) and
    ``max_tres`` per job, ``max_submit`` per user at submission, each the
    value in force (the controller resolves what is inherited from above). A
    user without an association of their own here gets the account's; an
    account without a record counts as directly below root, so a tree with
    sub-accounts sends a record for each of its accounts."""

    account: str
    grp_tres: Tres = Tres()
    grp_jobs: int | None = None
    max_jobs: int | None = None
    max_submit: int | None = None
    max_wall: int | None = None
    user: str = ""
    parent: str = ""
    max_tres: Tres = Tres()


@dataclass(frozen=True)
class LimitsSet:
    """Replace every QOS and association limit (the config's, then sacctmgr's changes).

    A job whose QOS is not named here has no QOS limits. Lowering a limit
    stops nothing that runs: it only holds jobs that have not started.
    """

    qos: tuple[QosLimits, ...] = ()
    accounts: tuple[AssocLimits, ...] = ()


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class StartJob:
    """Start ``job_id`` on ``node`` with this allocation (the scheduler already counts it)."""

    job_id: int
    node: str
    cpus: int
    mem_mb: int
    gpu_ids: tuple[int, ...]


@dataclass(frozen=True)
class CancelJob:
    """Cancel a job. Defined for the controller's sake; the scheduler does not emit it
    (SLURM's default leaves a job whose dependency failed PENDING with reason
    ``DependencyNeverSatisfied``)."""

    job_id: int
    reason: str


@dataclass(frozen=True)
class SuspendJob:
    """Stop a running job's processes (SIGSTOP) on ``node``: its owner is back.
    The scheduler keeps its allocation; its time limit's clock stops."""

    job_id: int
    node: str
    reason: str


@dataclass(frozen=True)
class ResumeJob:
    """Let a job suspended by :class:`SuspendJob` run again (SIGCONT)."""

    job_id: int
    node: str


@dataclass(frozen=True)
class EvictJob:
    """Requeue a running job because its machine's owner is back (the
    controller's requeue comes back as :class:`JobRequeued`)."""

    job_id: int
    node: str
    reason: str


Event = Union[
    NodeUp, NodeDown, NodeDrain, NodeResume, NodeMeasured, UserNodeExcluded, UserNodesCleared,
    PartitionSet,
    JobSubmitted, JobRestored, JobEnded, JobRequeued, JobHeld, JobReleased, JobUpdated,
    ArrayTasks, PrioritiesSet, LimitsSet,
]
Action = Union[StartJob, CancelJob, SuspendJob, ResumeJob, EvictJob]
