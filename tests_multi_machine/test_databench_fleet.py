"""DataBench, the seeds' classes and the examples on a fleet of real sshd
"machines" on loopback, each with its own workdir and NO shared filesystem:
inputs reach the machines by staging, outputs and results come back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = ROOT / "scripts"
MACHINES = ("m1", "m2", "m3", "m4")


@pytest.fixture
def lab(sshd_fleet, make_config, ssh_home, tmp_path, monkeypatch):
    """Four machines, their config in the environment, a submit directory."""
    machines = sshd_fleet(4)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env.update(files.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for k, v in files.env.items():
        monkeypatch.setenv(k, v)
    work = tmp_path / "submit"
    work.mkdir()
    monkeypatch.chdir(work)
    _wait_up(files)
    yield {"machines": machines, "files": files, "env": env, "work": work}
    subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                   env=env, capture_output=True, timeout=60)
    try:
        os.kill(int((files.home / "controller.pid").read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def _wait_up(files, timeout: float = 60) -> None:
    from fleetslurm.api.executor.client import FleetClient

    fc = FleetClient()
    deadline = time.monotonic() + timeout
    while True:
        states = {n: s["state"] for n, s in fc.cluster_status().items()}
        if all(s == "idle" for s in states.values()):
            return
        assert time.monotonic() < deadline, f"machines never came up: {states}"
        time.sleep(0.2)


def _example(lab, name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                          capture_output=True, text=True, cwd=lab["work"], env=lab["env"],
                          timeout=600)
    assert proc.returncode == 0, f"{name}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_batch_inputs_are_staged_to_machines_without_a_shared_filesystem(lab):
    from fleetslurm.databench import DataBenchSLURM

    work = lab["work"]
    where = work / "where.py"
    where.write_text("import os, socket, sys\n"
                     "path = sys.argv[1]\n"
                     "print(os.path.abspath(path), os.getcwd(), os.environ.get('SLURMD_NODENAME'),"
                     " open(path).read().strip(), sep='|')\n")
    files = []
    for k in range(8):
        f = work / "in" / f"part {k}.csv"
        f.parent.mkdir(exist_ok=True)
        f.write_text(f"value\n{k}\n")
        files.append(f)
    bench = DataBenchSLURM()
    ids = bench.submit_batch_processing(files, where, cpus_per_job=2, memory_per_job="100M",
                                        time_limit=5)
    for f in files:  # the user may delete them at once: the jobs have their own copies
        f.unlink()
    assert bench.wait_for_jobs(ids, timeout=180) == {i: "COMPLETED" for i in ids}
    workdirs = {m.name: str(m.workdir) for m in lab["machines"]}
    nodes = set()
    for k, job in enumerate(ids):
        path, cwd, node, content = bench.get_job_output(job).strip().split("|")
        nodes.add(node)
        assert bench.get_job_status(job)["assigned_machine"] == node
        # read from the job's stage directory on its machine, not the submit host
        assert path.startswith(workdirs[node] + "/") and path.endswith(f"/input/part {k}.csv")
        assert cwd.startswith(workdirs[node] + "/") and content == f"value\n{k}"
        assert Path(bench.get_job_status(job)["stdout"]).parent == work
    assert len(nodes) >= 2, nodes  # 8 tasks of 2 CPUs spread over the machines


def test_processing_job_output_file_comes_back(lab):
    from fleetslurm.databench import DataBenchSLURM

    data = lab["work"] / "sales.csv"
    data.write_text("region,amount\nwest,3\neast,4\nwest,5\n")
    bench = DataBenchSLURM(output_dir=lab["work"] / "results")
    job = bench.submit_data_processing_job(
        SCRIPTS / "process_data.py", cpus=1, memory="100M", time_limit=5,
        args=[data, "--group-by", "region", "--value", "amount", "--output", "table.csv"],
        outputs=["table.csv"], nodelist="m4")
    assert bench.wait_for_jobs([job], timeout=120) == {job: "COMPLETED"}
    assert bench.get_job_status(job)["assigned_machine"] == "m4"
    assert (lab["work"] / "results" / "table.csv").read_text().splitlines() == [
        "region,count,sum,mean", "east,1,4.0,4.0", "west,2,8.0,4.0"]
    assert bench.get_results([job])[job]["groups"]["west"]["count"] == 2
    st = bench.get_cluster_status()
    assert set(st) == set(MACHINES) and st["m3"]["gpus_total"] == 2
    assert st["m2"]["cpus_total"] == 4 and st["m1"]["memory_total_mb"] == 2048


@pytest.mark.parametrize("name", ["databench_batch", "databench_backtest", "slurmdriver_example",
                                  "slurminade_example", "databench_parallel",
                                  "process_example", "jobcontainer_example"])
def test_examples_on_the_fleet(lab, name):
    out = _example(lab, name, str(lab["work"] / name))
    hosts = set()
    if name == "databench_batch":
        rows = re.findall(r"sensor_\d\d\.csv: (\d+) rows, mean temperature [\d.]+ on (m\d)", out)
        assert [int(n) for n, _ in rows] == [200 + 50 * k for k in range(6)]
        hosts = {h for _, h in rows}
        assert (lab["work"] / name / "out" / "by_site.csv").read_text().startswith("site,count")
    elif name == "databench_backtest":
        assert "submitted 16 backtests as 2 job arrays" in out
        rows = [ln.split() for ln in out.splitlines()[2:] if ln.strip()]
        assert len(rows) == 16
    elif name == "slurmdriver_example":
        assert re.search(r"fib\(20\) = 6765 on \S+ with 2 CPUs", out), out
    elif name == "slurminade_example":
        assert "f computed 100 squares, their sum is 328350" in out
        assert "clean_up returned 'clean'" in out
    elif name == "databench_parallel":
        assert "submitted 12 analyses as 2 job arrays" in out and "TSLA" in out
    elif name == "process_example":
        nodes = re.findall(r"pi ~ \d\.\d+ on (m\d), CPU", out)
        assert len(nodes) == 4 and set(nodes) <= set(MACHINES)
    elif name == "jobcontainer_example":
        assert re.search(r"job \d+ on m\d: COMPLETED, 49900 values", out), out
    assert hosts <= set(MACHINES)
