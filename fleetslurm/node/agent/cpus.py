"""CPU binding and CPU limits of jobs, as SLURM's task/affinity and the CPU
half of task/cgroup do: which CPU ids a job gets on this machine, the
``SLURM_CPU_BIND*`` variables that say so, and the per-job cgroup that
enforces it. Standard library only.

Choosing ids. The agent binds each job to as many CPU ids as it was given
CPUs (``SLURM_CPUS_ON_NODE``), taken from the agent's own affinity
(``os.sched_getaffinity(0)``), least used first: running jobs do not share
a CPU while a free one exists. Ties go round-robin from where the last job's
ids ended, so when every CPU is taken the load spreads evenly.

A machine that declares more CPUs than it really has (a loopback test
machine declaring 8 on a 2-core host): a job given at least as many CPUs as
there are real ones is bound to all of them; smaller jobs get the least used
ids and share them, round-robin. It never fails the job: the job's
environment has ``FLEETSLURM_CPU_SHARING`` saying what happened and the
agent's log a line. An ``--exclusive`` job is given every CPU the machine
declares (the scheduler's doing), so on a machine declaring at least its
real CPUs it is bound to all of them.

Limits. Where the machine allows it, each job gets its own cgroup, made by
its supervisor and removed at its end: ``cpu.max`` (cgroup v2) or
``cpu.cfs_quota_us`` (v1) of ``cpus x period``, and ``cpuset.cpus`` = the
bound ids, so a job cannot widen its own affinity. ``--cpu-bind=none``: no
affinity and no cpuset (the job sees every CPU), the CPU-time quota stays.
Without a writable cgroup the binding is affinity only; the agent logs why
once at start (``cgroups.detect_cgroups``).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence, Tuple

#: the --cpu-bind types that turn binding off
NO_BIND = ("none", "no")


def format_list(ids: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the kernel's cpu list format)."""
    out: List[str] = []
    run: List[int] = []
    for i in sorted(set(ids)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(out)


def parse_list(text: str) -> List[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``; ValueError on anything else."""
    ids: List[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ids.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(ids))


def hex_mask(ids: Iterable[int], width: int) -> str:
    """SLURM's CPU mask: ``0x`` and one hex digit per 4 CPUs of the machine."""
    mask = 0
    for i in ids:
        mask |= 1 << i
    return "0x%0*X" % (max(1, (width + 3) // 4), mask)


def choose(count: int, avail: Sequence[int], in_use: Dict[int, int],
           cursor: int) -> Tuple[List[int], int, bool]:
    """``count`` ids out of ``avail`` (sorted), least used first, ties
    round-robin from ``cursor``. Returns (ids, the next cursor, whether the
    job shares a CPU with a running job or got fewer ids than CPUs)."""
    n = len(avail)
    if count >= n:
        return list(avail), cursor, count > n or any(in_use.get(i) for i in avail)
    order = sorted(range(n), key=lambda k: (in_use.get(avail[k], 0), (k - cursor) % n))
    picked = sorted(order[:count])
    ids = [avail[k] for k in picked]
    shared = any(in_use.get(i) for i in ids)
    return ids, (order[count - 1] + 1) % n, shared


def bind_env(ids: Sequence[int], width: int, verbose: bool) -> Dict[str, str]:
    """The ``SLURM_CPU_BIND*`` variables of a job bound to ``ids``, as
    slurmd's task/affinity sets them for a batch step (a CPU mask)."""
    mask = hex_mask(ids, width)
    quiet = "verbose" if verbose else "quiet"
    return {"SLURM_CPU_BIND": "%s,mask_cpu:%s" % (quiet, mask),
            "SLURM_CPU_BIND_LIST": mask,
            "SLURM_CPU_BIND_TYPE": "mask_cpu:",
            "SLURM_CPU_BIND_VERBOSE": quiet}


def unbound(env: Dict[str, str]) -> bool:
    """Whether the job asked for ``--cpu-bind=none`` (the controller says so
    in SLURM_CPU_BIND_TYPE, as srun does)."""
    return env.get("SLURM_CPU_BIND_TYPE", "") in NO_BIND


def job_cpus(env: Dict[str, str]) -> Optional[int]:
    """The CPUs the job was given on this machine (SLURM_CPUS_ON_NODE)."""
    text = env.get("SLURM_CPUS_ON_NODE", "")
    return int(text) if text.isdigit() and int(text) > 0 else None
