"""The submitter's umask on an SSH machine: the job runs with it there (the
agent's own umask is sshd's, 022), and its output is written home with the
modes it gives, whatever the umask of the command that started the
controller."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from typing import Iterator

from .test_fleet import Cli

JOB = ("umask; echo \"SLURM_UMASK=${SLURM_UMASK-unset}\"; touch made; stat -c %a made; "
       "mkdir d; stat -c %a d")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_umask_reaches_the_machine_and_the_files_sent_home(sshd_fleet, make_config, ssh_home,
                                                           tmp_path) -> None:
    (m1,) = sshd_fleet(1)
    cli = Cli(make_config([m1], heartbeat_interval=0.5), tmp_path / "submit")
    try:
        with umask(0o000):  # this command starts the controller
            cli.run("sinfo", check=True)
        with umask(0o077):
            # with directories the output needs made here, as the job would
            small = cli.sbatch("-o", "priv/d/%j.out", "--wrap", JOB)
            # over the size sent with the `ended` event: copied home over SSH
            big = cli.sbatch("--wrap", JOB + "; head -c 400000 /dev/zero | tr '\\0' x")
        with umask(0o002):
            shared = cli.sbatch("-o", "grp/d/%j.out", "--wrap", JOB)
        for job, mask, file_mode, dir_mode, out in (
                (small, "0077", "600", "700", cli.work / "priv" / "d" / f"{small}.out"),
                (big, "0077", "600", "700", cli.work / f"slurm-{big}.out"),
                (shared, "0002", "664", "775", cli.work / "grp" / "d" / f"{shared}.out")):
            rec = cli.wait(job)
            assert rec["state"] == "COMPLETED", rec
            lines = out.read_text().split("\n")
            assert lines[:4] == [mask, "SLURM_UMASK=unset", file_mode, dir_mode], lines[:4]
            assert stat.S_IMODE(out.stat().st_mode) == int(file_mode, 8), job
        for d in ("priv", "priv/d"):
            assert stat.S_IMODE((cli.work / d).stat().st_mode) == 0o700, d
        for d in ("grp", "grp/d"):
            assert stat.S_IMODE((cli.work / d).stat().st_mode) == 0o775, d
    finally:
        cli.stop()
