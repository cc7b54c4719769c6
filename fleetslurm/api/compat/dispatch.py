"""Dispatchers: where ``f.distribute(...)`` sends a call (the slurminade seed's idea).

- :class:`FleetDispatcher` (the default): a job on the fleet through
  :class:`fleetslurm.Executor` (``backend="fleet"``);
- :class:`SlurmDispatcher`: the same job on a real SLURM (``sbatch`` on PATH);
- :class:`SubprocessDispatcher`: a subprocess on this machine, no controller
  (the Executor's ``local`` backend);
- :class:`DirectDispatcher`: right here, in this process, at once (the
  Executor's ``debug`` backend: the call still goes through pickling, so what
  could not travel fails here too);
- :class:`TestDispatcher`: runs nothing; prints what would be submitted.

Calls and their arguments travel by cloudpickle, so they are not limited to
JSON. A call bundle (from :class:`fleetslurm.Batch`) is one job that runs its
calls one after another; its result is the list of their results.

Every dispatcher except the test one refuses a flood of single jobs: past
``max_single_jobs`` (1000) calls distributed outside a Batch it raises,
saying to use Batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from ...errors import UsageError

__all__ = ["Dispatcher", "FleetDispatcher", "SlurmDispatcher", "SubprocessDispatcher",
           "DirectDispatcher", "TestDispatcher", "DEFAULT_MAX_SINGLE_JOBS", "dispatcher_named",
           "run_bundle"]

#: single (unbatched) jobs a dispatcher accepts before it asks for a Batch
DEFAULT_MAX_SINGLE_JOBS = 1000

Call = tuple[Callable[..., Any], tuple, dict]


def run_bundle(bodies: list[bytes], names: list[str]) -> list:
    """Run a bundle's calls one after another on the machine (each body is
    ``cloudpickle.dumps((fn, args, kwargs, sources))``, sources as the
    runner registers them with linecache). Every call runs even when an
    earlier one fails; then the bundle fails naming the calls that did.

    Standard library and cloudpickle only: it runs where fleetslurm is not
    installed (it travels by value, as fleetslurm's modules do)."""
    import linecache
    import sys
    import traceback

    import cloudpickle

    results: list = []
    failures: list[str] = []
    for i, (body, name) in enumerate(zip(bodies, names)):
        try:
            fn, args, kwargs, sources = cloudpickle.loads(body)
            linecache.cache.update(sources)
            results.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the others must still run
            sys.stderr.write(f"fleetslurm bundle: call {i} ({name}) failed:\n"
                             f"{traceback.format_exc()}")
            sys.stderr.flush()
            failures.append(f"call {i} ({name}): {type(exc).__name__}: {exc}")
            results.append(None)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(bodies)} calls in this bundle failed: "
                           + "; ".join(failures))
    return results


def _describe(fn: Callable, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    name = getattr(fn, "__name__", None) or repr(fn)
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Dispatcher:
    """Where distributed calls go. Subclasses implement :meth:`_submit`."""

    name = "dispatcher"

    def __init__(self, max_single_jobs: Optional[int] = DEFAULT_MAX_SINGLE_JOBS) -> None:
        self.max_single_jobs = max_single_jobs
        self.single_jobs = 0  # distributed outside a Batch, by this dispatcher
        self._lock = threading.Lock()

    def _guard(self) -> None:
        """Count one more single job, or refuse it (a refused or failed
        submission is not counted)."""
        with self._lock:
            if self.max_single_jobs is not None and self.single_jobs >= self.max_single_jobs:
                raise UsageError(
                    f"refusing to submit more than {self.max_single_jobs} single jobs outside "
                    "a Batch: so many tiny jobs flood the queue (each costs a scheduling "
                    "round and an output file). Bundle the calls: `with "
                    "fleetslurm.Batch(max_size=50): ...` runs 50 calls per job. If you "
                    "really want single jobs, raise the limit: fleetslurm.set_dispatcher("
                    f"{self.name!r}, max_single_jobs=N)", prog="fleetslurm")
            self.single_jobs += 1

    def submit_call(self, fn: Callable, args: tuple, kwargs: dict,
                    options: Mapping[str, Any]) -> str:
        """One call as one job; its id."""
        self._guard()
        try:
            return self._submit([(fn, args, kwargs)], options, bundle=False)[0]
        except BaseException:
            with self._lock:
                self.single_jobs -= 1
            raise

    def submit_bundles(self, bundles: Sequence[Sequence[Call]],
                       options: Mapping[str, Any]) -> list[str]:
        """Each bundle (a list of calls) as one job; their ids."""
        if not bundles:
            return []
        return self._submit([c for b in bundles for c in b], options, bundle=True,
                            sizes=[len(b) for b in bundles])

    def _submit(self, calls: list[Call], options: Mapping[str, Any], bundle: bool,
                sizes: Sequence[int] = ()) -> list[str]:
        raise NotImplementedError

    def result(self, job_id: str, timeout: Optional[float] = None) -> Any:
        """The result of a job this dispatcher submitted (waiting for it)."""
        raise UsageError(f"the {self.name} dispatcher keeps no results", prog="fleetslurm")

    def __repr__(self) -> str:
        return f"<fleetslurm {type(self).__name__}>"


class ExecutorDispatcher(Dispatcher):
    """Calls become Executor jobs on ``backend``."""

    name = backend = "fleet"

    def __init__(self, *, config: Optional[str] = None,
                 max_single_jobs: Optional[int] = DEFAULT_MAX_SINGLE_JOBS) -> None:
        super().__init__(max_single_jobs)
        self.config = config
        self._executors: dict[str, Any] = {}
        self._jobs: dict[str, Any] = {}

    def _executor(self, options: Mapping[str, Any]) -> Any:
        from ..executor.executor import Executor

        key = repr(sorted(options.items()))
        ex = self._executors.get(key)
        if ex is None:
            extra = {"config": self.config} if self.backend == "fleet" else {}
            ex = self._executors[key] = Executor(self.backend, **extra, **options)
        return ex

    def _prepare(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return dict(options)

    def _submit(self, calls: list[Call], options: Mapping[str, Any], bundle: bool,
                sizes: Sequence[int] = ()) -> list[str]:
        opts = self._prepare(options)
        if bundle and "job_name" not in opts:
            # a bundle's job is named after its function, as a single call's is
            names = {getattr(fn, "__name__", "call") for fn, _, _ in calls}
            opts["job_name"] = names.pop() if len(names) == 1 else "bundle"
        ex = self._executor(opts)
        if not bundle:
            fn, args, kwargs = calls[0]
            job = ex.submit(fn, *args, **kwargs)
            self._jobs[job.job_id] = job
            return [job.job_id]
        from ..executor import runner
        from ..executor.payload import dump_call

        limit = ex.max_payload_bytes
        # each call pickled as the Executor would (its own modules by value)
        bodies = [dump_call(fn, args, kwargs, limit)[runner._HEADER.size:]
                  for fn, args, kwargs in calls]
        names = [_describe(*c) for c in calls]
        # one job per bundle (not one array): plain ids that any later
        # dependency (wait_for) can name, on every backend
        jobs = []
        start = 0
        for size in sizes:
            jobs.append(ex.submit(run_bundle, bodies[start:start + size],
                                  names[start:start + size]))
            start += size
        for job in jobs:
            self._jobs[job.job_id] = job
        return [j.job_id for j in jobs]

    def job(self, job_id: str) -> Any:
        """The :class:`fleetslurm.Job` of a job submitted here (or re-attached)."""
        job = self._jobs.get(str(job_id))
        if job is None:
            from ..executor.job import Job

            job = Job.load(str(job_id), self.backend)
        return job

    def result(self, job_id: str, timeout: Optional[float] = None) -> Any:
        return self.job(job_id).result(timeout)


class FleetDispatcher(ExecutorDispatcher):
    """Jobs on the fleet (the default). ``config``: a fleet_config.json."""

    name = backend = "fleet"


class SlurmDispatcher(ExecutorDispatcher):
    """Jobs on a real SLURM cluster (its ``sbatch`` on PATH)."""

    name = backend = "slurm"


class _WaitsForDependencies(ExecutorDispatcher):
    """Backends without a scheduler: a call with a ``dependency`` waits here
    for the jobs it names before it runs, as SLURM would hold it."""

    def _prepare(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = dict(options)
        dep = opts.pop("dependency", None)
        if dep:
            self._wait_for(str(dep))
        return opts

    def _wait_for(self, dep: str) -> None:
        from ...slurm.deps import parse_dependency

        parsed = parse_dependency(dep)
        for term in parsed.terms:
            if term.kind not in ("afterany", "afterok", "afternotok"):
                raise UsageError(f"the {self.name} dispatcher supports afterany, afterok and "
                                 f"afternotok dependencies, not {term.kind!r}",
                                 prog="fleetslurm")
            jid = str(term.job_id) if term.array_task is None else \
                f"{term.job_id}_{term.array_task}"
            state = self.job(jid).wait()
            if term.kind == "afterok" and state != "COMPLETED" or \
                    term.kind == "afternotok" and state == "COMPLETED":
                raise UsageError(f"dependency {term.kind}:{jid} can never be satisfied: job "
                                 f"{jid} ended {state}", prog="fleetslurm")


class SubprocessDispatcher(_WaitsForDependencies):
    """Each job a subprocess on this machine (no controller, no queue)."""

    name, backend = "subprocess", "local"


class DirectDispatcher(_WaitsForDependencies):
    """Each call runs right here, at once, in this process."""

    name, backend = "direct", "debug"


class TestDispatcher(Dispatcher):
    """Runs nothing: prints each job it would submit (function, arguments,
    options) and records it in :attr:`submitted`. Calls are still pickled,
    so what could not travel fails here too. Job ids count from 1."""

    name = "test"
    __test__ = False  # not a pytest class

    def __init__(self, max_single_jobs: Optional[int] = DEFAULT_MAX_SINGLE_JOBS,
                 stream: Any = None) -> None:
        super().__init__(max_single_jobs)
        self.stream = stream
        #: one dict per job: id, calls (descriptions), options, bundle
        self.submitted: list[dict[str, Any]] = []

    def _submit(self, calls: list[Call], options: Mapping[str, Any], bundle: bool,
                sizes: Sequence[int] = ()) -> list[str]:
        import sys

        from ..executor.payload import dump_call

        for fn, args, kwargs in calls:
            dump_call(fn, args, kwargs)
        out = self.stream or sys.stdout
        ids, start = [], 0
        for size in (sizes if bundle else [1]):
            chunk = calls[start:start + size]
            start += size
            job_id = str(len(self.submitted) + 1)
            described = [_describe(*c) for c in chunk]
            opts = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "no options"
            what = described[0] if not bundle else \
                f"a bundle of {len(chunk)} calls: {', '.join(described[:5])}" + \
                (", ..." if len(chunk) > 5 else "")
            out.write(f"fleetslurm test dispatcher: job {job_id}: {what} [{opts}]\n")
            self.submitted.append({"id": job_id, "calls": described, "options": dict(options),
                                   "bundle": bundle})
            ids.append(job_id)
        return ids


def dispatcher_named(name: str, **kwargs: Any) -> Dispatcher:
    """``"fleet"``, ``"slurm"``, ``"subprocess"``, ``"direct"`` or ``"test"``."""
    table: dict[str, Callable[..., Dispatcher]] = {
        "fleet": FleetDispatcher, "slurm": SlurmDispatcher, "subprocess": SubprocessDispatcher,
        "direct": DirectDispatcher, "test": TestDispatcher}
    if name not in table:
        raise UsageError(f"unknown dispatcher {name!r}; valid dispatchers are: "
                         f"{', '.join(table)}", prog="fleetslurm")
    return table[name](**kwargs)
