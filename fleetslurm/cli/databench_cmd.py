"""``fleetslurm databench batch|analyze|status``: the DataBench API from a shell.

Thin: parse, one DataBench call, render. DataBench itself (and what it
imports) is loaded only when a command runs.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Batch and parallel data analysis on the fleet (DataBench).")

_P = typer.Option(None, "--partition", "-p", help="partition (default: the default one)")
_C = typer.Option(1, "--cpus-per-job", "-c", help="CPUs per task")
_M = typer.Option(None, "--mem", help="memory per task: MB, or with a unit (512M, 4G)")
_T = typer.Option(None, "--time", "-t", help="time limit per task (minutes, or 1:00:00)")
_ARGS = typer.Option("", "--args", help="arguments for the script, one shell-quoted string "
                                        "(--args '--columns price')")
_OUT = typer.Option(None, "--output-dir", "-o", help="where output files go "
                                                    "(default: the current directory)")
_MAXP = typer.Option(None, "--max-parallel", help="run at most N tasks at once")
_WAIT = typer.Option(False, "--wait", "-W", help="wait for the jobs and report how they ended")
_TIMEOUT = typer.Option(None, "--timeout", help="seconds to wait at most (with --wait)")
_JSON = typer.Option(False, "--json", help="print JSON instead of a table")
_PARS = typer.Option(False, "--parsable", help="print only the job ids, one per line")


def _bench():
    from ..api.databench.bench import DataBenchSLURM

    return DataBenchSLURM()


def _fail(exc: BaseException) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _run(body) -> Any:
    """Run ``body``; fleetslurm errors and timeouts become ``error: ...``, exit 1."""
    from ..errors import FleetError

    try:
        return body()
    except (FleetError, TimeoutError) as exc:
        _fail(exc)


def _table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _report_submitted(ids: list[str], labels: list[str], parsable: bool, as_json: bool) -> None:
    if parsable:
        typer.echo("\n".join(ids))
    elif as_json:
        typer.echo(json.dumps(dict(zip(ids, labels)), indent=2))
    else:
        typer.echo(f"Submitted job array {ids[0].split('_')[0]} ({len(ids)} tasks)")
        typer.echo(_table([[i, lab] for i, lab in zip(ids, labels)], ["JOBID", "INPUT"]))


def _outputs(bench, ids: list[str]) -> dict[str, str]:
    """Each task's standard output file, as the controller recorded it."""
    out: dict[str, str] = {}
    for array in dict.fromkeys(i.split("_")[0] for i in ids):
        st = _run(lambda a=array: bench.get_job_status(a))
        for t in st.get("tasks") or [st]:
            out[str(t["job_id"])] = str(t.get("stdout") or "")
    return out


def _where(paths: list[str]) -> str:
    """One line saying where the outputs went: the directory (the tasks'
    common one) and how the files are named."""
    import os

    paths = [p for p in paths if p]
    if not paths:
        return ""
    dirs = sorted({os.path.dirname(p) for p in paths})
    names = [os.path.basename(p) for p in paths]
    if len(dirs) == 1:
        shown = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
        return f"Outputs are in {dirs[0]} ({shown})"
    return f"Outputs are in {', '.join(dirs)}"


def _wait_and_report(bench, ids: list[str], timeout: Optional[float], as_json: bool,
                     results: bool = False) -> None:
    states = _run(lambda: bench.wait_for_jobs(ids, timeout))
    bad = {i: s for i, s in states.items() if s != "COMPLETED"}
    if results:
        values = _run(lambda: bench.get_results([i for i in ids if i not in bad]))
        if as_json:
            typer.echo(json.dumps({"states": states, "results": values}, indent=2, default=str))
        else:
            for i in ids:
                typer.echo(f"{i}\t{states.get(i)}\t{json.dumps(values.get(i), default=str)}")
    elif as_json:
        typer.echo(json.dumps(states, indent=2))
    else:
        # where each task's output went (and, once, the directory): the
        # question a user has next
        outputs = _outputs(bench, list(states))
        typer.echo(_table([[i, s, outputs.get(i, "")] for i, s in states.items()],
                          ["JOBID", "STATE", "OUTPUT"]))
        where = _where([outputs.get(i, "") for i in states])
        if where:
            typer.echo(where)
    if bad:
        first = next(iter(bad))
        out = _run(lambda: bench.get_job_status(first))["stdout"]
        typer.echo(f"error: {len(bad)} of {len(states)} jobs did not complete "
                   f"({', '.join(f'{i} {s}' for i, s in list(bad.items())[:10])}); "
                   f"see their output, e.g. {out}", err=True)
        raise typer.Exit(1)


@app.command("batch")
def batch(processor: Path = typer.Argument(..., help="the script run on each file "
                                                    "(python3 PROCESSOR FILE ARGS)"),
          files: list[Path] = typer.Argument(..., help="the data files, one task each"),
          partition: Optional[str] = _P, cpus: int = _C, mem: Optional[str] = _M,
          time: Optional[str] = _T, args: str = _ARGS, output_dir: Optional[Path] = _OUT,
          max_parallel: Optional[int] = _MAXP, wait: bool = _WAIT,
          timeout: Optional[float] = _TIMEOUT, as_json: bool = _JSON,
          parsable: bool = _PARS) -> None:
    """Process each file in its own task of one job array."""
    bench = _bench()
    ids = _run(lambda: bench.submit_batch_processing(
        [str(f) for f in files], str(processor), partition, cpus, mem, time,
        args=shlex.split(args), max_parallel=max_parallel, output_dir=output_dir))
    _report_submitted(ids, [str(f) for f in files], parsable, as_json and not wait)
    if wait:
        _wait_and_report(bench, ids, timeout, as_json)


@app.command("analyze")
def analyze(analysis_type: str = typer.Argument(..., help="the analysis type"),
            symbols: list[str] = typer.Argument(..., help="symbols, one task each"),
            script: Optional[Path] = typer.Option(
                None, "--script", help="run this script as the analysis type "
                                       "(python3 SCRIPT SYMBOL [DATAFILE] ARGS)"),
            load: list[Path] = typer.Option(
                [], "--load", help="a Python file defining analyses with "
                                   "@bench.analysis(NAME) (repeatable)"),
            data: Optional[Path] = typer.Option(
                None, "--data", help="directory of <SYMBOL>.csv files, one per symbol"),
            partition: Optional[str] = _P, cpus: int = _C, mem: Optional[str] = _M,
            time: Optional[str] = _T, args: str = _ARGS, output_dir: Optional[Path] = _OUT,
            max_parallel: Optional[int] = _MAXP, wait: bool = _WAIT,
            timeout: Optional[float] = _TIMEOUT, as_json: bool = _JSON,
            parsable: bool = _PARS) -> None:
    """Run one analysis per symbol as one job array (--wait prints the results)."""
    from ..api.databench.analyses import load_analyses

    bench = _bench()

    def submit() -> list[str]:
        if script is not None:
            bench.register_analysis(analysis_type, str(script))
        for file in load:
            for a in load_analyses(file):
                bench.analyses.register(a.name, a.target, a.description)
        return bench.submit_parallel_analysis(
            symbols, analysis_type, partition, cpus, mem, time, data=data,
            args=shlex.split(args), max_parallel=max_parallel, output_dir=output_dir)

    ids = _run(submit)
    _report_submitted(ids, list(symbols), parsable, as_json and not wait)
    if wait:
        _wait_and_report(bench, ids, timeout, as_json, results=True)


@app.command("status")
def status(jobs: list[str] = typer.Argument(None, help="job ids (none: the machines)"),
           as_json: bool = _JSON) -> None:
    """The machines' state and load, or the named jobs' status."""
    bench = _bench()
    if not jobs:
        cluster = _run(bench.get_cluster_status)
        if as_json:
            typer.echo(json.dumps(cluster, indent=2))
            return
        rows = [[name, m["state"], f"{m['cpus_used']}/{m['cpus_total']}",
                 f"{m['memory_used_mb']}/{m['memory_total_mb']}",
                 "-" if m["memory_free_mb"] is None else m["memory_free_mb"],
                 f"{m['gpus_used']}/{m['gpus_total']}",
                 "-" if m["load"] is None else f"{m['load']:.2f}"]
                for name, m in cluster.items()]
        typer.echo(_table(rows, ["MACHINE", "STATE", "CPUS", "MEM_MB", "FREE_MB", "GPUS",
                                 "LOAD"]))
        return
    found = [_run(lambda j=j: bench.get_job_status(j)) for j in jobs]
    if as_json:
        typer.echo(json.dumps(found if len(found) > 1 else found[0], indent=2))
        return
    rows = []
    for st in found:
        for t in st.get("tasks") or [st]:
            rows.append([t["job_id"], t["name"], t["status"], t["assigned_machine"] or "-",
                         t["start"] or "-", t["end"] or "-", t["exit"] or "-", t["stdout"]])
    typer.echo(_table(rows, ["JOBID", "NAME", "STATUS", "MACHINE", "START", "END", "EXIT",
                             "STDOUT"]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
