"""GPU usage in SLURM's formats (pure): sinfo -O GresUsed, fleetslurm's
GpuUtil/GpuMem line in scontrol show node, sacct's TRESUsageIn* items for a
job's GPUs, and the controller's reading of a heartbeat (ctld.gpustats)."""
from __future__ import annotations

from fleetslurm.ctld import gpustats
from fleetslurm.slurm import sacct_fmt, scontrol_fmt, sinfo_fmt
from fleetslurm.slurm.fmt_common import long_format
from fleetslurm.views import gpu_usage

PART = {"name": "debug", "default": True, "state": "up", "nodes": ["a", "b", "c"]}
NODES = [{"name": "a", "state": "idle", "cpus": 2, "gpus": 0},
         {"name": "b", "state": "mix", "cpus": 2, "gpus": 2, "alloc_gpus": 1},
         {"name": "c", "state": "idle", "cpus": 2, "gpus": 2, "alloc_gpus": 0}]


def test_sinfo_gres_used_as_slurm_22_05_prints_it() -> None:
    out = sinfo_fmt.render(long_format("NodeList:5,Gres:7,GresUsed"), [PART], NODES,
                           node_oriented=True)
    assert out.splitlines() == ["NODELGRES   GRES_USED           ",
                                "a    (null) (null)              ",
                                "b    gpu:2  gpu:1               ",
                                "c    gpu:2  gpu:0               "]
    # like GRES, GresUsed splits a partition's line
    by_part = sinfo_fmt.render(long_format("GresUsed:8,NodeList"), [PART], NODES,
                               node_oriented=False, header=False)
    assert sorted(by_part.split()) == ["(null)", "a", "b", "c", "gpu:0", "gpu:1"]


def test_scontrol_show_node_has_fleetslurms_gpu_line_only_with_a_reading() -> None:
    node = dict(NODES[1], gpu_usage=[
        {"index": 0, "uuid": "GPU-a", "util": 37, "mem_used_mb": 1200, "mem_total_mb": 16384},
        {"index": 1, "uuid": "GPU-b", "util": 0, "mem_used_mb": 0, "mem_total_mb": 15360}])
    text = scontrol_fmt.show_node(node, 0.0)  # type: ignore[arg-type]
    assert "   Gres=gpu:2\n   GpuUtil=0:37%,1:0% GpuMem=0:1200M/16G,1:0M/15G\n" in text
    assert "GpuUtil" not in scontrol_fmt.show_node(NODES[1], 0.0)  # type: ignore[arg-type]


def test_sacct_tres_usage_of_a_jobs_gpus() -> None:
    step = {"gpu_samples": 3, "gpu_util_sum": 150.0, "gpu_util_max": 90,
            "gpu_mem_sum_mb": 3000.0, "gpu_mem_max_mb": 2048}
    usage = gpu_usage(step)
    assert usage == {"samples": 3, "util_ave": 50, "util_max": 90, "mem_ave_mb": 1000,
                     "mem_max_mb": 2048}
    assert gpu_usage(dict(step, gpu_samples=0)) is None and gpu_usage(None) is None
    job = {"job_id": 7, "state": "COMPLETED", "start_time": 10.0, "end_time": 20.0,
           "nodes": ["b"], "cpus": 1, "gpus": 1, "gpu_usage": usage}
    fields = sacct_fmt.parse_fields("JobID,TRESUsageInAve,TRESUsageInMax,TRESUsageInMaxTask")
    rows = sacct_fmt.rows_for(job, allocations_only=False)  # type: ignore[arg-type]
    assert sacct_fmt.render(fields, rows, mode="parsable2", header=False).splitlines() == [
        "7|||",
        "7.batch|gres/gpumem=1000M,gres/gpuutil=50|gres/gpumem=2G,gres/gpuutil=90|"
        "gres/gpumem=0,gres/gpuutil=0"]


class _Store:
    def __init__(self, tasks: list) -> None:
        self.tasks, self.samples = tasks, []

    def live_tasks_on(self, node: str) -> list:
        return self.tasks

    def add_gpu_sample(self, run_key: str, util: int, mem: int) -> None:
        self.samples.append((run_key, util, mem))


class _Ctx:
    def __init__(self, tasks: list) -> None:
        self.store = _Store(tasks)


def _gpu(index: int, util: int, mem: int) -> dict:
    return {"index": index, "uuid": f"GPU-{index}", "util": util, "mem_used_mb": mem,
            "mem_total_mb": 16000}


def _beat(seq: int, age: float = 0.0) -> dict:
    return {"ev": "facts", "gpu_usage": {"seq": seq, "age": age, "gpus": [
        _gpu(0, 10, 100), _gpu(1, 30, 300), _gpu(2, 99, 999)]}}


def test_each_reading_is_one_sample_of_each_running_jobs_own_gpus() -> None:
    task = {"state": "RUNNING", "gpu_ids": [0, 1], "run_key": "5.0", "start_time": 100.0}
    ctx = _Ctx([task, dict(task, gpu_ids=[], run_key="6.0"),
                dict(task, state="COMPLETING", gpu_ids=[2], run_key="7.0")])
    known: dict = {}
    gpustats.on_facts(ctx, "m", known, _beat(1), 110.0)  # type: ignore[arg-type]
    known.update(_beat(1))
    gpustats.on_facts(ctx, "m", known, _beat(1), 111.0)  # the same reading again: not counted
    gpustats.on_facts(ctx, "m", known, _beat(2, age=20.0), 112.0)  # taken before the start
    assert ctx.store.samples == [("5.0", 40, 400)]
    gpustats.on_facts(ctx, "m", known, {"ev": "facts"}, 113.0)  # no reading: none shown
    assert "gpu_usage" not in known and gpustats.node_gpus(known) == []


def test_malformed_gpu_entries_are_left_out() -> None:
    bad = [{"index": "0", "util": 1, "mem_used_mb": 1, "mem_total_mb": 1},
           dict(_gpu(1, 5, 5), util="abc"), dict(_gpu(2, 5, 5), util=101),
           dict(_gpu(3, 5, 5), mem_used_mb=-1), dict(_gpu(4, 5, 5), uuid=7), "x", None,
           dict(_gpu(5, 5, 5), util=True)]
    facts = {"gpu_usage": {"seq": 1, "age": 0, "gpus": [*bad, _gpu(6, 5, 5)]}}
    assert gpustats.node_gpus(facts) == [_gpu(6, 5, 5)]
    assert gpustats.node_gpus({"gpu_usage": {"gpus": "nope"}}) == []
    assert gpustats.node_gpus({"gpu_usage": "nope"}) == [] and gpustats.node_gpus(None) == []
    task = {"state": "RUNNING", "gpu_ids": [1, 6], "run_key": "5.0", "start_time": 0.0}
    ctx = _Ctx([task])
    gpustats.on_facts(ctx, "m", {}, dict(facts, ev="facts"), 10.0)  # type: ignore[arg-type]
    assert ctx.store.samples == [("5.0", 5, 5)]
    # an age that is not a number: the reading is taken as of now
    ctx2 = _Ctx([dict(task, start_time=9.0)])
    gpustats.on_facts(ctx2, "m", {}, {"gpu_usage": {"seq": 2, "age": "x",  # type: ignore[arg-type]
                                                    "gpus": [_gpu(6, 7, 7)]}}, 10.0)
    assert ctx2.store.samples == [("5.0", 7, 7)]


def test_top_shows_each_gpus_utilization() -> None:
    from rich.console import Console

    from fleetslurm.dashboard.top import view

    node = {"name": "m3", "state": "mix", "cpus": 8, "mem_mb": 16384, "gpus": 2,
            "alloc_gpus": 1, "gpu_usage": [_gpu(0, 37, 1), _gpu(1, 0, 0)]}
    console = Console(record=True, width=160)
    console.print(view({"nodes": [node], "jobs": {}},
                       {"count": 0, "columns": ["JOBID"], "rows": []}, 0.0))
    assert "1/2 0:37% 1:0%" in console.export_text()
