"""DataBench: data-processing jobs over files and symbols
(:class:`~.bench.DataBenchSLURM`; user-facing module :mod:`fleetslurm.databench`).
Built on :mod:`fleetslurm.api.executor` (client, script writer, Executor)."""

from typing import Any as _Any

#: the names of the former module ``fleetslurm.api.databench``, now in :mod:`.bench`
_FORMER = ("DataBenchSLURM",)


def __getattr__(name: str) -> _Any:
    if name in _FORMER:
        from . import bench

        return getattr(bench, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
