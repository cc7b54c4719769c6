"""Where an Executor's jobs run. Every backend runs the same batch script
(:mod:`fleetslurm.api.executor.script`) and answers in SLURM's state names:

- ``fleet`` (default): fleetslurm's controller (the embedded localhost when
  there is no config); payloads staged through the transport
  (:mod:`.fleet`);
- ``local``: subprocesses on this machine, no controller (:mod:`.local`);
- ``debug``: in this process, synchronously, at submit time (:mod:`.debug`);
- ``slurm``: a real SLURM's ``sbatch``/``sacct`` on PATH (:mod:`.slurm`).
"""

from __future__ import annotations

from typing import Any, Optional

from ....errors import UsageError
from .base import Backend, HomeBackend, JobHandle, JobUsage
from .debug import DebugBackend
from .fleet import FleetBackend

__all__ = ["Backend", "HomeBackend", "FleetBackend", "DebugBackend", "JobHandle", "JobUsage",
           "make_backend", "BACKENDS"]

BACKENDS = ("fleet", "local", "debug", "slurm")


def make_backend(name: str, options: Optional[dict[str, Any]] = None) -> Backend:
    """A backend by name (``fleet``, ``local``, ``debug``, ``slurm``)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if name == "fleet":
        return FleetBackend(options.get("config"), options.get("home"))
    if name == "debug":
        return DebugBackend(options.get("home"))
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(options.get("home"))
    if name == "slurm":
        from .slurm import SlurmBackend

        return SlurmBackend()
    raise UsageError(f"unknown backend {name!r}; valid backends are: {', '.join(BACKENDS)}",
                     prog="fleetslurm")
