"""The futures API: :class:`~.executor.Executor` submits Python calls as
SLURM jobs and :class:`~.job.Job` is their future.

- :mod:`.executor`, :mod:`.job`: the user's side;
- :mod:`.script`: the one writer of batch scripts (also SLURMConstructor's,
  DataBench's and SLURMDriver's);
- :mod:`.payload`, :mod:`.bigdata`: calls and results as files (pickle, or
  HDF5 through :mod:`fleetslurm.api.objser` for large arrays);
- :mod:`.runner`: runs one call on a node (standard library only, shipped
  beside the payload);
- :mod:`.backends`: where jobs run (fleet, local, debug, slurm);
  :mod:`.local_run` is the local backend's supervisor;
- :mod:`.client`: the thin layer over the controller's RPC.

Nothing is imported here (the former module's names load on first use), so
``python -m fleetslurm.api.executor.local_run`` and the runner's fallback
import stay light.
"""

from typing import Any as _Any

#: the names of the former module ``fleetslurm.api.executor``, now in :mod:`.executor`
_FORMER = ("Executor", "DEFAULT_MAX_PAYLOAD")


def __getattr__(name: str) -> _Any:
    if name in _FORMER:
        from . import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
