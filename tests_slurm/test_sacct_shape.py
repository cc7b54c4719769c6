"""sacct's output shape, judged by SLURM's sacct(1) man page (the oracle has
no slurmdbd, so its sacct only says "Slurm accounting storage is disabled")
and by the field widths fleetslurm's table gives: every field the man page
lists is accepted, ``%N`` right-aligns and ``%-N`` left-aligns to N, ``-P``
and ``-p`` delimit with ``|``, fixed-width cells are followed by one space
and underlined by dashes, states are the man page's state names."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from fleetslurm.slurm.sacct_fmt import parse_fields

MAN = Path("/usr/share/man/man1/sacct.1.gz")


@pytest.fixture(scope="module")
def man() -> str:
    if not MAN.exists():
        pytest.skip("sacct(1) is not installed (Debian's slurm-client installs it)")
    return gzip.open(MAN, "rt").read()


def _section(man: str, title: str) -> str:
    text = man[man.index(title):]
    return text[:text.index("\n.SH")]


def _field_names(man: str) -> list[str]:
    sec = _section(man, '.SS "Job Accounting Fields"')
    return [n for n in re.findall(r"^\.TP[^\n]*\n\\f[3B]([A-Za-z]+)\\f[PR]\s*$", sec, re.M)
            if n != "ALL"]


def _state_names(man: str) -> set[str]:
    sec = _section(man, '.SH "JOB STATE CODES"')
    return set(re.findall(r"^\\f3[A-Z]+ +([A-Z_]+)\\f[PR]", sec, re.M))


def test_the_man_page_lists_sacct_fields(man):
    assert len(_field_names(man)) > 100


def test_every_man_page_field_is_accepted(batch, man):
    f = batch.fleet
    names = _field_names(man)
    res = f.side.run("sacct", "-j", f.ids_of("plain"), "-P", "-o", ",".join(names))
    assert res.rc == 0 and res.err == "", res
    header = res.out.splitlines()[0].split("|")
    assert [h.lower() for h in header] == [n.lower() for n in names]


def test_fixed_width_cells(batch):
    """Each cell is as wide as the field's width, then one space; the dash
    line under the header has the same widths."""
    f = batch.fleet
    spec = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode,Elapsed,NodeList"
    widths = [abs(fld.width) for fld in parse_fields(spec)]
    res = f.side.run("sacct", "-j", f.ids_of("plain", "exit3", "tmo"), "-o", spec)
    assert res.rc == 0 and res.err == "", res
    lines = res.out.splitlines()
    assert lines[1] == " ".join("-" * w for w in widths) + " "
    for line in lines:
        assert len(line) == sum(w + 1 for w in widths), line


def test_percent_width(batch):
    """man sacct: format=name%30 prints 30 characters right justified, %-30 left."""
    f = batch.fleet
    right = f.side.run("sacct", "-n", "-X", "-j", f.ids_of("plain"), "-o", "jobname%30").out
    left = f.side.run("sacct", "-n", "-X", "-j", f.ids_of("plain"), "-o", "jobname%-30").out
    assert right == " " * 24 + "env.sh \n"
    assert left == "env.sh" + " " * 24 + " \n"


def test_delimiters(batch):
    """-p ends every field with '|', -P puts '|' only between fields."""
    f = batch.fleet
    args = ["-n", "-X", "-j", f.ids_of("exit3"), "-o", "JobName,State,ExitCode"]
    assert f.side.run("sacct", "-p", *args).out == "wrap|FAILED|3:0|\n"
    assert f.side.run("sacct", "-P", *args).out == "wrap|FAILED|3:0\n"


def test_states_are_slurm_state_names(batch, man):
    f = batch.fleet
    names = _state_names(man)
    assert {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "PENDING"} <= names
    res = f.side.run("sacct", "-P", "-n", "-o", "State,ExitCode", "-j", f.ids_of(*f.ids))
    for line in res.out.splitlines():
        state, code = line.split("|")
        assert state.split(" by ")[0] in names, line
        assert re.fullmatch(r"\d+:\d+", code), line
