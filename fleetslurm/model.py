"""Plain data shared by every layer: job states, reasons, and the records the
controller hands to clients.

Records cross the Unix socket as JSON, so they are plain dicts (TypedDicts
document their keys); no behaviour lives on them.
"""

from __future__ import annotations

import enum
from typing import Optional, TypedDict

__all__ = [
    "JobState",
    "ACTIVE_STATES",
    "FINAL_STATES",
    "ACTIVE_STATE_NAMES",
    "LIVE_STATE_NAMES",
    "FINAL_STATE_NAMES",
    "JobRecord",
    "NodeRecord",
    "PartitionRecord",
]


class JobState(str, enum.Enum):
    """SLURM's job states; ``.code`` is the compact form squeue's ``%t`` shows."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"

    @property
    def code(self) -> str:
        return _CODES[self]

    @classmethod
    def parse(cls, text: str) -> "JobState":
        """Accept a long or short name in any case (``r``, ``running``, ``OOM``)."""
        t = text.strip().upper()
        for st in cls:
            if t == st.value or t == _CODES[st]:
                return st
        raise ValueError(text)

    @property
    def finished(self) -> bool:
        return self in FINAL_STATES


_CODES = {
    JobState.PENDING: "PD",
    JobState.RUNNING: "R",
    JobState.COMPLETING: "CG",
    JobState.COMPLETED: "CD",
    JobState.CANCELLED: "CA",
    JobState.FAILED: "F",
    JobState.TIMEOUT: "TO",
    JobState.NODE_FAIL: "NF",
    JobState.OUT_OF_MEMORY: "OOM",
    JobState.PREEMPTED: "PR",
    JobState.SUSPENDED: "S",
    JobState.REQUEUED: "RQ",
    JobState.REQUEUE_HOLD: "RH",
    JobState.BOOT_FAIL: "BF",
    JobState.DEADLINE: "DL",
}

#: states squeue shows by default
ACTIVE_STATES = frozenset(
    {JobState.PENDING, JobState.RUNNING, JobState.COMPLETING, JobState.SUSPENDED,
     JobState.REQUEUED, JobState.REQUEUE_HOLD}
)
FINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED, JobState.TIMEOUT,
     JobState.NODE_FAIL, JobState.OUT_OF_MEMORY, JobState.PREEMPTED,
     JobState.BOOT_FAIL, JobState.DEADLINE}
)

# the same as plain strings, for store rows and records (which hold state names)
#: a job that is not over yet (what the controller keeps working on)
ACTIVE_STATE_NAMES = ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED")
#: a job that holds a machine's resources
LIVE_STATE_NAMES = ("RUNNING", "COMPLETING", "SUSPENDED")
FINAL_STATE_NAMES = frozenset(s.value for s in FINAL_STATES)


class JobRecord(TypedDict, total=False):
    """One job (or one array task) as clients see it.

    Times are UNIX epoch seconds (float) or None; ``time_limit`` is minutes or
    None for UNLIMITED; memory in MB; ``max_rss_kb`` in KiB.
    """

    job_id: int                 # unique raw id (JobIDRaw)
    array_job_id: Optional[int]  # master id for array tasks, else None
    # suspended by a workstation policy: the last suspend or resume (None:
    # never), seconds suspended before (the current suspension aside), run
    # seconds up to the last suspension (SLURM's SecsPreSuspend)
    suspend_time: Optional[float]
    suspended_s: float
    pre_sus_time: Optional[float]
    array_task_id: Optional[int]
    array_task_str: Optional[str]  # pending remainder of an array, e.g. "3-9%2"
    name: str
    user: str
    uid: int
    partition: str
    account: str
    state: str                  # JobState value
    reason: str                 # SLURM reason code, "None" when none
    submit_time: float
    eligible_time: Optional[float]
    start_time: Optional[float]
    end_time: Optional[float]
    time_limit: Optional[int]
    nodes: list                 # node names allocated (empty while pending)
    num_nodes: int
    num_tasks: int
    cpus: int                   # CPUs requested/allocated
    cpus_per_task: int
    mem_mb: int                 # memory requested per node, 0 if none
    gpus: int
    gpu_ids: list
    exit_code: Optional[int]
    exit_signal: Optional[int]
    derived_exit_code: Optional[int]
    cancelled_by: Optional[int]  # uid that cancelled
    max_rss_kb: Optional[int]
    total_cpu: Optional[float]  # seconds of user+system CPU
    user_cpu: Optional[float]
    system_cpu: Optional[float]
    workdir: str
    stdout: str                 # expanded output path
    stderr: str
    stdin: str
    command: str
    comment: str
    priority: int
    nice: int
    features: str
    dependency: str
    restart_count: int
    requeue: bool
    batch_host: Optional[str]
    submit_host: str
    qos: str
    wckey: str
    exclusive: bool
    # srun steps of the current run: step_id, name, node, state, start_time,
    # end_time, exit_code, exit_signal, ntasks, cpus, max_rss_kb, user_cpu,
    # system_cpu (see views.job_record)
    job_steps: list
    batch_flag: bool            # False for a job srun made (no batch script)
    # the batch run's GPU readings (views.gpu_usage): samples, util_ave,
    # util_max (percent, summed over its GPUs), mem_ave_mb, mem_max_mb; absent: none
    gpu_usage: dict


class NodeRecord(TypedDict, total=False):
    """One machine as clients see it (memory in MB)."""

    name: str
    hostname: str
    state: str          # idle, mix, alloc, down, drain, drng
    reason: str
    cpus: int
    alloc_cpus: int
    mem_mb: int
    alloc_mem_mb: int
    free_mem_mb: Optional[int]   # as the agent reports it
    cpu_load: Optional[float]
    gpus: int
    alloc_gpus: int
    partitions: list
    features: list
    weight: int
    detected_cpus: Optional[int]
    detected_mem_mb: Optional[int]
    detected_gpus: Optional[int]
    arch: str
    os: str
    boot_time: Optional[float]
    last_heartbeat: Optional[float]
    # nvidia-smi's latest reading, per GPU: index, uuid, util (percent),
    # mem_used_mb, mem_total_mb ([] when the machine reports none)
    gpu_usage: list


class PartitionRecord(TypedDict, total=False):
    name: str
    default: bool
    state: str          # "up" / "down"
    max_time: Optional[int]      # minutes, None = UNLIMITED
    default_time: Optional[int]
    priority: int
    nodes: list
