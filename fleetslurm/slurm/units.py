"""SLURM's units: time limits, durations, memory sizes and timestamps.

Pure functions: no I/O and no clock (``now`` is a parameter). Each parser and
formatter follows the SLURM 22.05 routine named in its docstring (SchedMD/slurm
``src/common/parse_time.c``, ``src/common/proc_args.c``,
``src/common/slurm_protocol_defs.c``, ``src/squeue/print.c``,
``src/sacct/print.c``), checked against Debian's slurm-wlm 22.05.8.
"""

from __future__ import annotations

import re
import time

from fleetslurm.errors import InvalidValue

__all__ = [
    "parse_time_limit",
    "parse_duration_seconds",
    "format_squeue_time", "parse_squeue_time",
    "format_time_limit",
    "format_hms",
    "format_limit_hms",
    "format_cpu_time",
    "format_cpu_parts",
    "parse_mem",
    "format_mem",
    "format_rss_kb",
    "parse_datetime",
    "NoTimeGiven",
    "format_datetime",
]

_UNLIMITED_WORDS = {"-1", "infinite", "unlimited"}


# --------------------------------------------------------------------------
# Time limits and durations (parse_time.c: _is_valid_timespec, time_str2secs)
# --------------------------------------------------------------------------

def _is_valid_timespec(text: str) -> bool:
    """Port of SLURM's ``_is_valid_timespec``: digits, one '-', two ':' at most."""
    digit = dash = colon = 0
    already_digit = False
    for ch in text:
        if "0" <= ch <= "9":
            if not already_digit:
                digit += 1
                already_digit = True
        elif ch == "-":
            already_digit = False
            dash += 1
            if colon:
                return False
        elif ch == ":":
            already_digit = False
            colon += 1
        else:
            return False
    if not digit or dash > 1 or colon > 2:
        return False
    if dash:
        return not ((colon == 1 and digit < 3) or (colon == 2 and digit < 4))
    return not ((colon == 1 and digit < 2) or (colon == 2 and digit < 3))


def _time_str2secs(text: str, option: str) -> int | None:
    """Seconds for a SLURM time string, None for UNLIMITED; port of time_str2secs."""
    if text.lower() in _UNLIMITED_WORDS:
        return None
    if not _is_valid_timespec(text):
        raise InvalidValue(f'Invalid {option} specification: "{text}"')
    if text.startswith("-"):
        # SLURM's sscanf reads "-5" as -5 minutes; nothing sensible comes of it.
        raise InvalidValue(f'Invalid {option} specification: "{text}" (negative time)')
    # _is_valid_timespec leaves only "d-", "d-h[:m[:s]]", "m", "m:s" and "h:m:s"
    days, dash, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")] if rest else []
    if dash:
        d, h, m, s = [int(days)] + (parts + [0, 0, 0])[:3]
        return d * 86400 + h * 3600 + m * 60 + s
    if len(parts) == 3:
        return parts[0] * 3600 + parts[1] * 60 + parts[2]
    return parts[0] * 60 + (parts[1] if len(parts) == 2 else 0)


def parse_time_limit(text: str, option: str = "--time") -> int | None:
    """Parse a ``--time`` value into whole minutes, None meaning no limit.

    Formats: ``min``, ``min:sec``, ``h:m:s``, ``d-h``, ``d-h:m``, ``d-h:m:s``.
    Seconds round UP to whole minutes (SLURM's ``time_str2mins``:
    ``ROUNDUP(secs, 60)``), so ``"0:30"`` is 1. ``UNLIMITED``/``INFINITE``/``-1``
    and a limit of 0 mean no limit (``man sbatch``: "A time limit of zero requests
    that no time limit be imposed").

    Raises:
        InvalidValue: ``Invalid --time specification: "1:xx"``.
    """
    secs = _time_str2secs(text, option)
    if secs is None:
        return None
    minutes = -(-secs // 60)
    return None if minutes == 0 else minutes


def parse_duration_seconds(text: str, option: str = "duration") -> int:
    """Parse the same grammar as :func:`parse_time_limit` into exact seconds.

    ``UNLIMITED`` has no meaning for a duration and is refused.

    Raises:
        InvalidValue: malformed, negative or unlimited values.
    """
    secs = _time_str2secs(text, option)
    if secs is None:
        raise InvalidValue(f'Invalid {option} specification: "{text}" (must be a finite time)')
    return secs


# --------------------------------------------------------------------------
# Time formatting
# --------------------------------------------------------------------------

def _dhms(seconds: int) -> "tuple[int, int, int, int]":
    """Whole seconds as (days, hours, minutes, seconds)."""
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    return (days, hours) + divmod(rem, 60)  # type: ignore[return-value]


def format_squeue_time(seconds: int) -> str:
    """squeue's TIME / TIME_LEFT cell (``_print_secs`` in src/squeue/print.c).

    ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``; negative values print as ``0:00``.
    """
    days, hours, minutes, secs = _dhms(max(0, int(seconds)))
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def parse_squeue_time(text: str) -> int:
    """The seconds of a :func:`format_squeue_time` cell (its inverse for >= 0)."""
    days, _, rest = text.rpartition("-")
    total = 0
    for part in rest.split(":"):
        total = total * 60 + int(part)
    return total + 86400 * int(days or 0)


def format_time_limit(minutes: int | None) -> str:
    """squeue's TIME_LIMIT (``%l``): ``UNLIMITED`` or :func:`format_squeue_time`."""
    if minutes is None:
        return "UNLIMITED"
    return format_squeue_time(minutes * 60)


def format_hms(seconds: int) -> str:
    """sacct Elapsed / scontrol RunTime style (``secs2time_str``).

    ``00:00:05``, ``01:00:00``, ``1-00:00:00``; SLURM prints ``INVALID`` for a
    negative value.
    """
    seconds = int(seconds)
    if seconds < 0:
        return "INVALID"
    days, hours, minutes, secs = _dhms(seconds)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_limit_hms(minutes: int | None) -> str:
    """sacct Timelimit / scontrol TimeLimit (``mins2time_str``): ``UNLIMITED`` for None."""
    if minutes is None:
        return "UNLIMITED"
    return format_hms(minutes * 60)


def format_cpu_time(seconds: float) -> str:
    """sacct TotalCPU / UserCPU / SystemCPU (``_elapsed_time`` in src/sacct/print.c).

    Under an hour with a sub-second part: ``MM:SS.mmm``; under an hour without
    one: ``00:MM:SS``; from an hour ``HH:MM:SS``; from a day ``D-HH:MM:SS``.
    """
    if seconds < 0:
        seconds = 0.0
    secs = int(seconds)
    usecs = int(round((seconds - secs) * 1_000_000))
    if usecs >= 1_000_000:
        secs += usecs // 1_000_000
        usecs %= 1_000_000
    return format_cpu_parts(secs, usecs // 1000)


def format_cpu_parts(secs: int, msec: int) -> str:
    """:func:`format_cpu_time` from whole seconds and milliseconds (0-999)."""
    days, hours, minutes, sec = _dhms(secs)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{sec:02d}"
    if hours:
        return f"{hours:02d}:{minutes:02d}:{sec:02d}"
    if msec:
        return f"{minutes:02d}:{sec:02d}.{msec:03d}"
    return f"00:{minutes:02d}:{sec:02d}"


# --------------------------------------------------------------------------
# Memory (proc_args.c: str_to_mbytes; slurm_protocol_defs.c: convert_num_unit2)
# --------------------------------------------------------------------------

_MEM_FACTOR = {"K": None, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEM_RE = re.compile(r"\s*([+-]?[0-9]+)(?:([kKmMgGtT])([bB])?)?")


def parse_mem(text: str, default_unit: str = "M", option: str = "--mem") -> int:
    """Parse a memory size into MB, as SLURM's ``str_to_mbytes`` does.

    A plain number is in ``default_unit``; suffixes K/M/G/T in any case, with an
    optional trailing B (``4G``, ``4GB``, ``512k``). K rounds up to a whole MB
    (``512K`` -> 1). ``0`` is allowed (SLURM: all of a node's memory).
    SLURM 22.05 takes integers only: ``1.5G`` is refused, as are ``4GiB`` and
    negative sizes.

    Raises:
        InvalidValue: ``Invalid --mem specification: "1.5G"``.
    """
    match = _MEM_RE.fullmatch(text)
    if not match or match.group(1).startswith("-"):
        raise InvalidValue(
            f'Invalid {option} specification: "{text}" '
            "(expected a whole number with an optional K, M, G or T suffix)")
    value = int(match.group(1))
    unit = (match.group(2) or default_unit).upper()
    if unit not in _MEM_FACTOR:
        raise ValueError(f"default_unit must be one of K, M, G, T, not {default_unit!r}")
    if unit == "K":
        return (value + 1023) // 1024
    return value * _MEM_FACTOR[unit]


_UNITS = "\0KMGTP?"  # indexes as SLURM's UNIT_NONE, UNIT_KILO, ... UNIT_UNKNOWN


def _convert_num_unit_exact(num: float, orig_type: int) -> str:
    """SLURM's ``convert_num_unit2`` with ``CONVERT_NUM_UNIT_EXACT`` and divisor 1024.

    Divide by 1024 while the value is >= 1024 and a multiple of 512 (half units
    such as 2.5G still count as exact); print ``%.2f`` when a fraction remains.
    squeue, sinfo and sacct all default to these flags (``params.convert_flags``).
    """
    if int(num) == 0:
        return "0"
    while num >= 1024 and int(num) % 512 == 0:
        num /= 1024
        orig_type += 1
    unit = _UNITS[orig_type] if 0 <= orig_type <= 5 else "?"
    unit = "" if unit == "\0" else unit
    if float(int(num)) == num:
        return f"{int(num)}{unit}"
    return f"{num:.2f}{unit}"


def format_mem(mb: int) -> str:
    """squeue ``%m`` / scontrol ``MinMemoryNode``: ``0``, ``500M``, ``4G``, ``1.50G``, ``2T``.

    Note SLURM prints half units as decimals: 1536 MB is ``1.50G``.
    """
    return _convert_num_unit_exact(float(mb), 2)


def format_rss_kb(kb: int | None) -> str:
    """sacct MaxRSS / MaxVMSize from a size in KiB; ``''`` when not measured.

    sacct 22.05 converts the byte count with ``convert_num_unit(..., UNIT_NONE,
    NO_VAL, CONVERT_NUM_UNIT_EXACT)`` (src/sacct/print.c, PRINT_MAXRSS): ``1788K``
    stays in K, ``102400K`` prints as ``100M``, ``1536K`` as ``1.50M``.
    """
    if kb is None:
        return ""
    return _convert_num_unit_exact(float(kb) * 1024, 0)


# --------------------------------------------------------------------------
# Dates and times (parse_time.c: parse_time; slurm_make_time_str)
# --------------------------------------------------------------------------

# longest first: "seconds" before "second"
_DELTA_UNITS = (("seconds", 1), ("second", 1), ("minutes", 60), ("minute", 60),
                ("hours", 3600), ("hour", 3600), ("days", 86400), ("day", 86400),
                ("weeks", 604800), ("week", 604800))
# SLURM 22.05's names (``elevenses`` came later: 22.05 refuses it)
_NAMED = {"midnight": 0, "noon": 12, "fika": 15, "teatime": 16}


class _Bad(Exception):
    """A parse failure at character ``pos`` (the start of the offending part)."""

    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


class _Nothing(Exception):
    """No date or time in the text at all (``""``, ``"T"``, ``"-"``)."""


class NoTimeGiven(InvalidValue):
    """A time specification without any date or time in it. SLURM's parser
    prints nothing for it (its callers then refuse the option)."""


def parse_datetime(text: str, now: float, past: bool = False) -> float:
    """Parse a SLURM time specification (``sbatch --begin``, ``sacct -S/-E``).

    A port of ``parse_time`` (src/common/parse_time.c) in local time, with
    ``now`` as the current time:
    ``YYYY-MM-DD[THH:MM[:SS]]``, ``HH:MM[:SS] [AM|PM]``, ``MMDD[YY]``,
    ``MM/DD[/YY]``, ``MM.DD[.YY]``, ``MM/DD[/YY]-HH:MM[:SS]``, ``today``,
    ``tomorrow``, ``midnight``, ``noon``, ``fika``, ``teatime``,
    ``now[{+|-}count[seconds|minutes|hours|days|weeks]]`` (default seconds) and
    ``uts<epoch>``. A time without a date means the next such time (or today
    when ``past``, as sacct asks); a date without a year the next such date (or
    the most recent one when ``past``). Blanks, ``-`` and ``T`` separate parts.

    Raises:
        InvalidValue: ``Invalid time specification (pos=0): garbage``.
    """
    try:
        return _parse_time(text, now, past)
    except _Bad as bad:
        raise InvalidValue(f"Invalid time specification (pos={bad.pos}): {text}") from None
    except _Nothing:
        raise NoTimeGiven(f"no date or time in {text!r}") from None


def _parse_time(s: str, now: float, past: bool) -> float:
    if s[:3].lower() == "uts":
        if not re.fullmatch(r"[0-9]+", s[3:]) or int(s[3:]) < 1_000_000:
            raise _Bad(0)
        return float(int(s[3:]))
    now_tm = time.localtime(now)
    tomorrow = time.localtime(now + 86400)
    hour = minute = month = mday = year = -1  # month 1-12, year with century
    second = 0
    pos = 0
    while pos < len(s):
        low = s[pos:].lower()
        named = next((name for name in _NAMED if low.startswith(name)), None)
        if s[pos] in " \t-T":
            pos += 1
        elif low.startswith("today") or low.startswith("tomorrow"):
            day = now_tm if low.startswith("today") else tomorrow
            year, month, mday = day.tm_year, day.tm_mon, day.tm_mday
            pos += 5 if low.startswith("today") else 8
        elif named:
            hour, minute, second = _NAMED[named], 0, 0
            pos += len(named)
        elif low.startswith("now"):
            delta, pos = _get_delta(s, pos + 3)
            later = time.localtime(now + delta)
            year, month, mday = later.tm_year, later.tm_mon, later.tm_mday
            hour, minute, second = later.tm_hour, later.tm_min, later.tm_sec
        elif not ("0" <= s[pos] <= "9"):
            raise _Bad(pos)
        elif s[pos + 1:pos + 2] == ":" or s[pos + 2:pos + 3] == ":":
            hour, minute, second, pos = _get_time(s, pos)
        else:
            month, mday, date_year, pos = _get_date(s, pos)
            if date_year is not None:
                year = date_year

    if hour == -1 and month == -1:
        # SLURM returns time 0 here without a word, and its callers refuse it
        raise _Nothing()
    if hour == -1:  # a date without a time means 00:00
        hour, minute = 0, 0
    elif month == -1:  # a time without a date means the soonest such time
        day = now_tm if (past or (hour, minute) > (now_tm.tm_hour, now_tm.tm_min)) else tomorrow
        year, month, mday = day.tm_year, day.tm_mon, day.tm_mday
    if year == -1:
        cur = (now_tm.tm_mon, now_tm.tm_mday, now_tm.tm_hour, now_tm.tm_min)
        if past:
            year = now_tm.tm_year - 1 if month > now_tm.tm_mon else now_tm.tm_year
        else:
            year = now_tm.tm_year + (0 if (month, mday, hour, minute) > cur else 1)
    try:
        return time.mktime((year, month, mday, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        raise _Bad(pos) from None


def _get_time(s: str, at: int) -> tuple[int, int, int, int]:
    """``HH:MM[:SS] [AM|PM]`` at ``at`` as SLURM's ``_get_time`` reads it:
    (hour, minute, second, position after it); fails where it fails."""
    def digit(i: int) -> bool:
        return i < len(s) and "0" <= s[i] <= "9"

    def need_digit(i: int) -> int:
        if not digit(i):
            raise _Bad(i)
        return int(s[i])

    hour = need_digit(at)
    at += 1
    if s[at:at + 1] != ":":
        hour, at = hour * 10 + need_digit(at), at + 1
    if hour > 23:
        raise _Bad(at - 2)
    if s[at:at + 1] != ":":
        raise _Bad(at)
    minute = need_digit(at + 1) * 10 + need_digit(at + 2)
    at += 3
    if minute > 59:
        raise _Bad(at - 2)
    second = 0
    if s[at:at + 1] == ":":
        second = need_digit(at + 1) * 10 + need_digit(at + 2)
        at += 3
        if second > 59:
            raise _Bad(at - 2)
    while at < len(s) and s[at].isspace():
        at += 1
    ampm = s[at:at + 2].lower()
    if ampm == "pm":
        hour += 12
        if hour > 23:
            if hour != 24:
                raise _Bad(at)
            hour = 12  # 12pm is noon
        at += 2
    elif ampm == "am":
        if hour > 11:
            if hour != 12:
                raise _Bad(at)
            hour = 0  # 12am is midnight
        at += 2
    return hour, minute, second, at


def _get_delta(s: str, at: int) -> tuple[int, int]:
    """What follows ``now`` at ``at``: ``[{+|-}count[unit]]`` as SLURM's
    ``_get_delta`` reads it: (seconds, position where parsing goes on)."""
    while at < len(s) and s[at] in " \t":
        at += 1
    if at >= len(s):
        return 0, at
    sign = s[at]
    if sign not in "+-":
        raise _Bad(at)
    start = at
    count, digits = 0, 0
    at += 1
    while at < len(s):
        if s[at].isspace():
            at += 1
            continue
        unit = next((u for u in _DELTA_UNITS if s[at:at + len(u[0])].lower() == u[0]), None)
        if unit is not None:
            count *= unit[1]
            at += len(unit[0])
            break
        if "0" <= s[at] <= "9":
            count = count * 10 + int(s[at])
            digits += 1
            at += 1
            continue
        raise _Bad(at - 1)
    if not digits:
        raise _Bad(start)
    return (-count if sign == "-" else count), at


def _get_date(s: str, pos: int) -> tuple[int, int, int | None, int]:
    """``YYYY-MM-DD``, ``MMDD[YY]``, ``MM/DD[/YY]`` or ``MM.DD[.YY]`` at ``pos``:
    (month, day, year or None, position after it). Fails where SLURM's
    ``_get_date`` does, so the error position is the same."""
    def digit(i: int) -> bool:
        return i < len(s) and "0" <= s[i] <= "9"

    def two(i: int) -> tuple[int, int]:
        """One digit, or two when a second follows: (value, next position)."""
        value = int(s[i]) if digit(i) else -1
        i += 1
        if digit(i):
            value, i = value * 10 + int(s[i]), i + 1
        return value, i

    at = pos
    if len(s) >= at + 7 and s[at + 4:at + 5] == "-" and s[at + 7:at + 8] == "-":
        for i in range(at, at + 4):
            if not digit(i):
                raise _Bad(i)
        year = int(s[at:at + 4])
        month, at = two(at + 5)
        if not 1 <= month <= 12:
            raise _Bad(at - 2)
        at += 1
        if not digit(at):
            raise _Bad(at)
        mday, at = two(at)
        if not 1 <= mday <= 31:
            raise _Bad(at - 2)
        return month, mday, year, at
    month, at = two(at)
    if not 1 <= month <= 12:
        raise _Bad(at - 2)
    if s[at:at + 1] in (".", "/"):
        at += 1
    if not digit(at):
        raise _Bad(at)
    mday, at = two(at)
    if not 1 <= mday <= 31:
        raise _Bad(at - 2)
    if s[at:at + 1] in (".", "/"):
        at += 1
    year = None
    if digit(at):
        if not digit(at + 1):
            raise _Bad(at + 1)
        year, at = 2000 + int(s[at:at + 2]), at + 2
    return month, mday, year, at


def format_datetime(ts: float | None) -> str:
    """scontrol / sacct / squeue timestamp: ``2026-11-21T10:00:00`` in local time.

    None and 0 print ``Unknown``, as ``slurm_make_time_str`` does for 0 and
    INFINITE (sacct shows ``Unknown`` for the End of a running job).
    """
    if ts is None or ts == 0:
        return "Unknown"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))
