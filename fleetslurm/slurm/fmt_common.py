"""Pieces shared by the squeue, sinfo, scontrol and sacct formatters.

Pure: no I/O, no clock (``now`` is a parameter). The ``%[.][width]X`` parsing
and the cell rules are those of ``parse_format``/``_parse_token`` and
``_print_str`` in SchedMD/slurm ``src/squeue`` and ``src/sinfo`` (the two
commands share them); see the module docstrings of ``squeue_fmt`` and
``sinfo_fmt`` for the quirks scripts rely on.
"""

from __future__ import annotations

from typing import Callable, Container, Iterable, Mapping, NamedTuple, Optional

from fleetslurm.model import JobRecord, NodeRecord

__all__ = ["Item", "parse_items", "format_warnings", "print_str", "join_items",
           "convert_whole", "null_str", "features", "PENDING_LIKE", "RUNNING_LIKE",
           "NO_VAL_SECS", "run_time", "start_time", "end_time", "job_id"]

PENDING_LIKE = frozenset({"PENDING", "REQUEUE_HOLD"})
RUNNING_LIKE = frozenset({"RUNNING", "COMPLETING", "SUSPENDED"})
#: how far in the future squeue puts the end of a job without a time limit
NO_VAL_SECS = 365 * 24 * 3600


# ---------------------------------------------------------------- % formats

class Item(NamedTuple):
    """One piece of a parsed squeue/sinfo format (a NamedTuple, not a
    dataclass: every squeue and sinfo call imports this module).

    ``letter`` is the field letter, or ``None`` for literal text / an invalid
    field. ``suffix`` is the literal text printed after the cell (for a
    literal item: the text itself; for an invalid field: ``%`` + the token).
    ``error`` is the command's complaint for an invalid field.
    """

    letter: Optional[str]
    width: int = 0
    right: bool = False
    suffix: str = ""
    error: Optional[str] = None


def parse_items(fmt: str, letters: Container[str], all_format: str, error: str) -> list[Item]:
    """Split a ``-o`` string into items as squeue/sinfo 22.05 do (never raises).

    ``letters`` are the valid field letters; ``all_format`` replaces ``%all``
    (any case), whose invalid letters are dropped silently; otherwise an
    invalid letter gives an item whose ``error`` is ``error`` + the letter.
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
        fmt = all_format
    for token in (t for t in fmt.split("%") if t):  # strtok: runs of '%' split
        i, right, width = 0, False, 0
        if token[0] == ".":
            right, i = True, 1
        while i < len(token) and token[i].isdigit():
            width = width * 10 + int(token[i])
            i += 1
        letter = token[i] if i < len(token) else ""
        if letter and letter in letters:
            items.append(Item(letter, width, right, token[i + 1:]))
        elif not format_all:
            items.append(Item(None, width, right, "%" + token, error=error + letter))
    return items


#: the width of a ``-O`` field given without one (squeue's and sinfo's opts.c)
LONG_FIELD_WIDTH = 20

#: marks a format string as ``-O`` text: no ``-o`` string can start with NUL
_LONG_MARK = "\0O"


def long_format(text: str) -> str:
    """The format string that stands for ``-O text`` (what squeue's and
    sinfo's ``render`` and the controller's squeue take)."""
    return _LONG_MARK + text


def parse_any(fmt: str, letters: Container[str], all_format: str, error: str,
              names: Mapping[str, str]) -> list[Item]:
    """:func:`parse_items` for a ``-o`` string, :func:`parse_long_items` for
    one made by :func:`long_format` (whose complaint says "job format" for
    both commands, as theirs do)."""
    if fmt.startswith(_LONG_MARK):
        return parse_long_items(fmt[len(_LONG_MARK):], names,
                                "Invalid job format specification: ")
    return parse_items(fmt, letters, all_format, error)


def parse_long_items(text: str, names: Mapping[str, str], error: str) -> list[Item]:
    """Split a ``-O/--Format`` string as squeue/sinfo 22.05 do (never raises).

    Fields are separated by commas, each ``name[:[.][size][suffix]]``; names
    are matched without regard to case and stand for the field ``names``
    maps them to (a ``-o`` letter, or a key of the command's own); no size
    means 20 (left-aligned), an empty one natural width. An unknown name
    prints nothing and gives an item whose ``error`` is ``error`` + the name.
    """
    items: list[Item] = []
    for token in (t for t in text.split(",") if t):
        name, sep, rest = token.partition(":")
        right, width, suffix = False, LONG_FIELD_WIDTH, ""
        if sep:
            if rest.startswith("."):
                right, rest = True, rest[1:]
            digits = len(rest) - len(rest.lstrip("0123456789"))
            width, suffix = int(rest[:digits] or 0), rest[digits:]
        key = names.get(name.lower())
        if key is None:
            items.append(Item(None, error=error + name))
        else:
            items.append(Item(key, width, right, suffix))
    return items


def format_warnings(items: list[Item]) -> list[str]:
    """The messages the command writes to stderr for a format's invalid fields."""
    return [it.error for it in items if it.error]


def print_str(text: str, width: int, right: bool, cut: bool) -> str:
    """``_print_str``: width 0 is natural width; a left-aligned cell is always
    cut to its width, a right-aligned one only when ``cut``."""
    if width == 0:
        return text
    if right:
        out = text.rjust(width)
        return out[:width] if cut else out
    return text[:width].ljust(width)


def join_items(items: Iterable[Item], cell: Callable[[Item], str]) -> str:
    """One output line: ``cell(item)`` for each field, each followed by its suffix."""
    out: list[str] = []
    for it in items:
        if it.letter is not None:
            out.append(cell(it))
        out.append(it.suffix)
    return "".join(out)


# ---------------------------------------------------------------- values

def convert_whole(num: int, units: str) -> str:
    """``convert_num_unit`` dividing by 1024 only while ``num`` is a whole
    multiple, starting at ``units[0]`` (``_`` stands for no unit).

    Not :func:`fleetslurm.slurm.units.format_mem`: that one also divides half
    units (1536 MB is ``1.50G`` there, ``1536M`` here).
    """
    if not num:
        return "0"
    i = 0
    while num % 1024 == 0 and i < len(units) - 1:
        num //= 1024
        i += 1
    return f"{num}{units[i]}".rstrip("_")


def null_str(value: object) -> str:
    """A C string printed with %s: NULL (here: None or "") is ``(null)``."""
    return "(null)" if value is None or value == "" else str(value)


def features(node: Optional[NodeRecord]) -> str:
    """A node's features joined by commas, ``(null)`` for none."""
    feats = (node or {}).get("features") or []
    if isinstance(feats, str):
        return feats or "(null)"
    return ",".join(feats) if feats else "(null)"


# ---------------------------------------------------------------- jobs

def run_time(job: JobRecord, now: float) -> int:
    """Seconds a job has run (squeue TIME, scontrol RunTime); 0 until it starts."""
    state, start = job.get("state", "PENDING"), job.get("start_time")
    if not start or state in PENDING_LIKE:
        return 0
    if state == "SUSPENDED" and job.get("pre_sus_time") is not None:
        return int(job["pre_sus_time"])  # type: ignore[typeddict-item]
    end = job.get("end_time")
    if state in RUNNING_LIKE or not end:
        end = now
    # time spent suspended does not count, as in SLURM
    return max(0, int(end - start - (job.get("suspended_s") or 0.0)))


def start_time(job: JobRecord) -> Optional[float]:
    """When the job started; for a pending job held back by ``--begin``, the
    begin time (SLURM shows it as the expected start)."""
    start = job.get("start_time")
    if start or job.get("state") not in PENDING_LIKE or job.get("reason") == "JobHeldUser":
        return start
    begin = job.get("begin_time")
    return begin if begin and begin > (job.get("submit_time") or 0) else None


def end_time(job: JobRecord, now: float) -> Optional[float]:
    """SLURM gives a started, unfinished job end = start + limit (no limit:
    ``now`` + a year, which squeue prints as ``NONE``, scontrol as
    ``Unknown``); a pending job with an expected start likewise."""
    end, start = job.get("end_time"), start_time(job)
    if end or not start:
        return end
    if job.get("state") in PENDING_LIKE and not job.get("begin_time"):
        return end
    limit = job.get("time_limit")
    if limit is None:
        return now + NO_VAL_SECS
    # SLURM moves a suspended job's end by the time it spent suspended, at
    # its resume (while it is suspended, the end shown stands still)
    return start + limit * 60 + float(job.get("suspended_s") or 0.0)


def job_id(job: JobRecord) -> str:
    """``1234``, an array task ``1234_7``, or a pending array ``1234_[0-9%4]``."""
    if job.get("array_task_str"):
        return f"{job.get('array_job_id') or job.get('job_id')}_[{job['array_task_str']}]"
    if job.get("array_task_id") is not None:
        return f"{job.get('array_job_id')}_{job.get('array_task_id')}"
    return str(job.get("job_id", ""))
