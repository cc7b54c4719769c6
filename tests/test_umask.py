"""Jobs run with their submitter's umask (SLURM_UMASK), whatever the umask of
the command that happened to start the controller; the files they make get
the modes that umask gives."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fleetslurm.slurm.jobspec import build_spec, job_environment
from fleetslurm.umask import current_umask, with_umask

# SLURM 22.05 applies SLURM_UMASK and leaves it out of the batch job's
# environment (tests_slurm/test_env.py compares with it)
JOB = "umask; echo \"SLURM_UMASK=${SLURM_UMASK-unset}\"; touch made-$SLURM_JOB_ID"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Commands started meanwhile inherit ``mask``."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_jobs_run_with_the_submitters_umask(fleet) -> None:
    with umask(0o000):  # this command starts the controller (and its agent)
        fleet.run("sinfo", check=True)
    with umask(0o077):
        private = fleet.sbatch("--wrap", JOB)
    with umask(0o002):
        group = fleet.sbatch("--wrap", JOB)
    for job, mask, want in ((private, "0077", 0o600), (group, "0002", 0o664)):
        assert fleet.wait(job)["state"] == "COMPLETED"
        out = fleet.work / f"slurm-{job}.out"
        assert out.read_text() == f"{mask}\nSLURM_UMASK=unset\n"
        assert mode(fleet.work / f"made-{job}") == want
        assert mode(out) == want


def test_slurm_umask_already_set_wins_and_garbage_is_ignored() -> None:
    with umask(0o027):
        assert current_umask() == 0o027
        assert with_umask({})["SLURM_UMASK"] == "0027"
        assert with_umask({"SLURM_UMASK": "0007"})["SLURM_UMASK"] == "0007"
    for text, want in (("0077", 0o077), ("22", 0o022), ("0x1", None), ("", None),
                       ("07777", None), ("8", None)):
        spec = build_spec({}, script="#!/bin/sh\n", script_args=[], cwd="/",
                          env={"SLURM_UMASK": text}, submit_host="h", now=0)
        assert spec["umask"] == want, text
        assert "SLURM_UMASK" not in spec["env"]  # the submitter's SLURM_* stay out
        env = job_environment(spec, job_id=1, node="n", partition="p", cluster="c",
                              cpus=1, gpu_ids=[], user="u", uid=0)
        assert "SLURM_UMASK" not in env
