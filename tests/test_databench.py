"""DataBench (fleetslurm.databench) against a real controller on this machine:
processing jobs, one-array batches, parallel analyses, waiting, statuses and
the machines' status; bad input. The scripts are the shipped ones in scripts/."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from fleetslurm.databench import DataBenchSLURM
from fleetslurm.errors import FleetError, InvalidJobId, InvalidValue, UsageError

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


@pytest.fixture
def bench(fleet_env):
    return DataBenchSLURM()


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_processing_job_stages_its_input_and_brings_its_output_back(bench, fleet):
    data = _csv(fleet.work / "in" / "sales.csv", "region,amount", "north,10", "south,5",
                "north,2.5")
    job = bench.submit_data_processing_job(
        SCRIPTS / "process_data.py", partition="debug", cpus=1, memory="256M",
        time_limit="5:00", args=[str(data), "--group-by", "region", "--value", "amount",
                                 "--output", "by_region.csv"],
        outputs=["by_region.csv"], output_dir=fleet.work / "out")
    assert job.isdigit()
    assert bench.wait_for_jobs([job], timeout=60) == {job: "COMPLETED"}
    st = bench.get_job_status(job)
    assert st["status"] == "COMPLETED" and st["assigned_machine"] == "localhost"
    assert st["name"] == "process_data" and st["exit_code"] == 0 and st["exit"] == "0:0"
    assert st["start"] and st["end"] and st["start"] <= st["end"]
    assert st["stdout"] == str(fleet.work / "out" / f"process_data-{job}.out")
    printed = json.loads(Path(st["stdout"]).read_text())
    assert printed["groups"] == {"north": {"count": 2, "sum": 12.5, "mean": 6.25},
                                 "south": {"count": 1, "sum": 5.0, "mean": 5.0}}
    assert (fleet.work / "out" / "by_region.csv").read_text().splitlines() == [
        "region,count,sum,mean", "north,2,12.5,6.25", "south,1,5.0,5.0"]
    # the job record agrees with sacct's view
    rec = fleet.record(job)
    assert rec["cpus"] == 1 and rec["mem_mb"] == 256 and rec["time_limit"] == 5


def test_batch_processing_is_one_array_and_each_task_gets_its_file(bench, fleet):
    names = ["a.csv", "b c.csv", "it's.csv"]
    files = [_csv(fleet.work / "data" / n, "x,y", *(f"{i},{i * k}" for i in range(k + 2)))
             for k, n in enumerate(names)]
    ids = bench.submit_batch_processing(files, SCRIPTS / "process_file.py", partition="debug",
                                        cpus_per_job=1, memory_per_job=128, time_limit=5,
                                        args=["--columns", "x,y"])
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(3)]
    recs = fleet.records(array)  # one job: the array's id names every task
    assert len(recs) == 3 and {r["array_job_id"] for r in recs} == {int(array)}
    states = bench.wait_for_jobs(ids, timeout=90)
    assert states == {i: "COMPLETED" for i in ids}
    results = bench.get_results(ids)
    for k, (i, name) in enumerate(zip(ids, names)):
        assert results[i]["file"] == name and results[i]["rows"] == k + 2
        assert results[i]["task"] == str(k) and results[i]["columns"] == ["x", "y"]
    whole = bench.get_job_status(array)
    assert whole["status"] == "COMPLETED" and whole["counts"] == {"COMPLETED": 3}
    assert [t["job_id"] for t in whole["tasks"]] == ids
    assert bench.get_job_status(ids[1])["stdout"] == str(
        fleet.work / f"process_file-{array}_1.out")


def test_batch_input_is_snapshotted_at_submission(bench, fleet):
    """A user may delete or rewrite the inputs right after submitting."""
    f = _csv(fleet.work / "snap.csv", "v", "1", "2", "3")
    ids = bench.submit_batch_processing([f], SCRIPTS / "process_file.py", time_limit=5)
    f.unlink()
    assert bench.wait_for_jobs(ids, timeout=60) == {ids[0]: "COMPLETED"}
    assert bench.get_results(ids)[ids[0]]["rows"] == 3
    # the spool is swept once its jobs are over
    ids2 = bench.submit_batch_processing([_csv(fleet.work / "other.csv", "v", "1")],
                                         SCRIPTS / "process_file.py", time_limit=5)
    spools = list((fleet.home / "databench").glob("spool-*"))
    assert len(spools) == 1 and json.loads((spools[0] / "jobs.json").read_text()) == [
        ids2[0].split("_")[0]]
    assert oct(spools[0].stat().st_mode & 0o777) == "0o700"
    bench.wait_for_jobs(ids2, timeout=60)


def test_parallel_analysis_with_a_script_and_per_symbol_data(bench, fleet):
    prices = fleet.work / "prices"
    for k, sym in enumerate(["AAPL", "MSFT"]):
        closes = [100 + (i % 7) * (k + 1) + i * 0.5 for i in range(40)]
        _csv(prices / f"{sym}.csv", "date,close",
             *(f"2024-01-{i + 1:02d},{c}" for i, c in enumerate(closes)))
    bench.register_analysis("backtest", SCRIPTS / "backtest.py")
    ids = bench.submit_parallel_analysis(["AAPL", "MSFT"], "backtest", partition="debug",
                                         cpus_per_job=1, memory_per_job="128M", data=prices,
                                         args=["--fast", "3", "--slow", "10"])
    assert len(ids) == 2 and ids[0].split("_")[0] == ids[1].split("_")[0]
    results = bench.get_results(ids, timeout=90)
    assert [results[i]["symbol"] for i in ids] == ["AAPL", "MSFT"]
    for i in ids:
        assert results[i]["days"] == 40 and results[i]["fast"] == 3 and results[i]["slow"] == 10
    # the script is the shipped one, run here on the same file: same numbers
    import importlib.util
    spec = importlib.util.spec_from_file_location("bt", SCRIPTS / "backtest.py")
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    local = bt.backtest("AAPL", bt.read_closes(str(prices / "AAPL.csv")), 3, 10)
    assert {k: results[ids[0]][k] for k in local} == local
    assert bench.get_job_status(ids[0])["name"] == "analysis-backtest"


def test_bad_input_is_refused_with_what_to_do(bench, fleet):
    with pytest.raises(UsageError, match=r"processing script .*nope\.py does not exist"):
        bench.submit_data_processing_job(fleet.work / "nope.py")
    with pytest.raises(UsageError, match=r"data file .*missing\.csv does not exist"):
        bench.submit_batch_processing([fleet.work / "missing.csv"], SCRIPTS / "process_file.py")
    with pytest.raises(UsageError, match="no data files given"):
        bench.submit_batch_processing([], SCRIPTS / "process_file.py")
    bench.register_analysis("backtest", SCRIPTS / "backtest.py")
    bench.register_analysis("summary", SCRIPTS / "process_file.py")
    with pytest.raises(UsageError) as err:
        bench.submit_parallel_analysis(["AAPL"], "montecarlo")
    assert "unknown analysis type 'montecarlo'" in str(err.value)
    assert "known analysis types: backtest, import_prices, summary" in str(err.value)
    with pytest.raises(UsageError, match="data has no file for MSFT"):
        bench.submit_parallel_analysis(["AAPL", "MSFT"], "backtest",
                                       data={"AAPL": SCRIPTS / "backtest.py"})
    with pytest.raises(UsageError, match="symbols repeat: AAPL"):
        bench.submit_parallel_analysis(["AAPL", "AAPL"], "backtest")
    with pytest.raises(InvalidValue, match="memory"):
        bench.submit_data_processing_job(SCRIPTS / "process_file.py", memory="lots")
    with pytest.raises(InvalidValue, match="time_limit"):
        bench.submit_data_processing_job(SCRIPTS / "process_file.py", time_limit="soon")
    with pytest.raises(UsageError, match="unknown SLURM option 'colour'"):
        bench.submit_data_processing_job(SCRIPTS / "process_file.py", colour="red")
    with pytest.raises(FleetError, match="Requested node configuration is not available"):
        bench.submit_data_processing_job(SCRIPTS / "process_file.py", cpus=64)
    with pytest.raises(InvalidJobId, match="no such job: 4242"):
        bench.get_job_status("4242")
    with pytest.raises(InvalidJobId, match="no such job: 4242"):
        bench.wait_for_jobs(["4242"], timeout=5)
    # nothing was half-submitted
    assert fleet.run("squeue", "-h", "-t", "all", check=True).stdout == ""
    assert not list((fleet.home / "databench").glob("spool-*"))


def test_a_failing_processor_fails_its_task_only(bench, fleet):
    good = _csv(fleet.work / "good.csv", "v", "1")
    bad = fleet.work / "bad.csv"
    bad.write_text("")  # no header line
    ids = bench.submit_batch_processing([good, bad], SCRIPTS / "process_file.py", time_limit=5)
    states = bench.wait_for_jobs(ids, timeout=60)
    assert states == {ids[0]: "COMPLETED", ids[1]: "FAILED"}
    st = bench.get_job_status(ids[1])
    assert st["exit_code"] == 1 and st["exit"] == "1:0"
    assert "bad.csv: it has no header line" in Path(st["stdout"]).read_text()
    assert bench.get_job_status(ids[0].split("_")[0])["status"] == "FAILED"


def test_wait_times_out_naming_the_jobs_and_leaves_them_running(bench, fleet):
    sleeper = fleet.work / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(60)\n")
    job = bench.submit_data_processing_job(sleeper, time_limit=5)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        bench.wait_for_jobs([job], timeout=1.5)
    assert 1.4 < time.monotonic() - t0 < 10
    assert f"1 of 1 jobs not finished after 1.5 s: {job}" in str(err.value)
    assert fleet.record(job)["state"] in ("PENDING", "RUNNING")
    bench.cancel_jobs([job])
    assert bench.wait_for_jobs([job], timeout=30) == {job: "CANCELLED"}


def test_progress_bar_only_on_a_terminal(bench, fleet):
    from fleetslurm.api.databench.status import wait_for

    class Stream(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    seq = iter([{"5_0": "PENDING", "5_1": "RUNNING"}, {"5_0": "RUNNING", "5_1": "COMPLETED"},
                {"5_0": "COMPLETED", "5_1": "COMPLETED"}])
    last = {}

    def states(ids):
        last.update(next(seq, last))
        return dict(last)

    tty = Stream(True)
    done = lambda s: s not in ("PENDING", "RUNNING")  # noqa: E731
    assert wait_for(states, done, ["5"], timeout=10, stream=tty, poll=0.01) == {
        "5_0": "COMPLETED", "5_1": "COMPLETED"}
    assert "2/2" in tty.getvalue() and "jobs" in tty.getvalue()
    seq = iter([{"5_0": "COMPLETED"}])
    last.clear()
    plain = Stream(False)
    wait_for(states, done, ["5"], timeout=10, stream=plain)
    assert plain.getvalue() == ""


def test_cluster_status_per_machine(bench, fleet):
    deadline = time.monotonic() + 30
    while True:  # the machine is down until its agent first answers
        st = bench.get_cluster_status()
        assert set(st) == {"localhost"}
        m = st["localhost"]
        if m["state"] != "down" and m["load"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert m["state"] in ("idle", "mix", "alloc") and m["cpus_total"] == 2
    assert m["memory_total_mb"] == 4096 and m["gpus_total"] == 0
    assert m["cpus_used"] == 0 and m["memory_used_mb"] == 0 and m["gpus_used"] == 0
    assert m["load"] >= 0 and m["memory_free_mb"] > 0
    sleeper = fleet.work / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(60)\n")
    job = bench.submit_data_processing_job(sleeper, cpus=2, memory="1G", time_limit=5)
    deadline = time.monotonic() + 30
    while bench.get_job_status(job)["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    m = bench.get_cluster_status()["localhost"]
    assert (m["state"], m["cpus_used"], m["memory_used_mb"]) == ("alloc", 2, 1024)
    bench.cancel_jobs([job])


def test_parallel_analysis_with_registered_functions(bench, fleet):
    prices = fleet.work / "px"
    _csv(prices / "AAA.csv", "date,close", "d1,10", "d2,11", "d3,12.5")
    _csv(prices / "BBB.csv", "date,close", "d1,20", "d2,19")

    # defined here, so it travels by value (as a script's __main__ functions do)
    @bench.analysis("growth")
    def growth(symbol, path, scale=1):
        import csv
        import os
        with open(path) as f:
            closes = [float(r["close"]) for r in csv.DictReader(f)]
        return {"symbol": symbol, "file": os.path.basename(path), "n": len(closes),
                "growth": scale * (closes[-1] / closes[0] - 1), "pid": os.getpid()}

    @bench.analysis("fails")
    def fails(symbol):
        raise ValueError(f"no model for {symbol}")

    assert getattr(growth, "__fleetslurm_analysis__") == "growth"
    ids = bench.submit_parallel_analysis(["AAA", "BBB"], "growth", partition="debug",
                                         cpus_per_job=1, memory_per_job="256M", data=prices,
                                         args=[100])
    assert ids[0].split("_")[0] == ids[1].split("_")[0] and ids[1].endswith("_1")
    results = bench.get_results(ids, timeout=120)
    assert results[ids[0]]["symbol"] == "AAA" and results[ids[0]]["file"] == "AAA.csv"
    assert results[ids[0]]["growth"] == pytest.approx(25.0)
    assert results[ids[1]]["n"] == 2 and results[ids[1]]["growth"] == pytest.approx(-5.0)
    assert results[ids[0]]["pid"] != os.getpid()  # it ran in a job, not here
    # from another DataBench (another process would do the same): found through Job.load
    assert DataBenchSLURM().get_results([ids[1]])[ids[1]]["symbol"] == "BBB"
    st = bench.get_job_status(ids[0])
    assert st["name"] == "analysis-growth" and st["status"] == "COMPLETED"
    # a failing analysis: its remote traceback comes back in the error
    from fleetslurm.errors import RemoteJobError

    bad = bench.submit_parallel_analysis(["ZZZ"], "fails")
    assert bench.wait_for_jobs(bad, timeout=120) == {bad[0]: "FAILED"}
    with pytest.raises(RemoteJobError) as err:
        bench.get_results(bad)
    assert "ValueError: no model for ZZZ" in str(err.value)
    assert "raise ValueError" in err.value.remote_traceback


def test_waiting_for_many_tasks_asks_by_the_array_id(bench, fleet, monkeypatch):
    files = [_csv(fleet.work / "many" / f"f{k}.csv", "v", str(k)) for k in range(25)]
    ids = bench.submit_batch_processing(files, SCRIPTS / "process_file.py", time_limit=5)
    asked = []
    real = bench.client.states
    monkeypatch.setattr(bench.client, "states", lambda q: asked.append(list(q)) or real(q))
    assert bench.wait_for_jobs(ids, timeout=120) == {i: "COMPLETED" for i in ids}
    assert asked and all(q == [ids[0].split("_")[0]] for q in asked)
    # a few tasks: asked by their own ids, and only they come back
    asked.clear()
    assert bench.wait_for_jobs(ids[3:5], timeout=10) == {ids[3]: "COMPLETED",
                                                         ids[4]: "COMPLETED"}
    assert asked == [ids[3:5]]
