"""``Executor``: run Python functions as SLURM jobs, the ``concurrent.futures`` way.

::

    import fleetslurm

    ex = fleetslurm.Executor(cpus_per_task=2, mem="4G", time=30)
    job = ex.submit(pow, 2, 10)             # a Job (a future); job.job_id == "17"
    job.result(timeout=600)                 # 1024
    jobs = ex.map(pow, [1, 2, 3], [2, 2, 2])  # ONE job array: 18_0, 18_1, 18_2
    with ex.batch():                        # every submit inside: one array
        a = ex.submit(f, 1)
        b = ex.submit(g, 2)

Options are sbatch's long options (``partition``, ``cpus_per_task``, ``mem``,
``gpus``, ``time``, ``job_name``, ``nodelist``, ``exclude``, ``constraint``,
``qos``, ``dependency``...), checked by sbatch's own rules when the Executor
is made; plus ``array_parallelism`` (the ``%N`` of the arrays it makes),
``conda_env``, ``modules`` (``module load``), ``setup`` (shell lines run
before the job), ``python``, ``backend`` and ``max_payload_bytes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional

from ...errors import SubmitError, UsageError
from .backends import BACKENDS, Backend, make_backend
from .job import Job, save_index

__all__ = ["Executor", "DEFAULT_MAX_PAYLOAD"]

#: the default payload limit: 256 MiB of pickled call per job
DEFAULT_MAX_PAYLOAD = 256 * 1024 * 1024
_OWN = ("backend", "conda_env", "modules", "setup", "python", "max_payload_bytes",
        "array_parallelism", "config")
# options the Executor sets itself
_RESERVED = {"array": "make arrays with map() or batch()",
             "output": "read a job's output with Job.stdout()",
             "error": "read a job's errors with Job.stderr()",
             "chdir": "jobs run in their own directory on the machine"}


def _check_options(options: Mapping[str, Any]) -> None:
    """Names and values as sbatch checks them (UsageError naming the problem)."""
    from ...slurm.jobspec import build_spec
    from ...slurm.option_env import sbatch_options
    from .client import option_names, options_argv

    for key in options:
        k = str(key).replace("-", "_")
        if k in _RESERVED:
            raise UsageError(f"Executor option {key!r} is set by the Executor: "
                             f"{_RESERVED[k]}", prog="fleetslurm")
    try:
        argv = options_argv(options)
    except UsageError as exc:
        if "unknown SLURM option" not in str(exc):
            raise
        valid = sorted(set(option_names()) - set(_RESERVED)) + list(_OWN)
        key = str(exc).split("'")[1]
        raise UsageError(f"unknown Executor option {key!r}. Valid options are: "
                         + ", ".join(valid), prog="fleetslurm") from None
    opts, _, _ = sbatch_options(argv, "#!/bin/sh\n", {})
    build_spec(opts, script="#!/bin/sh\n", script_args=[], env={}, cwd="/", submit_host="",
               now=time.time())


@dataclasses.dataclass
class _Call:
    """One call waiting to be written: ``data`` is its pickled call file, or
    None when its arrays go by HDF5."""

    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    data: Optional[bytes]


class Executor:
    """Submits Python calls as jobs to one backend (see the module docstring).

    ``backend``: ``"fleet"`` (default; fleetslurm's controller, the embedded
    localhost when there is no config; ``config`` names a fleet_config.json),
    ``"local"`` (subprocesses here), ``"debug"`` (in this process, at submit)
    or ``"slurm"`` (a real SLURM's sbatch on PATH).
    """

    def __init__(self, backend: str = "fleet", *, conda_env: Optional[str] = None,
                 modules: Iterable[str] = (), setup: Iterable[str] = (),
                 python: Optional[str] = None,
                 max_payload_bytes: Optional[int] = DEFAULT_MAX_PAYLOAD,
                 array_parallelism: Optional[int] = None, config: Optional[str] = None,
                 **slurm_options: Any) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; valid backends are: "
                             f"{', '.join(BACKENDS)}", prog="fleetslurm")
        if array_parallelism is not None and (isinstance(array_parallelism, bool) or
                                              not isinstance(array_parallelism, int) or
                                              array_parallelism < 1):
            raise UsageError(f"array_parallelism must be a positive integer, got "
                             f"{array_parallelism!r}", prog="fleetslurm")
        if isinstance(modules, str) or isinstance(setup, str):
            raise UsageError("modules and setup are lists (of module names, of shell lines)",
                             prog="fleetslurm")
        slurm_options = {k.replace("-", "_"): v for k, v in slurm_options.items()}
        _check_options(slurm_options)
        self.slurm_options: dict[str, Any] = slurm_options
        self.conda_env = conda_env
        self.modules = list(modules)
        self.setup = list(setup)
        self.python = python
        self.max_payload_bytes = max_payload_bytes
        self.array_parallelism = array_parallelism
        options = {"config": config} if backend == "fleet" else {}
        self._backend: Backend = make_backend(backend, options)
        self._batch: Optional[list[tuple[Job, _Call]]] = None

    @property
    def backend(self) -> str:
        return self._backend.name

    def update_parameters(self, **slurm_options: Any) -> None:
        """Change SLURM options for later submissions (checked like the constructor's)."""
        merged = {**self.slurm_options,
                  **{k.replace("-", "_"): v for k, v in slurm_options.items()}}
        _check_options(merged)
        self.slurm_options = merged

    # -- submitting -----------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> _Call:
        """Check a call can travel (SerializationError naming what cannot be
        pickled, SubmitError over the payload limit). Arguments holding large
        numpy arrays go by HDF5 (ObjectSerializer) when this host can."""
        from . import bigdata
        from .payload import dump_call

        if bigdata.holds_big_arrays([args, kwargs]) and bigdata.available():
            if not callable(fn):
                dump_call(fn, (), {})  # the same refusal as for any call
            return _Call(fn, args, kwargs, None)
        return _Call(fn, args, kwargs, dump_call(fn, args, kwargs, self.max_payload_bytes))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Run ``fn(*args, **kwargs)`` as a job; returns its Job at once.
        Raises SerializationError (naming what cannot be pickled) or
        SubmitError (payload too large, no machine fits) here, not later."""
        call = self._call(fn, args, kwargs)
        if self._batch is not None:
            job = Job(self._backend, "", len(self._batch))
            self._batch.append((job, call))
            return job
        return self._submit([call], array=False)[0]

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Job]:
        """``fn`` over the iterables (as the builtin map), as ONE job array."""
        if not iterables:
            raise UsageError("map() needs at least one iterable", prog="fleetslurm")
        calls = [self._call(fn, args, {}) for args in zip(*iterables)]
        if self._batch is not None:
            jobs = []
            for call in calls:
                job = Job(self._backend, "", len(self._batch))
                self._batch.append((job, call))
                jobs.append(job)
            return jobs
        return self._submit(calls, array=True) if calls else []

    @contextlib.contextmanager
    def batch(self) -> Iterator["Executor"]:
        """Collect every submit()/map() inside the block into one job array,
        submitted when the block ends (nothing is submitted if it raises)."""
        if self._batch is not None:
            raise UsageError("executor.batch() blocks do not nest", prog="fleetslurm")
        self._batch = []
        try:
            yield self
        except BaseException:
            self._batch = None
            raise
        pending, self._batch = self._batch, None
        if pending:
            submitted = self._submit([call for _, call in pending], array=True)
            for (job, _), done in zip(pending, submitted):
                job._folder, job._job_id = done._folder, done._job_id

    def _home(self) -> str:
        client = getattr(self._backend, "client", None)
        if client is not None:
            return str(client.paths.home)
        from .backends.base import default_home

        return default_home()

    def _submit(self, calls: list[_Call], array: bool) -> list[Job]:
        from ...paths import private_dir
        from . import bigdata, runner
        from .payload import write_call
        from .script import RUNNER_NAME, batch_script, call_name, result_name

        home = self._home()
        folder = str(private_dir(Path(home) / "executor" /
                                 f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"))
        try:
            with open(runner.__file__, "rb") as f:
                runner.write_atomic(os.path.join(folder, RUNNER_NAME), f.read())
            # one call by HDF5: all of them (the array's tasks stage the same names)
            by_h5 = any(c.data is None for c in calls)
            for i, c in enumerate(calls):
                path = os.path.join(folder, call_name(array).replace("%a", str(i)))
                if by_h5:
                    bigdata.write_call_h5(path, c.fn, c.args, c.kwargs, self.max_payload_bytes)
                else:
                    write_call(path, c.data)  # type: ignore[arg-type]
            stage_in = [os.path.join(folder, RUNNER_NAME), os.path.join(folder, call_name(array))]
            if by_h5:
                stage_in.append(os.path.join(folder, call_name(array)[:-4] + ".h5"))
            if bigdata.available():  # results holding large arrays come back by HDF5
                runner.write_atomic(os.path.join(folder, bigdata.ZIP_NAME), bigdata.objser_zip())
                stage_in.append(os.path.join(folder, bigdata.ZIP_NAME))
            result = os.path.join(folder, result_name(array))
            stage_out = [result, result[:-4] + ".h5"]
            fn = calls[0].fn
            name = str(self.slurm_options.get("job_name") or
                       getattr(fn, "__name__", None) or "python")
            options = {**self.slurm_options, "job_name": name}
            spec = None
            if array:
                spec = f"0-{len(calls) - 1}"
                if self.array_parallelism:
                    spec += f"%{self.array_parallelism}"
            script = batch_script(options, folder, array=spec, python=self.python,
                                  conda_env=self.conda_env, modules=self.modules,
                                  setup=self.setup)
            try:
                job_id = self._backend.submit(script, folder, len(calls) if array else None,
                                              name, stage_in, stage_out)
            except SubmitError as exc:
                if array and "Invalid job array specification" in str(exc):
                    raise SubmitError(
                        f"{exc}: an array of {len(calls)} tasks is more than the cluster "
                        "allows (MaxArraySize, see `scontrol show config`); map() or "
                        "batch() fewer calls at a time") from None
                raise
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing half-written
            raise
        save_index(home, self._backend.name, job_id,
                   {"folder": folder, "tasks": len(calls) if array else None,
                    "backend_options": self._backend.options, "submit_time": time.time()})
        if not array:
            return [Job(self._backend, folder, None, job_id)]
        return [Job(self._backend, folder, i, f"{job_id}_{i}") for i in range(len(calls))]

    def __repr__(self) -> str:
        return f"<fleetslurm.Executor backend={self.backend} options={self.slurm_options}>"
