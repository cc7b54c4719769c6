"""GPUs measured, on the loopback sshd fleet with a fake ``nvidia-smi`` on
the agents' PATH: sinfo's Gres/GresUsed, scontrol's per-GPU line, a job's
GPU load in sacct's TRESUsageInAve/Max (its own GPUs only), and a machine
whose nvidia-smi is broken that reports nothing and still runs jobs."""

from __future__ import annotations

import re
import time

import pytest

from .gpu_machines import BROKEN_SMI, FakeGpus
from .test_fleet import Cli


@pytest.fixture
def gpu_fleet(sshd_fleet, make_config, ssh_home, tmp_path):  # type: ignore[no-untyped-def]
    m1, m2, m3 = sshd_fleet(3)
    good = FakeGpus(tmp_path / "m3gpus", 2)
    broken = FakeGpus(tmp_path / "m2gpus", 1, smi=BROKEN_SMI)
    files = make_config([m1, m2, m3], heartbeat_interval=0.5, kill_wait=2, overrides={
        "m2": {"python": str(broken.python), "gpu_available": True, "gpus": 1},
        "m3": {"python": str(good.python)}})
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({"m1": "idle", "m2": "idle", "m3": "idle"})
    yield cli, good
    cli.stop()


def _wait_text(cli: Cli, args: tuple, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = cli.run(*args, check=True).stdout
        if re.search(pattern, out):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{args}: no {pattern!r} in:\n{out}")
        time.sleep(0.2)


def test_gpus_measured_on_the_fleet(gpu_fleet) -> None:  # type: ignore[no-untyped-def]
    cli, gpus = gpu_fleet
    sinfo = ("sinfo", "-N", "-h", "-O", "NodeList:6,Gres:8,GresUsed:10")
    assert cli.run(*sinfo, check=True).stdout.splitlines() == [
        "m1    (null)  (null)    ", "m2    gpu:1   gpu:0     ", "m3    gpu:2   gpu:0     "]
    out = _wait_text(cli, ("scontrol", "show", "node", "m3"), r"GpuUtil=")
    assert "   Gres=gpu:2\n   GpuUtil=0:0%,1:0% GpuMem=0:0M/15G,1:0M/15G\n" in out
    flag = cli.work / "done"
    job = cli.sbatch("-w", "m3", "--gres=gpu:1", "-o", "gpu-%j.out", "--wrap",
                     f"echo gpus=$CUDA_VISIBLE_DEVICES; while [ ! -e {flag} ]; do sleep 0.1; done")
    cli.wait(job, {"RUNNING"})
    _wait_text(cli, ("sinfo", "-N", "-h", "-n", "m3", "-O", "GresUsed"), r"^gpu:1 ")
    assert cli.run("sinfo", "-h", "-o", "%G", "-n", "m3", check=True).stdout == "gpu:2\n"
    mine = cli.records(job)[0]["gpu_ids"][0]  # CUDA_VISIBLE_DEVICES's id = nvidia-smi's index
    other = 1 - mine
    # the other GPU is busier than the job's: only the job's GPU is its load
    gpus.set({mine: (80, 4000), other: (99, 9000)})
    _wait_text(cli, ("scontrol", "show", "node", "m3"), rf"GpuUtil=.*{mine}:80%")
    gpus.set({mine: (20, 1000), other: (99, 9000)})
    out = _wait_text(cli, ("scontrol", "show", "node", "m3"), rf"GpuUtil=.*{mine}:20%")
    assert f"{mine}:1000M/15G" in out and f"{other}:9000M/15G" in out
    flag.write_text("")
    cli.wait(job)
    assert (cli.work / f"gpu-{job}.out").read_text() == f"gpus={mine}\n"
    rows = cli.run("sacct", "-P", "-n", "-j", str(job), "-o",
                   "JobID,TRESUsageInAve,TRESUsageInMax,TRESUsageInMaxNode", check=True).stdout
    lines = rows.splitlines()
    assert lines[0] == f"{job}|||"  # the allocation's row has no usage, as in SLURM
    batch = lines[1].split("|")
    assert batch[0] == f"{job}.batch"
    ave = dict(item.split("=") for item in batch[1].split(","))
    assert list(ave) == ["gres/gpumem", "gres/gpuutil"]
    assert 20 < int(ave["gres/gpuutil"]) < 80
    assert 1000 < int(ave["gres/gpumem"].rstrip("M")) < 4000
    assert batch[2] == "gres/gpumem=4000M,gres/gpuutil=80"
    assert batch[3] == "gres/gpumem=m3,gres/gpuutil=m3"
    # a job without GPUs has no GPU usage
    plain = cli.sbatch("-w", "m3", "--wrap", "true")
    cli.wait(plain)
    assert cli.run("sacct", "-P", "-n", "-j", str(plain), "-o", "JobID,TRESUsageInAve",
                   check=True).stdout == f"{plain}|\n{plain}.batch|\n"


def test_a_broken_nvidia_smi_reports_nothing_and_the_machine_works(gpu_fleet) -> None:  # type: ignore[no-untyped-def]
    cli, _ = gpu_fleet
    job = cli.sbatch("-w", "m2", "--gres=gpu:1", "-o", "b-%j.out", "--wrap",
                     "sleep 2; echo ran on $SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES")
    assert cli.wait(job)["state"] == "COMPLETED"
    assert (cli.work / f"b-{job}.out").read_text() == "ran on m2 gpus=0\n"
    out = cli.run("scontrol", "show", "node", "m2", check=True).stdout
    assert "Gres=gpu:1" in out and "GpuUtil" not in out and "State=IDLE" in out
    assert cli.run("sacct", "-P", "-n", "-j", str(job), "-o", "JobID,TRESUsageInAve",
                   check=True).stdout == f"{job}|\n{job}.batch|\n"
    assert cli.node_states()["m2"] == "idle"
