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

import time as _time
from dataclasses import dataclass
from typing import Callable, Optional

from fleetslurm.model import JobRecord

__all__ = ["DEFAULT_FORMAT", "Item", "parse_format", "format_warnings", "render"]

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"

_NO_VAL_SECS = 365 * 24 * 3600
_PENDING_LIKE = {"PENDING", "REQUEUE_HOLD"}
_RUNNING_LIKE = {"RUNNING", "COMPLETING", "SUSPENDED"}


@dataclass(frozen=True)
class Item:
    """One piece of a parsed format.

    ``letter`` is the field letter, or ``None`` for literal text / an invalid
    field. ``suffix`` is the literal text printed after the cell (for a
    literal item: the text itself; for an invalid field: ``%`` + the token).
    ``error`` is squeue's complaint for an invalid field.
    """

    letter: Optional[str]
    width: int = 0
    right: bool = False
    suffix: str = ""
    error: Optional[str] = None


def _all_format() -> str:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    letters += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    return "|".join("%" + c for c in letters)


def parse_format(fmt: str) -> list[Item]:
    """Parse a squeue ``-o`` string exactly as squeue 22.05 does.

    Never raises: invalid letters become :class:`Item` objects carrying an
    ``error`` (squeue warns and goes on, exit status 0).
    """
    items: list[Item] = []
    pos = fmt.find("%")
    if pos == -1:
        return [Item(None, suffix=fmt)] if fmt else []
    if pos > 0:
        items.append(Item(None, suffix=fmt[:pos]))
        fmt = fmt[pos:]
    format_all = fmt.lower() == "%all"
    if format_all:
        fmt = _all_format()
    for token in (t for t in fmt.split("%") if t):
        i, right, width = 0, False, 0
        if token[0] == ".":
            right, i = True, 1
        while i < len(token) and token[i].isdigit():
            width = width * 10 + int(token[i])
            i += 1
        letter = token[i] if i < len(token) else ""
        suffix = token[i + 1:]
        if letter and letter in _FIELDS:
            items.append(Item(letter, width, right, suffix))
        elif not format_all:
            items.append(Item(None, width, right, "%" + token,
                              error=f"Invalid job format specification: {letter}"))
    return items


def format_warnings(items: list[Item]) -> list[str]:
    """The messages squeue prints (after ``squeue: error: ``) for a format."""
    return [it.error for it in items if it.error]


# ---------------------------------------------------------------- helpers

def _print_str(text: str, width: int, right: bool, cut: bool) -> str:
    if width == 0:
        return text
    if right:
        out = text.rjust(width)
        return out[:width] if cut else out
    return text[:width].ljust(width)


def _fmt_secs(secs: int) -> str:
    """squeue's ``_print_secs``: M:SS, H:MM:SS, D-HH:MM:SS, or INVALID."""
    if secs < 0 or secs > _NO_VAL_SECS:
        return "INVALID"
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def _fmt_ts(ts: Optional[float]) -> str:
    if not ts:
        return "N/A"
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.localtime(ts))


def _fmt_mem(mb: int) -> str:
    """convert_num_unit(UNIT_MEGA, CONVERT_NUM_UNIT_EXACT): 0, 500M, 4G, 3T."""
    if not mb:
        return "0"
    units, i = "MGTPE", 0
    while mb % 1024 == 0 and i < len(units) - 1:
        mb //= 1024
        i += 1
    return f"{mb}{units[i]}"


def _compress(names: list) -> str:
    if not names:
        return ""
    try:
        from fleetslurm.slurm.hostlist import compress
    except ImportError:  # pragma: no cover - hostlist.py is written in parallel
        return ",".join(names)
    return compress(names)


def _null(value: object) -> str:
    """A C string printed with %s: NULL (here: None or "") is ``(null)``."""
    return "(null)" if value is None or value == "" else str(value)


def _is_array(job: JobRecord) -> bool:
    return bool(job.get("array_task_str")) or job.get("array_task_id") is not None


def _time_used(job: JobRecord, now: float) -> int:
    state, start = job.get("state", "PENDING"), job.get("start_time")
    if not start or state in _PENDING_LIKE:
        return 0
    if state == "SUSPENDED" and job.get("pre_sus_time") is not None:
        return int(job["pre_sus_time"])  # type: ignore[typeddict-item]
    end = job.get("end_time")
    if state in _RUNNING_LIKE or not end:
        end = now
    return max(0, int(end - start))


def _end_time(job: JobRecord, now: float) -> Optional[float]:
    """SLURM gives a started, unfinished job end = start + limit."""
    end, start = job.get("end_time"), job.get("start_time")
    if end or not start or job.get("state") in _PENDING_LIKE:
        return end
    limit = job.get("time_limit")
    return start + limit * 60 if limit is not None else now + _NO_VAL_SECS


def _job_id(job: JobRecord) -> str:
    if job.get("array_task_str"):
        text = f"{job.get('array_job_id') or job.get('job_id')}_[{job['array_task_str']}]"
        return text[:31]  # snprintf into FORMAT_STRING_SIZE (32)
    if job.get("array_task_id") is not None:
        return f"{job.get('array_job_id')}_{job.get('array_task_id')}"
    return str(job.get("job_id", ""))


def _reason_shown(job: JobRecord) -> bool:
    state = job.get("state", "PENDING")
    return state in _PENDING_LIKE or state in ("TIMEOUT", "FAILED")


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
    secs = limit * 60 - (_time_used(job, now) if left else 0)
    return _fmt_secs(secs), False


def _reason_list(job: JobRecord, now: float) -> "tuple[str, bool]":
    if _reason_shown(job):
        return f"({job.get('reason') or 'None'})", True
    return _compress(list(job.get("nodes") or [])), False


def _end(job: JobRecord, now: float) -> "tuple[str, bool]":
    end = _end_time(job, now)
    if job.get("time_limit") is None and end and end > now:
        return "NONE", True
    return _fmt_ts(end), True


_FIELDS: dict[str, "tuple[str, bool, _Value]"] = {
    "a": ("ACCOUNT", True, _c(lambda j: _null(j.get("account")))),
    "b": ("TRES_PER_NODE", True, _c(_tres_per_node)),
    "c": ("MIN_CPUS", True, _c(lambda j: j.get("min_cpus_node") or j.get("cpus_per_task") or 1)),
    "d": ("MIN_TMP_DISK", True, _c(lambda j: "0")),
    "e": ("END_TIME", True, _end),
    "f": ("FEATURES", True, _c(lambda j: _null(j.get("features")))),
    "g": ("GROUP", True, _c(lambda j: j.get("group") or j.get("user", ""))),
    "h": ("OVER_SUBSCRIBE", True, _c(lambda j: "NO" if j.get("exclusive") else "OK")),
    "i": ("JOBID", True, _c(_job_id)),
    "j": ("NAME", True, _c(lambda j: j.get("name", ""))),
    "k": ("COMMENT", True, _c(lambda j: _null(j.get("comment")))),
    "l": ("TIME_LIMIT", True, lambda j, now: _limit(j, now, left=False)),
    "m": ("MIN_MEMORY", True, _c(lambda j: _fmt_mem(j.get("mem_per_cpu_mb") or j.get("mem_mb") or 0))),
    "n": ("REQ_NODES", True, lambda j, now: (_compress(list(j.get("req_nodes") or [])), False)),
    "o": ("COMMAND", True, _c(lambda j: _null(j.get("command")))),
    "p": ("PRIORITY", True, _c(lambda j: "%16.14f" % ((j.get("priority") or 0) / 4294967295.0))),
    "q": ("QOS", True, _c(lambda j: _null(j.get("qos")))),
    "r": ("REASON", True, _c(lambda j: j.get("reason") or "None")),
    "s": ("", True, _c(lambda j: "")),
    "t": ("ST", True, _c(lambda j: _STATE_CODES.get(j.get("state", ""), j.get("state", "")))),
    "u": ("USER", True, _c(lambda j: j.get("user", ""))),
    "v": ("RESERVATION", True, _c(lambda j: _null(j.get("reservation")))),
    "w": ("WCKEY", True, _c(lambda j: _null(j.get("wckey")))),
    "x": ("EXC_NODES", True, lambda j, now: (_compress(list(j.get("exc_nodes") or [])), False)),
    "y": ("NICE", True, _c(lambda j: j.get("nice") or 0)),
    "z": ("S:C:T", True, _c(lambda j: "*:*:*")),
    "A": ("JOBID", True, _c(lambda j: j.get("job_id", ""))),
    "B": ("EXEC_HOST", True, _c(lambda j: j.get("batch_host") or "n/a")),
    "C": ("CPUS", True, _c(lambda j: j.get("cpus", 1))),
    "D": ("NODES", True, _c(lambda j: j.get("num_nodes") or max(1, len(j.get("nodes") or [])))),
    "E": ("DEPENDENCY", True, _c(lambda j: _null(j.get("dependency")))),
    "F": ("ARRAY_JOB_ID", True, _c(lambda j: j.get("array_job_id") if _is_array(j) else j.get("job_id", ""))),
    "G": ("GROUP", True, _c(lambda j: j.get("gid", j.get("uid", 0)))),
    "H": ("SOCKETS_PER_NODE", True, _c(lambda j: "*")),
    "I": ("CORES_PER_SOCKET", True, _c(lambda j: "*")),
    "J": ("THREADS_PER_CORE", True, _c(lambda j: "*")),
    "K": ("ARRAY_TASK_ID", True, _c(lambda j: j.get("array_task_str") or (
        j.get("array_task_id") if j.get("array_task_id") is not None else "N/A"))),
    "L": ("TIME_LEFT", True, lambda j, now: _limit(j, now, left=True)),
    "M": ("TIME", True, lambda j, now: (_fmt_secs(_time_used(j, now)), False)),
    "N": ("NODELIST", False, lambda j, now: (_compress(list(j.get("nodes") or [])), False)),
    "O": ("CONTIGUOUS", True, _c(lambda j: "0")),
    "P": ("PARTITION", True, _c(lambda j: j.get("partition", ""))),
    "Q": ("PRIORITY", True, _c(lambda j: j.get("priority") or 0)),
    "R": ("NODELIST(REASON)", False, _reason_list),
    "S": ("START_TIME", True, lambda j, now: (_fmt_ts(j.get("start_time")), True)),
    "T": ("STATE", True, _c(lambda j: j.get("state", ""))),
    "U": ("UID", True, _c(lambda j: j.get("uid", 0))),
    "V": ("SUBMIT_TIME", True, lambda j, now: (_fmt_ts(j.get("submit_time")), True)),
    "W": ("LICENSES", True, _c(lambda j: _null(j.get("licenses")))),
    "X": ("CORE_SPEC", True, _c(lambda j: "N/A")),
    "Y": ("SCHEDNODES", False, lambda j, now: (_null(j.get("sched_nodes")), False)),
    "Z": ("WORK_DIR", True, _c(lambda j: j.get("workdir", ""))),
}

_STATE_CODES = {
    "PENDING": "PD", "RUNNING": "R", "COMPLETING": "CG", "COMPLETED": "CD",
    "CANCELLED": "CA", "FAILED": "F", "TIMEOUT": "TO", "NODE_FAIL": "NF",
    "OUT_OF_MEMORY": "OOM", "PREEMPTED": "PR", "SUSPENDED": "S",
    "REQUEUED": "RQ", "REQUEUE_HOLD": "RH", "BOOT_FAIL": "BF", "DEADLINE": "DL",
}


def _line(items: list[Item], job: Optional[JobRecord], now: float) -> str:
    out: list[str] = []
    for it in items:
        if it.letter is not None:
            header, header_cut, value = _FIELDS[it.letter]
            if job is None:
                out.append(_print_str(header, it.width, it.right, header_cut))
            else:
                text, cut = value(job, now)
                out.append(_print_str(text, it.width, it.right, cut))
        out.append(it.suffix)
    return "".join(out)


def render(fmt: str, jobs: list[JobRecord], *, now: float, header: bool = True) -> str:
    """squeue's output for ``jobs`` (already filtered and sorted) under ``fmt``.

    Every line ends with a newline; with ``header`` the first line is the
    header row. Warnings for invalid letters: :func:`format_warnings`.
    """
    items = parse_format(fmt)
    lines = [_line(items, None, now)] if header else []
    lines.extend(_line(items, job, now) for job in jobs)
    return "".join(line + "\n" for line in lines)
