"""Every example in examples/ runs as written, end to end, on the embedded
default: no config at all, a real controller started for the user,
FLEETSLURM_HOME in a temporary directory. Run without arguments, as a user
runs them from the repository, they leave nothing in the current directory:
what they write goes to a new temporary directory, named on stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(fleet, name: str, *args: str, timeout: float = 300) -> tuple[str, str]:
    env = dict(fleet.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    tmp = fleet.root / "tmp"  # where tempfile puts the example's directory
    tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp)
    before = sorted(fleet.work.iterdir())
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                          capture_output=True, text=True, cwd=fleet.work, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert sorted(fleet.work.iterdir()) == before, f"{name} wrote into the current directory"
    return proc.stdout, proc.stderr


def outputs_dir(fleet, name: str, stderr: str) -> Path:
    """The new temporary directory the example named on stderr."""
    m = re.search(rf"^{name}: (?:outputs|store) in (\S+)$", stderr, re.M)
    assert m, stderr
    path = Path(m.group(1))
    if path.suffix == ".h5":  # objectserializer_example names its store file
        path = path.parent
    assert path.parent == fleet.root / "tmp" and path.name.startswith(f"fleetslurm-{name}-")
    return path


def test_every_example_is_tested():
    tested = {"slurminade_example", "databench_batch", "databench_parallel",
              "databench_backtest", "process_example", "objectserializer_example",
              "jobcontainer_example", "slurmdriver_example"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_slurminade_example(default_fleet):
    out, _ = run_example(default_fleet, "slurminade_example")
    m = re.search(r"prepare: job (\d+); f: jobs ([\d, ]+); clean_up: job (\d+)", out)
    assert m, out
    assert len(m.group(2).split(", ")) == 5  # 100 calls in bundles of 20
    assert "clean_up returned 'clean'" in out
    assert "f computed 100 squares, their sum is 328350" in out
    assert "['f(0)', 'f(1)', 'f(2)']" in out
    assert "calling f(3) here: 9" in out
    # the dependencies held: each bundle started after prepare ended, clean_up
    # after every bundle ended (once met, squeue/records show them as "", as SLURM)
    prepare, f_ids, clean = m.group(1), m.group(2).split(", "), m.group(3)
    rec = default_fleet.record
    for f in f_ids:
        assert rec(f)["start_time"] >= rec(prepare)["end_time"], (f, rec(f), rec(prepare))
        assert rec(clean)["start_time"] >= rec(f)["end_time"], (f, rec(f), rec(clean))


def test_databench_batch_example(default_fleet):
    out, err = run_example(default_fleet, "databench_batch")
    assert re.search(r"submitted one job array: \d+ \(6 tasks\)", out)
    rows = re.findall(r"(\d+_\d): sensor_(\d\d)\.csv: (\d+) rows", out)
    assert [(int(k), int(n)) for _, k, n in rows] == [(k, 200 + 50 * k) for k in range(6)]
    assert len({r[0].split("_")[0] for r in rows}) == 1  # one array
    where = outputs_dir(default_fleet, "databench_batch", err)
    table = (where / "out" / "by_site.csv").read_text().splitlines()
    assert table[0] == "site,count,sum,mean" and len(table) == 4
    assert sum(int(line.split(",")[1]) for line in table[1:]) == 200


def test_databench_parallel_example(default_fleet):
    out, err = run_example(default_fleet, "databench_parallel")
    assert (outputs_dir(default_fleet, "databench_parallel", err) / "prices" / "AAPL.csv").is_file()
    assert "submitted 12 analyses as 2 job arrays" in out
    lines = out.splitlines()
    start = lines.index("symbol volatility  momentum")
    table = [ln.split() for ln in lines[start + 1:start + 7]]
    assert [r[0] for r in table] == ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]
    vols = [float(r[1]) for r in table]
    assert vols == sorted(vols)  # the generator raises the noise per symbol


def test_databench_backtest_example(default_fleet):
    out, err = run_example(default_fleet, "databench_backtest")
    where = outputs_dir(default_fleet, "databench_backtest", err)
    assert len(list((where / "out").glob("analysis-backtest-*.out"))) == 16
    assert "submitted 16 backtests as 2 job arrays" in out
    rows = [ln.split() for ln in out.splitlines()[2:] if ln.strip()]
    assert len(rows) == 16
    sharpes = [float(r[3]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True)
    assert {(r[1], r[2]) for r in rows} == {("5", "20"), ("10", "50")}


def test_process_example(default_fleet):
    out, _ = run_example(default_fleet, "process_example")
    jobs = re.findall(r"job (\d+): pi ~ (\d\.\d+) on localhost, CPU (\d+\.\d+) s, "
                      r"peak memory (\d+) KiB", out)
    assert len(jobs) == 4
    for job_id, pi, cpu, rss in jobs:
        assert abs(float(pi) - 3.1416) < 0.05 and float(cpu) > 0 and int(rss) > 1000
        assert default_fleet.record(job_id)["name"] == "MonteCarloPi"


def test_objectserializer_example(default_fleet):
    out, err = run_example(default_fleet, "objectserializer_example")
    assert (outputs_dir(default_fleet, "objectserializer_example", err)
            / "objectserializer_example.h5").is_file()
    assert "entries: ['/run1/data', '/run1/notes', '/scratch']" in out
    assert "after delete: ['/run1/data', '/run1/notes']" in out
    size = float(re.search(r"file size: (\d+\.\d+) MB for 9\.6 MB", out).group(1))
    assert size < 9.6


def test_jobcontainer_example(default_fleet):
    out, err = run_example(default_fleet, "jobcontainer_example")
    assert (outputs_dir(default_fleet, "jobcontainer_example", err) / "smooth_remote.h5").is_file()
    assert "executed here: COMPLETED, 49976 values" in out
    m = re.search(r"job (\d+) on localhost: COMPLETED, 49900 values", out)
    assert m, out
    noise = float(re.search(r"residual noise: (\d\.\d+)", out).group(1))
    assert noise < 0.1  # smoothing removed most of the 0.3 noise


def test_slurmdriver_example(default_fleet):
    out, err = run_example(default_fleet, "slurmdriver_example")
    assert (outputs_dir(default_fleet, "slurmdriver_example", err) / "fib.sbatch").is_file()
    m = re.search(r"states: \{'(\d+)': 'COMPLETED', '(\d+)_0': 'COMPLETED', "
                  r"'\2_1': 'COMPLETED', '\2_2': 'COMPLETED'\}", out)
    assert m, out
    assert out.rstrip().splitlines()[-2:] == [
        f"fib(20) = 6765 on {os.uname().nodename} with 1 CPUs",
        f"fib(20) = 6765 on {os.uname().nodename} with 2 CPUs"]
