"""Callable analysis types: one Executor job array, one task per symbol.

The function travels by cloudpickle (functions of ``__main__`` and of files
loaded with ``--load`` travel by value). A symbol's data file travels inside
its task's pickled call (read at submission, so the task sees the file as it
was then) and is written to a private temporary directory on the machine,
under its own name, before the function is called with its path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .analyses import Analysis
    from ..executor.job import Job

__all__ = ["submit_callable", "analysis_call"]


def analysis_call(fn: Callable[..., Any], name: Optional[str], data: Optional[bytes],
                  args: Sequence[Any]) -> Callable[[str], Any]:
    """``call(symbol)`` runs ``fn(symbol[, data_path], *args)`` on the machine,
    writing the data file's bytes under its own name first.

    A closure on purpose: cloudpickle carries it by value, so the machine
    needs no fleetslurm to run it (a module-level class would travel by
    reference to this module)."""
    extra = tuple(args)

    def call(symbol: str) -> Any:
        import os
        import shutil
        import tempfile

        if name is None:
            return fn(symbol, *extra)
        tmp = tempfile.mkdtemp(prefix="fleetslurm-databench-")  # private: 0700
        try:
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data or b"")
            return fn(symbol, path, *extra)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    call.__name__ = getattr(fn, "__name__", "analysis")
    call.__qualname__ = call.__name__
    return call


def submit_callable(config: Optional[str], analysis: "Analysis", symbols: list[str],
                    files: list[str], *, python: str, conda_env: Optional[str],
                    modules: Sequence[str], setup: Sequence[str], partition: Optional[str],
                    cpus: int,
                    memory: Optional[str], time_limit: Optional[str], args: Sequence[Any],
                    max_parallel: Optional[int], slurm_args: Mapping[str, Any]) -> list["Job"]:
    """Submit one array (through :class:`fleetslurm.Executor`, fleet backend of the
    fleet ``config``; ``python``, ``conda_env``, ``modules``, ``setup``: the bench's).
    The tasks' output files live with the Executor's payload (``Job.paths``)."""
    from ..executor.executor import Executor

    options: dict[str, Any] = {"partition": partition, "cpus_per_task": cpus, "mem": memory,
                               "time": time_limit, "job_name": f"analysis-{analysis.name}"}
    options.update(slurm_args)
    options = {k: v for k, v in options.items() if v is not None}
    ex = Executor(config=config, conda_env=conda_env, modules=modules, setup=setup,
                  python=None if python == "python3" else python,
                  array_parallelism=max_parallel, **options)
    calls = []
    for k, sym in enumerate(symbols):
        if files:
            with open(files[k], "rb") as f:
                data: Optional[bytes] = f.read()
            calls.append(analysis_call(analysis.target, os.path.basename(files[k]), data, args))
        else:
            calls.append(analysis_call(analysis.target, None, None, args))
    # one array of different callables: batch() collects them into one submission
    jobs: list["Job"] = []
    with ex.batch():
        for call, sym in zip(calls, symbols):
            jobs.append(ex.submit(call, sym))
    return jobs
