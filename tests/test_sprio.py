"""sprio: SLURM 22.05's formats (src/sprio/sprio.c, print.c) over a real controller.

The real SLURM here runs priority/basic (no slurmdbd), where sprio only says
it needs priority/multifactor; the headers and widths below are from
SLURM 22.05's sprio.c and print.c (and man sprio here).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Iterator

import pytest
from conftest import Fleet, _teardown, local_config

from fleetslurm.cli.sprio_cmd import NOT_MULTIFACTOR
from fleetslurm.slurm.sprio_fmt import LONG_FORMAT, default_format, render

JOB = {"job_id": 12, "user": "alice", "account": "alice", "partition": "debug", "qos": "normal",
       "age": 0.25, "fairshare": 0.5, "job_size": 0.125, "partition_factor": 1.0,
       "qos_factor": 0.0, "nice": 0, "priority": 5350}
WEIGHTS = {"age": 1000, "fairshare": 10000, "jobsize": 0, "partition": 100, "qos": 0}


def test_default_format_shows_the_factors_with_a_weight():
    assert default_format(WEIGHTS, users=False) == "%.15i %9r %.10Y %.10S %.10A %.10F %.10P"
    assert default_format(WEIGHTS, users=True).startswith("%.15i %9r %.8u %.10Y")
    text, errors = render(default_format(WEIGHTS, False), [JOB], WEIGHTS)
    assert errors == []
    assert text.splitlines() == [
        "          JOBID PARTITION   PRIORITY       SITE        AGE  FAIRSHARE  PARTITION",
        "             12 debug           5350          0        250       5000        100"]


def test_long_and_weights_lines():
    text, _ = render(LONG_FORMAT, [JOB], WEIGHTS)
    head, row = text.splitlines()
    assert head == ("          JOBID PARTITION     USER   PRIORITY       SITE        AGE      ASSOC"
                    "  FAIRSHARE    JOBSIZE  PARTITION        QOS        NICE                 TRES")
    assert row.split() == ["12", "debug", "alice", "5350", "0", "250", "0", "5000", "0", "100",
                           "0", "0"]
    text, _ = render(default_format(WEIGHTS, False), [JOB], WEIGHTS, weights_line=True)
    assert text.splitlines()[1].split() == ["Weights", "1", "1000", "10000", "100"]


def test_custom_format_normalised_values_and_a_bad_field():
    text, errors = render("%i|%u|%a|%f|%y|%Z", [JOB], WEIGHTS, header=False)
    assert text == "12|alice|0.2500000|0.5000000|0.00000124564394|\n"
    assert errors == ["Invalid job format specification: Z"]


@pytest.fixture
def fs_fleet(tmp_path) -> Iterator[Fleet]:
    cfg = local_config(priority={"PriorityWeightFairshare": 10000, "PriorityWeightAge": 1000,
                                 "PriorityCalcPeriod": 1})
    f = Fleet(tmp_path, cfg)
    yield f
    _teardown(f)


def test_sprio_over_a_controller(fs_fleet):
    f = fs_fleet
    held = [f.sbatch("--hold", "--wrap", "true")]
    waiting = [f.sbatch("--begin", "now+1hour", "--wrap", "true") for _ in range(2)]
    out = f.run("sprio", check=True).stdout.splitlines()
    assert out[0].split() == ["JOBID", "PARTITION", "PRIORITY", "SITE", "AGE", "FAIRSHARE"]
    rows = {int(line.split()[0]): line.split() for line in out[1:]}
    assert sorted(rows) == waiting  # held jobs (SLURM's priority 0) are not shown
    # nobody has used anything: every user ranks first (fair share 1.0 -> 10000)
    assert all(r[5] == "10000" and r[1] == "debug" for r in rows.values())
    # squeue's %Q and scontrol's Priority= show the same numbers; a held job's is 0
    q = f.run("squeue", "-h", "-o", "%i %Q", check=True).stdout.split()
    shown = dict(zip(map(int, q[0::2]), q[1::2]))
    assert shown == {**{j: rows[j][2] for j in waiting}, held[0]: "0"}
    show = f.run("scontrol", "show", "job", str(waiting[0]), check=True).stdout
    assert f"Priority={rows[waiting[0]][2]} " in show
    one = f.run("sprio", "-j", str(waiting[1]), "-o", "%i %u %f", "-h", check=True).stdout
    assert one.split()[0] == str(waiting[1]) and one.split()[2] == "1.0000000"
    assert f.run("sprio", "-u", "nosuchuser", "-h", check=True).stdout == ""
    weights = f.run("sprio", "-w", check=True).stdout.splitlines()
    assert weights[1].split() == ["Weights", "1", "1000", "10000"]
    bad = f.run("sprio", "-l", "-o", "%i")
    assert bad.returncode == 1 and bad.stderr == (
        "sprio: fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
        "Please remove one and retry.\n")
    f.run("scancel", *map(str, held + waiting), check=True)


def test_sprio_without_multifactor_says_what_slurms_says(fleet):
    proc = fleet.run("sprio")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", NOT_MULTIFACTOR)


@pytest.mark.skipif(shutil.which("sprio") is None, reason="no real SLURM sprio here")
def test_the_real_sprio_under_priority_basic_says_the_same():
    proc = subprocess.run(["sprio"], capture_output=True, text=True, timeout=30)
    if "priority/basic" not in proc.stderr:
        pytest.skip("the real SLURM here is not priority/basic")
    assert (proc.returncode, proc.stderr) == (1, NOT_MULTIFACTOR)


def test_sshare_shows_fair_tree_numbers_under_multifactor(fs_fleet):
    import time

    f = fs_fleet
    job = f.sbatch("--wrap", "sleep 2")
    f.wait(job)
    time.sleep(1.1)
    held = f.sbatch("--hold", "--wrap", "true")  # a submission redoes the ranking
    out = f.run("sshare", "-a", "-l", check=True).stdout.splitlines()
    head = out[0].split()
    assert head == ["Account", "User", "RawShares", "NormShares", "RawUsage", "NormUsage",
                    "EffectvUsage", "FairShare", "LevelFS", "GrpTRESMins", "TRESRunMins"]
    me = next(line for line in out[2:] if line.split()[:2] == ["root", "root"])
    cells = me.split()
    # 1 CPU for about 2 s, charged to the root user (the only user here: all shares its own)
    assert cells[2] == "1" and cells[3] == "1.000000" and int(cells[4]) >= 1
    assert cells[6] == "1.000000" and cells[7] == "1.000000"  # alone: it ranks first
    root = out[2].split()
    assert root[0] == "root" and int(root[1]) == int(cells[4])
    f.run("scancel", str(held), check=True)


@pytest.mark.skipif(shutil.which("sprio") is None, reason="no real SLURM sprio here")
@pytest.mark.parametrize("flag", ["--help", "--usage"])
def test_help_and_usage_match_the_real_sprio(fleet, flag):
    real = subprocess.run(["sprio", flag], capture_output=True, text=True, timeout=30)
    ours = fleet.run("sprio", flag)
    assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout)


@pytest.mark.skipif(shutil.which("sprio") is None, reason="no real SLURM sprio here")
@pytest.mark.parametrize("args", [["-x"], ["--bogus"], ["-l", "-o", "%i"], ["-u"]])
def test_bad_command_lines_get_the_real_sprios_words(fleet, args):
    real = subprocess.run(["sprio", *args], capture_output=True, text=True, timeout=30)
    ours = fleet.run("sprio", *args)
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)


def test_scontrol_show_config_lists_the_priority_settings(fs_fleet):
    out = fs_fleet.run("scontrol", "show", "config", check=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("Priority")]
    got = {line.split("=")[0].strip(): line.split("=", 1)[1].strip() for line in lines}
    assert got["PriorityType"] == "priority/multifactor"
    assert (got["PriorityDecayHalfLife"], got["PriorityCalcPeriod"], got["PriorityMaxAge"]) == (
        "7-00:00:00", "00:01:00", "7-00:00:00")
    assert (got["PriorityWeightFairShare"], got["PriorityWeightAge"], got["PriorityFavorSmall"]) == (
        "10000", "1000", "No")
