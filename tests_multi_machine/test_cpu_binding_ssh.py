"""CPU binding on SSH machines (loopback sshd, this host's real CPUs): two
-c 1 jobs on one machine run on different CPUs; a machine declaring more
CPUs than the host has binds to the real ones and says so in the job's
environment, without failing the job."""
from __future__ import annotations

import os

import pytest

from .test_fleet import Cli

REAL = sorted(os.sched_getaffinity(0))
JOB = ('grep Cpus_allowed_list /proc/$$/status; '
       'echo "bind=$SLURM_CPU_BIND sharing=${FLEETSLURM_CPU_SHARING-none}"; sleep 4')


@pytest.mark.skipif(len(REAL) != 2, reason="written for a host with 2 usable CPUs")
def test_jobs_on_one_ssh_machine_get_cpus_of_their_own(sshd_fleet, make_config, ssh_home,
                                                        tmp_path) -> None:
    m1, _, m3 = sshd_fleet(3)  # m1 declares 2 CPUs, m3 declares 8
    cli = Cli(make_config([m1, m3], heartbeat_interval=0.5), tmp_path / "submit")
    try:
        a = cli.sbatch("-w", m1.name, "-c", "1", "--wrap", JOB)
        b = cli.sbatch("-w", m1.name, "-c", "1", "--wrap", JOB)
        big = cli.sbatch("-w", m3.name, "-c", "4", "--wrap", JOB)
        recs = {j: cli.wait(j) for j in (a, b, big)}
        for rec in recs.values():
            assert rec["state"] == "COMPLETED", rec
        # they ran at the same time, so their CPUs were chosen side by side
        assert recs[b]["start_time"] < recs[a]["end_time"], recs
        out = {j: (cli.work / f"slurm-{j}.out").read_text().splitlines() for j in recs}
        cpus = {j: lines[0].split(":\t")[1] for j, lines in out.items()}
        assert {cpus[a], cpus[b]} == {"0", "1"}, out
        assert out[a][1] == f"bind=quiet,mask_cpu:0x{1 << int(cpus[a])} sharing=none"
        assert cpus[big] == "0-1"
        assert out[big][1] == ("bind=quiet,mask_cpu:0x3 sharing=given 4 CPUs on a machine "
                               "that has 2 (0-1): bound to CPUs 0-1")
    finally:
        cli.stop()
