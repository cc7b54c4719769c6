"""squeue's and sinfo's other views: -l, -O, -i, sinfo -s and -R, each as
SLURM 22.05 prints it (the formats are compared with the real SLURM in
tests_slurm/; here: what needs a state the differential suite does not make,
and the refusals)."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys
import time

from fleetslurm.slurm.fmt_common import Item, parse_long_items
from fleetslurm.slurm.squeue_fmt import LONG_NAMES

DATE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}"


def test_long_format_fields_widths_and_suffixes():
    items = parse_long_items("JobID:10,Name:.20,State:5|,Reason:,bogus,USERNAME", LONG_NAMES,
                             "Invalid job format specification: ")
    assert items == [Item("A", 10, False, ""), Item("j", 20, True, ""), Item("T", 5, False, "|"),
                     Item("r", 0, False, ""),
                     Item(None, error="Invalid job format specification: bogus"),
                     Item("u", 20, False, "")]


def test_squeue_long_O_and_their_conflicts(fleet):
    job = fleet.sbatch("-H", "-J", "held", "--wrap", "true")
    out = fleet.run("squeue", "-l", check=True).stdout.splitlines()
    assert re.fullmatch(DATE, out[0]), out
    assert out[1].split() == ["JOBID", "PARTITION", "NAME", "USER", "STATE", "TIME",
                              "TIME_LIMI", "NODES", "NODELIST(REASON)"]
    assert out[2].split()[:5] == [str(job), "debug", "held", pwd.getpwuid(os.getuid()).pw_name,
                                  "PENDING"]
    assert not re.fullmatch(DATE, fleet.run("squeue", "-l", "-h", check=True).stdout
                            .splitlines()[0])  # -h: no time line either
    proc = fleet.run("squeue", "-O", "JobID:.10|,Name:,State:10x,Nodes")
    assert proc.returncode == 0
    assert proc.stdout == f"     JOBID|NAMESTATE     x\n{job:>10}|heldPENDING   x\n"
    assert proc.stderr == "squeue: error: Invalid job format specification: Nodes\n"
    proc = fleet.run("squeue", "-l", "-o", "%i")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "squeue: fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
               "Please remove one and retry.\n")
    proc = fleet.run("squeue", "-O", "jobid", "-o", "%i")
    assert (proc.returncode, proc.stderr) == (
        1, "squeue: error: -o (--format) is incompatible with -O (--Format)\n")


def test_iterate_repeats_with_the_time_until_interrupted(fleet):
    fleet.sbatch("-H", "--wrap", "true")
    for bad in ("0", "x", "-3"):
        proc = fleet.run("squeue", "-i", bad)
        assert (proc.returncode, proc.stderr) == (1, f"squeue: error: --iterate={bad}\n\n")
        proc = fleet.run("sinfo", "-i", bad)
        assert (proc.returncode, proc.stderr) == (
            1, f"sinfo: error: Error: invalid entry for --iterate={bad}\n")
    for cmd in ("squeue", "sinfo"):
        proc = subprocess.Popen([sys.executable, "-m", "fleetslurm.cli.main", cmd, "-i", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=fleet.env, cwd=fleet.work)
        time.sleep(3.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert "Traceback" not in err
        reports = out.split("\n\n")
        assert len(reports) >= 3, out  # at 0, 1, 2 (and 3) seconds, each ends blank
        for report in reports[:-1]:
            lines = report.splitlines()  # the time, the header, a line (squeue: the job,
            assert re.fullmatch(DATE, lines[0]) and len(lines) == {"squeue": 3, "sinfo": 4}[cmd]
            # sinfo: each of the two partitions)


def _idle(fleet) -> None:
    deadline = time.monotonic() + 30
    while set(fleet.run("sinfo", "-h", "-N", "-o", "%t", check=True).stdout.split()) != {"idle"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_sinfo_summarize_long_and_reasons(fleet):
    me = pwd.getpwuid(os.getuid()).pw_name
    _idle(fleet)
    assert fleet.run("sinfo", "-s", check=True).stdout == (
        "PARTITION AVAIL  TIMELIMIT   NODES(A/I/O/T) NODELIST\n"
        "debug*       up   infinite          0/1/0/1 localhost\n"
        "short        up      10:00          0/1/0/1 localhost\n")
    assert fleet.run("sinfo", "-R", check=True).stdout == (
        "REASON               USER      TIMESTAMP           NODELIST\n")
    before = time.time()
    fleet.run("scontrol", "update", "NodeName=localhost", "State=DRAIN", "Reason=disk check",
              check=True)
    out = fleet.run("sinfo", "-R", check=True).stdout.splitlines()
    m = re.fullmatch(r"disk check {11}(.{9}) (\S+) localhost", out[1])
    assert m and m.group(1) == f"{me:9.9}", out
    stamp = m.group(2)
    assert abs(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) - before) < 60, stamp
    out = fleet.run("sinfo", "-R", "-l", check=True).stdout.splitlines()
    assert re.fullmatch(DATE, out[0])
    assert out[1] == "REASON               USER         TIMESTAMP           STATE  NODELIST"
    assert out[2].startswith(f"disk check           {me}({os.getuid()})")
    assert out[2].endswith(f"{stamp} drain  localhost")
    out = fleet.run("sinfo", "-N", "-l", check=True).stdout.splitlines()
    assert out[1].split() == ["NODELIST", "NODES", "PARTITION", "STATE", "CPUS", "S:C:T",
                              "MEMORY", "TMP_DISK", "WEIGHT", "AVAIL_FE", "REASON"]
    assert out[2].split()[:4] == ["localhost", "1", "debug*", "drained"]
    assert out[2].rstrip().endswith("disk check")
    fleet.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=True)
    assert fleet.run("sinfo", "-R", "-h", check=True).stdout == ""


def test_sinfo_O_and_env_format_order(fleet):
    proc = fleet.run("sinfo", "-p", "debug", "-O", "partition,nodes,cpus,bogus", check=True)
    header, row = proc.stdout.splitlines()
    assert header == f"{'PARTITION':20}{'NODES':20}{'CPUS':20}"
    assert row[:40] == f"{'debug*':20}{'1':20}" and len(row) == 60 and row[40:].strip().isdigit()
    assert proc.stderr == "sinfo: error: Invalid job format specification: bogus\n"
    env = {"SINFO_FORMAT": "%P|%N", "SINFO_PARTITION": "debug"}
    # SINFO_FORMAT serves plain sinfo and -l, not -s, -N or -R (sinfo's opts.c)
    assert fleet.run("sinfo", env=env, check=True).stdout == "PARTITION|NODELIST\ndebug*|localhost\n"
    assert fleet.run("sinfo", "-N", env=env, check=True).stdout.startswith("NODELIST   NODES")
    assert fleet.run("sinfo", "-s", env=env, check=True).stdout.startswith("PARTITION AVAIL")
    assert fleet.run("sinfo", "-R", env=env, check=True).stdout.startswith("REASON")
    out = fleet.run("sinfo", "-l", env=env, check=True).stdout.splitlines()
    assert re.fullmatch(DATE, out[0]) and out[1:] == ["PARTITION|NODELIST", "debug*|localhost"]
