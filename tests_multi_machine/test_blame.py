"""Blame the right party (issue 10, case 1), on a fleet of real sshd machines.

A launch that fails because of the job (its spec, environment or script)
fails the job and never drains a machine: one poison submission used to
drain every machine of the fleet in seconds, each launch failure requeueing
it to the next one. A launch that fails because of the machine drains that
machine; a job whose launch failed on three machines is held
(``launch_failed_requeued_held``, as SLURM does) instead of draining more.
"""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from .test_fleet import Cli


@pytest.fixture
def fleet4(sshd_fleet, make_config, ssh_home, tmp_path):
    machines = sshd_fleet(4)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2)
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({m.name: "idle" for m in machines})
    yield cli, machines
    cli.stop()


def _idle(machines) -> dict[str, str]:
    return {m.name: "idle" for m in machines}


def _none_drained(cli: Cli, machines) -> None:
    """No machine drained (now, or once the ended job's CPUs are given back)."""
    assert "drain" not in cli.node_states().values()
    cli.wait_nodes(_idle(machines), timeout=10)


def test_export_item_without_a_name_runs_and_drains_nothing(fleet4):
    cli, machines = fleet4
    job = cli.sbatch("--export=ALL,=x", "--wrap", "echo ok")
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 0)
    assert (cli.work / f"slurm-{job}.out").read_text() == "ok\n"
    _none_drained(cli, machines)


def test_nul_in_the_environment_is_refused_at_submit(fleet4):
    cli, machines = fleet4
    from fleetslurm.rpc import connect
    from fleetslurm.errors import SubmitError

    with connect(cli.files.paths) as c:
        with pytest.raises(SubmitError, match="NUL"):
            c.call("submit", options={}, script="#!/bin/sh\ntrue\n", cwd=str(cli.work),
                   env={"TOKEN": "a\0b"})
        assert c.call("jobs", ids=["1"]) == []
    _none_drained(cli, machines)


def test_a_job_the_agent_refuses_fails_and_drains_nothing(fleet4):
    """A stored spec the agent refuses (here a signal number no machine has,
    as a record written before submit checked it): the job FAILS with
    JobLaunchFailure on the first machine and the fleet stays up."""
    cli, machines = fleet4
    job = cli.sbatch("-H", "--signal=USR1@10", "--wrap", "true")
    cli.stop()
    db = sqlite3.connect(cli.files.paths.db)
    with db:
        db.execute("UPDATE jobs SET spec = json_set(spec, '$.signal.num', 99) WHERE job_id = ?",
                   (job,))
    db.close()
    cli.run("sinfo", check=True)  # a new controller
    cli.wait_nodes(_idle(machines))
    cli.run("scontrol", "release", str(job), check=True)
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["reason"], rec["restart_count"]) == \
        ("FAILED", "JobLaunchFailure", 0)
    _none_drained(cli, machines)
    # and the fleet still runs jobs
    ok = cli.sbatch("--wrap", "true")
    assert cli.wait(ok)["state"] == "COMPLETED"


def test_nul_in_cluster_name_fails_jobs_not_machines(sshd_fleet, make_config, ssh_home,
                                                      tmp_path):
    """SLURM_CLUSTER_NAME with a NUL cannot be put in any job's environment:
    every job fails with the reason, no machine is drained."""
    machines = sshd_fleet(2)
    files = make_config(machines, heartbeat_interval=0.5, cluster_name="lab\0x")
    cli = Cli(files, tmp_path / "submit")
    try:
        status = cli.run("sinfo")
        if status.returncode:
            # a config check that refuses it is just as good: nothing runs
            assert "cluster_name" in status.stderr and "Traceback" not in status.stderr
            return
        cli.wait_nodes({"m1": "idle", "m2": "idle"})
        job = cli.sbatch("--wrap", "true")
        rec = cli.wait(job, timeout=60)
        assert (rec["state"], rec["reason"]) == ("FAILED", "JobLaunchFailure")
        assert "drain" not in cli.node_states().values()
        cli.wait_nodes({"m1": "idle", "m2": "idle"})  # its CPUs given back
    finally:
        cli.stop()


def test_launch_failed_on_three_machines_holds_the_job(sshd_fleet, make_config, ssh_home,
                                                       tmp_path):
    """Three machines whose workdir is full: each launch fails there (the
    machine's fault: drained with the reason); after the third the job is
    held, not failed and not requeued again. Once the machines are fixed and
    resumed, a release runs it."""
    machines = sshd_fleet(3)
    mounted = []
    try:
        for m in machines:
            small = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                                    str(m.workdir)], capture_output=True, text=True)
            if small.returncode:
                pytest.skip(f"cannot mount a small filesystem here: {small.stderr.strip()}")
            mounted.append(m)
        files = make_config(machines, heartbeat_interval=0.5)
        cli = Cli(files, tmp_path / "submit")
        fillers = []
        try:
            cli.run("sinfo", check=True)
            cli.wait_nodes({m.name: "idle" for m in machines})
            for m in machines:
                # unbuffered: a buffered file's close would write (and fail
                # on) what the last failed write left in its buffer
                f = open(m.workdir / "filler", "wb", buffering=0)
                fillers.append(f)
                try:
                    while True:
                        f.write(b"x" * 65536)
                except OSError:
                    pass
            job = cli.sbatch("--wrap", "echo ran on $SLURMD_NODENAME")
            cli.wait_nodes({m.name: "drain" for m in machines}, timeout=60)
            rec = cli.wait(job, states={"PENDING"}, timeout=30)
            assert (rec["reason"], rec["restart_count"]) == ("launch_failed_requeued_held", 3)
            squeue = cli.run("squeue", "-h", "-o", "%i %t %r", check=True).stdout
            assert squeue.split() == [str(job), "PD", "launch_failed_requeued_held"]
            node = cli.run("scontrol", "show", "node", "m1", check=True).stdout
            assert "Launch failed on m1" in node and "State=RESUME" in node
            # fix one machine, resume it, release the job: it runs there
            fillers[1].close()
            (machines[1].workdir / "filler").unlink()
            cli.run("scontrol", "update", f"NodeName={machines[1].name}", "State=RESUME",
                    check=True)
            cli.run("scontrol", "release", str(job), check=True)
            rec = cli.wait(job, timeout=60)
            assert (rec["state"], rec["nodes"]) == ("COMPLETED", [machines[1].name]), (rec, (cli.work / f"slurm-{job}.out").read_text())
            assert (cli.work / f"slurm-{job}.out").read_text() == \
                f"ran on {machines[1].name}\n"
        finally:
            for f in fillers:
                f.close()
            cli.stop()
    finally:
        for m in mounted:
            subprocess.run(["umount", "-l", str(m.workdir)], capture_output=True)
