"""The submitter's umask, recorded at submission as SLURM's ``SLURM_UMASK``.

sbatch puts its umask in the job's environment (``SLURM_UMASK=0022``, unless
the variable is already set) and slurmstepd runs the job with it; fleetslurm's
clients do the same, so a job runs with its submitter's umask on every
machine, and the files sent home for it get the modes that umask gives.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Mapping

__all__ = ["current_umask", "with_umask"]


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` can only
    set it, and setting it briefly would race with other threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # Linux before 4.7: no Umask line
    os.umask(mask)
    return mask


def with_umask(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``SLURM_UMASK`` set to this process's umask (sbatch's
    ``0%d%d%d``), unless it is set already."""
    out = dict(env)
    out.setdefault("SLURM_UMASK", "%04o" % current_umask())
    return out
