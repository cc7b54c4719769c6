"""squeue judged by real SLURM: the default format, ``-h``, ``-t`` (long,
short and lower-case names, ``all``), ``-r``, ``-n``, ``-o`` with every field
letter SLURM_COMPAT.md lists (with and without widths), ``%all`` and literal
text, over the same jobs: running, pending for each reason, held, a pending
array (``A_[0-9%4]``) and finished ones in every state."""

from __future__ import annotations

import re

import pytest

from .batch import SQUEUE_O_AS, Snap
from .rules import squeue_value
from .shape import cells, table

DEFAULT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
#: squeue's %all: every letter a-z then A-Z, separated by "|" (squeue(1))
ALL = "|".join("%" + chr(c) for c in [*range(97, 123), *range(65, 91)])

LONG = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"
LIVE_VIEWS = ["squeue", "squeue_h", "squeue_pd", "squeue_pd_r", "squeue_r_lower", "squeue_all",
              "squeue_array", "squeue_fields", "squeue_fields_natural", "squeue_allfields",
              "squeue_literal", "squeue_name", "squeue_sortkeys", "squeue_long", "squeue_O"]
#: -l's first line: the time, as ctime(3) without the newline
DATE_LINE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}")


def _format(args: list[str]) -> tuple[str, bool]:
    if "-O" in args:
        return SQUEUE_O_AS, "-h" not in args
    fmt = args[args.index("-o") + 1] if "-o" in args else LONG if "-l" in args else DEFAULT
    return (ALL if fmt == "%all" else fmt), "-h" not in args


def _rows(snap: Snap, key: str, text: str) -> list:
    args = snap.views[key][1]
    fmt, header = _format(args)
    if "-l" in args:
        date, _, text = text.partition("\n")
        assert DATE_LINE.fullmatch(date), date
    return table(fmt, text, lambda letter, value, row: squeue_value(snap, letter, value, row),
                 header=header)


def _compare(batch, view: str, key: str) -> None:
    s, f = batch.pair()
    want, got = getattr(s, view)[key], getattr(f, view)[key]
    assert want.rc == 0 and want.err == "", want
    assert (got.rc, got.err) == (0, ""), got
    want_rows, got_rows = _rows(s, key, want.out), _rows(f, key, got.out)
    _, header = _format(s.views[key][1])
    if header:
        assert got_rows.pop(0) == want_rows.pop(0), "header"
    # rows SLURM cannot order (equal partition, state and priority) come in
    # its controller's internal order: compare the rows as a multiset here and
    # the order in test_sort_order
    got_rows, want_rows = sorted(got_rows, key=repr), sorted(want_rows, key=repr)
    assert got_rows == want_rows, (
        [r for r in got_rows if r not in want_rows], [r for r in want_rows if r not in got_rows])


@pytest.mark.parametrize("key", LIVE_VIEWS)
def test_live(batch, key):
    _compare(batch, "live", key)


def test_after_cancel(batch):
    _compare(batch, "idle", "squeue_all")


def _keys(snap: Snap) -> list[tuple]:
    out = []
    for line in snap.live["squeue_sortkeys"].out.splitlines():
        jid, part, state, prio = line.split("|")
        if jid != "JOBID":
            out.append((jid, part, state, int(prio)))
    return out


@pytest.mark.parametrize("side", ["slurm", "fleet"])
def test_sort_order(batch, side):
    """squeue's default sort is ``P,t,-p``: partition, then the short state
    name as text (CD < F < PD < R < TO), then priority, highest first; every
    format lists the jobs in that same order."""
    snap = getattr(batch, side)
    keys = _keys(snap)
    order = [(part, state, -prio) for _, part, state, prio in keys]
    assert order == sorted(order), keys
    ids = [jid for jid, *_ in keys]
    shown = [cells(DEFAULT, line)[0][2] for line in snap.live["squeue_all"].out.splitlines()[1:]]
    assert shown == ids


def test_priorities(batch):
    """Held jobs have priority 0; the others a positive one that falls with
    each submission (priority/basic), so older jobs sort first."""
    for snap in batch.pair():
        prio = {jid: p for jid, _, _, p in _keys(snap)}
        held = [prio[str(snap.ids[h])] for h in ("h1", "h3", "h4")]
        assert held == [0, 0, 0], (snap.side.label, prio)
        order = [prio[str(snap.ids[label])] for label in ("plain", "rq", "tmo", "res", "mpc")]
        assert all(p > 0 for p in order) and order == sorted(order, reverse=True), order
