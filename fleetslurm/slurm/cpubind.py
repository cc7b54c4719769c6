"""srun's ``--cpu-bind`` (and ``SLURM_CPU_BIND``): checked as SLURM 22.05's
srun checks it, and carried to the machine in the job's environment.

fleetslurm binds every job to the CPUs it was given (the node agent's
``cpus`` module, SLURM's task/affinity); ``none`` (or ``no``) turns that off.
The other types (cores, threads, sockets, rank, map_cpu:, mask_cpu:, ...)
are accepted and bind the job to its own CPUs, as the default does: the
machine, not the user, picks the ids. sbatch has no --cpu-bind in SLURM
22.05 (its batch step is always bound), so neither does fleetslurm's.
"""

from __future__ import annotations

from typing import Optional

from ..errors import UsageError

__all__ = ["parse_cpu_bind", "bind_environment"]

_WORDS = {"quiet", "verbose", "v", "none", "no", "rank", "rank_ldom", "sockets", "cores",
          "threads", "ldoms", "boards"}
_LISTS = ("map_cpu:", "mask_cpu:", "map_ldom:", "mask_ldom:")


def parse_cpu_bind(text: Optional[str]) -> Optional[str]:
    """``--cpu-bind=TEXT`` as ``"<quiet|verbose>,<type>"`` (type ``none`` or
    ``bind``), or None when not given; UsageError (srun's words) when SLURM
    would refuse it."""
    if text is None:
        return None
    verbose, kind = "quiet", "bind"
    for word in str(text).split(","):
        low = word.lower()
        if low in ("verbose", "v"):
            verbose = "verbose"
        elif low in ("none", "no"):
            kind = "none"
        elif not (low in _WORDS or low.startswith(_LISTS)):
            raise UsageError(f'error: unrecognized --cpu-bind argument "{word}"\n'
                             "srun: fatal: Failed to parse --cpu-bind= values.", prog="srun")
    return f"{verbose},{kind}"


def bind_environment(cpu_bind: Optional[str]) -> dict[str, str]:
    """The SLURM_CPU_BIND* variables the controller puts in the job's
    environment: srun's for ``none``; for a bound job only the verbosity
    (the agent adds the mask it chose)."""
    if not cpu_bind:
        return {}
    verbose, _, kind = cpu_bind.partition(",")
    if kind == "none":
        return {"SLURM_CPU_BIND": f"{verbose},none", "SLURM_CPU_BIND_LIST": "",
                "SLURM_CPU_BIND_TYPE": "none", "SLURM_CPU_BIND_VERBOSE": verbose}
    return {"SLURM_CPU_BIND_VERBOSE": verbose}
