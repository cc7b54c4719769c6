"""DataBench: batch and parallel data analysis on the fleet, in a few calls.

::

    from fleetslurm.databench import DataBenchSLURM

    bench = DataBenchSLURM()                     # the fleet's config, or this machine alone
    ids = bench.submit_batch_processing(["a.csv", "b.csv"], "scripts/process_file.py",
                                        partition="debug", cpus_per_job=1,
                                        memory_per_job="512M", time_limit="10:00")
    bench.wait_for_jobs(ids, timeout=600)        # {"17_0": "COMPLETED", "17_1": "COMPLETED"}
    bench.get_results(ids)                       # what each task printed (JSON when it is)

    @bench.analysis("backtest")                  # a Python function as an analysis type
    def backtest(symbol, prices_csv): ...
    ids = bench.submit_parallel_analysis(["AAPL", "MSFT"], "backtest", data="prices/")

Jobs are ordinary fleetslurm jobs (``squeue``, ``sacct``, ``scancel`` see
them). Job ids are strings as SLURM writes them: ``"N"`` for one job,
``"A_i"`` for task i of array A. Files a job reads travel with it to
machines that share no filesystem with this one (see
:mod:`fleetslurm.api.databench.script`); what a processor prints comes back
as its output file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ...errors import InvalidValue
from ..executor.script import check_memory, check_time
from .analyses import Analysis, AnalysisRegistry
from .inputs import (PathLike, as_list, check_outputs, data_file, err, existing_script,
                     processor_args, symbol_files)
from .script import Arg, Task, array_job, single_job

if TYPE_CHECKING:
    from .spool import Spool

__all__ = ["DataBenchSLURM"]


class DataBenchSLURM:
    """High-level batch and parallel analysis on a fleetslurm fleet.

    ``config``: a fleet_config.json path (default: the usual lookup; with no
    config the fleet is this machine alone; state in ``$FLEETSLURM_HOME``).
    ``python``: the interpreter that runs ``.py`` processors on the
    machines (and, when not ``python3``, callable analyses).
    ``conda_env``/``modules``/``setup``: prepared before every job (see
    :class:`fleetslurm.SLURMConstructor`).
    ``output_dir``: where job output files (and staged-back outputs) go
    (default: the current directory at submission).
    ``data_dir``: where the built-in analyses (``backtest``,
    ``import_prices``) find ``<SYMBOL>.csv`` when a submission gives no
    ``data`` (default ``$FLEETSLURM_DATA_DIR``, else ``data/prices`` under the
    current directory). ``store``: the ObjectSerializer file ``import_prices``
    fills (default ``$FLEETSLURM_PRICE_STORE``, else ``data/prices.h5``);
    :attr:`prices` opens it.
    """

    #: its ``analyses`` are found by :func:`~.analyses.analyses_in_module`
    __fleetslurm_analysis_holder__ = True

    def __init__(self, config: Optional[PathLike] = None, *, python: str = "python3",
                 conda_env: Optional[str] = None, modules: Sequence[str] = (),
                 setup: Sequence[str] = (), output_dir: Optional[PathLike] = None,
                 data_dir: Optional[PathLike] = None,
                 store: Optional[PathLike] = None) -> None:
        from ..executor.client import FleetClient
        from .builtin import BUILTINS, default_data_dir, default_store

        self.client = FleetClient(str(config) if config else None)
        self.python = python
        self.conda_env = conda_env
        self.modules = list(modules)
        self.setup = list(setup)
        self.output_dir = None if output_dir is None else str(Path(output_dir).absolute())
        self.data_dir = (Path(data_dir).expanduser().absolute() if data_dir is not None
                         else default_data_dir())
        self.store = Path(store).expanduser().absolute() if store is not None else default_store()
        self.analyses = AnalysisRegistry()
        for name, (script, description) in BUILTINS.items():
            self.analyses.register(name, script, description)
        #: callable-analysis jobs submitted from here: job id -> Job (for results)
        self._jobs: dict[str, Any] = {}
        #: import_prices tasks submitted from here whose columns are not yet
        #: in the store: task id -> symbol
        self._imports: dict[str, str] = {}

    @property
    def prices(self) -> Any:
        """The price store (an :class:`~fleetslurm.ObjectSerializer` on
        ``store``): ``bench.prices.load("/prices/AAPL")``."""
        from ..objser import ObjectSerializer

        return ObjectSerializer(self.store)

    # -- analyses ---------------------------------------------------------------
    def analysis(self, name: str, *, description: str = "") -> Callable[[Callable], Callable]:
        """Decorator: register a function as analysis type ``name``. It is
        called as ``fn(symbol)`` or, when the submission gives data files,
        ``fn(symbol, path_of_the_symbols_file)``, on a machine; its return
        value is the task's result (:meth:`get_results`)."""
        return self.analyses.decorator(name, description)

    def register_analysis(self, name: str, target: Union[Callable, PathLike], *,
                          description: str = "") -> Analysis:
        """Register analysis type ``name``: a callable, or a script run as
        ``python SCRIPT SYMBOL [DATAFILE] [ARGS...]`` that prints its result."""
        return self.analyses.register(name, target, description)

    # -- submitting -------------------------------------------------------------
    def _options(self, name: str, partition: Optional[str], cpus: int,
                 memory: Union[int, str, None], time_limit: Union[int, str, None],
                 output: Optional[str], extra: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise InvalidValue(f"cpus: {cpus!r} is not a positive whole number of CPUs")
        opts: dict[str, Any] = {"job_name": name, "partition": partition,
                                "cpus_per_task": cpus, "mem": check_memory(memory, "memory"),
                                "time": check_time(time_limit, "time_limit"),
                                "output": output}
        opts.update(extra)
        return opts

    def _outdir(self, output_dir: Optional[PathLike]) -> str:
        """Where output files go (made just before the job is submitted)."""
        d = Path(output_dir).absolute() if output_dir else Path(self.output_dir or os.getcwd())
        return str(d)

    def _prepare(self) -> dict[str, Any]:
        return {"python": self.python, "conda_env": self.conda_env, "modules": self.modules,
                "setup": self.setup}

    def submit_data_processing_job(self, script_path: PathLike, partition: Optional[str] = None,
                                   cpus: int = 1, memory: Union[int, str, None] = None,
                                   time_limit: Union[int, str, None] = None,
                                   args: Sequence[Any] = (), *, job_name: Optional[str] = None,
                                   outputs: Sequence[str] = (),
                                   output_dir: Optional[PathLike] = None,
                                   **slurm_args: Any) -> str:
        """Run one processing script (``python SCRIPT ARGS``); returns its job id.

        ``memory``: MB as an int or ``"4G"``; ``time_limit``: minutes as an
        int or ``"1:00:00"``. An argument naming an existing file on this
        host (``"data/prices.csv"`` or ``"--input=data/prices.csv"``) is
        spooled (the job reads it as it was at submission) and, where the
        machine shares no filesystem, staged there; the argument becomes the
        path of the copy. The script runs in ``output_dir`` (default: the
        current directory) or, on a machine without a shared filesystem, in
        its stage directory there: ``outputs`` names the files it writes
        into its working directory that must come back to ``output_dir``.
        Further keyword arguments are sbatch options by long name
        (``gpus=1``, ``constraint="ssd"``).
        """
        processor = existing_script(script_path, "processing script")
        words = processor_args(args)
        outputs = check_outputs(outputs)
        outdir = self._outdir(output_dir)
        name = job_name or Path(processor).stem
        opts = self._options(name, partition, cpus, memory, time_limit,
                             os.path.join(outdir, f"{name}-%j.out"), slurm_args)
        with self._spool() as spool:
            words = [Arg(spool.add(w.text), True, w.prefix) if w.staged else w for w in words]
            plan = single_job(spool.add(processor), words, str(spool.path), opts,
                              outputs=outputs, output_dir=outdir, **self._prepare())
            Path(outdir).mkdir(parents=True, exist_ok=True)
            job = self.client.submit(plan.script, cwd=outdir, name=name,
                                     stage_in=plan.stage_in, stage_out=plan.stage_out)
            spool.record([job])
        return job

    def submit_batch_processing(self, data_files: Iterable[PathLike], processor: PathLike,
                                partition: Optional[str] = None, cpus_per_job: int = 1,
                                memory_per_job: Union[int, str, None] = None,
                                time_limit: Union[int, str, None] = None, *,
                                args: Sequence[Any] = (), max_parallel: Optional[int] = None,
                                job_name: Optional[str] = None,
                                output_dir: Optional[PathLike] = None,
                                **slurm_args: Any) -> list[str]:
        """Process each data file in its own task of ONE job array: task i
        runs ``python PROCESSOR FILE_i ARGS``. Returns the task ids
        (``["A_0", "A_1", ...]``, in the order of ``data_files``).

        Each task's file reaches its machine (staged where there is no
        shared filesystem); its stdout lands in ``output_dir`` as
        ``<name>-<A>_<i>.out``. ``max_parallel`` caps how many tasks run at
        once (``--array=...%N``).
        """
        files = [data_file(f, "data file") for f in as_list(data_files, "data_files")]
        if not files:
            raise err("no data files given: pass at least one file to process")
        script = existing_script(processor, "processor")
        tasks = [Task((), f) for f in files]
        name = job_name or Path(script).stem
        return self._submit_array(script, tasks, name, partition, cpus_per_job, memory_per_job,
                                  time_limit, args, max_parallel, output_dir, slurm_args)

    def submit_parallel_analysis(self, symbols: Iterable[str], analysis_type: str,
                                 partition: Optional[str] = None, cpus_per_job: int = 1,
                                 memory_per_job: Union[int, str, None] = None,
                                 time_limit: Union[int, str, None] = None, *,
                                 data: Union[PathLike, Mapping[str, PathLike], None] = None,
                                 args: Sequence[Any] = (), max_parallel: Optional[int] = None,
                                 output_dir: Optional[PathLike] = None,
                                 **slurm_args: Any) -> list[str]:
        """Run analysis ``analysis_type`` for each symbol, as ONE job array;
        returns the task ids in the order of ``symbols``.

        ``data``: each symbol's input file, as a mapping ``{symbol: path}``
        or a directory holding ``<symbol>.csv``; it reaches the machine and is
        passed as the analysis's second argument. Raises UsageError for an
        unknown analysis type (listing the known ones) or a missing file.
        """
        syms = [str(s) for s in as_list(symbols, "symbols")]
        if not syms:
            raise err("no symbols given: pass at least one symbol to analyse")
        if len(set(syms)) != len(syms):
            dup = sorted({s for s in syms if syms.count(s) > 1})
            raise err(f"symbols repeat: {', '.join(dup)}; give each symbol once")
        analysis = self.analyses.get(str(analysis_type))
        builtin = _builtin(analysis)
        if data is None and builtin:
            data = self._builtin_data(analysis.name, syms)
        files = symbol_files(syms, data)
        if analysis.is_callable:
            return self._submit_callable(analysis, syms, files, partition, cpus_per_job,
                                         memory_per_job, time_limit, args, max_parallel,
                                         output_dir, slurm_args)
        tasks = [Task((s,), files[k] if files else None) for k, s in enumerate(syms)]
        ids = self._submit_array(str(analysis.target), tasks, f"analysis-{analysis.name}",
                                 partition, cpus_per_job, memory_per_job, time_limit, args,
                                 max_parallel, output_dir, slurm_args)
        if builtin and analysis.name == "import_prices":
            self._imports.update(zip(ids, syms))
        return ids

    def _builtin_data(self, name: str, syms: list[str]) -> str:
        """The data directory a built-in analysis reads, checked."""
        where = ("give DataBenchSLURM(data_dir=...), set FLEETSLURM_DATA_DIR or pass "
                 "data=DIRECTORY")
        if not self.data_dir.is_dir():
            raise err(f"{name} reads <SYMBOL>.csv from the data directory {self.data_dir}, "
                      f"which does not exist: put the price files there, or {where}")
        missing = [s for s in syms if not (self.data_dir / f"{s}.csv").is_file()]
        if missing:
            raise err(f"{name}: no price file for {', '.join(missing)} in the data directory "
                      f"{self.data_dir} (expected {missing[0]}.csv); add it, or {where}")
        return str(self.data_dir)

    def _submit_array(self, script: str, tasks: list[Task], name: str,
                      partition: Optional[str], cpus: int, memory: Union[int, str, None],
                      time_limit: Union[int, str, None], args: Sequence[Any],
                      max_parallel: Optional[int], output_dir: Optional[PathLike],
                      slurm_args: Mapping[str, Any]) -> list[str]:
        from .script import INPUT_PREFIX

        words = processor_args(args)
        if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
            raise InvalidValue(f"max_parallel: {max_parallel!r} must be a positive number")
        outdir = self._outdir(output_dir)
        spec = f"0-{len(tasks) - 1}" + (f"%{max_parallel}" if max_parallel else "")
        opts = self._options(name, partition, cpus, memory, time_limit,
                             os.path.join(outdir, f"{name}-%A_%a.out"),
                             {"array": spec, **slurm_args})
        with self._spool() as spool:
            words = [Arg(spool.add(w.text), True, w.prefix) if w.staged else w for w in words]
            tasks = [Task(t.words, spool.add_task_input(i, t.input, INPUT_PREFIX)
                          if t.input else None) for i, t in enumerate(tasks)]
            plan = array_job(spool.add(script), tasks, str(spool.path), words, opts,
                             **self._prepare())
            Path(outdir).mkdir(parents=True, exist_ok=True)
            job = self.client.submit(plan.script, cwd=outdir, name=name,
                                     stage_in=plan.stage_in)
            spool.record([job])
        return [f"{job}_{i}" for i in range(len(tasks))]

    @contextlib.contextmanager
    def _spool(self) -> Iterator["Spool"]:
        """A fresh spool; removed again when the submission fails."""
        from .spool import Spool

        self._sweep()
        spool = Spool(self.client.paths.home / "databench")
        try:
            yield spool
        except BaseException:
            spool.discard()
            raise

    def _submit_callable(self, analysis: Analysis, syms: list[str], files: list[str],
                         partition: Optional[str], cpus: int, memory: Union[int, str, None],
                         time_limit: Union[int, str, None], args: Sequence[Any],
                         max_parallel: Optional[int], output_dir: Optional[PathLike],
                         slurm_args: Mapping[str, Any]) -> list[str]:
        from .callable import submit_callable

        jobs = submit_callable(self.client.config, analysis, syms, files, python=self.python,
                               conda_env=self.conda_env, modules=self.modules, setup=self.setup,
                               partition=partition, cpus=cpus,
                               memory=check_memory(memory, "memory"),
                               time_limit=check_time(time_limit, "time_limit"), args=args,
                               max_parallel=max_parallel, slurm_args=slurm_args)
        for j in jobs:
            self._jobs[str(j.job_id)] = j
        return [str(j.job_id) for j in jobs]

    def _sweep(self) -> None:
        """Drop spools whose jobs are all over (best effort: never fails a submission)."""
        from ..executor.client import is_finished
        from .spool import sweep

        try:
            sweep(self.client.paths.home / "databench", self.client.states, is_finished)
        except Exception:  # noqa: BLE001 - cleanup must not break the user's submission
            pass

    # -- watching -------------------------------------------------------------
    def wait_for_jobs(self, job_ids: Iterable[str], timeout: Optional[float] = None, *,
                      progress: Optional[bool] = None, poll: float = 0.5) -> dict[str, str]:
        """Block until every job has finished; ``{id: final state}``
        (``"COMPLETED"``, ``"FAILED"``, ``"TIMEOUT"``...; an array's id gives
        each task). A progress bar shows on stderr when it is a terminal
        (``progress=True``/``False`` forces it). Raises JobTimeout (a
        TimeoutError), naming the jobs still running, when ``timeout``
        seconds pass first; the jobs go on."""
        from ..executor.client import is_finished
        from .status import wait_for

        ids = [str(i) for i in as_list(job_ids, "job_ids")]
        if not ids:
            return {}
        try:
            states = wait_for(self._states, is_finished, ids, timeout, progress=progress,
                              poll=poll, block=self.client.block)
        except TimeoutError:
            self._import_prices(ids, None)
            raise
        self._import_prices(ids, states)
        return states

    def _import_prices(self, ids: list[str], states: Optional[Mapping[str, str]]) -> None:
        """Write the columns of each completed import_prices task among
        ``ids`` (a task's id or its array's) into the store, once per task."""
        from ...errors import JobError
        from ..executor.client import is_finished
        from .builtin import store_prices

        wanted = set(ids)
        pending = [i for i in self._imports if i in wanted or i.split("_")[0] in wanted]
        if not pending:
            return
        if states is None:
            states = self._states(pending)
        for i in pending:
            state = states.get(i)
            if state == "COMPLETED":
                symbol = self._imports.pop(i)
                try:
                    store_prices(self.store, symbol, self.get_job_output(i))
                except ValueError as exc:
                    raise JobError(f"{exc}; task {i} wrote it, and nothing of {symbol} was "
                                   f"stored in {self.store}: check its output "
                                   f"(bench.get_job_output({i!r}))") from None
            elif state is not None and is_finished(state):
                del self._imports[i]  # it did not complete: nothing to import

    def _states(self, ids: list[str]) -> dict[str, str]:
        """``{id: state}`` for the ids (an array's id: each task). Many tasks
        of one array are asked for by the array's id (one short request
        rather than thousands of ids each poll), then filtered."""
        by_master: dict[str, list[str]] = {}
        for i in ids:
            by_master.setdefault(i.split("_")[0], []).append(i)
        ask = []
        for master, some in by_master.items():
            ask.extend([master] if len(some) > 20 or master in some else some)
        wanted = set(ids)
        return {k: st for k, st in self.client.states(ask).items()
                if k in wanted or k.split("_")[0] in wanted}

    def get_job_status(self, job_id: Union[str, int]) -> dict[str, Any]:
        """A job's ``status`` (SLURM state), ``assigned_machine``, ``name``,
        ``start``/``end`` (ISO 8601 or None), ``exit_code``, ``exit_signal``,
        ``exit`` (``"code:signal"``), ``stdout``/``stderr`` paths, ``reason``,
        ``elapsed_s``, ``cpu_time_s``, ``max_rss_kb``. For a whole array:
        its overall ``status``, ``counts`` per state and each task under
        ``tasks``. Raises InvalidJobId for an unknown id."""
        from ...errors import InvalidJobId
        from .status import array_status, job_status

        text = str(job_id)
        recs = self.client.jobs([text])
        if not recs:
            raise InvalidJobId(f"DataBench: no such job: {text}; check the id "
                               "(`fleetslurm sacct` lists your jobs)")
        if len(recs) == 1 and "_" not in text and recs[0].get("array_job_id") is None:
            return job_status(recs[0])
        if len(recs) == 1 and "_" in text:
            return job_status(recs[0])
        return array_status(text, recs)

    def get_job_output(self, job_id: Union[str, int], which: str = "stdout") -> str:
        """What a job (or array task) wrote on ``which`` (stdout or stderr) so
        far, also while it runs on another machine."""
        if which not in ("stdout", "stderr"):
            raise InvalidValue(f"which: {which!r} must be 'stdout' or 'stderr'")
        chunks, offset = [], 0
        while True:
            data, offset = self.client.read_output(str(job_id), which, offset)
            if not data:
                return "".join(chunks)
            chunks.append(data)

    def get_results(self, job_ids: Iterable[str], timeout: Optional[float] = None
                    ) -> dict[str, Any]:
        """Each finished job's result: a callable analysis's return value;
        for a script, its stdout parsed as JSON (the whole text or its last
        line) or else the text. Waits for the jobs first (``timeout``).
        A failed callable analysis raises its error (with the remote traceback)."""
        from .status import parse_result

        ids = [str(i) for i in as_list(job_ids, "job_ids")]
        self.wait_for_jobs(ids, timeout, progress=False)
        out: dict[str, Any] = {}
        for i in ids:
            job = self._jobs.get(i) or _executor_job(i)
            if job is not None:
                out[i] = job.result(timeout=timeout)
            else:
                out[i] = parse_result(self.get_job_output(i))
        return out

    def cancel_jobs(self, job_ids: Iterable[str]) -> None:
        """Cancel the jobs (an array id cancels all its tasks)."""
        self.client.cancel([str(i) for i in as_list(job_ids, "job_ids")])

    def get_cluster_status(self) -> dict[str, dict[str, Any]]:
        """Per machine: ``state`` (idle, mix, alloc, down, drain...),
        ``cpus_used``/``cpus_total``, ``memory_used_mb``/``memory_total_mb``/
        ``memory_free_mb``, ``gpus_used``/``gpus_total``, ``load`` (1-minute
        load average), ``partitions``, ``reason``."""
        return self.client.cluster_status()


def _builtin(analysis: Analysis) -> bool:
    """Whether ``analysis`` is one of the built-ins (not replaced by the user)."""
    from .builtin import BUILTINS

    entry = BUILTINS.get(analysis.name)
    return entry is not None and analysis.target == str(entry[0])


def _executor_job(job_id: str) -> Any:
    """The Executor Job behind a callable analysis submitted from another
    process (None for script jobs)."""
    from ...errors import InvalidJobId
    from ..executor.job import Job

    try:
        return Job.load(job_id, "fleet")
    except InvalidJobId:
        return None
