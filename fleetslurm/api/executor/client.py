"""The thin Python layer over the controller's RPC that every Python API uses.

::

    from fleetslurm.api.executor.client import FleetClient

    fc = FleetClient()                                  # embedded default, or the config found
    job_id = fc.submit("#!/bin/sh\\necho hi\\n", {"cpus_per_task": 2, "mem": "1G"})
    fc.wait([job_id], timeout=60)                       # {"17": "COMPLETED"}
    rec = fc.job(job_id)                                # a JobRecord (state, node, times...)
    fc.cancel([job_id])
    fc.cluster_status()                                 # {node: {"state", "cpus_used", ...}}

Options are sbatch's, by their long names (``cpus_per_task`` or
``cpus-per-task``); they go through sbatch's own parser and precedence
(command line > ``SBATCH_*`` environment > ``#SBATCH`` lines in the script),
so names and values are checked exactly as ``sbatch`` checks them. An
unknown name raises :class:`~fleetslurm.errors.UsageError` listing the valid
ones.

Job ids are strings as a SLURM user writes them: ``"N"`` for a job (or a whole
array), ``"A_i"`` for an array task. Records are
:class:`fleetslurm.model.JobRecord` dicts plus ``"id"`` (that shown id).

Staging (machines without a shared filesystem): ``stage_in`` names files on
this host that are copied into the job's stage directory on its machine
before it starts; ``stage_out`` names files on this host that the job writes
(under the same base name) into that directory and that are copied back here
when it ends, before the job leaves COMPLETING. Paths may hold SLURM's
filename patterns (``%a`` array index, ``%A`` array id, ``%j`` job id), so one
array gives each task its own files. Inside the job, ``$FLEETSLURM_STAGE_DIR``
names the stage directory; it is unset where the machine shares this host's
filesystem (``shared_fs``, the embedded localhost, a real SLURM cluster), and
then the files are used in place: a script written as
``"${FLEETSLURM_STAGE_DIR:-/abs/dir}/name"`` runs unchanged everywhere.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from ...errors import InvalidJobId, JobTimeout, UsageError
from ...model import ACTIVE_STATE_NAMES, JobRecord

__all__ = ["FleetClient", "options_argv", "option_names", "shown_id", "is_finished"]

_PROG = "sbatch"
# Options the API sets itself or that make no sense from Python
_NOT_FOR_API = frozenset({"help", "usage", "version", "wrap", "parsable", "wait", "test_only",
                          "verbose", "quiet"})


def option_names() -> list[str]:
    """sbatch's long option names, as the API accepts them (``cpus_per_task``)."""
    from ...slurm.option_tables import SBATCH

    return sorted({o.long.replace("-", "_") for o in SBATCH
                   if o.long and o.long.replace("-", "_") not in _NOT_FOR_API})


def options_argv(options: Mapping[str, Any]) -> list[str]:
    """``{"cpus_per_task": 2, "exclusive": True}`` -> ``["--cpus-per-task=2", "--exclusive"]``.

    Names are sbatch's long options with ``_`` or ``-``; values are strings or
    numbers (``True`` for a flag, ``False``/``None`` leave it out, a list gives
    the option once per item). Raises UsageError for an unknown name (listing
    the valid ones) or a flag given a value.
    """
    from ...slurm.option_tables import SBATCH

    by_long = {o.long: o for o in SBATCH if o.long}
    argv: list[str] = []
    for key, value in options.items():
        long = str(key).replace("_", "-")
        opt = by_long.get(long)
        if opt is None or str(key).replace("-", "_") in _NOT_FOR_API:
            raise UsageError(
                f"unknown SLURM option {key!r}. Valid options are: "
                + ", ".join(option_names()), prog="fleetslurm")
        if value is None or value is False:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if opt.arg == "none":
                if v is not True:
                    raise UsageError(f"option {key!r} is a flag: give True (or False/None "
                                     f"to leave it out), not {v!r}", prog="fleetslurm")
                argv.append(f"--{long}")
            elif v is True and opt.arg == "optional":
                argv.append(f"--{long}")
            else:
                argv.append(f"--{long}={v}")
    return argv


def shown_id(rec: Mapping[str, Any]) -> str:
    """A record's id as SLURM shows it: ``N`` or ``A_i``."""
    if rec.get("array_job_id") is not None and rec.get("array_task_id") is not None:
        return f"{rec['array_job_id']}_{rec['array_task_id']}"
    return str(rec["job_id"])


def is_finished(state: str) -> bool:
    """Whether a job in ``state`` is over (SLURM clients' rule: everything but
    PENDING, RUNNING, COMPLETING, REQUEUED, SUSPENDED... counts as finished)."""
    return state not in ACTIVE_STATE_NAMES and state not in ("PREEMPTED", "UNKNOWN",
                                                               "REQUEUE_HOLD")


class FleetClient:
    """One user's handle on the controller. Each call opens one short
    connection (the controller is started first when none runs, as the
    embedded default promises), so a FleetClient holds no connection and is
    safe to share between threads.

    ``config``: a fleet_config.json path (default: the usual lookup,
    :func:`fleetslurm.paths.find_config`). ``home``: the state directory
    (default ``$FLEETSLURM_HOME`` or ``~/.fleetslurm``). ``timeout``: seconds
    to wait for one answer before ControllerError (None: no limit).
    """

    def __init__(self, config: Optional[str] = None, home: Optional[str] = None,
                 timeout: Optional[float] = 120.0) -> None:
        from ...paths import StatePaths, find_config, state_paths

        self.paths = StatePaths(home) if home else state_paths()
        #: a home named here means that personal controller; else the lookup
        #: (FLEETSLURM_CONTROLLER, the lab, the personal one: rpc.target)
        self._own_home = bool(home)
        path = find_config(config)
        self.config: Optional[str] = str(path) if path else None
        #: seconds to wait for one answer (a stuck controller must not hang callers)
        self.timeout = timeout

    # -- plumbing -----------------------------------------------------------------
    def call(self, op: str, **args: Any) -> Any:
        """One request to the controller (see :mod:`fleetslurm.rpc`)."""
        from ...rpc import ensure_controller

        with ensure_controller(self.config, self.paths if self._own_home else None) as c:
            c.set_timeout(self.timeout)
            return c.call(op, **args)

    # -- submitting ---------------------------------------------------------------
    def submit(self, script: str, options: Optional[Mapping[str, Any]] = None,
               args: Sequence[str] = (), *, cwd: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, name: str = "sbatch",
               stage_in: Sequence[str] = (), stage_out: Sequence[str] = ()) -> str:
        """Submit a batch script (its text); returns the job id (``"N"``).

        ``options``: sbatch options by long name, which win over the script's
        ``#SBATCH`` lines. ``args``: the script's arguments. ``cwd``: the
        submit directory (default: the current one). ``env``: the environment
        the job gets (default: this process's, as ``--export=ALL``). ``name``:
        the job's default name when neither the script nor the options give
        one. ``stage_in``/``stage_out``: files copied to/from the job's machine
        (see the module docstring). Raises UsageError for a bad option or
        value, SubmitError when no machine could ever run it.
        """
        from ...slurm.option_env import sbatch_options

        if not script.startswith("#!"):
            raise UsageError("This does not look like a batch script.  The first line must "
                             "start with #! followed by the path to an interpreter.",
                             prog=_PROG)
        from ...umask import with_umask

        environ = with_umask(os.environ if env is None else env)
        opts, _pos, _ = sbatch_options(options_argv(options or {}), script, environ)
        for key in ("wrap", "parsable", "wait"):
            opts.pop(key, None)
        stage = {"in": [str(p) for p in stage_in], "out": [str(p) for p in stage_out]}
        _check_stage(stage)
        reply = self.call(
            "submit", options=opts, script=script, script_args=[str(a) for a in args],
            env=environ, cwd=os.path.abspath(cwd or os.getcwd()),
            submit_host=socket.gethostname(), script_name=name, command="",
            stage=stage if (stage["in"] or stage["out"]) else None)
        return str(reply["job_id"])

    # -- looking ------------------------------------------------------------------
    def jobs(self, ids: Iterable[str]) -> list[JobRecord]:
        """Records of the named jobs (``N`` gives every task of array N), each
        with its shown ``"id"``; unknown ids are left out. Keys: ``state``,
        ``reason``, ``nodes``, ``submit_time``/``start_time``/``end_time``,
        ``exit_code``/``exit_signal``, ``stdout``/``stderr`` (paths on this
        host), ``total_cpu``/``max_rss_kb`` (when finished), ... (see JobRecord)."""
        wanted = [str(i) for i in ids]
        if not wanted:
            return []
        recs = self.call("jobs", ids=wanted, steps=True)
        for r in recs:
            r["id"] = shown_id(r)
        return recs

    def job(self, job_id: str) -> JobRecord:
        """One job's (or array task's) record; InvalidJobId when unknown."""
        recs = self.jobs([job_id])
        if len(recs) != 1:
            if not recs:
                raise InvalidJobId(f"job {job_id}: no such job (it may have been purged); "
                                   "check the id with `fleetslurm sacct`")
            raise InvalidJobId(f"job {job_id} is an array of {len(recs)} tasks: "
                               "name one task as A_i")
        return recs[0]

    def states(self, ids: Iterable[str]) -> dict[str, str]:
        """``{shown id: state}`` for the named jobs (arrays give each task)."""
        return {r["id"]: r["state"] for r in self.jobs(ids)}  # type: ignore[typeddict-item]

    def wait(self, ids: Iterable[str], timeout: Optional[float] = None,
             poll: float = 0.25) -> dict[str, str]:
        """Block until every named job is finished; ``{shown id: final state}``.
        Raises JobTimeout (a TimeoutError) when ``timeout`` seconds pass first.
        The controller says when they end (``poll``: the pause between two
        looks when it says so and the records do not agree yet)."""
        wanted = [str(i) for i in ids]
        deadline = None if timeout is None else time.monotonic() + timeout
        over, pause = False, min(poll, 0.05)
        while True:
            states = self.states(wanted)
            if states and all(is_finished(s) for s in states.values()):
                return states
            if deadline is not None and time.monotonic() >= deadline:
                live = sorted(k for k, s in states.items() if not is_finished(s))
                raise JobTimeout(f"jobs still not finished after {timeout:g} s: "
                                   f"{', '.join(live) or ', '.join(wanted)}")
            if over:  # over for the controller, not for the records (or unknown ids)
                time.sleep(pause if deadline is None else
                           max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(poll, pause * 2)
            over = self.block(wanted, None if deadline is None
                              else max(0.0, deadline - time.monotonic()))

    def block(self, ids: Iterable[str], seconds: Optional[float]) -> bool:
        """Block until the controller says every named job has ended (True),
        or ``seconds`` pass (False; None: no limit). It answers in the step
        that recorded the last end: no polling (see fleetslurm.jobwait)."""
        from ...jobwait import block

        return block(self._call_held, ids, seconds)

    def _call_held(self, op: str, **args: Any) -> Any:
        """:meth:`call` for a request the controller holds ``args["timeout"]`` seconds."""
        from ...jobwait import MARGIN
        from ...rpc import ensure_controller

        with ensure_controller(self.config, self.paths if self._own_home else None) as c:
            c.set_timeout(None if self.timeout is None else
                          max(self.timeout, float(args.get("timeout") or 0) + MARGIN))
            return c.call(op, **args)

    def read_output(self, job_id: str, which: str = "stdout", offset: int = 0) -> tuple[str, int]:
        """A job's stdout or stderr from byte ``offset``: from this host once it
        is here, from the machine while the job runs. Returns (text, next offset)."""
        reply = self.call("read_output", id=str(job_id), which=which, offset=offset)
        return reply["data"], reply["offset"]

    # -- acting -------------------------------------------------------------------
    def cancel(self, ids: Iterable[str], signal: Optional[int] = None) -> None:
        """scancel the named jobs (``signal``: send it instead of cancelling).
        Finished jobs are left alone; raises JobError when the controller refuses
        (another user's job)."""
        wanted = [str(i) for i in ids]
        if not wanted:
            return
        args: dict[str, Any] = {"ids": wanted, "verbose": True}
        if signal is not None:
            args["signal"] = int(signal)
        reply = self.call("cancel", **args)
        errs = [e for e in reply["errors"] if "Invalid job id" not in e]
        if errs:
            from ...errors import JobError

            raise JobError("; ".join(errs))

    # -- the cluster --------------------------------------------------------------
    def nodes(self) -> list[dict]:
        """Every machine as a NodeRecord (``name``, ``state``, ``cpus``,
        ``alloc_cpus``, ``mem_mb``, ``alloc_mem_mb``, ``free_mem_mb``,
        ``cpu_load``, ``gpus``, ``alloc_gpus``, ``partitions``, ``reason``...)."""
        return list(self.call("nodes")["nodes"])

    def partitions(self) -> list[dict]:
        """Every partition (``name``, ``default``, ``state``, ``max_time``, ``nodes``)."""
        return list(self.call("nodes")["partitions"])

    def cluster_status(self) -> dict[str, dict]:
        """Per machine: ``state`` (sinfo's word), ``reason``, ``cpus_used``,
        ``cpus_total``, ``memory_used_mb``, ``memory_total_mb``,
        ``memory_free_mb`` (as the machine reports it, None until it has),
        ``gpus_used``, ``gpus_total``, ``load`` (1-minute load average or None),
        ``partitions``, ``hostname``."""
        out = {}
        for n in self.nodes():
            out[n["name"]] = {
                "state": n["state"], "reason": n.get("reason", ""),
                "cpus_used": n["alloc_cpus"], "cpus_total": n["cpus"],
                "memory_used_mb": n["alloc_mem_mb"], "memory_total_mb": n["mem_mb"],
                "memory_free_mb": n.get("free_mem_mb"),
                "gpus_used": n["alloc_gpus"], "gpus_total": n["gpus"],
                "load": n.get("cpu_load"), "partitions": list(n.get("partitions") or []),
                "hostname": n.get("hostname", ""),
            }
        return out

    def ping(self) -> dict:
        """The controller's pid, start time, config and cluster name."""
        return dict(self.call("ping"))


def _check_stage(stage: dict) -> None:
    """Stage entries must be absolute paths with distinct base names (the job
    sees them by base name in one directory); inputs must exist (after
    pattern expansion, which the controller does per task)."""
    seen: dict[str, str] = {}
    for kind in ("in", "out"):
        for path in stage[kind]:
            if not os.path.isabs(path):
                raise UsageError(f"stage_{kind}: {path!r} is not an absolute path",
                                 prog="fleetslurm")
            base = os.path.basename(path)
            if not base or base in (".", ".."):
                raise UsageError(f"stage_{kind}: {path!r} names no file", prog="fleetslurm")
            if base in seen and seen[base] != path:
                raise UsageError(f"stage_{kind}: {path!r} and {seen[base]!r} share the "
                                 f"base name {base!r}; the job sees staged files by base "
                                 "name in one directory", prog="fleetslurm")
            seen[base] = path
            if kind == "in" and "%" not in path and not os.path.isfile(path):
                raise UsageError(f"stage_in: {path} does not exist", prog="fleetslurm")
