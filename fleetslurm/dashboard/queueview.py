"""The Queue page's view of squeue, kept between requests and brought up to
date by what changed (the controller's ``squeue_delta``), so that a page
costs the controller a few jobs' lines, not the whole queue's.

A view holds squeue's lines for one set of filters, in squeue's default
order, grouped by the job they belong to (an array by its own id: its
folded pending line and its started tasks). A delta names the jobs whose
rows changed since the view's last ``seq`` and brings their lines: they
replace that job's lines (none: it left the view). A running job's TIME is
the one thing that moves with the clock: each such line keeps ``since``
(when its TIME was 0:00), and its TIME is worked out from it when shown,
here and in the page; a running job's time passing is no change.

Pure: no I/O, no clock (``now`` is a parameter); :mod:`.data` asks the
controller and feeds the answers in.
"""

from __future__ import annotations

import itertools
import re
import threading
from typing import Optional

from ..slurm.units import format_squeue_time, parse_squeue_time as secs_of

__all__ = ["SHOWN", "HIDDEN", "FIELDS", "SEP", "END", "QueueView", "ticks", "secs_of",
           "natural", "shown_time"]

#: squeue letters the Queue page shows (header, letter); %U (uid) decides
#: whether the viewer's action buttons are offered on a row
SHOWN = (("JOBID", "i"), ("PARTITION", "P"), ("NAME", "j"), ("USER", "u"),
         ("STATE", "T"), ("TIME", "M"), ("TIME_LIMIT", "l"), ("NODES", "D"),
         ("NODELIST(REASON)", "R"), ("UID", "U"))
#: squeue letters the view keeps and does not show: the job a line belongs to
#: (%F: an array's own id), and squeue's default sort keys (%P, %t, -%Q, -%A)
HIDDEN = (("_job", "F"), ("_id", "A"), ("_prio", "Q"), ("_st", "t"))
FIELDS = SHOWN + HIDDEN
SEP, END = "\x1f", "\x1e"  # field and record separators no job name holds in practice
#: the states whose TIME moves with the clock (fmt_common.run_time; a
#: suspended job's stands still)
_TICKING = frozenset({"RUNNING", "COMPLETING"})
#: every view's revisions from one counter: a view made again never repeats one
_revisions = itertools.count(1)


def ticks(row: dict) -> bool:
    """Whether this line's TIME moves with the clock."""
    return row.get("since") is not None


def natural(text: str) -> list:
    """A sort key where 9 comes before 10 (ids, counts as text)."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p)
            for p in re.split(r"(\d+)", text) if p]


def _parse(text: str, now: float) -> list[dict]:
    """squeue's lines in FIELDS' format, rendered as of ``now``, as rows."""
    rows = []
    # each line ends with END and the newline: a name holding a newline stays in its row
    for line in text.split(END + "\n")[:-1]:
        cells = line.split(SEP)
        if len(cells) != len(FIELDS):
            continue
        row = dict(zip((h for h, _ in FIELDS), cells))
        if row["STATE"] in _TICKING:
            try:
                row["since"] = now - secs_of(row["TIME"])
            except ValueError:
                pass  # not a time: shown as it came
        # squeue's default order P,t,-p (squeue_fmt.default_sort_key)
        row["_key"] = (row["PARTITION"], row["_st"], -int(row["_prio"] or 0),
                       -int(row["_id"] or 0))
        rows.append(row)
    return rows


class QueueView:
    """squeue's lines for one set of filters, as of the change log's ``seq``.
    ``lock`` is held by whoever brings it up to date (requests run in threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: the last answer's change-log seq, priorities' version, controller start
        self.seq: Optional[int] = None
        self.version: Optional[int] = None
        self.epoch: Optional[float] = None
        #: when the last answer came (a view of finished jobs ages by the clock)
        self.at = float("-inf")
        #: a new one at every change of the lines (the page's streams push then)
        self.rev = next(_revisions)
        self._jobs: dict[str, list[dict]] = {}
        self._ordered: Optional[list[dict]] = None
        self._sorted: dict[str, list[dict]] = {}

    def apply(self, reply: dict, now: float) -> None:
        """Take the controller's ``squeue_delta`` answer, asked as of ``now``."""
        rows = _parse(reply.get("text") or "", now)
        if reply.get("full"):
            self._jobs = {}
        for job in reply.get("ids") or ():
            self._jobs.pop(str(job), None)
        for row in rows:
            self._jobs.setdefault(row["_job"], []).append(row)
        if reply.get("full") or reply.get("ids"):
            self.rev = next(_revisions)
            self._ordered, self._sorted = None, {}
        self.seq, self.version, self.epoch = reply["seq"], reply["version"], reply.get("epoch")
        self.at = now

    def since(self) -> dict:
        """What the next ``squeue_delta`` needs to answer with what changed
        since this view's last answer (empty: none yet, ask for everything)."""
        if self.seq is None:
            return {}
        return {"seq": self.seq, "version": self.version, "epoch": self.epoch}

    def rows(self, sort: str = "", now: float = 0.0) -> list[dict]:
        """The lines in squeue's order, or by a column (``-`` first: descending;
        squeue's order breaks ties). TIME sorts by its seconds as of ``now``."""
        if self._ordered is None:
            # Python's sort is stable: lines that tie keep squeue's own order
            self._ordered = sorted((r for rows in self._jobs.values() for r in rows),
                                   key=lambda r: r["_key"])
        if not sort:
            return self._ordered
        column, descending = sort.lstrip("-"), sort.startswith("-")
        if column == "TIME":
            return sorted(self._ordered, key=lambda r: _secs_now(r, now), reverse=descending)
        hit = self._sorted.get(sort)
        if hit is None:
            hit = self._sorted[sort] = sorted(self._ordered, key=lambda r: natural(r[column]),
                                              reverse=descending)
        return hit

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._jobs.values())


def _secs_now(row: dict, now: float) -> int:
    if ticks(row):
        return max(0, int(now - row["since"]))
    try:
        return secs_of(row["TIME"])
    except ValueError:
        return -1


def shown_time(row: dict, now: float) -> str:
    """The TIME cell as of ``now`` (squeue's text)."""
    return format_squeue_time(int(now - row["since"])) if ticks(row) else row["TIME"]
