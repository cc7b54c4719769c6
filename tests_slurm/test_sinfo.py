"""sinfo judged by real SLURM: default, ``-N``, ``-h``, ``-p``, ``-o`` with the
letters SLURM_COMPAT.md lists (fixed widths and natural), ``%all``; while a
job runs (node ``mix``) and once the node is idle."""

from __future__ import annotations

import pytest

from .batch import SINFO_O_AS, Snap
from .rules import sinfo_value
from .shape import table
from .test_squeue import DATE_LINE

DEFAULT = "%9P %.5a %.10l %.6D %.6t %N"
DEFAULT_NODE = "%9N %.6D %9P %6t"
LONG = "%9P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"
LONG_NODE = "%9N %.6D %9P %.11T %4c %.8z %.6m %.8d %.6w %.8f %20E"
SUMMARIZE = "%9P %.5a %.10l %.16F %N"
REASONS = "%20E %9u %19H %N"
LONG_REASONS = "%20E %12U %19H %6t %N"
VIEWS = ["sinfo", "sinfo_N", "sinfo_h", "sinfo_p", "sinfo_fields", "sinfo_N_fields",
         "sinfo_allfields", "sinfo_s", "sinfo_l", "sinfo_N_l", "sinfo_R", "sinfo_R_l",
         "sinfo_O"]


def _builtin(args: list[str]) -> str:
    """The format sinfo picks for these options (its opts.c)."""
    long = "-l" in args
    if "-O" in args:
        return SINFO_O_AS
    if "-s" in args:
        return SUMMARIZE
    if "-N" in args:
        return LONG_NODE if long else DEFAULT_NODE
    if "-R" in args:
        return LONG_REASONS if long else REASONS
    return LONG if long else DEFAULT


def _rows(snap: Snap, key: str, text: str, varies: bool) -> list:
    args = snap.views[key][1]
    header = "-h" not in args
    if "-l" in args:
        date, _, text = text.partition("\n")
        assert DATE_LINE.fullmatch(date), date
    if "%all" in args:
        # %all leaves out the letters sinfo does not know: cut on "|" and
        # name the columns by the header
        lines = text.splitlines()
        names = [n.strip() for n in lines[0].split("|")]
        letter = {"CPU_LOAD": "O", "FREE_MEM": "e", "STATE": "t"}
        rows = [[sinfo_value(letter.get(n, ""), c.strip()) for n, c in zip(names, line.split("|"))]
                for line in lines[1:]]
        return [lines[0], *rows]
    fmt = args[args.index("-o") + 1] if "-o" in args else _builtin(args)

    def norm(letter: str, value: str, row: dict) -> str:
        if varies and letter in ("t", "T", "C", "A", "F"):
            return "<varies>"
        return sinfo_value(letter, value)

    return table(fmt, text, norm, header=header)


@pytest.mark.parametrize("view", ["live", "idle"])
@pytest.mark.parametrize("key", VIEWS)
def test_sinfo(batch, view, key):
    s, f = batch.pair()
    want, got = getattr(s, view)[key], getattr(f, view)[key]
    assert want.rc == 0 and want.err == "", want
    assert (got.rc, got.err) == (0, ""), got
    # others' jobs on real SLURM change its node state: then the state is
    # compared only where nothing else ran
    varies = not batch.exclusive(view)
    assert _rows(f, key, got.out, varies) == _rows(s, key, want.out, varies)
