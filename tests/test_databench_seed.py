"""The seed's DataBench examples run as written on the embedded default:
partitions ``compute`` and ``gpu`` exist beside ``debug``, the built-in
analyses ``backtest`` and ``import_prices`` are registered, and every job the
seed's blocks submit completes (see tests/seed_blocks.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests import seed_blocks

#: the most the seed's blocks ask of one job
SEED_CPUS, SEED_MEM_GB = 4, 8


def _embedded_or_sized() -> Optional[dict]:
    """None: the embedded default itself, when this machine has room for the
    seed's 4-CPU, 8G jobs. Else the embedded default's own config with
    localhost declared that big (declared sizes are authoritative, as
    slurm.conf's): on a smaller machine SLURM, and fleetslurm, refuse such a
    job with "Requested node configuration is not available"."""
    from fleetslurm.config import default_config

    cfg = default_config()
    me = cfg.machines["localhost"]
    if (me.cpus or 0) >= SEED_CPUS and (me.memory_gb or 0) >= SEED_MEM_GB:
        return None
    data = cfg.model_dump(mode="json", exclude={"source"})
    data["machines"]["localhost"]["cpus"] = max(SEED_CPUS, me.cpus or 0)
    data["machines"]["localhost"]["memory_gb"] = max(SEED_MEM_GB, me.memory_gb or 0)
    data["kill_wait"], data["heartbeat_interval"] = 2, 1.0
    return data


@pytest.fixture
def seed_fleet(tmp_path: Path, no_slurm_env: None) -> Iterator:
    from conftest import Fleet, _teardown

    f = Fleet(tmp_path, _embedded_or_sized())
    f.env.pop("FLEETSLURM_DATA_DIR", None)
    f.env.pop("FLEETSLURM_PRICE_STORE", None)
    yield f
    _teardown(f)


def test_the_embedded_default_has_the_seeds_partitions(default_fleet):
    out = default_fleet.run("sinfo", "-h", "-o", "%P %N", check=True).stdout
    assert out == "debug* localhost\ncompute localhost\ngpu localhost\n"
    job = default_fleet.sbatch("-p", "compute", "--wrap", "echo $SLURM_JOB_PARTITION")
    rec = default_fleet.wait(job)
    assert (rec["state"], rec["partition"]) == ("COMPLETED", "compute")
    assert (default_fleet.work / f"slurm-{job}.out").read_text() == "compute\n"
    from fleetslurm.node.facts import local_facts

    facts = local_facts()
    if facts["cpus"] < SEED_CPUS:
        # why the seed's blocks need localhost declared bigger on this machine
        proc = default_fleet.run("sbatch", "-p", "compute", "-c", str(SEED_CPUS), "--wrap", "true")
        assert (proc.returncode, proc.stderr) == (
            1, "sbatch: error: Batch job submission failed: Requested node configuration is "
               "not available\n")
    if facts["gpus"]:
        return
    # gpu is only a partition here: asking for a GPU is refused as SLURM 22.05
    # refuses it where no node has a gpu gres (see test_cli_errors)
    proc = default_fleet.run("sbatch", "-p", "gpu", "--gres=gpu:1", "--wrap", "true")
    assert (proc.returncode, proc.stderr) == (
        1, "sbatch: error: Invalid generic resource (gres) specification\n")
    job = default_fleet.sbatch("-p", "gpu", "--wrap", "true")
    assert default_fleet.wait(job)["state"] == "COMPLETED"


def test_the_builtin_analyses_are_registered_and_say_where_their_data_is(fleet_env, tmp_path):
    from fleetslurm.databench import DataBenchSLURM
    from fleetslurm.errors import UsageError

    bench = DataBenchSLURM()
    assert bench.analyses.names() == ["backtest", "import_prices"]
    assert bench.data_dir == fleet_env.work / "data" / "prices"
    assert bench.store == fleet_env.work / "data" / "prices.h5"
    with pytest.raises(UsageError, match=r"backtest reads <SYMBOL>\.csv from the data "
                       r"directory .*/data/prices, which does not exist.*FLEETSLURM_DATA_DIR"):
        bench.submit_parallel_analysis(["AAPL"], "backtest")
    (tmp_path / "px").mkdir()
    (tmp_path / "px" / "AAPL.csv").write_text("date,close\n2024-01-01,1\n2024-01-02,x\n")
    bench = DataBenchSLURM(data_dir=tmp_path / "px", store=tmp_path / "s.h5")
    with pytest.raises(UsageError, match=r"import_prices: no price file for MSFT in the data "
                       r"directory .*/px \(expected MSFT\.csv\)"):
        bench.submit_parallel_analysis(["AAPL", "MSFT"], "import_prices")
    # a file the script cannot read fails its task, and nothing is stored
    ids = bench.submit_parallel_analysis(["AAPL"], "import_prices", cpus_per_job=1)
    assert bench.wait_for_jobs(ids, timeout=60) == {ids[0]: "FAILED"}
    assert "AAPL: " in bench.get_job_output(ids[0])
    assert "line 3: close='x' is not a number" in bench.get_job_output(ids[0])
    assert not (tmp_path / "s.h5").exists()
    # a user's own "backtest" replaces the built-in: no data directory is
    # implied for it any more (the symbol alone is its argument)
    bench.register_analysis("backtest", seed_blocks.ROOT / "scripts" / "process_file.py")
    ids = bench.submit_parallel_analysis(["nothing-here"], "backtest", cpus_per_job=1)
    assert bench.wait_for_jobs(ids, timeout=60) == {ids[0]: "FAILED"}
    assert "nothing-here" in bench.get_job_output(ids[0])


def test_the_seeds_blocks_run_as_written(seed_fleet):
    work = seed_fleet.work
    seed_blocks.prepare(work)
    out = seed_blocks.run(work, seed_fleet.env)
    states = seed_blocks.check(out, work, {"localhost"})
    acct = seed_fleet.run("sacct", "-X", "-n", "-P", "-o", "JobID,Partition,State",
                          check=True).stdout.split()
    assert len(acct) == len(states) and {r.split("|", 1)[1] for r in acct} == \
        {"compute|COMPLETED"}, acct
    # the seed's #SBATCH template, through sbatch
    (work / "my_job.sh").write_text(seed_blocks.SBATCH_TEMPLATE)
    job = seed_fleet.sbatch("my_job.sh")
    rec = seed_fleet.wait(job)
    assert (rec["state"], rec["partition"], rec["name"]) == ("COMPLETED", "compute", "my_job")
    got = json.loads((work / f"slurm-{job}.out").read_text())
    assert (got["script"], got["cpus"], got["partition"]) == ("process_data", "4", "compute")
    # nothing of the blocks' landed outside the user's directory and the state dir
    assert not [p for p in seed_fleet.root.iterdir() if p.name not in
                {"home", "work", "fleet_config.json"}]
    assert os.path.isfile(work / "data" / "prices.h5")


def test_store_prices_takes_only_import_prices_output(tmp_path):
    import numpy as np

    from fleetslurm.api.databench.builtin import store_prices
    from fleetslurm.api.objser import ObjectSerializer

    store = tmp_path / "d" / "s.h5"
    for text in ("", "Traceback ...", '{"symbol": "MSFT", "columns": {}}', "[1, 2]"):
        with pytest.raises(ValueError, match="import_prices AAPL: its output is not "
                                             "import_prices.py's JSON"):
            store_prices(store, "AAPL", text)
    assert not store.exists()
    printed = ('conda says hello\n{"symbol": "AAPL", "rows": 2, "columns": '
               '{"date": ["d1", "d2"], "close": [1.5, null]}}\n')
    assert store_prices(store, "AAPL", printed) == "/prices/AAPL"
    got = ObjectSerializer(store).load("/prices/AAPL")
    assert got["date"] == ["d1", "d2"] and got["close"].dtype == np.float64
    assert got["close"][0] == 1.5 and np.isnan(got["close"][1])
