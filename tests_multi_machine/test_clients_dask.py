"""dask-jobqueue, unmodified, on the loopback sshd fleet: only PATH is changed.

``SLURMCluster`` writes a ``#!/usr/bin/env bash`` script with ``#SBATCH -J``,
``-e/-o DIR/NAME-%J.err|out``, ``-n 1``, ``--cpus-per-task``, ``--mem=NM``
and ``-t HH:MM:SS`` lines, submits it with ``sbatch FILE`` (the file is
deleted right after), takes the first number of sbatch's output as the job
id, and stops workers with ``scancel ID``.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is in the test extra")
distributed = pytest.importorskip("distributed", reason="distributed is in the test extra")

from .slurm_clients import ClientFleet, client_fleet  # noqa: E402,F401

# The workers cannot import this test module, and distributed pickles a task
# graph by reference (cloudpickle's by-value registry covers only functions
# pickled on their own), so the work is done with importable builtins.


def test_slurmcluster_scales_to_two_workers_and_computes(client_fleet: ClientFleet,
                                                        tmp_path) -> None:
    fleet = client_fleet
    logs = tmp_path / "dask-logs"
    with dask_jobqueue.SLURMCluster(cores=2, processes=1, memory="1GB", walltime="00:10:00",
                                    log_directory=str(logs), death_timeout=60,
                                    scheduler_options={"host": "127.0.0.1"}) as cluster:
        script = cluster.job_script()
        assert "#SBATCH --mem=954M" in script and "#SBATCH -t 00:10:00" in script
        cluster.scale(jobs=2)
        with distributed.Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            # two jobs, two machines (each job takes two CPUs: m1 is then full)
            nodes = client.run(os.getenv, "SLURMD_NODENAME")
            assert len(nodes) == 2 and sorted(nodes.values()) == ["m1", "m2"], nodes
            futures = client.map(pow, range(10), [2] * 10)
            assert client.submit(sum, futures).result(timeout=60) == 285
            job_ids = sorted(cluster.workers[name].job_id for name in cluster.workers)
            queue = subprocess.run(["squeue", "-h", "-o", "%i %j %T %N"], capture_output=True,
                                   text=True, check=True).stdout
            rows = sorted(line.split() for line in queue.splitlines())
            assert [r[0] for r in rows] == job_ids, queue
            assert all(r[1:3] == ["dask-worker", "RUNNING"] for r in rows), queue
            assert sorted(r[3] for r in rows) == ["m1", "m2"], queue
    # closing the cluster cancelled both jobs (scancel)
    deadline = time.monotonic() + 60
    while True:
        states = [fleet.sacct(j, "JobID,State")[0]["State"] for j in job_ids]
        if all(s.startswith("CANCELLED") for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    # the workers logged where dask-jobqueue asked (`%J` expanded)
    for j in job_ids:
        assert (logs / f"dask-worker-{j}.err").exists(), sorted(os.listdir(logs))

