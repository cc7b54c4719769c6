"""The seed's DataBench usage, call for call, and a user's directory to run it in.

The seed (Data_Bench's SLURM integration, whose ``DataBenchSLURM`` fleetslurm
keeps) documented its API with Python code blocks: one processing job, a
batch of files, a parallel backtest of five symbols, a price import for
mstables, three strategy scripts, and two troubleshooting calls. ``BLOCKS``
holds those calls as the seed's users wrote them: the same functions,
keyword arguments and values (partition ``compute``, 4 CPUs and 8G per job,
analysis types ``backtest`` and ``import_prices`` with no data argument).
The one change is the import line: the seed's class lived in its own
application (``src.utils.data_bench_slurm``); fleetslurm's is
``fleetslurm.databench``.

What the blocks assume of the user's directory (their own scripts and data,
which the seed did not ship) is made by :func:`prepare`: ``scripts/`` with
``process_data.py`` and the three ``backtest_<strategy>.py`` scripts (the
user's) and fleetslurm's shipped ``process_file.py``; ``data/raw/`` CSV
files; ``data/prices/<SYMBOL>.csv``, the built-in analyses' default data
directory.

:func:`run` executes the blocks in order, in one namespace, in a fresh
interpreter whose working directory is the user's directory, then waits for
every job the blocks submitted and prints their final states as JSON.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCKS: list[tuple[str, str]] = [
    ("basic job submission", '''\
from fleetslurm.databench import DataBenchSLURM

bench = DataBenchSLURM()

job_id = bench.submit_data_processing_job(
    script_path="scripts/process_data.py",
    partition="compute",
    cpus=4,
    memory="8G",
    time_limit="2:00:00"
)

results = bench.wait_for_jobs([job_id], timeout=3600)
print(f"Job {job_id} completed: {results[job_id]}")
'''),
    ("batch processing", '''\
data_files = [
    "data/raw/file1.csv",
    "data/raw/file2.csv",
    "data/raw/file3.csv"
]

job_ids = bench.submit_batch_processing(
    data_files=data_files,
    processor="scripts/process_file.py",
    partition="compute",
    cpus_per_job=2,
    memory_per_job="4G"
)

results = bench.wait_for_jobs(job_ids, timeout=3600)
'''),
    ("parallel analysis", '''\
symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"]

job_ids = bench.submit_parallel_analysis(
    symbols=symbols,
    analysis_type="backtest",
    partition="compute",
    cpus_per_job=4,
    memory_per_job="8G"
)

for job_id in job_ids:
    status = bench.get_job_status(job_id)
    print(f"Job {job_id}: {status['status']} on {status['assigned_machine']}")
'''),
    ("financial data processing", '''\
from fleetslurm.databench import DataBenchSLURM

bench = DataBenchSLURM()

symbols = ["AAPL", "MSFT", "GOOGL"]
job_ids = bench.submit_parallel_analysis(
    symbols=symbols,
    analysis_type="import_prices",
    partition="compute",
    cpus_per_job=2,
    memory_per_job="4G"
)

results = bench.wait_for_jobs(job_ids)
'''),
    ("backtesting", '''\
strategies = ["buy_and_hold", "momentum", "mean_reversion"]
job_ids = []

for strategy in strategies:
    job_id = bench.submit_data_processing_job(
        script_path=f"scripts/backtest_{strategy}.py",
        partition="compute",
        cpus=4,
        memory="8G",
        time_limit="4:00:00"
    )
    job_ids.append(job_id)

for job_id in job_ids:
    status = bench.get_job_status(job_id)
    print(f"{status['name']}: {status['status']}")
'''),
    ("check job status", '''\
status = bench.get_job_status(job_id)
print(status)
'''),
    ("check machine status", '''\
cluster_status = bench.get_cluster_status()
print(cluster_status)
'''),
]

#: the seed's batch-script template (its only #SBATCH example), run with sbatch
SBATCH_TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name=my_job
#SBATCH --partition=compute
#SBATCH --nodes=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=2:00:00

python3 scripts/process_data.py
"""

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"]
STRATEGIES = ["buy_and_hold", "momentum", "mean_reversion"]

_USER_SCRIPT = """\
import json, os, socket
print(json.dumps({{"script": {name!r}, "host": socket.gethostname(),
                  "cpus": os.environ.get("SLURM_CPUS_PER_TASK"),
                  "partition": os.environ.get("SLURM_JOB_PARTITION")}}))
"""

_RUNNER = """\
import json
from pathlib import Path

blocks = json.loads(Path("seed_blocks.json").read_text())
ns = {"__name__": "__main__"}
submitted = []
for title, code in blocks:
    print("=== " + title, flush=True)
    exec(compile(code, title, "exec"), ns)
    for key in ("job_id", "job_ids"):
        value = ns.get(key)
        for i in ([value] if isinstance(value, str) else value or []):
            if i not in submitted:
                submitted.append(i)
print("=== states " + json.dumps(ns["bench"].wait_for_jobs(submitted, timeout=600)))
"""


def prices(symbol: str, days: int = 60) -> list[tuple[str, float, int]]:
    """A symbol's made-up daily prices: (date, close, volume)."""
    rng = random.Random(symbol)
    price, rows = 100.0, []
    for day in range(days):
        price *= math.exp(rng.gauss(0.0005, 0.015))
        rows.append((f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}", round(price, 4),
                     1000 + day))
    return rows


def prepare(work: Path) -> None:
    """The user's directory the seed's blocks expect (see the module's doc)."""
    scripts = work / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "process_file.py").write_bytes((ROOT / "scripts" / "process_file.py").read_bytes())
    (scripts / "process_data.py").write_text(_USER_SCRIPT.format(name="process_data"))
    for strategy in STRATEGIES:
        (scripts / f"backtest_{strategy}.py").write_text(
            _USER_SCRIPT.format(name=f"backtest_{strategy}"))
    raw = work / "data" / "raw"
    raw.mkdir(parents=True)
    for k in (1, 2, 3):
        (raw / f"file{k}.csv").write_text("x,y\n" + "".join(f"{i},{i * k}\n"
                                                            for i in range(10 * k)))
    pdir = work / "data" / "prices"
    pdir.mkdir(parents=True)
    for sym in SYMBOLS:
        with open(pdir / f"{sym}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["date", "close", "volume"])
            w.writerows(prices(sym))
    (work / "seed_blocks.json").write_text(json.dumps(BLOCKS))
    (work / "seed_usage.py").write_text(_RUNNER)


def run(work: Path, env: dict[str, str], timeout: float = 900) -> str:
    """Run the blocks in ``work``; their stdout (the run must succeed)."""
    e = dict(env)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "seed_usage.py"], cwd=work, env=e,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"the seed's blocks failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check(out: str, work: Path, machines: set[str]) -> dict[str, str]:
    """What the seed's blocks must have done; returns the jobs' final states."""
    import numpy as np

    from fleetslurm.api.databench.builtin.backtest import backtest
    from fleetslurm.api.objser import ObjectSerializer

    lines = out.splitlines()
    assert lines[-1].startswith("=== states "), out
    states = json.loads(lines[-1][len("=== states "):])
    assert states and set(states.values()) == {"COMPLETED"}, states
    # 1 job, 3 batch tasks, 5 backtests, 3 imports, 3 strategy jobs
    assert len(states) == 15, states
    done = [ln for ln in lines if " completed: " in ln]
    assert len(done) == 1 and done[0].endswith(": COMPLETED"), out
    polled = [ln.split() for ln in lines if ln.startswith("Job ") and " on " in ln]
    assert len(polled) == 5 and all(p[2] in {"PENDING", "RUNNING", "COMPLETED"}
                                     and p[4] in machines | {"None"} for p in polled), polled
    named = [ln for ln in lines if ln.startswith("backtest_")]
    assert [ln.split(":")[0] for ln in named] == [f"backtest_{s}" for s in STRATEGIES], out
    # the backtests: the shipped script on each symbol's file, same numbers as here
    for sym in SYMBOLS:
        (outfile,) = [p for p in work.glob("analysis-backtest-*.out")
                      if json.loads(p.read_text())["symbol"] == sym]
        got = json.loads(outfile.read_text())
        want = backtest(sym, [c for _, c, _ in prices(sym)])
        assert {k: got[k] for k in want} == want
    # the imports: the store holds each symbol's columns
    store = ObjectSerializer(work / "data" / "prices.h5")
    assert store.list("/prices") == ["/prices/AAPL", "/prices/GOOGL", "/prices/MSFT"]
    for sym in ("AAPL", "MSFT", "GOOGL"):
        entry = store.load(f"/prices/{sym}")
        rows = prices(sym)
        assert entry["date"] == [d for d, _, _ in rows]
        assert np.array_equal(entry["close"], np.array([c for _, c, _ in rows]))
        assert np.array_equal(entry["volume"], np.array([v for _, _, v in rows], dtype=float))
    # the batch: process_file.py's summary of each file
    summaries = sorted(json.loads(p.read_text())["rows"]
                       for p in work.glob("process_file-*.out"))
    assert summaries == [10, 20, 30]
    # the user's scripts ran with the resources the blocks asked for
    for p in [*work.glob("process_data-*.out"), *work.glob("backtest_*-*.out")]:
        got = json.loads(p.read_text())
        assert (got["cpus"], got["partition"]) == ("4", "compute"), (p, got)
    return states
