"""The seed's ``Process`` and ``JobContainer``.

``Process``: subclass it and write ``run()``; ``submit()`` runs ``run()`` in
a job on a machine and returns the :class:`fleetslurm.Job` (its result, and
its CPU time and peak memory from the accounting: ``job.usage()``, the same
figures ``sacct -o TotalCPU,MaxRSS`` shows)::

    class Square(fleetslurm.Process):
        slurm_options = {"mem": "200M"}
        def __init__(self, n):
            self.n = n
        def run(self):
            return self.n ** 2

    job = Square(12).submit()
    job.result(), job.usage().cpu_time_s, job.usage().max_rss_kb

``JobContainer``: a job kept in a file. A job container file is an HDF5
file written by :class:`fleetslurm.Serializer` (``Serializer.serialize_to_file
(obj, path)`` writes one) whose object (entry ``/object``) is a Process, a
callable, or a ``(callable, args, kwargs)`` tuple. ``JobContainer(path)
.execute()`` runs it *where the file is*, in this process, and records the
outcome in the same file (``/outcome/state``, ``/outcome/result`` or
``/outcome/error``, ``/outcome/usage``), so a file can be carried to any
machine with fleetslurm, run there, and carried back. ``submit()`` instead
runs the object in a job on the fleet, and ``collect(job)`` records that
job's outcome in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

if TYPE_CHECKING:
    from ..executor.job import Job

__all__ = ["Process", "JobContainer", "run_process"]


def run_process(process: "Process") -> Any:
    """What a Process's job runs on the machine. Nothing from fleetslurm is
    imported here: this module travels by value to machines without it."""
    return process.run()


class Process:
    """A unit of work: subclass it and implement :meth:`run`.

    ``slurm_options`` (class attribute): sbatch options by long name for
    this kind of process (``{"cpus_per_task": 4, "mem": "8G"}``);
    :meth:`submit` takes more. The instance travels to the machine by
    cloudpickle, with its attributes.
    """

    slurm_options: ClassVar[dict[str, Any]] = {}

    def run(self) -> Any:
        """The work. Its return value is the job's result."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def execute(self) -> Any:
        """Run it here, now."""
        return self.run()

    def submit(self, backend: str = "fleet", **options: Any) -> "Job":
        """Run :meth:`run` in a job (``backend``: ``fleet``, ``local``,
        ``debug``, ``slurm``); returns the Job at once. The job is named
        after the class unless ``job_name`` is given."""
        from ..executor.executor import Executor

        opts = {**type(self).slurm_options, **options}
        opts.setdefault("job_name", type(self).__name__)
        return Executor(backend, **opts).submit(run_process, self)

    def save(self, path: Union[str, os.PathLike]) -> "JobContainer":
        """Write it to a job container file (see :class:`JobContainer`)."""
        return JobContainer.create(path, self)


def _call(obj: Any) -> Any:
    """Run a container's object: a Process, a callable, or (callable, args, kwargs)."""
    if isinstance(obj, Process):
        return obj.run()
    if isinstance(obj, tuple) and len(obj) == 3 and callable(obj[0]):
        fn, args, kwargs = obj
        return fn(*args, **kwargs)
    return obj()


class JobContainer:
    """A job kept in a file (see the module docstring for the format)."""

    OBJECT = "/object"
    OUTCOME = "/outcome"

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"<fleetslurm.JobContainer {self.path}>"

    @classmethod
    def create(cls, path: Union[str, os.PathLike], job: Any, *args: Any,
               **kwargs: Any) -> "JobContainer":
        """Write ``job`` (a Process, or a callable to be called with ``args``
        and ``kwargs``) to a new container file at ``path`` (replacing it)."""
        from ...errors import UsageError
        from ..objser.serializer import Serializer

        if not (isinstance(job, Process) or callable(job)):
            raise UsageError(f"a job container holds a Process or a callable, not "
                             f"{type(job).__name__}", prog="fleetslurm")
        if isinstance(job, Process) and (args or kwargs):
            raise UsageError("a Process takes its inputs in its constructor, not as "
                             "arguments of the container", prog="fleetslurm")
        obj = job if isinstance(job, Process) or not (args or kwargs) else \
            (job, tuple(args), dict(kwargs))
        Serializer.serialize_to_file(obj, path)
        return cls(path)

    def _store(self) -> Any:
        from ...errors import UsageError
        from ..objser.serializer import ObjectSerializer

        if not self.path.exists():
            raise UsageError(f"job container {self.path} does not exist; write one with "
                             "JobContainer.create(path, job) or Serializer.serialize_to_file",
                             prog="fleetslurm")
        return ObjectSerializer(self.path)

    def load(self) -> Any:
        """The object the container holds (SerializationError for a file that
        is not one, or of another format version)."""
        from ...errors import SerializationError

        store = self._store()
        if self.OBJECT not in store:
            raise SerializationError(
                f"{self.path} is not a job container: it has no {self.OBJECT!r} entry "
                f"(entries: {', '.join(store.list()) or 'none'})")
        return store.load(self.OBJECT)

    def execute(self) -> Any:
        """Run the object here; record state, result (or error) and usage in
        the file; return the result (re-raise the job's own exception)."""
        import resource
        import socket
        import time
        import traceback

        obj = self.load()
        store = self._store()
        if self.OUTCOME in store:
            store.delete(self.OUTCOME, recursive=True)  # a new run replaces the old record
        before = resource.getrusage(resource.RUSAGE_SELF)
        started, t0 = time.time(), time.monotonic()
        try:
            value = _call(obj)
        except BaseException as exc:
            self._record(store, "FAILED", started, t0, before, socket.gethostname(),
                         error={"type": type(exc).__name__, "message": str(exc),
                                "traceback": traceback.format_exc()})
            raise
        self._record(store, "COMPLETED", started, t0, before, socket.gethostname(),
                     result=value)
        return value

    @classmethod
    def _record(cls, store: Any, state: str, started: float, t0: float, before: Any,
                host: str, result: Any = None, error: Optional[dict] = None) -> None:
        import resource
        import time

        after = resource.getrusage(resource.RUSAGE_SELF)
        usage = {"cpu_time_s": (after.ru_utime - before.ru_utime)
                 + (after.ru_stime - before.ru_stime),
                 "max_rss_kb": after.ru_maxrss, "elapsed_s": time.monotonic() - t0,
                 "node": host, "start": started, "end": time.time()}
        cls._write(store, state, usage, result, error)

    @classmethod
    def _write(cls, store: Any, state: str, usage: dict, result: Any,
               error: Optional[dict]) -> None:
        # the state last: a record with a state is a whole one
        if error is not None:
            store.serialize(error, f"{cls.OUTCOME}/error")
        else:
            store.serialize(result, f"{cls.OUTCOME}/result")
        store.serialize(usage, f"{cls.OUTCOME}/usage")
        store.serialize(state, f"{cls.OUTCOME}/state")

    def submit(self, backend: str = "fleet", **options: Any) -> "Job":
        """Run the object in a job (it travels by cloudpickle); record the
        outcome here afterwards with :meth:`collect`."""
        from ..executor.executor import Executor

        obj = self.load()
        if isinstance(obj, Process):
            return obj.submit(backend, **options)
        options.setdefault("job_name", self.path.stem)
        return Executor(backend, **options).submit(_call, obj)

    def collect(self, job: "Job", timeout: Optional[float] = None) -> Any:
        """Wait for ``job`` (from :meth:`submit`), record its outcome and usage
        in the file, and return its result (RemoteJobError when it failed)."""
        from ...errors import RemoteJobError

        job.wait(timeout)
        store = self._store()
        if self.OUTCOME in store:
            store.delete(self.OUTCOME, recursive=True)
        u = job.usage()
        usage = {"cpu_time_s": u.cpu_time_s, "max_rss_kb": u.max_rss_kb,
                 "elapsed_s": u.elapsed_s, "node": u.node, "job_id": job.job_id}
        try:
            value = job.result()
        except RemoteJobError as exc:
            self._write(store, exc.state or "FAILED", usage, None,
                        {"type": exc.remote_type, "message": exc.remote_message,
                         "traceback": exc.remote_traceback})
            raise
        self._write(store, "COMPLETED", usage, value, None)
        return value

    def outcome(self) -> Optional[dict[str, Any]]:
        """What the last run recorded: ``state``, ``result`` or ``error``
        (type, message, traceback), ``usage`` (cpu_time_s, max_rss_kb,
        elapsed_s, node); None before any run."""
        store = self._store()
        if f"{self.OUTCOME}/state" not in store:
            return None
        out = {"state": store.load(f"{self.OUTCOME}/state"),
               "usage": store.load(f"{self.OUTCOME}/usage")}
        if f"{self.OUTCOME}/error" in store:
            out["error"] = store.load(f"{self.OUTCOME}/error")
        else:
            out["result"] = store.load(f"{self.OUTCOME}/result")
        return out
