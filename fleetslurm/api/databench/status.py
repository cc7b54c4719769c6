"""DataBench's views of jobs and machines, and waiting with a progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Optional, TextIO

__all__ = ["job_status", "array_status", "overall_state", "wait_for", "iso", "parse_result"]


def iso(ts: Optional[float]) -> Optional[str]:
    """An epoch time as local ISO 8601 (``2026-11-21T13:55:49``, sacct's form)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).isoformat(timespec="seconds")


def job_status(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One job (or array task) record as DataBench reports it."""
    start, end = rec.get("start_time"), rec.get("end_time")
    elapsed = None
    if start is not None:
        elapsed = round((end if end is not None else time.time()) - start, 3)
    code, sig = rec.get("exit_code"), rec.get("exit_signal")
    return {
        "job_id": rec.get("id") or str(rec["job_id"]),
        "name": rec.get("name", ""),
        "status": rec["state"],
        "reason": rec.get("reason", "None"),
        "assigned_machine": (rec.get("nodes") or [None])[0],
        "partition": rec.get("partition", ""),
        "cpus": rec.get("cpus"),
        "memory_mb": rec.get("mem_mb"),
        "submit": iso(rec.get("submit_time")),
        "start": iso(start),
        "end": iso(end),
        "elapsed_s": elapsed,
        "exit_code": code,
        "exit_signal": sig,
        # SLURM's ExitCode column: code:signal
        "exit": None if code is None and sig is None else f"{code or 0}:{sig or 0}",
        "stdout": rec.get("stdout", ""),
        "stderr": rec.get("stderr", ""),
        "cpu_time_s": rec.get("total_cpu"),
        "max_rss_kb": rec.get("max_rss_kb"),
    }


_ORDER = ("RUNNING", "COMPLETING", "PENDING", "REQUEUED", "SUSPENDED", "FAILED",
          "OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "CANCELLED", "COMPLETED")


def overall_state(states: Sequence[str]) -> str:
    """One word for several tasks: the most pressing one (a running task
    makes the array RUNNING; a failed task outranks completed ones)."""
    present = set(states)
    if not present:
        return "UNKNOWN"
    for s in _ORDER:
        if s in present:
            return s
    return sorted(present)[0]


def array_status(job_id: str, recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An array job as a whole: its overall status and each task's."""
    tasks = [job_status(r) for r in recs]
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    starts = [t["start"] for t in tasks if t["start"]]
    ends = [t["end"] for t in tasks if t["end"]]
    done = all(t["end"] for t in tasks)
    return {
        "job_id": job_id,
        "name": tasks[0]["name"] if tasks else "",
        "status": overall_state([t["status"] for t in tasks]),
        "assigned_machine": sorted({t["assigned_machine"] for t in tasks
                                    if t["assigned_machine"]}),
        "start": min(starts) if starts else None,
        "end": max(ends) if ends and done else None,
        "counts": counts,
        "tasks": tasks,
    }


class _Bar:
    """A progress bar on a terminal (rich), silent elsewhere."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]jobs"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=Console(file=stream, force_terminal=True),
                                 transient=False)
        self.task = self.progress.add_task("", total=total)
        self.progress.start()

    def update(self, done: int, states: Mapping[str, str]) -> None:
        if self.progress is None:
            return
        running = sum(1 for s in states.values() if s == "RUNNING")
        pending = sum(1 for s in states.values() if s == "PENDING")
        self.progress.update(self.task, completed=done,
                             description=f"{running} running, {pending} pending")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def wait_for(states_of, finished, ids: Sequence[str], timeout: Optional[float],
             progress: Optional[bool] = None, stream: Optional[TextIO] = None,
             poll: float = 0.5, block=None) -> dict[str, str]:
    """Poll ``states_of(ids) -> {shown id: state}`` until every job is
    finished; return ``{id: final state}`` with one entry per array task.
    ``block(ids, seconds) -> bool``, when given, replaces the pause between
    two looks: it returns when the jobs have ended (True) or after
    ``seconds`` (the controller says so: FleetClient.block).

    A progress bar goes to ``stream`` (stderr) when it is a terminal, or
    when ``progress`` says so. Raises JobTimeout (a TimeoutError) naming the
    jobs still running when ``timeout`` seconds pass; the jobs keep running.
    """
    stream = stream or sys.stderr
    show = progress if progress is not None else bool(getattr(stream, "isatty", lambda: False)())
    deadline = None if timeout is None else time.monotonic() + timeout
    states = states_of(ids)
    missing = _missing(ids, states)
    if missing:
        from ...errors import InvalidJobId

        raise InvalidJobId(f"DataBench: no such job: {', '.join(missing)}; check the ids "
                           "(`fleetslurm sacct` lists your jobs)")
    bar = _Bar(max(len(states), len(ids)), stream, show)
    delay = 0.05
    over = False
    try:
        while True:
            done = sum(1 for s in states.values() if finished(s))
            bar.update(done, states)
            if done == len(states):
                return dict(states)
            if deadline is not None and time.monotonic() >= deadline:
                live = sorted(k for k, s in states.items() if not finished(s))
                from ...errors import JobTimeout

                raise JobTimeout(
                    f"DataBench: {len(live)} of {len(states)} jobs not finished "
                    f"after {timeout:g} s: {', '.join(live[:20])}"
                    f"{' ...' if len(live) > 20 else ''}; they keep running: wait again, "
                    "or cancel them with `fleetslurm scancel`")
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            if block is None or over:
                time.sleep(pause)
            if block is not None:
                # told when the last ends; a bar is redrawn at least once a second
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                over = block(list(ids), 1.0 if bar.progress is not None and (left is None or left > 1.0)
                             else left)
            delay = min(poll, delay * 2)
            states = states_of(ids)
    finally:
        bar.close()


def _missing(ids: Sequence[str], states: Mapping[str, str]) -> list[str]:
    """Ids that no record answers for (unknown job ids)."""
    out = []
    for i in ids:
        if i in states:
            continue
        if not any(k.startswith(f"{i}_") for k in states):
            out.append(i)
    return out


def parse_result(text: str) -> Any:
    """A script's result from what it printed: the whole stdout as JSON, else
    its last non-empty line as JSON, else the text itself."""
    import json

    stripped = text.strip()
    if not stripped:
        return None
    for candidate in (stripped, stripped.splitlines()[-1].strip()):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return text
