"""The decorator API (the slurminade seed): distribute plain functions as jobs.

::

    import fleetslurm

    @fleetslurm.slurmify(cpus_per_task=2, mem="1G")
    def f(x):
        print(f"f({x})")

    f(1)                                   # runs here, as always
    jid = f.distribute(2)                  # a job on the fleet; its id ("17")
    with fleetslurm.Batch(max_size=20) as batch:
        for i in range(100):
            f.distribute(i)                # buffered: 100 calls -> 5 jobs of 20
        ids = batch.flush()                # ["18_0", ..., "18_4"]
    f.wait_for(ids).distribute(-1)         # starts once those jobs have ended

Options are sbatch's by long name (``partition``, ``cpus_per_task``,
``mem``, ``time``, ``gpus``, ``constraint``...) and the Executor's own
(``conda_env``, ``modules``, ``setup``, ``python``...), merged from
:func:`update_default_configuration`, then ``@slurmify(...)``. Where the
calls go is the *dispatcher* (:func:`set_dispatcher`: ``"fleet"`` by default,
``"slurm"``, ``"subprocess"``, ``"direct"``, ``"test"``); see
:mod:`fleetslurm.api.compat.dispatch`.

Functions and arguments travel by cloudpickle, not JSON: any picklable value
works, and functions of the script being run travel by value. The function
runs on the machine as the plain function: slurmified functions it calls
run there directly.

The dispatcher and the default options are process-wide settings (as
``logging``'s configuration is): a program sets them once, for every thread.
The open Batch is per thread/context (a ``ContextVar``), since a ``with``
block belongs to the code that opened it.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union

from ...errors import UsageError
from .dispatch import Dispatcher, FleetDispatcher, dispatcher_named

__all__ = ["slurmify", "SlurmFunction", "Batch", "BatchedCall", "set_dispatcher",
           "get_dispatcher", "update_default_configuration"]


class _Settings:
    """The process-wide dispatcher and default options (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dispatcher: Optional[Dispatcher] = None
        self.defaults: dict[str, Any] = {}


_SETTINGS = _Settings()
_BATCH: contextvars.ContextVar[Optional["Batch"]] = contextvars.ContextVar(
    "fleetslurm_batch", default=None)


def set_dispatcher(dispatcher: Union[Dispatcher, str], **kwargs: Any) -> Dispatcher:
    """Send distributed calls to ``dispatcher``: a Dispatcher, or its name
    (``"fleet"``, ``"slurm"``, ``"subprocess"``, ``"direct"``, ``"test"``;
    ``kwargs`` go to its constructor). Returns it."""
    if isinstance(dispatcher, str):
        dispatcher = dispatcher_named(dispatcher, **kwargs)
    elif kwargs:
        raise UsageError("set_dispatcher() takes options only with a dispatcher's name",
                         prog="fleetslurm")
    if not isinstance(dispatcher, Dispatcher):
        raise UsageError(f"set_dispatcher() needs a Dispatcher or a name, not "
                         f"{type(dispatcher).__name__}", prog="fleetslurm")
    with _SETTINGS.lock:
        _SETTINGS.dispatcher = dispatcher
    return dispatcher


def get_dispatcher() -> Dispatcher:
    """The current dispatcher (a FleetDispatcher until one is set)."""
    with _SETTINGS.lock:
        if _SETTINGS.dispatcher is None:
            _SETTINGS.dispatcher = FleetDispatcher()
        return _SETTINGS.dispatcher


def update_default_configuration(**options: Any) -> None:
    """Options every slurmified function gets unless it sets its own
    (``partition="gpu"``, ``time="1:00:00"``...); ``None`` removes one."""
    with _SETTINGS.lock:
        for k, v in options.items():
            key = k.replace("-", "_")
            if v is None:
                _SETTINGS.defaults.pop(key, None)
            else:
                _SETTINGS.defaults[key] = v


def _job_ids(job_ids: Any) -> list[str]:
    if isinstance(job_ids, (str, int, BatchedCall)):
        job_ids = [job_ids]
    out = []
    for j in job_ids:
        if isinstance(j, BatchedCall):
            j = j.job_id
        text = str(j).strip()
        if not text or not text.replace("_", "").isdigit():
            raise UsageError(f"wait_for: {j!r} is not a job id (N or A_i)", prog="fleetslurm")
        out.append(text)
    return out


class SlurmFunction:
    """A function that can also be distributed as a job (see :func:`slurmify`)."""

    def __init__(self, func: Callable[..., Any], options: Mapping[str, Any],
                 dependency: Optional[str] = None) -> None:
        self.func = func
        self.options = {k.replace("-", "_"): v for k, v in options.items()}
        self.dependency = dependency
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run it here, now (as if it were not decorated)."""
        return self.func(*args, **kwargs)

    def __reduce__(self) -> tuple:
        # On a machine the function is the plain function: nothing of
        # fleetslurm needs to be installed there to call it.
        return (copy.copy, (self.func,))

    def __repr__(self) -> str:
        return f"<slurmified {getattr(self.func, '__qualname__', self.func)!r}>"

    def job_options(self) -> dict[str, Any]:
        """The options its jobs get: defaults, then its own, then the dependency."""
        with _SETTINGS.lock:
            opts = dict(_SETTINGS.defaults)
        opts.update(self.options)
        if self.dependency:
            opts["dependency"] = self.dependency
        return {k: v for k, v in opts.items() if v is not None}

    def distribute(self, *args: Any, **kwargs: Any) -> Union[str, "BatchedCall"]:
        """Run ``func(*args, **kwargs)`` as a job; returns its id (``"17"``).
        Inside ``with Batch():`` the call is buffered and a BatchedCall is
        returned (its ``job_id`` is known after ``flush()``)."""
        batch = _BATCH.get()
        if batch is not None:
            return batch._add(self, args, kwargs)
        return get_dispatcher().submit_call(self.func, args, kwargs, self.job_options())

    def distribute_and_wait(self, *args: Any, timeout: Optional[float] = None,
                            **kwargs: Any) -> Any:
        """Run it as a job and wait for it; returns its result (a failure
        raises RemoteJobError with the remote traceback)."""
        if _BATCH.get() is not None:
            raise UsageError("distribute_and_wait() cannot run inside a Batch (the call would "
                             "wait for the whole batch); call it outside the `with` block",
                             prog="fleetslurm")
        dispatcher = get_dispatcher()
        job_id = dispatcher.submit_call(self.func, args, kwargs, self.job_options())
        return dispatcher.result(job_id, timeout)

    def wait_for(self, job_ids: Union[str, int, "BatchedCall", Iterable[Any]],
                 method: str = "afterany") -> "SlurmFunction":
        """The same function, whose next jobs start only after ``job_ids``
        have ended (``method``: ``afterany`` — in any state —, ``afterok`` —
        completed —, or ``afternotok``). Returns a copy; chain
        ``.distribute(...)`` on it."""
        if method not in ("afterany", "afterok", "afternotok", "after"):
            raise UsageError(f"wait_for: method {method!r} is not one of afterany, afterok, "
                             "afternotok, after", prog="fleetslurm")
        ids = _job_ids(job_ids)
        if not ids:
            return self.with_options()
        term = f"{method}:" + ":".join(ids)
        dep = f"{self.dependency},{term}" if self.dependency else term
        return SlurmFunction(self.func, self.options, dep)

    def with_options(self, **options: Any) -> "SlurmFunction":
        """A copy with more (or other) options."""
        return SlurmFunction(self.func, {**self.options, **options}, self.dependency)

    def update_options(self, **options: Any) -> None:
        """Change this function's options in place."""
        self.options.update({k.replace("-", "_"): v for k, v in options.items()})


def slurmify(func: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
    """Decorator: make ``func`` distributable (``@slurmify`` or
    ``@slurmify(cpus_per_task=2, ...)``). Options are checked when a job is
    first submitted with them (an unknown name lists the valid ones)."""
    if func is not None:
        if not callable(func):
            raise UsageError("@slurmify decorates functions; give options by name: "
                             "@slurmify(partition='debug')", prog="fleetslurm")
        return SlurmFunction(func, options)

    def wrap(fn: Callable[..., Any]) -> SlurmFunction:
        if not callable(fn):
            raise UsageError(f"@slurmify decorates functions, not {type(fn).__name__}",
                             prog="fleetslurm")
        return SlurmFunction(fn, options)

    return wrap


class BatchedCall:
    """A call buffered in a Batch; its ``job_id`` is set when the batch is flushed."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._job_id: Optional[str] = None

    @property
    def job_id(self) -> str:
        if self._job_id is None:
            raise UsageError(f"{self.description} has no job id yet: call batch.flush() (or "
                             "leave the `with Batch()` block) first", prog="fleetslurm")
        return self._job_id

    def __str__(self) -> str:
        return self.job_id

    def __repr__(self) -> str:
        return f"<BatchedCall {self.description} job={self._job_id or 'not yet'}>"


class Batch:
    """Bundle distributed calls into few jobs: inside ``with Batch(max_size=N)
    as batch:`` every ``distribute`` is buffered; ``batch.flush()`` (and the
    end of the block) submits them as jobs of up to ``max_size`` calls each
    (calls with different options or dependencies go to different jobs) and
    returns the new jobs' ids. Nothing is submitted when the block raises."""

    def __init__(self, max_size: int = 20) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise UsageError(f"Batch(max_size={max_size!r}): give a positive number of calls "
                             "per job", prog="fleetslurm")
        self.max_size = max_size
        self._pending: list[tuple[SlurmFunction, tuple, dict, BatchedCall]] = []
        self._token: Optional[contextvars.Token] = None
        #: every job id this batch submitted, in order
        self.job_ids: list[str] = []

    def __enter__(self) -> "Batch":
        if _BATCH.get() is not None:
            raise UsageError("Batch blocks do not nest: distribute inside the open one",
                             prog="fleetslurm")
        self._token = _BATCH.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._token is not None
        _BATCH.reset(self._token)
        self._token = None
        if exc_type is None:
            self.flush()
        else:
            self._pending = []

    def _add(self, fn: SlurmFunction, args: tuple, kwargs: dict) -> BatchedCall:
        name = getattr(fn.func, "__qualname__", "call")
        handle = BatchedCall(f"{name}(...) in a Batch")
        self._pending.append((fn, args, kwargs, handle))
        return handle

    def __len__(self) -> int:
        """Calls buffered and not yet submitted."""
        return len(self._pending)

    def flush(self) -> list[str]:
        """Submit the buffered calls; the ids of the jobs this made."""
        pending, self._pending = self._pending, []
        groups: dict[str, tuple[dict, list]] = {}
        for fn, args, kwargs, handle in pending:
            opts = fn.job_options()
            key = repr(sorted(opts.items()))
            groups.setdefault(key, (opts, []))[1].append((fn.func, args, kwargs, handle))
        dispatcher = get_dispatcher()
        ids: list[str] = []
        todo = list(groups.values())
        try:
            while todo:
                opts, calls = todo[0]
                chunks = [calls[i:i + self.max_size]
                          for i in range(0, len(calls), self.max_size)]
                made = dispatcher.submit_bundles(
                    [[(f, a, k) for f, a, k, _ in c] for c in chunks], opts)
                todo.pop(0)
                for chunk, job_id in zip(chunks, made):
                    for *_, handle in chunk:
                        handle._job_id = job_id
                ids.extend(made)
        except BaseException:
            # what was not submitted stays buffered: fix the cause and flush again
            by_handle = {id(h): (fn, a, k, h) for fn, a, k, h in pending}
            self._pending = [by_handle[id(c[3])] for _, calls in todo for c in calls]
            raise
        finally:
            self.job_ids.extend(ids)
        return ids
