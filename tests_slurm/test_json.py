"""``squeue --json`` and ``sinfo --json`` judged by real SLURM 22.05.

The same jobs (one held, one running) on both sides: the same keys in the same
order, values of the same JSON types, and the same values once ids, times and
the sides' directories are normalised. The text itself: fleetslurm's
serializer prints the oracle's parsed output back byte for byte. (sacct's
--json needs an accounting database, which the oracle has not: fleetslurm
refuses it, see docs/OPTIONS.md.)
"""

from __future__ import annotations

import json
import time

import pytest

from fleetslurm.slurm.json_fmt import dumps

from .sides import Side

# moments and counters that differ between any two runs
_TIMES = ("submit_time", "start_time", "end_time", "eligible_time", "accrue_time",
          "last_sched_evaluation")
_NODE_LIVE = ("cpu_load", "free_memory", "last_busy", "slurmd_start_time", "boot_time",
              "operating_system", "state", "state_flags", "alloc_memory", "alloc_cpus",
              "idle_cpus", "tres_used", "tres_weighted")


def _kind(value: object) -> str:
    return type(value).__name__


@pytest.fixture(scope="module")
def jobs(slurm: Side, fleet: Side) -> dict[str, list[dict]]:
    """Each side's squeue --json records of its held and its running job."""
    ids = {}
    for side in (slurm, fleet):
        held = side.sbatch("--hold", "-J", "jheld", "-c", "2", "--mem=100", "--wrap", "true")
        run = side.sbatch("-J", "jrun", "--mem=100", "-t", "5", "-o", "json-%j.out",
                          "--wrap", "sleep 120")
        ids[side.label] = (held, run)
    deadline = time.monotonic() + 60
    for side in (slurm, fleet):
        run = ids[side.label][1]
        while side.states([run]).get(str(run), ("",))[0] != "RUNNING":
            assert time.monotonic() < deadline, f"{side.label}: job never ran"
            time.sleep(0.5)
    out = {}
    for side in (slurm, fleet):
        # 22.05 ignores squeue's filters with --json: -u nobody lists our jobs all the same
        res = side.run("squeue", "--json", "-u", "nobody")
        assert res.rc == 0 and res.err == "", res
        assert dumps(json.loads(res.out)) == res.out  # the serializer, byte for byte
        found = {j["job_id"]: j for j in json.loads(res.out)["jobs"]}
        out[side.label] = [_normal(side, found[i]) for i in ids[side.label]]
        side.scancel(*ids[side.label])
    return out


def _normal(side: Side, job: dict) -> dict:
    out = {}
    for key, value in job.items():
        if isinstance(value, str):
            value = value.replace(str(side.work), "WORK")
        if key in _TIMES:
            value = "set" if value else 0
        elif key in ("job_id", "priority"):
            value = _kind(value)
        elif key == "job_resources":
            # which socket/core: the machine's business
            value = dict(value, allocated_nodes=[
                dict(n, sockets=len(n["sockets"])) for n in value["allocated_nodes"]])
        out[key] = value
    return out


@pytest.mark.parametrize("which", [0, 1], ids=["held", "running"])
def test_squeue_json_job(jobs: dict, which: int) -> None:
    want, got = jobs["slurm"][which], jobs["fleet"][which]
    assert list(got) == list(want)
    assert {k: _kind(v) for k, v in got.items()} == {k: _kind(v) for k, v in want.items()}
    assert got == want


def test_running_job_ends_at_its_time_limit(slurm: Side, fleet: Side) -> None:
    for side in (slurm, fleet):
        job = side.sbatch("-t", "3", "--wrap", "sleep 60")
        deadline = time.monotonic() + 60
        while True:
            rec = {j["job_id"]: j for j in json.loads(side.run("squeue", "--json").out)["jobs"]}
            if rec[job]["job_state"] == "RUNNING":
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        side.scancel(job)
        assert rec[job]["end_time"] - rec[job]["start_time"] == 180, side.label


def test_sinfo_json_node(slurm: Side, fleet: Side) -> None:
    nodes = {}
    for side in (slurm, fleet):
        res = side.run("sinfo", "--json", "-p", "nosuch")  # filters ignored, as 22.05
        assert res.rc == 0 and res.err == "", res
        assert dumps(json.loads(res.out)) == res.out
        data = json.loads(res.out)
        assert list(data) == ["meta", "errors", "nodes"] and data["errors"] == []
        nodes[side.label] = data
    assert nodes["fleet"]["meta"] == nodes["slurm"]["meta"]
    (want,), (got,) = nodes["slurm"]["nodes"], nodes["fleet"]["nodes"]
    assert list(got) == list(want)
    # live figures (load, what the other side's jobs hold): of the same kind
    for key in _NODE_LIVE:
        assert want[key] is None or _kind(got[key]) == _kind(want[key]), key
    assert {k: v for k, v in got.items() if k not in _NODE_LIVE} == \
        {k: v for k, v in want.items() if k not in _NODE_LIVE}
