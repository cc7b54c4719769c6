"""The scheduler's private bookkeeping for one job, one node and one job array."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from fleetslurm.scheduler.events import JobRequest, NodeMeasured, NodeSpec
from fleetslurm.scheduler.lifecycle import PENDING, RUNNING, History
from fleetslurm.scheduler.policy import Shape, Vec, capacity
from fleetslurm.slurm.deps import Dependency, Facts

__all__ = ["JobEntry", "NodeEntry", "ArrayEntry"]


@dataclass(eq=False)
class JobEntry:
    """One job: its request, phase and (while running) its allocation."""

    req: JobRequest
    phase: str
    history: History = field(default_factory=History)
    final: str = ""                      # SLURM state once ENDED
    node: Optional[str] = None
    cpus: int = 0
    mem_mb: int = 0
    gpu_ids: tuple[int, ...] = ()
    start_time: Optional[float] = None   # of the current (or last) run
    first_start: Optional[float] = None  # of the first run, for after:ID
    end_time: Optional[float] = None
    dep: Optional[Dependency] = None
    dep_error: Optional[str] = None      # why the dependency string is invalid
    key: tuple = ()                      # priority sort key while pending
    shape: Optional[Shape] = None        # cached by SchedulerState
    where: tuple = ()                    # shape without sizes: which nodes, sizes aside
    fit_key: tuple = ()                  # (where, cpus, mem, gpus, duration): same key, same fit
    dur: float = 0.0                     # seconds it may run (inf: UNLIMITED)
    computed: int = 0                    # multifactor priority from PrioritiesSet (0: none)
    suspended_at: Optional[float] = None  # suspended by its node's policy since then
    suspended_s: float = 0.0             # seconds suspended before (its limit's clock stood)
    evicting: bool = False               # its requeue was asked (EvictJob)


@dataclass(eq=False)
class NodeEntry:
    """One node: its spec, availability and what is allocated on it."""

    spec: NodeSpec
    history: History = field(default_factory=History)
    down_reason: Optional[str] = None
    drain_reason: Optional[str] = None
    used_cpus: int = 0
    used_mem: int = 0
    used_gpus: set[int] = field(default_factory=set)
    jobs: set[int] = field(default_factory=set)
    #: a NodeUp shrank the node below what its running jobs hold; nothing new fits
    #: until enough of them end
    shrunk: bool = False
    #: what its agent measured last (NodeMeasured)
    measured: Optional[NodeMeasured] = None
    #: why its workstation policy takes no new job now (set at each pass)
    busy_reason: Optional[str] = None

    @property
    def available(self) -> bool:
        """Up, not drained and not claimed by its owner or load: may take new work."""
        return self.down_reason is None and self.drain_reason is None and self.busy_reason is None

    def free_now(self) -> Vec:
        """What is free now (negative if shrunk below its allocation)."""
        spec = self.spec
        free_gpus = len(set(spec.gpu_ids) - self.used_gpus)
        return (spec.cpus - self.used_cpus, spec.mem_mb - self.used_mem, free_gpus)

    def over_capacity(self) -> bool:
        """Whether the allocations exceed the declared resources."""
        cpus, mem, _ = capacity(self.spec)
        return (self.used_cpus > cpus or self.used_mem > mem
                or not self.used_gpus <= set(self.spec.gpu_ids))

    def state(self) -> str:
        """sinfo's state: idle, mix, alloc, down, drain or drng."""
        if self.down_reason is not None:
            return "down"
        if self.drain_reason is not None:
            return "drng" if self.jobs else "drain"
        if not self.jobs:
            return "idle"
        return "alloc" if self.used_cpus >= self.spec.cpus else "mix"


@dataclass(eq=False)
class ArrayEntry:
    """Counts over every task of one array."""

    array_job_id: int
    unsubmitted: int = 0   # not yet submitted to the scheduler: pending
    base_ok: int = 0       # ended COMPLETED without being submitted (controller's count)
    base_bad: int = 0      # ended otherwise without being submitted (cancelled remainder)
    pending: int = 0       # submitted tasks now PENDING
    running: int = 0
    ended_ok: int = 0
    ended_bad: int = 0
    #: array index -> task (job) id, for every task submitted
    tasks: dict[int, int] = field(default_factory=dict)

    def facts(self) -> Facts:
        """The whole array, as SLURM's ``test_job_array_*`` judge it."""
        pending = self.unsubmitted > 0 or self.pending > 0
        finished = not pending and self.running == 0
        return Facts(pending=pending, finished=finished,
                     ok=finished and self.base_bad == 0 and self.ended_bad == 0,
                     is_array=True)

    def _count(self, phase: str, final: str, delta: int) -> None:
        if phase == PENDING:
            self.pending += delta
        elif phase == RUNNING:
            self.running += delta
        elif final == "COMPLETED":
            self.ended_ok += delta
        else:
            self.ended_bad += delta
