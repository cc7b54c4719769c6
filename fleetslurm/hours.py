"""A workstation's hours: when a machine may take jobs (the config's
``"available": ["Mon-Fri 19:00-07:00", "Sat-Sun"]``). Pure: a window is
judged at a time given as an argument (the controller's ``step(now)``), in
the controller's local time zone.

A window is ``DAYS [HH:MM-HH:MM]``: ``DAYS`` is a day (``Mon``), a range
(``Mon-Fri``, wrapping: ``Fri-Mon``) or a comma list of those (``Mon,Wed``),
or ``*`` for every day; the hours, when given, start on each of those days
and may run past midnight (``19:00-07:00`` on ``Fri`` ends Saturday 07:00),
as HTCondor's desktop policies read them. Without hours the whole day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import InvalidValue

__all__ = ["Window", "parse_window", "parse_windows", "within", "DAY_NAMES"]

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = {d.lower(): i for i, d in enumerate(DAY_NAMES)}
_FORM = '"DAYS" or "DAYS HH:MM-HH:MM" (e.g. "Mon-Fri 19:00-07:00", "Sat-Sun", "* 22:00-06:00")'


@dataclass(frozen=True)
class Window:
    """Days (0 = Monday) on which the window starts, and its start and end in
    minutes after midnight (``end <= start``: it ends the next day; the whole
    day is 0-1440)."""

    days: frozenset[int]
    start: int = 0
    end: int = 1440
    text: str = ""

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether local ``weekday`` (0 = Monday) at ``minute`` after midnight is inside."""
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # past midnight: the evening of a listed day, or the morning after one
        return (weekday in self.days and minute >= self.start) or \
            ((weekday - 1) % 7 in self.days and minute < self.end)


def _days(text: str, whole: str) -> frozenset[int]:
    if text == "*":
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = _DAY[lo.strip().lower()]
            b = _DAY[hi.strip().lower()] if sep else a
        except KeyError:
            raise InvalidValue(f"invalid window {whole!r}: unknown day in {part!r}; days are "
                               f"{', '.join(DAY_NAMES)}; use {_FORM}") from None
        i = a
        while True:
            out.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return frozenset(out)


def _minute(text: str, whole: str) -> int:
    hh, sep, mm = text.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 1 <= len(hh) <= 2):
        raise InvalidValue(f"invalid window {whole!r}: {text!r} is not HH:MM; use {_FORM}")
    h, m = int(hh), int(mm)
    if h == 24 and m == 0:
        return 1440
    if h > 23 or m > 59:
        raise InvalidValue(f"invalid window {whole!r}: {text!r} is not a time of day")
    return h * 60 + m


def parse_window(text: str) -> Window:
    """One window; raises :class:`InvalidValue` naming the text and the form."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue(f"invalid window {text!r}: use {_FORM}")
    fields = text.split()
    if len(fields) > 2:
        raise InvalidValue(f"invalid window {text!r}: use {_FORM}")
    if len(fields) == 1 and ":" in fields[0]:
        fields = ["*", fields[0]]  # "22:00-06:00": every day
    days = _days(fields[0], text)
    if len(fields) == 1:
        return Window(days, 0, 1440, text)
    lo, sep, hi = fields[1].partition("-")
    if not sep:
        raise InvalidValue(f"invalid window {text!r}: hours are HH:MM-HH:MM; use {_FORM}")
    start, end = _minute(lo, text), _minute(hi, text)
    if start == end:
        raise InvalidValue(f"invalid window {text!r}: it starts and ends at {lo}")
    return Window(days, start, end % 1440 if start else end, text)


def parse_windows(texts: Iterable[str]) -> tuple[Window, ...]:
    """Every window of a list (raises on the first malformed one)."""
    return tuple(parse_window(t) for t in texts)


def within(windows: Sequence[Window], now: float) -> bool:
    """Whether local time ``now`` (epoch seconds) is inside one of ``windows``;
    no windows at all: always."""
    if not windows:
        return True
    t = time.localtime(now)
    minute = t.tm_hour * 60 + t.tm_min
    return any(w.contains(t.tm_wday, minute) for w in windows)
