"""squeue's fast path (cli/fast.py) prints what the full path prints: the
same stdout, stderr and exit status for the calls it takes, and it leaves
every other call to the full path."""

from __future__ import annotations

import getpass

import pytest

from fleetslurm.cli import fast
from fleetslurm.slurm import squeue_fmt


def test_the_fast_path_has_squeues_default_format():
    assert fast.DEFAULT_FORMAT == squeue_fmt.DEFAULT_FORMAT
    assert fast.LETTERS == {k for k in squeue_fmt._FIELDS if len(k) == 1}


@pytest.mark.parametrize("fmt", [
    "%i", "%.18i %.9P %.8j", "%i|%T|%j", "x%iy", "%%i", "%", "%%", "%5", "%.", "%.5",
    "%-5i", "%5.i", "%i %", "%i%5", "%i %Z %q", "%all", "%ALL", "no fields", "%é", "%.10é",
    "%i%%%j", "%..5i", "%05i",
])
def test_a_clean_format_is_one_squeue_warns_nothing_about(fmt):
    """The fast path skips the format tables only for a format that draws no
    warning; one the check cannot vouch for goes through them."""
    clean = fast._clean(fmt)
    warnings = squeue_fmt.format_warnings(squeue_fmt.parse_format(fmt))
    assert not (clean and warnings), (fmt, warnings)
    if fmt in ("%i", "%.18i %.9P %.8j", "%i|%T|%j", "x%iy", "%i %Z %q", "%all", "%05i"):
        assert clean  # what client libraries pass: the fast way


@pytest.mark.parametrize("argv", [
    [], ["-h"], ["--noheader"], ["--me"], ["-r"], ["-u", "root"], ["--user=x"],
    ["--users=x,y"], ["-t", "PD"], ["--states=R"], ["-o", "%i"], ["--format=%i %T"],
    ["-j", "5"], ["--jobs=5,6"], ["-h", "-u", "x", "-t", "PD", "-o", "%.5i %j"],
    ["-o", "-h"],  # -o takes the next word, whatever it is (getopt)
])
def test_plain_command_lines_take_the_fast_path(argv):
    assert fast._parse(argv) is not None


@pytest.mark.parametrize("argv", [
    ["-j"], ["-j", "-h"], ["--jobs", "5"], ["-uroot"], ["-l"], ["--us=x"], ["-u"],
    ["-hr"], ["5"], ["--format="], ["-O", "JobID"], ["-i", "5"], ["--json"], ["-p", "debug"],
])
def test_other_command_lines_take_the_full_path(argv):
    assert fast._parse(argv) is None


def test_squeue_variables_take_the_full_path(monkeypatch):
    monkeypatch.setenv("SQUEUE_FORMAT", "%i")
    assert fast.squeue([]) is None


def test_both_paths_print_the_same(fleet):
    me = getpass.getuser()
    held = [fleet.sbatch("-H", "-J", f"held{i}", "-o", "/dev/null", "--wrap", "true")
            for i in range(3)]
    done = fleet.sbatch("-o", "/dev/null", "--wrap", "true")
    fleet.wait(done)
    array = fleet.sbatch("-H", "--array=0-3", "-o", "/dev/null", "--wrap", "true")
    cases = [
        [], ["-h"], ["--me"], ["-r"], ["-u", me], [f"--user={me}"], ["-u", "nosuchuser"],
        ["-j", str(held[0])], [f"--jobs={held[0]},{held[1]}"], ["-j", "999999"],
        ["-j", "abc"], ["-j", f"{array}_2"], ["-t", "PD"], ["-t", "all"], ["-t", "bogus"],
        ["-t", "CD"], ["-o", "%i %T %j"], ["-o", "%i %Z %q"], ["-o", "%.5i|%8j|%r"],
        ["--format=%i"], ["-h", "-o", "%i", "-u", me, "-t", "PD,R"], ["-r", "-o", "%i %K"],
        ["-o", "-h"], ["--me", "-h", "-t", "PD"],
    ]
    for argv in cases:
        assert fast._parse(argv) is not None, argv
        quick = fleet.run("squeue", *argv)
        full = fleet.run("squeue", *argv, env={"FLEETSLURM_NO_FAST_PATH": "1"})
        assert (quick.returncode, quick.stdout, quick.stderr) == \
            (full.returncode, full.stdout, full.stderr), argv
    # the listing itself (not only agreement): the held jobs are there
    listing = fleet.run("squeue", "-h", "-o", "%i %T", check=True).stdout
    assert all(f"{j} PENDING" in listing for j in held)
