"""The pure scheduler: ``SchedulerState.handle(events, now) -> actions``.

No I/O, no clock, no threads: the controller feeds events (node and job
changes) with the current time and carries out the actions (start a job on a
node with these CPUs, memory and GPU ids). Priority order plus backfill that
uses time limits; placement by partition, features, node weight and best fit;
SLURM's pending-reason codes and a human ``explain``.
"""

from fleetslurm.scheduler.events import (
    UNSET,
    Action,
    ArrayTasks,
    AssocLimits,
    CancelJob,
    Event,
    JobEnded,
    JobHeld,
    JobReleased,
    JobRequest,
    JobRequeued,
    JobRestored,
    JobSubmitted,
    JobUpdated,
    LimitsSet,
    NodeDown,
    NodeDrain,
    NodeResume,
    NodeSpec,
    NodeUp,
    PartitionSet,
    PartitionSpec,
    PrioritiesSet,
    QosLimits,
    StartJob,
    Tres,
    Unset,
    UserNodeExcluded,
    UserNodesCleared,
)
from fleetslurm.scheduler.lifecycle import InvalidTransition
from fleetslurm.scheduler.state import SchedulerState

__all__ = [
    "SchedulerState",
    "InvalidTransition",
    "NodeSpec",
    "PartitionSpec",
    "JobRequest",
    "NodeUp",
    "NodeDown",
    "NodeDrain",
    "NodeResume",
    "UserNodeExcluded",
    "UserNodesCleared",
    "PartitionSet",
    "PrioritiesSet",
    "LimitsSet",
    "QosLimits",
    "AssocLimits",
    "Tres",
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
    "Event",
    "Action",
    "UNSET",
    "Unset",
]
