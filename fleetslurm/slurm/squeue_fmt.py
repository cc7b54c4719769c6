"""squeue's ``-o/--format`` language and output, as SLURM 22.05 prints it.

Pure: no I/O, no clock (``now`` is a parameter). The rules come from
SchedMD/slurm ``src/squeue/opts.c`` (``parse_format``, ``_parse_token``) and
``src/squeue/print.c`` (``_print_str`` and the ``_print_job_*`` functions), and
were checked against a real squeue 22.05 (see tests/test_formats_squeue.py).

Parsing quirks kept on purpose, because scripts see them:

* text before the first ``%`` is printed as is, in the header too;
* the rest is split on runs of ``%`` (``strtok``), so ``%%`` is *not* an
  escape: ``%%|%i`` parses the token ``|`` (an invalid field);
* a token is ``[.][digits]letter`` followed by literal text;
* an unknown letter is not fatal: squeue reports
  ``Invalid job format specification: X`` on stderr and prints ``%`` plus the
  whole token verbatim in every row (see :func:`format_warnings`);
* ``%all`` (any case) means every letter a-z then A-Z separated by ``|``.

Cell rules (``_print_str``): a right-aligned (``.``) cell is padded to its
width and cut to it only for fields that cut (most do; NODELIST, TIME values
do not); a left-aligned cell with a width is always cut (``%.Ns``); width 0
means natural width.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from fleetslurm.model import JobRecord
from fleetslurm.slurm.fmt_common import (NO_VAL_SECS, PENDING_LIKE, Item, convert_whole, end_time,
                                         format_warnings, join_items, job_id, long_format,
                                         null_str, parse_any, print_str, run_time, start_time)
from fleetslurm.slurm.hostlist import compress
from fleetslurm.slurm.units import format_datetime, format_squeue_time

__all__ = ["DEFAULT_FORMAT", "LONG_FORMAT", "Item", "parse_format", "format_warnings", "render",
           "default_sort_key", "long_format"]

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
#: ``squeue -l`` (src/squeue/opts.c)
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"

#: squeue -O names (lower case) whose field and header are a ``-o`` letter's,
#: checked against squeue 22.05; the others are keys of _FIELDS of their own
LONG_NAMES = {
    "account": "a", "arrayjobid": "F", "arraytaskid": "K", "batchhost": "B", "command": "o",
    "comment": "k", "contiguous": "O", "cores": "I", "corespec": "X", "dependency": "E",
    "endtime": "e", "feature": "f", "groupid": "G", "groupname": "g", "jobarrayid": "i",
    "jobid": "A", "licenses": "W", "mincpus": "c", "minmemory": "m", "mintmpdisk": "d",
    "name": "j", "nice": "y", "nodelist": "N", "numcpus": "C", "numnodes": "D",
    "oversubscribe": "h", "partition": "P", "priority": "p", "prioritylong": "Q", "qos": "q",
    "reason": "r", "reasonlist": "R", "reqnodes": "n", "reservation": "v", "sct": "z",
    "schednodes": "Y", "sockets": "H", "starttime": "S", "state": "T", "statecompact": "t",
    "submittime": "V", "threads": "J", "timeleft": "L", "timelimit": "l", "timeused": "M",
    "tres-per-node": "b", "userid": "U", "username": "u", "wckey": "w", "workdir": "Z",
    "batchflag": "batchflag", "cluster": "cluster", "cpus-per-task": "cpus-per-task",
    "mintime": "mintime", "numtasks": "numtasks", "requeue": "requeue",
    "restartcnt": "restartcnt", "stdin": "stdin",
}

#: what ``%all`` stands for: every letter a-z then A-Z, separated by ``|``
_ALL_FORMAT = "|".join("%" + chr(c) for c in [*range(ord("a"), ord("z") + 1),
                                              *range(ord("A"), ord("Z") + 1)])


def parse_format(fmt: str) -> list[Item]:
    """Parse a squeue ``-o`` string exactly as squeue 22.05 does.

    Never raises: invalid letters become :class:`Item` objects carrying an
    ``error`` (squeue warns and goes on, exit status 0). A string made by
    :func:`long_format` is parsed as ``-O`` text.
    """
    return parse_any(fmt, _FIELDS, _ALL_FORMAT, "Invalid job format specification: ",
                     LONG_NAMES)


# ---------------------------------------------------------------- helpers

def _fmt_secs(secs: int) -> str:
    """squeue's ``_print_secs``: M:SS, H:MM:SS, D-HH:MM:SS, or INVALID."""
    if secs < 0 or secs > NO_VAL_SECS:
        return "INVALID"
    return format_squeue_time(secs)


def _fmt_ts(ts: Optional[float]) -> str:
    return "N/A" if not ts else format_datetime(ts)


def _fmt_mem(mb: int) -> str:
    """convert_num_unit(UNIT_MEGA, CONVERT_NUM_UNIT_EXACT): 0, 500M, 4G, 3T."""
    return convert_whole(mb, "MGTPE")


def _is_array(job: JobRecord) -> bool:
    return bool(job.get("array_task_str")) or job.get("array_task_id") is not None


def _job_id(job: JobRecord) -> str:
    text = job_id(job)
    # the "id_[range]" form is snprintf'd into FORMAT_STRING_SIZE (32)
    return text[:31] if job.get("array_task_str") else text


def _reason_shown(job: JobRecord) -> bool:
    state = job.get("state", "PENDING")
    return state in PENDING_LIKE or state in ("TIMEOUT", "FAILED")


def _tres_per_node(job: JobRecord) -> str:
    if job.get("tres_per_node"):
        return str(job.get("tres_per_node"))
    gpus = job.get("gpus") or 0
    if gpus:
        return f"gres:gpu:{gpus // max(1, job.get('num_nodes') or 1)}"
    return "N/A"


# A field: header, header cut?, value(job, now) -> (text, cut?)
_Value = Callable[[JobRecord, float], "tuple[str, bool]"]


def _c(fn: Callable[[JobRecord], object]) -> _Value:
    """A value that is always cut to width."""
    return lambda job, now: (str(fn(job)), True)


def _limit(job: JobRecord, now: float, left: bool) -> "tuple[str, bool]":
    limit = job.get("time_limit")
    if limit is None:
        return "UNLIMITED", True
    secs = limit * 60 - (run_time(job, now) if left else 0)
    return _fmt_secs(secs), False


def _reason_list(job: JobRecord, now: float) -> "tuple[str, bool]":
    if _reason_shown(job):
        return f"({job.get('reason') or 'None'})", True
    return compress(list(job.get("nodes") or [])), False


def _end(job: JobRecord, now: float) -> "tuple[str, bool]":
    end = end_time(job, now)
    if job.get("time_limit") is None and end and end > now:
        return "NONE", True
    return _fmt_ts(end), True


_FIELDS: dict[str, "tuple[str, bool, _Value]"] = {
    "a": ("ACCOUNT", True, _c(lambda j: null_str(j.get("account")))),
    "b": ("TRES_PER_NODE", True, _c(_tres_per_node)),
    "c": ("MIN_CPUS", True, _c(lambda j: j.get("min_cpus_node") or j.get("cpus_per_task") or 1)),
    "d": ("MIN_TMP_DISK", True, _c(lambda j: "0")),
    "e": ("END_TIME", True, _end),
    "f": ("FEATURES", True, _c(lambda j: null_str(j.get("features")))),
    "g": ("GROUP", True, _c(lambda j: j.get("group") or j.get("user", ""))),
    "h": ("OVER_SUBSCRIBE", True, _c(lambda j: "NO" if j.get("exclusive") else "OK")),
    "i": ("JOBID", True, _c(_job_id)),
    "j": ("NAME", True, _c(lambda j: j.get("name", ""))),
    "k": ("COMMENT", True, _c(lambda j: null_str(j.get("comment")))),
    "l": ("TIME_LIMIT", True, lambda j, now: _limit(j, now, left=False)),
    "m": ("MIN_MEMORY", True, _c(lambda j: _fmt_mem(j.get("mem_per_cpu_mb") or j.get("mem_mb") or 0))),
    "n": ("REQ_NODES", True, lambda j, now: (compress(list(j.get("req_nodes") or [])), False)),
    "o": ("COMMAND", True, _c(lambda j: null_str(j.get("command")))),
    "p": ("PRIORITY", True, _c(lambda j: "%16.14f" % ((j.get("priority") or 0) / 4294967295.0))),
    "q": ("QOS", True, _c(lambda j: null_str(j.get("qos")))),
    "r": ("REASON", True, _c(lambda j: j.get("reason") or "None")),
    "s": ("", True, _c(lambda j: "")),
    "t": ("ST", True, _c(lambda j: _STATE_CODES.get(j.get("state", ""), j.get("state", "")))),
    "u": ("USER", True, _c(lambda j: j.get("user", ""))),
    "v": ("RESERVATION", True, _c(lambda j: null_str(j.get("reservation")))),
    "w": ("WCKEY", True, _c(lambda j: null_str(j.get("wckey")))),
    "x": ("EXC_NODES", True, lambda j, now: (compress(list(j.get("exc_nodes") or [])), False)),
    "y": ("NICE", True, _c(lambda j: j.get("nice") or 0)),
    "z": ("S:C:T", True, _c(lambda j: "*:*:*")),
    "A": ("JOBID", True, _c(lambda j: j.get("job_id", ""))),
    "B": ("EXEC_HOST", True, _c(lambda j: j.get("batch_host") or "n/a")),
    "C": ("CPUS", True, _c(lambda j: j.get("cpus", 1))),
    "D": ("NODES", True, _c(lambda j: j.get("num_nodes") or max(1, len(j.get("nodes") or [])))),
    "E": ("DEPENDENCY", True, _c(lambda j: null_str(j.get("dependency")))),
    "F": ("ARRAY_JOB_ID", True, _c(lambda j: j.get("array_job_id") if _is_array(j) else j.get("job_id", ""))),
    "G": ("GROUP", True, _c(lambda j: j.get("gid", j.get("uid", 0)))),
    "H": ("SOCKETS_PER_NODE", True, _c(lambda j: "*")),
    "I": ("CORES_PER_SOCKET", True, _c(lambda j: "*")),
    "J": ("THREADS_PER_CORE", True, _c(lambda j: "*")),
    "K": ("ARRAY_TASK_ID", True, _c(lambda j: j.get("array_task_str") or (
        j.get("array_task_id") if j.get("array_task_id") is not None else "N/A"))),
    "L": ("TIME_LEFT", True, lambda j, now: _limit(j, now, left=True)),
    "M": ("TIME", True, lambda j, now: (_fmt_secs(run_time(j, now)), False)),
    "N": ("NODELIST", False, lambda j, now: (compress(list(j.get("nodes") or [])), False)),
    "O": ("CONTIGUOUS", True, _c(lambda j: "0")),
    "P": ("PARTITION", True, _c(lambda j: j.get("partition", ""))),
    "Q": ("PRIORITY", True, _c(lambda j: j.get("priority") or 0)),
    "R": ("NODELIST(REASON)", False, _reason_list),
    "S": ("START_TIME", True, lambda j, now: (_fmt_ts(start_time(j)), True)),
    "T": ("STATE", True, _c(lambda j: j.get("state", ""))),
    "U": ("UID", True, _c(lambda j: j.get("uid", 0))),
    "V": ("SUBMIT_TIME", True, lambda j, now: (_fmt_ts(j.get("submit_time")), True)),
    "W": ("LICENSES", True, _c(lambda j: null_str(j.get("licenses")))),
    "X": ("CORE_SPEC", True, _c(lambda j: "N/A")),
    "Y": ("SCHEDNODES", False, lambda j, now: (null_str(j.get("sched_nodes")), False)),
    "Z": ("WORK_DIR", True, _c(lambda j: j.get("workdir", ""))),
    # -O only (no letter)
    "batchflag": ("BATCH_FLAG", True, _c(lambda j: int(j.get("batch_flag", 1)))),
    "cluster": ("CLUSTER", True, _c(lambda j: j.get("cluster") or "N/A")),
    "cpus-per-task": ("CPUS_PER_TASK", True, _c(lambda j: j.get("cpus_per_task") or 1)),
    "mintime": ("TIME_MIN", True, _c(lambda j: "0:00")),
    "numtasks": ("TASKS", True, _c(lambda j: j.get("num_tasks") or 1)),
    "requeue": ("REQUEUE", True, _c(lambda j: int(bool(j.get("requeue"))))),
    "restartcnt": ("RESTART_COUNT", True, _c(lambda j: j.get("restart_count") or 0)),
    "stdin": ("STDIN", True, _c(lambda j: j.get("stdin") or "/dev/null")),
}

_STATE_CODES = {
    "PENDING": "PD", "RUNNING": "R", "COMPLETING": "CG", "COMPLETED": "CD",
    "CANCELLED": "CA", "FAILED": "F", "TIMEOUT": "TO", "NODE_FAIL": "NF",
    "OUT_OF_MEMORY": "OOM", "PREEMPTED": "PR", "SUSPENDED": "S",
    "REQUEUED": "RQ", "REQUEUE_HOLD": "RH", "BOOT_FAIL": "BF", "DEADLINE": "DL",
}


def default_sort_key(job: JobRecord) -> tuple:
    """squeue's default order ``P,t,-p`` (src/squeue/sort.c): partition name,
    then the short state name *as text* (CD < CG < F < PD < R < TO), then
    priority, highest first. SLURM leaves ties in its controller's list
    order, newest job first; here: the newest job (highest id) first."""
    state = job.get("state", "")
    return (job.get("partition", ""), _STATE_CODES.get(state, state),
            -(job.get("priority") or 0), -(job.get("job_id") or 0))


def _cell(it: Item, job: Optional[JobRecord], now: float) -> str:
    header, header_cut, value = _FIELDS[it.letter]  # type: ignore[index]
    if job is None:
        return print_str(header, it.width, it.right, header_cut)
    text, cut = value(job, now)
    return print_str(text, it.width, it.right, cut)


def _line(items: list[Item], job: Optional[JobRecord], now: float) -> str:
    return join_items(items, lambda it: _cell(it, job, now))


class LineKeeper(Protocol):
    """Where :func:`render` finds and keeps lines between calls
    (record_memo.RecordMemo): by the very record object they came from."""

    def line(self, rec: JobRecord, fmt: str) -> Optional[str]: ...

    def keep_line(self, rec: JobRecord, fmt: str, line: str) -> None: ...


#: the fields whose text changes with the clock: TIME and TIME_LEFT of a
#: running job, END_TIME (compared with ``now``) even while a job is pending
_CLOCK = frozenset("MLe")
_CLOCK_WHILE_PENDING = frozenset("e")


def timeless(fmt: str, jobs: list[JobRecord]) -> bool:
    """Whether :func:`render` gives the same text for ``jobs`` at any ``now``."""
    letters = {it.letter for it in parse_format(fmt)}
    if not letters & _CLOCK:
        return True
    return not letters & _CLOCK_WHILE_PENDING and all(
        job.get("state") in PENDING_LIKE for job in jobs)


def render(fmt: str, jobs: list[JobRecord], *, now: float, header: bool = True,
           keeper: Optional[LineKeeper] = None) -> str:
    """squeue's output for ``jobs`` (already filtered and sorted) under ``fmt``.

    Every line ends with a newline; with ``header`` the first line is the
    header row. Warnings for invalid letters: :func:`format_warnings`.
    With ``keeper``, a pending job's line is rendered once per record: its
    TIME is 0:00 and its TIME_LEFT its limit whatever the clock says.
    """
    items = parse_format(fmt)
    lines = [_line(items, None, now)] if header else []
    # each field's value, width and side looked up once, not once per job:
    # 10,000 jobs are 80,000 cells under the default format
    plan = [(_FIELDS[it.letter][2] if it.letter is not None else None,  # type: ignore[index]
             it.width, it.right, it.suffix) for it in items]
    if keeper is not None and any(it.letter in _CLOCK_WHILE_PENDING for it in items):
        keeper = None
    for job in jobs:
        kept = keeper is not None and job.get("state") in PENDING_LIKE
        if kept:
            line = keeper.line(job, fmt)  # type: ignore[union-attr]
            if line is not None:
                lines.append(line)
                continue
        parts: list[str] = []
        for value, width, right, suffix in plan:
            if value is not None:
                text, cut = value(job, now)
                # fmt_common.print_str inline: the call per cell was a quarter of
                # render's time (tests/test_record_memo.py holds them equal)
                if width:
                    if right:
                        text = text.rjust(width)
                        if cut:
                            text = text[:width]
                    else:
                        text = text[:width].ljust(width)
                parts.append(text)
            parts.append(suffix)
        line = "".join(parts)
        if kept:
            keeper.keep_line(job, fmt, line)  # type: ignore[union-attr]
        lines.append(line)
    return "".join(line + "\n" for line in lines)
