"""Cutting SLURM's output into comparable pieces, and normalising the values
that must differ between two systems (job ids, times, paths, pids).

"Shape" here means: the same header, the same columns at the same widths and
alignment, the same keys in the same order on the same lines, and values
that are equal once ids, times and paths are replaced by placeholders. The
format parser below is written from squeue(1)/sinfo(1) independently of
fleetslurm's, so that a parsing bug on either side shows up as a difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

__all__ = ["Ids", "Item", "parse_format", "cells", "table", "parse_show", "norm_path",
           "norm_time", "norm_duration", "TS", "DURATION"]

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
DURATION = re.compile(r"(\d+-)?(\d+:)?\d+:\d\d")
_NUMBER = re.compile(r"\d+(\.\d+)?")


@dataclass
class Ids:
    """One side's job ids and the tokens they stand for (``J1``, ``J2``...),
    given in submission order so both sides' tokens correspond."""

    tokens: dict[int, str] = field(default_factory=dict)

    def add(self, job: int, token: str) -> None:
        # sub() finds ids as numbers of 3+ digits: a shorter one would stay
        # in paths unreplaced and every comparison holding it would fail
        if job < 100:
            raise AssertionError(f"job id {job} has fewer than 3 digits: the differential "
                                 "suite needs ids of 100 and up (FirstJobId=1000 in the "
                                 "oracle's slurm.conf)")
        self.tokens[job] = token

    def token(self, text: str) -> str:
        """``123`` -> ``J1``; ``123_4`` -> ``J1_4``; ``123_[1-3%2]`` -> ``J1_[1-3%2]``;
        unknown numbers -> ``<id>``."""
        m = re.fullmatch(r"(\d+)(.*)", text)
        if not m:
            return text
        return self.tokens.get(int(m.group(1)), "<id>") + m.group(2)

    def sub(self, text: str) -> str:
        """Replace every known id appearing as a whole number inside ``text``."""
        def repl(m: "re.Match[str]") -> str:
            return self.tokens.get(int(m.group(0)), m.group(0))
        # whole numbers of 3+ digits that are known ids (also in "12.0", %J)
        return re.sub(r"(?<!\d)\d{3,}(?!\d)", repl, text)


def norm_time(text: str) -> str:
    return TS.sub("<TS>", text)


def norm_duration(text: str) -> str:
    return "<dur>" if DURATION.fullmatch(text) else text


def norm_path(text: str, work: str, ids: Ids) -> str:
    """A path with the side's working directory and job ids replaced."""
    return ids.sub(text.replace(work, "<WORK>"))


# ---------------------------------------------------------------- % formats

@dataclass(frozen=True)
class Item:
    letter: Optional[str]
    width: int = 0
    right: bool = False
    suffix: str = ""


def parse_format(fmt: str) -> list[Item]:
    """squeue/sinfo ``-o``: literal text up to the first ``%``, then tokens
    ``[.][width]letter`` each followed by literal text (runs of ``%``
    separate tokens)."""
    items: list[Item] = []
    pos = fmt.find("%")
    if pos != 0:
        items.append(Item(None, suffix=fmt if pos < 0 else fmt[:pos]))
        if pos < 0:
            return items
    for token in filter(None, fmt[pos:].split("%")):
        m = re.match(r"(\.?)(\d*)(.)(.*)", token, re.S)
        assert m, token
        items.append(Item(m.group(3), int(m.group(2) or 0), bool(m.group(1)), m.group(4)))
    return items


def cells(fmt: str, line: str) -> list[tuple[str, str, str]]:
    """Cut one output line by ``fmt``: ``[(letter, alignment, text)]``.

    Alignment is ``R`` (padded on the left), ``L`` (on the right) or ``-``
    (filled, or natural width). A value wider than its column (fields that
    are not cut) runs on to the literal text that follows it. Text that does
    not follow the format comes back as letter ``?``.
    """
    items = parse_format(fmt)
    last = max((i for i, it in enumerate(items) if it.letter), default=-1)
    out = []
    pos = 0
    for index, it in enumerate(items):
        if it.letter is not None:
            if index == last and not it.suffix:
                end = len(line)
            elif it.width:
                end = pos + it.width
                if it.suffix and not line.startswith(it.suffix, end):
                    found = line.find(it.suffix, end)
                    end = found if found != -1 else len(line)
            else:
                found = line.find(it.suffix, pos) if it.suffix else -1
                end = found if found != -1 else len(line)
            raw = line[pos:end]
            align = "-"
            if it.width and raw.startswith(" "):
                align = "R"
            elif it.width and raw.endswith(" "):
                align = "L"
            out.append((it.letter, align, raw.strip(" ")))
            pos = end
        if not line.startswith(it.suffix, pos):
            out.append(("?", "-", line[pos:]))
            return out
        pos += len(it.suffix)
    if pos != len(line):
        out.append(("?", "-", line[pos:]))
    return out


Norm = Callable[[str, str, dict], str]


def table(fmt: str, text: str, norm: Norm, *, header: bool = True) -> list:
    """A whole squeue/sinfo output as comparable rows: the header line as
    is, then for each row ``[(letter, alignment, normalised value)]``.
    ``norm(letter, value, row)`` gets the row's raw values by letter."""
    lines = text.split("\n")
    assert lines[-1] == "", f"output does not end with a newline: {text!r}"
    lines = lines[:-1]
    out: list = []
    if header:
        out.append(lines.pop(0) if lines else None)
    for line in lines:
        row = cells(fmt, line)
        raw = {letter: value for letter, _, value in row}
        out.append([(letter, align, norm(letter, value, raw)) for letter, align, value in row])
    return out


# ---------------------------------------------------------------- scontrol

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_/:()]*=")


def parse_show(text: str) -> list[list[list[tuple[str, str]]]]:
    """``scontrol show`` records -> records of lines of ``(key, value)``.

    A value may contain spaces (``OS=Linux 6.1 #1 SMP``): words that do not
    start a ``Key=`` belong to the value before them. Records are separated
    by blank lines; a line of only spaces is kept as an empty line (SLURM
    ends a job record with one).
    """
    records: list = []
    current: list = []
    for line in text.split("\n"):
        if line == "":
            if current:
                records.append(current)
                current = []
            continue
        pairs: list[tuple[str, str]] = []
        for word in line.strip(" ").split(" ") if line.strip() else []:
            m = _KEY.match(word)
            # OS= and a node's Reason= (first on its line) run to the line's end
            last = pairs[-1][0] if pairs else ""
            glued = last == "OS" or (last == "Reason" and len(pairs) == 1)
            if m and not glued:
                pairs.append((word[:m.end() - 1], word[m.end():]))
            elif pairs:
                key, value = pairs[-1]
                pairs[-1] = (key, f"{value} {word}")
            else:
                pairs.append(("", word))
        current.append(pairs)
    if current:
        records.append(current)
    return records


def keys(record: Iterable[Iterable[tuple[str, str]]]) -> list[list[str]]:
    """The keys of a parsed record, line by line."""
    return [[k for k, _ in line] for line in record]
