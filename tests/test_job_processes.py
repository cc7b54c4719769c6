"""A job owns all its processes: what it daemonizes dies with it, and its
memory is what its processes use together (PSS), not their summed RSS.

Real agent, supervisors and processes (tests/test_agent.py's client).
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
from test_agent import AgentClient, kill_leftovers, spec

PY = sys.executable

# Three ways out of the job's process group and session: setsid, a double
# fork (the middle process exits: the grandchild is orphaned), and both.
# Each escaped process writes its pid to a file, then becomes a long sleep.
ESCAPES = (
    "setsid sh -c 'echo $$ > {d}/p1; exec sleep 601' &\n"
    "( sh -c 'echo $$ > {d}/p2; exec sleep 602' & ) \n"
    "setsid sh -c \"( sh -c 'echo \\$\\$ > {d}/p3; exec sleep 603' & )\" &\n"
    "while [ ! -s {d}/p1 ] || [ ! -s {d}/p2 ] || [ ! -s {d}/p3 ]; do sleep 0.05; done\n"
    "echo escaped\n"
)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentClient]:
    client = AgentClient(tmp_path / "w")
    yield client
    client.close()
    kill_leftovers(tmp_path / "w")


def start_ticks(pid: int) -> "int | None":
    """The process's start time (clock ticks), or None when it is gone or a
    zombie: with it a reused pid is not taken for the escaped process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def escaped(d: Path) -> Dict[int, int]:
    """pid -> start ticks of the escaped processes, read once they are up."""
    deadline = time.monotonic() + 10
    while not all((d / n).exists() and (d / n).read_text().strip() for n in ("p1", "p2", "p3")):
        assert time.monotonic() < deadline, "the job never started its escaped processes"
        time.sleep(0.05)
    out = {}
    for n in ("p1", "p2", "p3"):
        pid = int((d / n).read_text())
        ticks = start_ticks(pid)
        assert ticks is not None, "escaped process %s (%d) not running" % (n, pid)
        out[pid] = ticks
    return out


def assert_gone(procs: Dict[int, int]) -> None:
    """Every escaped process is dead (at most a moment after the job's end:
    SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + 5
    left = procs
    while True:
        left = {p: t for p, t in left.items() if start_ticks(p) == t}
        if not left:
            return
        if time.monotonic() > deadline:
            for p in left:  # do not leave them behind
                try:
                    import os
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            raise AssertionError("escaped processes outlived their job: %s" % sorted(left))
        time.sleep(0.05)


def job_dir(tmp_path: Path, name: str) -> Tuple[Path, Dict[str, str]]:
    d = tmp_path / name
    d.mkdir()
    return d, {"cwd": str(d), "stdout": str(d / "out"), "stderr": str(d / "out")}


def test_daemonized_children_die_at_normal_end_cancel_and_time_limit(
        agent: AgentClient, tmp_path: Path) -> None:
    dn, kn = job_dir(tmp_path, "normal")
    dc, kc = job_dir(tmp_path, "cancel")
    dt, kt = job_dir(tmp_path, "timeout")
    agent.launch("1.0", spec("#!/bin/sh\n" + ESCAPES.format(d=dn) + "while [ ! -e go ]; do "
                             "sleep 0.05; done\nexit 0\n", tmp_path, **kn))
    agent.launch("2.0", spec("#!/bin/sh\n" + ESCAPES.format(d=dc) + "sleep 300\n", tmp_path,
                             kill_wait_s=1, **kc))
    agent.launch("3.0", spec("#!/bin/sh\n" + ESCAPES.format(d=dt) + "sleep 300\n", tmp_path,
                             time_limit_s=2, kill_wait_s=1, **kt))
    normal, cancelled, timed_out = escaped(dn), escaped(dc), escaped(dt)
    (dn / "go").touch()  # the normal job ends now
    assert agent.request({"op": "cancel", "key": "2.0"})["ok"]
    r1, r2, r3 = agent.ended("1.0"), agent.ended("2.0"), agent.ended("3.0")
    assert (r1["state"], r1["exit_code"]) == ("COMPLETED", 0), r1
    assert (r2["state"], r3["state"]) == ("CANCELLED", "TIMEOUT")
    for procs in (normal, cancelled, timed_out):
        assert_gone(procs)
    assert (dn / "out").read_text() == "escaped\n"


MIB = 1 << 20


def test_shared_pages_are_not_counted_once_per_process(agent: AgentClient, tmp_path: Path) -> None:
    """A parent touches 120 MiB, then forks 4 children that keep it shared:
    their RSS adds up to over 600 MiB, their PSS to about 130 MiB. Under a
    300 MiB limit the job runs to its end; 200 sleeps (each ~1.8 MiB of RSS,
    mostly shared libc) with a 200 MiB limit too."""
    (tmp_path / "share.py").write_text(
        "import os, time\n"
        "buf = bytearray(120 << 20)\n"
        "for i in range(0, len(buf), 4096):\n"
        "    buf[i] = 1\n"
        "kids = [os.fork() for _ in range(4)]\n"
        "if 0 in kids:\n"
        "    time.sleep(3)\n"
        "    os._exit(0)\n"
        "for k in kids:\n"
        "    os.waitpid(k, 0)\n"
        "print('shared ok')\n")
    ds, ks = job_dir(tmp_path, "share")
    agent.launch("1.0", spec("#!/bin/sh\n'%s' '%s'\n" % (PY, tmp_path / "share.py"), tmp_path,
                             mem_limit_mb=300, **ks))
    dz, kz = job_dir(tmp_path, "sleeps")
    agent.launch("2.0", spec("#!/bin/bash\nfor i in $(seq 200); do sleep 4 & done\nwait\n"
                             "echo sleeps ok\n", tmp_path, mem_limit_mb=200, **kz))
    r1 = agent.ended("1.0", timeout=30)
    assert (r1["state"], r1["exit_code"], r1["signal"]) == ("COMPLETED", 0, 0), r1
    assert (ds / "out").read_text() == "shared ok\n"
    # MaxRSS is what was measured against the limit: the shared buffer once
    assert 120 * 1024 <= r1["max_rss_kb"] < 300 * 1024, r1
    r2 = agent.ended("2.0", timeout=30)
    assert (r2["state"], r2["exit_code"], r2["signal"]) == ("COMPLETED", 0, 0), r2
    assert (dz / "out").read_text() == "sleeps ok\n"
    assert r2["max_rss_kb"] < 200 * 1024


def test_private_memory_of_many_processes_still_adds_up(agent: AgentClient,
                                                        tmp_path: Path) -> None:
    """4 processes with 100 MiB each of their own (one of them escaped with
    setsid) under a 300 MiB limit: OUT_OF_MEMORY, and nothing survives."""
    hog = ("import os, sys, time\n"
           "buf = bytearray(100 << 20)\n"
           "for i in range(0, len(buf), 4096):\n"
           "    buf[i] = 1\n"
           "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
           "time.sleep(60)\n")
    (tmp_path / "hog.py").write_text(hog)
    d, k = job_dir(tmp_path, "hogs")
    script = "#!/bin/sh\n" + "".join(
        "%s'%s' '%s' '%s/h%d' &\n" % ("setsid " if i == 0 else "", PY, tmp_path / "hog.py", d, i)
        for i in range(4)) + "wait\necho survived\n"
    agent.launch("1.0", spec(script, tmp_path, mem_limit_mb=300, **k))
    result = agent.ended("1.0", timeout=30)
    assert (result["state"], result["signal"]) == ("OUT_OF_MEMORY", 125), result
    assert result["max_rss_kb"] > 300 * 1024
    # nothing survived to echo; only slurmstepd's OOM line (oom.py) is there
    assert (d / "out").read_text().startswith("slurmstepd-")
    assert "Detected 1 oom-kill event(s) in StepId=1.batch" in (d / "out").read_text()
    assert "survived" not in (d / "out").read_text()
    hogs = {}
    for f in d.glob("h*"):
        pid = int(f.read_text())
        hogs[pid] = start_ticks(pid) or 0
    assert_gone({p: t for p, t in hogs.items() if t})


def wait_pid(path: Path) -> Dict[int, int]:
    deadline = time.monotonic() + 20
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, "%s never written" % path
        time.sleep(0.05)
    pid = int(path.read_text())
    ticks = start_ticks(pid)
    assert ticks is not None
    return {pid: ticks}


def test_setsid_child_dies_at_scancel_and_at_normal_end(wide_fleet) -> None:
    """The drill's case through sbatch and scancel: ``setsid sleep 601 &``."""
    fleet = wide_fleet
    daemon = "setsid sh -c 'echo $$ > %s.pid; exec sleep 601' & "
    cancel = fleet.sbatch("--wrap", daemon % "c" + "sleep 300")
    normal = fleet.sbatch("--wrap", daemon % "n" + "while [ ! -e go ]; do sleep 0.1; done")
    cancelled, ended = wait_pid(fleet.work / "c.pid"), wait_pid(fleet.work / "n.pid")
    fleet.run("scancel", str(cancel), check=True)
    (fleet.work / "go").touch()
    assert fleet.wait(cancel)["state"] == "CANCELLED"
    assert fleet.wait(normal)["state"] == "COMPLETED"
    assert_gone(cancelled)
    assert_gone(ended)


def test_many_sleeps_under_mem_through_sbatch(fleet) -> None:
    """The drill's case (600 sleeps under --mem=1G were OUT_OF_MEMORY, MaxRSS
    1,083,324K), scaled: 200 sleeps under --mem=200M complete, and the
    MaxRSS recorded is what the limit was measured against."""
    job = fleet.sbatch("--mem=200M", "--wrap",
                       "for i in $(seq 200); do sleep 3 & done; wait; echo done")
    rec = fleet.wait(job, timeout=90)
    assert (rec["state"], rec["exit_code"], rec["exit_signal"]) == ("COMPLETED", 0, 0), rec
    assert (fleet.work / f"slurm-{job}.out").read_text() == "done\n"
    assert 0 < rec["max_rss_kb"] < 200 * 1024, rec["max_rss_kb"]
