"""A job that fills its machine's disk during its run (no shared filesystem):
the job FAILED with the reason, run once; the machine is not drained; what
the job wrote comes home."""
from __future__ import annotations

import subprocess

import pytest

from .test_fleet import Cli


def test_disk_filled_by_a_job_fails_the_job_not_the_machine(sshd_fleet, make_config, ssh_home,
                                                            tmp_path) -> None:
    m1, m2 = sshd_fleet(2)
    small = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(m1.workdir)],
                           capture_output=True, text=True)
    if small.returncode:
        pytest.skip(f"cannot mount a small filesystem here: {small.stderr.strip()}")
    cli = Cli(make_config([m1, m2], heartbeat_interval=0.5), tmp_path / "submit")
    try:
        cli.run("sinfo", check=True)
        cli.wait_nodes({"m1": "idle", "m2": "idle"})
        # the job's directory on m1 (its working directory) is on the small disk
        job = cli.sbatch("-w", "m1", "--wrap",
                         "echo before; cat /dev/zero > fill 2>/dev/null; echo after")
        rec = cli.wait(job, timeout=60)
        assert (rec["state"], rec["nodes"], rec["restart_count"]) == ("FAILED", ["m1"], 0), rec
        assert "No space left on device" in (rec["steps"][0].get("error") or "")
        out = (cli.work / f"slurm-{job}.out").read_text()
        assert out.startswith("before\nafter\nslurmstepd: error: No space left on device"), out
        assert cli.node_states()["m1"] == "idle"
        # and it takes the next job (the run's directory, with its filler, is gone)
        nxt = cli.sbatch("-w", "m1", "--wrap", "echo next")
        assert cli.wait(nxt)["state"] == "COMPLETED"
    finally:
        cli.stop()
        subprocess.run(["umount", "-l", str(m1.workdir)], capture_output=True)
