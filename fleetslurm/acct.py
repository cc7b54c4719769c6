"""sacct's fast path: accounting lines rendered by SQLite.

The general path builds a record per job and renders it with
:mod:`fleetslurm.slurm.sacct_fmt`, about 50 µs of Python per job: seconds for
100,000 jobs. For the fields most sacct calls ask for (the default ones,
JobIDRaw, NodeList, User, times...) each cell is one SQL expression here,
so SQLite writes the lines itself, in C, and Python handles one string per
job. A field this module does not know sends the request down the general
path. tests/test_arrays_acct.py checks that both paths print the same bytes
for every supported field, width and mode, over jobs in every state.

Values follow ``sacct_fmt.rows_for`` (the job row and its ``.batch`` step),
cells follow ``sacct_fmt._cell``/``render``: NULL is an unset value (blanks
in fixed mode, empty when parsable).
"""

from __future__ import annotations

from typing import Optional, Sequence

__all__ = ["plan", "KILLED"]

#: states whose job row shows ExitCode 0:0 (sacct_fmt._KILLED)
KILLED = ("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "DEADLINE", "BOOT_FAIL")


def _in(values: Sequence[str]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


def _date(expr: str) -> str:
    # format_datetime: None and 0 are Unknown; local time, whole seconds
    return (f"CASE WHEN {expr} IS NULL OR {expr} = 0 THEN 'Unknown' ELSE "
            f"strftime('%Y-%m-%dT%H:%M:%S', CAST({expr} AS INTEGER), 'unixepoch', 'localtime') END")


def _hms(secs: str) -> str:
    # format_hms: HH:MM:SS, D-HH:MM:SS from a day on
    clock = f"printf('%02d:%02d:%02d', ({secs} % 86400) / 3600, ({secs} % 3600) / 60, {secs} % 60)"
    return f"CASE WHEN {secs} >= 86400 THEN ({secs} / 86400) || '-' || {clock} ELSE {clock} END"


_CPUS = "COALESCE(t.alloc_cpus, json_extract(t.req, '$.cpus'), 1)"
_JOBID = ("CASE WHEN t.array_index IS NULL THEN CAST(t.task_id AS TEXT) "
          "ELSE t.job_id || '_' || t.array_index END")
_CODE = "COALESCE(t.exit_code, 0) || ':' || COALESCE(t.exit_signal, 0)"
_ELAPSED = ("CASE WHEN t.start_time IS NULL OR t.start_time = 0 THEN 0 ELSE "
            "max(0, CAST(COALESCE(NULLIF(t.end_time, 0), :now, t.start_time) - t.start_time "
            "AS INTEGER)) END")

#: lower-case field name -> (job row value, .batch row value); NULL is unset
FIELDS: dict[str, tuple[str, str]] = {
    "jobid": (_JOBID, f"{_JOBID} || '.batch'"),
    "jobidraw": ("CAST(t.task_id AS TEXT)", "t.task_id || '.batch'"),
    "jobname": ("CASE WHEN t.name <> '' THEN t.name "
                "ELSE COALESCE(json_extract(j.spec, '$.name'), '') END", "'batch'"),
    "partition": ("NULLIF(t.partition, '')", "NULL"),
    # as given, else the user's default account (slurm.assoc.account_of: the user's own)
    "account": ("COALESCE(NULLIF(j.account, ''), NULLIF(j.user, ''))",
                "COALESCE(NULLIF(j.account, ''), NULLIF(j.user, ''))"),
    "alloccpus": (f"CAST({_CPUS} AS TEXT)", f"CAST({_CPUS} AS TEXT)"),
    "ncpus": (f"CAST({_CPUS} AS TEXT)", f"CAST({_CPUS} AS TEXT)"),
    "state": ("CASE WHEN t.state = 'CANCELLED' AND t.cancelled_by IS NOT NULL "
              "THEN 'CANCELLED by ' || t.cancelled_by ELSE t.state END",
              "CASE WHEN t.state IN ('TIMEOUT', 'PREEMPTED', 'REQUEUED', 'DEADLINE') "
              "THEN 'CANCELLED' WHEN t.state = 'COMPLETING' THEN 'RUNNING' ELSE t.state END"),
    "exitcode": (f"CASE WHEN t.state IN {_in(KILLED)} THEN '0:0' ELSE {_CODE} END",
                 f"CASE WHEN t.state IN {_in([k for k in KILLED if k != 'NODE_FAIL'])} "
                 f"THEN '0:' || COALESCE(NULLIF(t.exit_signal, 0), 15) ELSE {_CODE} END"),
    "nodelist": ("COALESCE(t.node, 'None assigned')", "COALESCE(t.node, 'None assigned')"),
    "user": ("NULLIF(j.user, '')", "NULL"),
    "uid": ("CAST(j.uid AS TEXT)", "NULL"),
    "submit": (_date("t.submit_time"), _date("t.start_time")),
    "start": (_date("t.start_time"), _date("t.start_time")),
    "end": (_date("t.end_time"), _date("t.end_time")),
    "elapsed": (_hms("el"), _hms("el")),
    "elapsedraw": ("CAST(el AS TEXT)", "CAST(el AS TEXT)"),
    "cluster": ("NULLIF(:cluster, '')", "NULLIF(:cluster, '')"),
}


def _arg(value: str, width: int, kind: str) -> str:
    """The text of one fixed-width cell before padding (sacct_fmt._cell's cut)."""
    w = abs(width)
    if kind in ("u", "t"):
        return value  # numbers and durations are never cut
    if w == 0:
        return "''"  # nothing else shows in a zero width
    if kind == "d":
        return f"substr({value}, 1, {w})"
    return f"CASE WHEN length({value}) > {w} THEN substr({value}, 1, {w - 1}) || '+' ELSE {value} END"


def _line(cells: list[tuple[str, int, str]], mode: str) -> str:
    """One line as a single printf: NULL prints as blanks (fixed) or nothing."""
    if mode == "fixed":
        fmt = "".join(f"%!{'-' if w < 0 else ''}{abs(w) or ''}s " for _, w, _ in cells)
        args = [_arg(v, w, k) for v, w, k in cells]
    else:
        fmt = "|".join("%s" for _ in cells) + ("|" if mode == "parsable" else "")
        args = [v for v, _, _ in cells]
    return f"printf('{fmt}', {', '.join(args)})"


def _lines(fields: Sequence[tuple[str, int, str]], mode: str,
           allocations_only: bool) -> Optional[str]:
    try:
        job = _line([(FIELDS[n.lower()][0], w, k) for n, w, k in fields], mode)
        batch = _line([(FIELDS[n.lower()][1], w, k) for n, w, k in fields], mode)
    except KeyError:
        return None
    if allocations_only:
        return job
    return (f"{job} || CASE WHEN t.start_time IS NULL OR t.start_time = 0 "
            f"OR t.state IN ('PENDING', 'REQUEUE_HOLD') THEN '' ELSE char(10) || {batch} END")


#: sacct's default fields (name, width, kind): their lines are kept with each
#: finished task (tasks.acct_lines), so plain ``sacct`` reads one string a job
DEFAULT = (("JobID", -12, "s"), ("JobName", 10, "s"), ("Partition", 10, "s"),
           ("Account", 10, "s"), ("AllocCPUS", 10, "u"), ("State", 10, "s"),
           ("ExitCode", 8, "s"))

#: the SQL that (re)computes a finished task's kept lines, ``t`` being its row
CACHED = _lines(DEFAULT, "fixed", False)


def plan(fields: Sequence[tuple[str, int, str]], mode: str,
         allocations_only: bool) -> Optional[str]:
    """The SQL text of one task's lines (job row, then its ``.batch`` row once it
    started, unless ``allocations_only``) for ``fields`` (name, width, kind as
    :class:`~fleetslurm.slurm.sacct_fmt.Field` has them), or None when a field
    has no SQL form here. The query around it names ``tasks t``, ``jobs j``,
    a column ``el`` (elapsed seconds, :data:`ELAPSED`) and the parameters
    ``:now`` and ``:cluster``."""
    if not fields or mode not in ("fixed", "parsable", "parsable2"):
        return None
    computed = _lines(fields, mode, allocations_only)
    if computed is None or mode != "fixed" or tuple(tuple(f) for f in fields) != DEFAULT:
        return computed
    kept = "t.acct_lines"
    if allocations_only:  # the job's line: the kept text up to its newline
        kept = (f"CASE WHEN instr({kept}, char(10)) THEN substr({kept}, 1, instr({kept}, "
                f"char(10)) - 1) ELSE {kept} END")
    # the job's row is looked up only for a task without kept lines: a join
    # would seek it for every task (a tenth of a second per 100,000 here)
    return f"COALESCE({kept}, (SELECT {computed} FROM jobs j WHERE j.job_id = t.job_id))"


def needs_job_join(line_sql: str) -> bool:
    """Whether ``line_sql`` (from :func:`plan`) reads the ``jobs j`` row of
    every task itself; the kept-lines form looks it up only where needed."""
    return "t.acct_lines" not in line_sql


#: elapsed seconds of a task as sacct_fmt._elapsed computes them (``:now`` for a running one)
ELAPSED = _ELAPSED
