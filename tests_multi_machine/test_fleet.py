"""The whole product on a fleet of real sshd "machines" on loopback: a real
controller, SSH transport, agents, supervisors and jobs, driven through the
CLI as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


class Cli:
    """Runs ``fleetslurm`` against one FleetFiles (config + state directory)."""

    def __init__(self, files, work: Path) -> None:
        self.files = files
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env.update(files.env)

    def run(self, *args: str, check: bool = False, cwd: Optional[Path] = None,
            timeout: float = 90) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args],
                              capture_output=True, text=True, env=self.env,
                              cwd=str(cwd or self.work), timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"{args}: {proc.returncode} {proc.stderr}")
        return proc

    def sbatch(self, *args: str, cwd: Optional[Path] = None) -> int:
        return int(self.run("sbatch", "--parsable", *args, check=True, cwd=cwd).stdout)

    def records(self, job) -> list[dict]:
        from fleetslurm.rpc import connect

        with connect(self.files.paths) as c:
            return c.call("jobs", ids=[str(job)])

    def wait(self, job, states=FINAL, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(job)
            if recs and all(r["state"] in states for r in recs):
                return recs[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} never reached {states}: {recs}")
            time.sleep(0.1)

    def node_states(self) -> dict[str, str]:
        out = self.run("sinfo", "-N", "-h", "-o", "%N|%t", check=True).stdout
        return dict(line.split("|") for line in out.splitlines())

    def wait_nodes(self, want: dict[str, str], timeout: float = 30) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if all(states.get(n) == s for n, s in want.items()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes {states}, wanted {want}")
            time.sleep(0.2)

    def stop(self) -> None:
        pid_file = self.files.home / "controller.pid"
        self.run("controller", "stop", timeout=60)
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture
def fleet4(sshd_fleet, make_config, ssh_home, tmp_path):
    machines = sshd_fleet(4)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2, node_timeout=3)
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({m.name: "idle" for m in machines})
    yield cli, machines
    cli.stop()


def test_jobs_land_on_the_machine_that_has_what_they_need(fleet4):
    cli, machines = fleet4
    show = "echo node=$SLURMD_NODENAME gpus=${CUDA_VISIBLE_DEVICES:-none}"
    cases = {
        "cpu4": (["-c", "4"], "m2"),          # m1/m4 have 2 CPUs; m3 has GPUs (kept free)
        "mem8": (["--mem=8G"], "m2"),         # only m2 and m3 have 8 GB; m3 is a GPU box
        "gpu": (["--gres=gpu:1"], "m3"),
        "ssd": (["-C", "ssd"], "m4"),
        "pinned": (["-w", "m1"], "m1"),
        "big": (["-c", "8"], "m3"),           # only m3 has 8 CPUs
    }
    for name, (args, want) in cases.items():
        # one at a time: each sees the whole fleet free
        job = cli.sbatch("-J", name, *args, "--wrap", f"{show}; sleep 1")
        rec = cli.wait(job, {"RUNNING", *FINAL})
        q = cli.run("squeue", "-h", "-j", str(job), "-o", "%j|%N", check=True).stdout
        if rec["state"] == "RUNNING":
            assert q == f"{name}|{want}\n"  # squeue shows where it runs
        rec = cli.wait(job)
        assert rec["state"] == "COMPLETED", rec
        assert rec["nodes"] == [want], (name, rec["nodes"])
        gpus = "0" if name == "gpu" else "none"
        assert (cli.work / f"slurm-{job}.out").read_text() == f"node={want} gpus={gpus}\n"


def test_cpu_jobs_keep_off_the_gpu_machine_while_others_fit(fleet4):
    cli, machines = fleet4
    # 8 one-CPU jobs fit on m1, m2 and m4 (2 + 4 + 2 CPUs): none goes to m3
    jobs = [cli.sbatch("--wrap", "sleep 3") for _ in range(8)]
    for job in jobs:
        cli.wait(job, {"RUNNING"})
    nodes = [cli.records(j)[0]["nodes"][0] for j in jobs]
    assert "m3" not in nodes and sorted(nodes) == ["m1", "m1", "m2", "m2", "m2", "m2",
                                                   "m4", "m4"]
    states = cli.node_states()
    assert states == {"m1": "alloc", "m2": "alloc", "m3": "idle", "m4": "alloc"}
    # a ninth spills onto the GPU machine rather than wait
    ninth = cli.sbatch("--wrap", "true")
    assert cli.wait(ninth)["nodes"] == ["m3"]


def test_output_comes_home_and_remote_dirs_are_cleaned(fleet4):
    cli, machines = fleet4
    job = cli.sbatch("-w", "m2", "-o", "out/%x-%j.log", "-e", "out/%x-%j.err", "-J", "st",
                     "--wrap", "echo to-out; echo to-err >&2; pwd")
    rec = cli.wait(job)
    assert rec["state"] == "COMPLETED"
    out = (cli.work / "out" / f"st-{job}.log").read_text().splitlines()
    assert out[0] == "to-out"
    m2 = next(m for m in machines if m.name == "m2")
    # no shared filesystem: the job ran in its own directory on the machine
    assert out[1].startswith(str(m2.workdir))
    assert (cli.work / "out" / f"st-{job}.err").read_text() == "to-err\n"
    kept = cli.files.home / "output" / str(job)
    assert (kept / "stdout.txt").read_text().startswith("to-out\n")
    assert (kept / "stderr.txt").read_text() == "to-err\n"
    assert oct(kept.stat().st_mode & 0o777) == "0o700"
    # after collection the agent forgets the run's directory on the machine
    deadline = time.monotonic() + 10
    while list((m2.workdir / "jobs").glob(f"{job}.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list((m2.workdir / "jobs").glob(f"{job}.*"))
    # other machines never saw it
    for m in machines:
        if m.name != "m2" and (m.workdir / "jobs").exists():
            assert not list((m.workdir / "jobs").glob(f"{job}.*"))


def test_output_the_submit_host_cannot_write_stays_on_the_machine(fleet4):
    """An --output path the submit host cannot write (its directory is a
    file): the job still ends COMPLETED, the machine keeps the run's
    directory with the output (moved aside, no longer reported), and the
    controller's log says where, once: a reconnection does not copy it again."""
    cli, machines = fleet4
    (cli.work / "afile").write_text("a file, not a directory\n")
    job = cli.sbatch("-w", "m1", "-o", "afile/out-%j.txt", "--wrap", "echo precious")
    assert cli.wait(job)["state"] == "COMPLETED"
    m1 = next(m for m in machines if m.name == "m1")
    kept_root = m1.workdir / "kept"
    deadline = time.monotonic() + 10
    while not list(kept_root.glob(f"{job}.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = list(kept_root.glob(f"{job}.*"))
    assert len(runs) == 1 and (runs[0] / "stdout.txt").read_text() == "precious\n"
    assert not list((m1.workdir / "jobs").glob(f"{job}.*"))
    log = cli.files.home / "controller.log"
    said = f"job {job}: its output could not be written on this host: "
    assert said in log.read_text(), log.read_text()
    assert f"its output is kept on m1 in {runs[0]}: copy it from there" in log.read_text()
    # the link drops and comes back: the agent's hello no longer reports the run
    m1.kill_sessions(jobs=False)
    time.sleep(3)  # the drop is seen at once; the reconnection follows within 1 s
    cli.wait_nodes({"m1": "idle"}, timeout=30)
    assert cli.run("squeue", check=True).returncode == 0
    assert log.read_text().count(said) == 1
    assert runs[0].is_dir()


def test_tail_follows_a_running_remote_job(fleet4):
    cli, _ = fleet4
    job = cli.sbatch("-w", "m3", "--wrap", "for i in 1 2 3; do echo line$i; sleep 0.5; done")
    cli.wait(job, {"RUNNING"})
    proc = cli.run("tail", str(job), "--follow", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "line1\nline2\nline3\n"


def test_hostile_name_and_paths_survive_ssh(fleet4):
    cli, _ = fleet4
    weird = cli.work / "d i r 'q' \"dq\" $(touch pwned); x"
    weird.mkdir()
    script = weird / "run me;'.sh"
    script.write_text('#!/bin/sh\nprintf "%s|" "$@"; echo "$SLURM_JOB_NAME"\n')
    name = "a'; echo foo \"=0\""
    arg = "it's; $(id) `x` \"q\"\nnext"
    proc = cli.run("sbatch", "--parsable", "-J", name, "-o", "o 'x' %j.txt", "-w", "m4",
                   str(script), arg, cwd=weird)
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout)
    rec = cli.wait(job)
    assert rec["state"] == "COMPLETED", rec
    assert (weird / f"o 'x' {job}.txt").read_text() == f"{arg}|{name}\n"
    assert not list(cli.work.rglob("pwned"))


def test_machine_killed_mid_job_is_down_and_job_runs_once_elsewhere(fleet4, tmp_path):
    cli, machines = fleet4
    marks = tmp_path / "marks"
    marks.mkdir()
    # a requeueable job (best fit puts a 1-CPU job on m1) and one that asked
    # not to be requeued
    job = cli.sbatch("--wrap",
                     f"echo start >> {marks}/a; sleep 3; echo restart=$SLURM_RESTART_COUNT")
    keep = cli.sbatch("--no-requeue", "-w", "m1", "--wrap", f"echo x >> {marks}/b; sleep 30")
    assert cli.wait(job, {"RUNNING"})["nodes"] == ["m1"]
    cli.wait(keep, {"RUNNING"})
    m1 = next(m for m in machines if m.name == "m1")
    # let it run, then the machine dies (sshd, agent and job processes)
    time.sleep(0.5)
    m1.kill()
    t0 = time.monotonic()
    states = cli.wait_nodes({"m1": "down*"}, timeout=10)  # DOWN, not responding
    assert time.monotonic() - t0 < 3 + 4  # within node_timeout (plus polling)
    reason = cli.run("sinfo", "-h", "-N", "-n", "m1", "-o", "%E", check=True).stdout.strip()
    assert reason, "a DOWN machine carries a reason"
    assert cli.wait(keep)["state"] == "NODE_FAIL"
    rec = cli.wait(job, timeout=60)
    assert rec["state"] == "COMPLETED", rec
    assert rec["restart_count"] == 1
    assert rec["nodes"][0] != "m1"
    assert (cli.work / f"slurm-{job}.out").read_text().endswith("restart=1\n")
    # it started twice (once on m1, killed; once elsewhere) and completed once
    assert (marks / "a").read_text() == "start\nstart\n"
    # the machine comes back into service
    m1.start()
    cli.wait_nodes({"m1": "idle"}, timeout=30)
    later = cli.sbatch("-w", "m1", "--wrap", "echo back")
    assert cli.wait(later)["state"] == "COMPLETED"
    assert cli.records(job)[0]["state"] == "COMPLETED"  # not counted twice


def test_controller_kill9_during_multi_machine_workload(fleet4, tmp_path):
    cli, machines = fleet4
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = [cli.sbatch("--wrap", f"echo run >> {marks}/{i}; sleep 2; exit {i % 2}")
            for i in range(10)]
    # the workload is underway (on a loaded machine the first job may already
    # have ended by the time we look: later ones are still queued or running)
    cli.wait(jobs[0], {"RUNNING", "COMPLETING", "COMPLETED"})
    pid = int((cli.files.home / "controller.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    time.sleep(3)
    assert cli.run("squeue").returncode == 0  # restarts the controller
    for i, job in enumerate(jobs):
        rec = cli.wait(job, timeout=90)
        assert (rec["state"], rec["exit_code"]) == (("COMPLETED", 0) if i % 2 == 0
                                                    else ("FAILED", 1)), rec
        assert (marks / str(i)).read_text() == "run\n", f"job {job} ran twice"
        assert (cli.work / f"slurm-{job}.out").exists()
    used = {cli.records(j)[0]["nodes"][0] for j in jobs}
    assert len(used) >= 2, used


def test_changed_host_key_is_refused_and_the_rest_keeps_working(sshd_fleet, make_config,
                                                               ssh_home, tmp_path):
    m1, m2 = sshd_fleet(2)
    files = make_config([m1, m2], heartbeat_interval=0.5, host_key_policy="accept-new")
    m2.rekey()  # "reinstalled": its key no longer matches known_hosts
    cli = Cli(files, tmp_path / "submit")
    try:
        cli.run("sinfo", check=True)
        cli.wait_nodes({"m1": "idle", "m2": "down*"})
        reason = cli.run("scontrol", "show", "node", "m2", check=True).stdout
        assert "CHANGED" in reason
        job = cli.sbatch("--wrap", "echo ok")
        rec = cli.wait(job)
        assert (rec["state"], rec["nodes"]) == ("COMPLETED", ["m1"])
    finally:
        cli.stop()


def test_unreachable_and_broken_machines_are_down_with_the_fix(sshd_fleet, make_config,
                                                              ssh_home, tmp_path):
    m1, m2, m3 = sshd_fleet(3)
    m2.kill()
    files = make_config([m1, m2, m3], heartbeat_interval=0.5,
                        overrides={"m3": {"python": "/nonexistent/python3"}})
    cli = Cli(files, tmp_path / "submit")
    try:
        cli.run("sinfo", check=True)
        cli.wait_nodes({"m1": "idle", "m2": "down*", "m3": "down*"})
        m2_reason = cli.run("scontrol", "show", "node", "m2", check=True).stdout
        assert "connection refused" in m2_reason and "sshd" in m2_reason
        m3_reason = cli.run("scontrol", "show", "node", "m3", check=True).stdout
        assert "/nonexistent/python3" in m3_reason
        check = cli.run("nodes", "check", "--timeout", "5")
        assert check.returncode == 1
        lines = {line.split()[0]: line for line in check.stdout.splitlines() if line.strip()}
        assert "OK" in lines["m1"] and "FAIL" in lines["m2"].upper()
        job = cli.sbatch("--wrap", "echo fine")
        assert cli.wait(job)["nodes"] == ["m1"]
    finally:
        cli.stop()


def test_dropped_link_job_keeps_running_and_is_reconciled(fleet4, tmp_path):
    """The link to a machine drops (sshd and agent die) but its job goes on; it
    is NODE_FAIL while the machine is DOWN, and when the machine is back its
    supervisor's record gives the job its true end: nothing lost, nothing twice."""
    cli, machines = fleet4
    marks = tmp_path / "marks"
    marks.mkdir()
    job = cli.sbatch("--no-requeue", "-w", "m4", "--wrap",
                     f"echo run >> {marks}/x; sleep 4; exit 3")
    cli.wait(job, {"RUNNING"})
    m4 = next(m for m in machines if m.name == "m4")
    m4.kill(jobs=False)
    cli.wait_nodes({"m4": "down*"}, timeout=10)
    assert cli.wait(job, {"NODE_FAIL"}, timeout=10)["state"] == "NODE_FAIL"
    m4.start()
    cli.wait_nodes({"m4": "idle"}, timeout=30)
    rec = cli.wait(job, {"FAILED"}, timeout=30)
    assert (rec["exit_code"], rec["exit_signal"]) == (3, 0)
    assert (marks / "x").read_text() == "run\n"


def test_sinfo_shows_load_and_free_memory(fleet4):
    cli, _ = fleet4
    out = cli.run("sinfo", "-N", "-h", "-o", "%N|%c|%m|%O|%e", check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    assert [r[0] for r in rows] == ["m1", "m2", "m3", "m4"]
    assert [r[1] for r in rows] == ["2", "4", "8", "2"]          # declared, authoritative
    assert [r[2] for r in rows] == ["2048", "8192", "16384", "4096"]
    for r in rows:
        float(r[3])            # CPU_LOAD as the agent reports it
        assert int(r[4]) > 0   # FREE_MEM in MB


def test_shared_fs_machine_writes_output_in_place(sshd_fleet, make_config, ssh_home,
                                                  tmp_path):
    (m1,) = sshd_fleet(1)
    files = make_config([m1], heartbeat_interval=0.5, overrides={"m1": {"shared_fs": True}})
    cli = Cli(files, tmp_path / "submit")
    try:
        job = cli.sbatch("--wrap", "pwd; echo shared")
        assert cli.wait(job)["state"] == "COMPLETED"
        # the job ran in the submit directory (it exists on a shared filesystem)
        assert (cli.work / f"slurm-{job}.out").read_text() == f"{cli.work}\nshared\n"
        assert not (files.home / "output" / str(job)).exists()  # nothing copied
    finally:
        cli.stop()


def test_machine_dead_while_the_controller_was_down(fleet4, tmp_path):
    """Jobs recorded RUNNING on a machine that is gone when the controller
    comes back are failed and requeued after the heartbeat timeout."""
    cli, machines = fleet4
    marks = tmp_path / "marks"
    marks.mkdir()
    job = cli.sbatch("--wrap", f"echo run >> {marks}/a; sleep 2")
    assert cli.wait(job, {"RUNNING"})["nodes"] == ["m1"]
    # RUNNING is recorded before the launch reaches m1: wait until it ran there
    deadline = time.time() + 30
    while not (marks / "a").exists():
        assert time.time() < deadline, "the job never started on m1"
        time.sleep(0.05)
    os.kill(int((cli.files.home / "controller.pid").read_text().split()[0]), signal.SIGKILL)
    m1 = next(m for m in machines if m.name == "m1")
    m1.kill()
    assert cli.run("squeue").returncode == 0  # restarts the controller
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 1)
    assert rec["nodes"] != ["m1"]
    assert (marks / "a").read_text() == "run\nrun\n"


def test_full_disk_drains_the_machine_and_the_job_runs_elsewhere(sshd_fleet, make_config,
                                                                ssh_home, tmp_path):
    """A machine whose workdir is full cannot launch: like SLURM on a launch
    failure, it is drained with the reason and the job is requeued."""
    m1, m2 = sshd_fleet(2)
    small = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(m1.workdir)],
                           capture_output=True, text=True)
    if small.returncode:
        pytest.skip(f"cannot mount a small filesystem here: {small.stderr.strip()}")
    files = make_config([m1, m2], heartbeat_interval=0.5)
    cli = Cli(files, tmp_path / "submit")
    try:
        cli.run("sinfo", check=True)
        cli.wait_nodes({"m1": "idle", "m2": "idle"})
        # fill it up, unbuffered: a buffered file's close would write (and
        # fail on) what the last failed write left in its buffer
        fd = os.open(m1.workdir / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        job = cli.sbatch("--wrap", "echo ran on $SLURMD_NODENAME")
        rec = cli.wait(job, timeout=30)
        assert (rec["state"], rec["nodes"], rec["restart_count"]) == ("COMPLETED", ["m2"], 1)
        assert (cli.work / f"slurm-{job}.out").read_text() == "ran on m2\n"
        assert cli.node_states()["m1"] == "drain"
        node = cli.run("scontrol", "show", "node", "m1", check=True).stdout
        assert "Launch failed on m1" in node and "No space left on device" in node
        assert "State=RESUME" in node  # the fix is named
    finally:
        cli.stop()
        subprocess.run(["umount", "-l", str(m1.workdir)], capture_output=True)


def test_dotdot_output_pattern_comes_home_where_it_points(fleet4):
    """``-o out/%x/../../%j`` over SSH without a shared filesystem: the job
    runs (the directories the path walks through are made) and its output
    comes home to the file the path names, as the kernel resolves it."""
    cli, _machines = fleet4
    job = cli.sbatch("-w", "m3", "-J", "dd", "-o", "out/%x/../../%j", "--wrap", "echo dotdot")
    rec = cli.wait(job)
    assert (rec["state"], rec["exit_code"]) == ("COMPLETED", 0), rec
    assert (cli.work / str(job)).read_text() == "dotdot\n"
    assert (cli.work / "out" / "dd").is_dir()
