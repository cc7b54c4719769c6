"""What the scheduler's helper modules (:mod:`.arrays`, :mod:`.backfill`,
:mod:`.deps`, :mod:`.eligibility`, :mod:`.explain`, :mod:`.invariants`) may
read and call of :class:`~fleetslurm.scheduler.state.SchedulerState`.

They are typed against this protocol, never against the class, so that they
import only downward (``state`` imports them, none of them imports
``state``). The fields are the state's own bookkeeping, documented where
:class:`SchedulerState` sets them up.
"""

from __future__ import annotations

from typing import Optional, Protocol

from fleetslurm.scheduler.events import AssocLimits, JobRequest, NodeSpec, PartitionSpec, QosLimits, StartJob
from fleetslurm.scheduler.limits import Usage
from fleetslurm.scheduler.policy import Shape, Vec
from fleetslurm.scheduler.records import ArrayEntry, JobEntry, NodeEntry
from fleetslurm.slurm.deps import Facts

__all__ = ["SchedulerView"]


class SchedulerView(Protocol):
    """The scheduler's state as its helpers see it."""

    max_reservations: int
    _jobs: dict[int, JobEntry]
    _nodes: dict[str, NodeEntry]
    _parts: dict[str, PartitionSpec]
    _order: list[tuple]
    _groups: dict[tuple[str, str], set[int]]
    _static: dict[Shape, tuple[str, ...]]
    _static_base: dict[tuple, tuple[NodeSpec, ...]]
    _avail: dict[Shape, tuple[list[str], Optional[str]]]
    _singleton_cache: dict[tuple[str, str], tuple[Optional[int], Optional[int]]]
    _pass_now: float
    _pass_reasons: dict[int, str]
    _expected: dict[int, tuple[float, str]]
    _arrays: dict[int, ArrayEntry]
    _ended_tasks: dict[int, Facts]
    _qos: dict[str, QosLimits]
    _assoc: dict[tuple[str, str], AssocLimits]
    _usage: Usage
    _user_excluded: dict[str, dict[str, str]]

    def _default_partition(self) -> Optional[str]: ...

    def _partition_of(self, req: JobRequest) -> str: ...

    def _prepare(self, job: JobEntry) -> None: ...

    def _start(self, job: JobEntry, name: str, need: Vec, now: float) -> StartJob: ...

    def _begin_pass(self, now: float) -> None: ...

    def _end_pass(self, reasons: dict[int, str], expected: dict[int, tuple[float, str]],
                  started: list[int], partial: bool = False) -> None: ...

    def _reasons(self) -> dict[int, str]: ...

    def reason(self, job_id: int) -> str: ...

    def job_state(self, job_id: int) -> Optional[str]: ...
