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
    "format_squeue_time",
    "format_time_limit",
    "format_hms",
    "format_limit_hms",
    "format_cpu_time",
    "parse_mem",
    "format_mem",
    "format_rss_kb",
    "parse_datetime",
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


def _scan_ints(text: str, seps: str) -> list[int]:
    """Emulate ``sscanf`` with ``%d<sep>%d<sep>...``: stop at the first mismatch."""
    values: list[int] = []
    pos = 0
    for i in range(len(seps) + 1):
        match = re.match(r"[+-]?\d+", text[pos:])
        if not match:
            break
        values.append(int(match.group()))
        pos += match.end()
        if i == len(seps) or not text.startswith(seps[i], pos):
            break
        pos += 1
    return values


def _time_str2secs(text: str, option: str) -> int | None:
    """Seconds for a SLURM time string, None for UNLIMITED; port of time_str2secs."""
    if text.lower() in _UNLIMITED_WORDS:
        return None
    if not _is_valid_timespec(text):
        raise InvalidValue(f'Invalid {option} specification: "{text}"')
    if "-" in text:
        # days-[hours[:minutes[:seconds]]]; "5-" is accepted by SLURM (5 days)
        d, h, m, s = (_scan_ints(text, "-::") + [0, 0, 0, 0])[:4]
        total = d * 86400 + h * 3600 + m * 60 + s
    else:
        vals = _scan_ints(text, "::")
        if len(vals) == 3:
            total = vals[0] * 3600 + vals[1] * 60 + vals[2]
        else:  # minutes[:seconds]
            vals = (vals + [0, 0])[:2]
            total = vals[0] * 60 + vals[1]
    if total < 0 or text.startswith("-"):
        # SLURM would store a negative limit; nothing sensible comes of it.
        raise InvalidValue(f'Invalid {option} specification: "{text}" (negative time)')
    return total


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

def format_squeue_time(seconds: int) -> str:
    """squeue's TIME / TIME_LEFT cell (``_print_secs`` in src/squeue/print.c).

    ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``; negative values print as ``0:00``.
    """
    seconds = max(0, int(seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


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
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
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
    subsec = usecs // 1000
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, sec = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{sec:02d}"
    if hours:
        return f"{hours:02d}:{minutes:02d}:{sec:02d}"
    if subsec:
        return f"{minutes:02d}:{sec:02d}.{subsec:03d}"
    return f"00:{minutes:02d}:{sec:02d}"


# --------------------------------------------------------------------------
# Memory (proc_args.c: str_to_mbytes; slurm_protocol_defs.c: convert_num_unit2)
# --------------------------------------------------------------------------

_MEM_FACTOR = {"K": None, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEM_RE = re.compile(r"\s*([+-]?\d+)(?:([kKmMgGtT])([bB])?)?")


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

_DELTA_UNITS = (
    ("seconds", 1), ("second", 1), ("minutes", 60), ("minute", 60),
    ("hours", 3600), ("hour", 3600), ("days", 86400), ("day", 86400),
    ("weeks", 604800), ("week", 604800),
)
_NAMED_TIMES = (
    ("midnight", 0), ("noon", 12), ("elevenses", 11), ("fika", 15), ("teatime", 16),
)


class _Bad(Exception):
    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


def _ch(s: str, i: int) -> str:
    return s[i] if 0 <= i < len(s) else ""


def _isdigit(c: str) -> bool:
    return c != "" and "0" <= c <= "9"


def _get_delta(s: str, pos: int) -> tuple[int, int]:
    """Count and unit after ``now+``/``now-`` (port of ``_get_delta``)."""
    cnt = digits = 0
    offset = pos + 1
    while offset < len(s) and s[offset] != "\n":
        if s[offset].isspace():
            offset += 1
            continue
        for name, mult in _DELTA_UNITS:
            if s[offset:offset + len(name)].lower() == name:
                offset += len(name)
                cnt *= mult
                if not digits:
                    raise _Bad(offset - 1)
                return offset - 1, cnt
        if _isdigit(s[offset]):
            cnt = cnt * 10 + int(s[offset])
            digits += 1
            offset += 1
            continue
        raise _Bad(offset - 1)
    if not digits:
        raise _Bad(offset - 1)
    return offset - 1, cnt


def _two_digits(s: str, offset: int) -> int:
    if not (_isdigit(_ch(s, offset)) and _isdigit(_ch(s, offset + 1))):
        raise _Bad(offset)
    return int(s[offset:offset + 2])


def _get_time(s: str, pos: int) -> tuple[int, int, int, int]:
    """``HH:MM[:SS] [AM|PM]`` (port of ``_get_time``); returns end pos and h, m, s."""
    offset = pos
    if not _isdigit(_ch(s, offset)):
        raise _Bad(offset)
    hour = int(s[offset])
    offset += 1
    if _ch(s, offset) != ":":
        if not _isdigit(_ch(s, offset)):
            raise _Bad(offset)
        hour = hour * 10 + int(s[offset])
        offset += 1
    if hour > 23 or _ch(s, offset) != ":":
        raise _Bad(offset)
    minute = _two_digits(s, offset + 1)
    offset += 3
    if minute > 59:
        raise _Bad(offset - 2)
    second = 0
    if _ch(s, offset) == ":":
        second = _two_digits(s, offset + 1)
        offset += 3
        if second > 59:
            raise _Bad(offset - 2)
    while _ch(s, offset).isspace() and _ch(s, offset) != "":
        offset += 1
    suffix = s[offset:offset + 2].lower()
    if suffix == "pm":
        hour += 12
        if hour > 23:
            if hour != 24:
                raise _Bad(offset)
            hour = 12
        offset += 2
    elif suffix == "am":
        if hour > 11:
            if hour != 12:
                raise _Bad(offset)
            hour = 0
        offset += 2
    return offset - 1, hour, minute, second


def _get_date(s: str, pos: int) -> tuple[int, int, int, int | None]:
    """``YYYY-MM-DD`` or ``MMDD[YY]``, ``MM/DD[/YY]``, ``MM.DD[.YY]`` (``_get_date``).

    Returns end pos, month (1-12), day and the year (None when not given).
    """
    offset = pos
    if _ch(s, offset + 4) == "-" and _ch(s, offset + 7) == "-":
        if not all(_isdigit(_ch(s, offset + i)) for i in range(4)):
            raise _Bad(offset)
        year = int(s[offset:offset + 4])
        offset += 5
        month, offset = _one_or_two_digits(s, offset, 1, 12)
        offset += 1  # the second '-'
        day, offset = _one_or_two_digits(s, offset, 1, 31)
        return offset - 1, month, day, year
    month, offset = _one_or_two_digits(s, offset, 1, 12)
    if _ch(s, offset) in (".", "/"):
        offset += 1
    day, offset = _one_or_two_digits(s, offset, 1, 31)
    if _ch(s, offset) in (".", "/"):
        offset += 1
    year = None
    if _isdigit(_ch(s, offset)):
        year = 2000 + _two_digits(s, offset)  # SLURM: yr + 100 in struct tm terms
        offset += 2
    return offset - 1, month, day, year


def _one_or_two_digits(s: str, offset: int, low: int, high: int) -> tuple[int, int]:
    if not _isdigit(_ch(s, offset)):
        raise _Bad(offset)
    value = int(s[offset])
    offset += 1
    if _isdigit(_ch(s, offset)):
        value = value * 10 + int(s[offset])
        offset += 1
    if not low <= value <= high:
        raise _Bad(offset - 2)
    return value, offset


def parse_datetime(text: str, now: float, past: bool = False) -> float:
    """Parse a SLURM time specification (``sbatch --begin``, ``sacct -S/-E``).

    A port of ``parse_time`` (src/common/parse_time.c) in local time, with
    ``now`` as the current time:
    ``YYYY-MM-DD[THH:MM[:SS]]``, ``HH:MM[:SS] [AM|PM]``, ``MMDD[YY]``,
    ``MM/DD[/YY]``, ``MM.DD[.YY]``, ``MM/DD[/YY]-HH:MM[:SS]``, ``today``,
    ``tomorrow``, ``midnight``, ``noon``, ``elevenses``, ``fika``, ``teatime``,
    ``now[{+|-}count[seconds|minutes|hours|days|weeks]]`` (default seconds) and
    ``uts<epoch>``. A time without a date means the next such time (or today
    when ``past``, as sacct asks); a date without a year the next such date (or
    the most recent one when ``past``).

    Raises:
        InvalidValue: ``Invalid time specification (pos=3): 12x``.
    """
    try:
        return _parse_time(text, now, past)
    except _Bad as bad:
        raise InvalidValue(f"Invalid time specification (pos={bad.pos}): {text}") from None


def _parse_time(s: str, now: float, past: bool) -> float:
    if s[:3].lower() == "uts":
        if not re.fullmatch(r"[+-]?\d+", s[3:]) or int(s[3:]) < 1_000_000:
            raise _Bad(0)
        return float(int(s[3:]))
    now_tm = time.localtime(now)
    hour = minute = -1
    second = 0
    month = mday = year = -1  # month 1-12, year 4 digits
    pos = 0
    while pos < len(s) and s[pos] != "\n":
        c = s[pos]
        low = s[pos:].lower()
        if c in " \t-T":
            pos += 1
            continue
        if low.startswith("today"):
            year, month, mday = now_tm.tm_year, now_tm.tm_mon, now_tm.tm_mday
            pos += 5
            continue
        if low.startswith("tomorrow"):
            later = time.localtime(now + 86400)
            year, month, mday = later.tm_year, later.tm_mon, later.tm_mday
            pos += 8
            continue
        named = next(((n, h) for n, h in _NAMED_TIMES if low.startswith(n)), None)
        if named:
            hour, minute, second = named[1], 0, 0
            pos += len(named[0])
            continue
        if low.startswith("now"):
            delta = 0
            i = pos + 3
            while True:
                ci = _ch(s, i)
                if ci in ("+", "-"):
                    pos, delta = _get_delta(s, i)
                    if ci == "-":
                        delta = -delta
                    break
                if ci in (" ", "\t"):
                    i += 1
                    continue
                if ci in ("", "\n"):
                    pos = i - 1
                    break
                raise _Bad(i)
            later = time.localtime(now + delta)
            year, month, mday = later.tm_year, later.tm_mon, later.tm_mday
            hour, minute, second = later.tm_hour, later.tm_min, later.tm_sec
            pos += 1
            continue
        if not _isdigit(c):
            raise _Bad(pos)
        if _ch(s, pos + 1) == ":" or _ch(s, pos + 2) == ":":
            pos, hour, minute, second = _get_time(s, pos)
        else:
            pos, month, mday, got_year = _get_date(s, pos)
            year = got_year if got_year is not None else -1
        pos += 1

    if hour == -1 and month == -1:
        raise _Bad(pos)  # SLURM silently returns time 0 here; refuse instead
    if hour == -1:  # a date without a time means 00:00
        hour, minute = 0, 0
    elif month == -1:  # a time without a date means the soonest such time
        if past or hour > now_tm.tm_hour or (hour == now_tm.tm_hour and minute > now_tm.tm_min):
            year, month, mday = now_tm.tm_year, now_tm.tm_mon, now_tm.tm_mday
        else:
            later = time.localtime(now + 86400)
            year, month, mday = later.tm_year, later.tm_mon, later.tm_mday
    if year == -1:
        cur = (now_tm.tm_mon, now_tm.tm_mday, now_tm.tm_hour, now_tm.tm_min)
        if past:
            year = now_tm.tm_year - 1 if month > now_tm.tm_mon else now_tm.tm_year
        elif (month, mday, hour, minute) > cur:
            year = now_tm.tm_year
        else:
            year = now_tm.tm_year + 1
    try:
        return time.mktime((year, month, mday, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        raise _Bad(pos) from None


def format_datetime(ts: float | None) -> str:
    """scontrol / sacct / squeue timestamp: ``2026-11-21T10:00:00`` in local time.

    None and 0 print ``Unknown``, as ``slurm_make_time_str`` does for 0 and
    INFINITE (sacct shows ``Unknown`` for the End of a running job).
    """
    if ts is None or ts == 0:
        return "Unknown"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))
