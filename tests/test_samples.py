"""Per-job resource samples over time (node/agent/sampling.py, the store's
run_samples) and sstat over them, with real processes on a real controller;
the bound on a series (decimation) and the machines' load history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleetslurm.node.agent.sampling import MAX_POINTS, Sampler, add_point
from fleetslurm.store import Store
from fleetslurm.store_samples import KEPT_POINTS, LOAD_EVERY_S, LOAD_KEEP_S

#: a job that burns CPU and grows its memory in steps of 40 MiB, 4 times
GROWER = """#!/usr/bin/env python3
import time
blocks = []
for i in range(4):
    blocks.append(bytearray(40 * 1024 * 1024))  # zero-filled: touched, so resident
    t = time.process_time()  # CPU seconds, not wall: a loaded host still gives 6
    while time.process_time() - t < 1.5:
        pass
time.sleep(60)
"""


def _usage(fleet, job: int, full: bool = True) -> dict:
    with fleet.client() as c:
        return c.call("usage", id=str(job), full=full)


def _wait_points(fleet, job: int, n: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while True:
        tasks = _usage(fleet, job)["tasks"]
        points = (tasks[0]["samples"] or {}).get("points") or [] if tasks else []
        if len(points) >= n:
            return points
        assert time.monotonic() < deadline, f"job {job}: {len(points)} samples, wanted {n}"
        time.sleep(0.3)


def test_a_week_of_samples_stays_bounded_and_even() -> None:
    """A week at one point every 5 s stays within MAX_POINTS, spread evenly
    over the week (every day has its share), and the last point is the latest."""
    points: list = []
    step = 0.0
    week = 7 * 24 * 720
    for i in range(week):
        points, step = add_point(points, step, [i * 5.0, i, 0, 0, 1])
        assert len(points) <= MAX_POINTS
    ts = [p[0] for p in points]
    assert ts[0] == 0.0 and ts[-1] == (week - 1) * 5.0 and ts == sorted(ts)
    per_day = [sum(1 for t in ts if d * 86400 <= t < (d + 1) * 86400) for d in range(7)]
    assert min(per_day) >= MAX_POINTS // 4 // 7, per_day
    assert max(per_day) <= 2 * min(per_day) + 2, per_day
    assert step > 600  # the kept rate went down as the week went on


def test_the_store_keeps_a_series_as_the_supervisor_does(tmp_path: Path) -> None:
    """The same rule on both ends: fed a long run's points a few at a time,
    the store keeps what the supervisor keeps, and the peaks."""
    store = Store(tmp_path / "s.db")
    points: list = []
    step = 0.0
    with store.transaction():
        for start in range(0, 5000, 4):
            batch = [[float(t), t / 10, 1000 + (t % 7), 2000, 1] for t in range(start, start + 4)]
            for p in batch:
                points, step = add_point(points, step, list(p))
            assert store.add_samples("7.0.c", batch, peak=[5000, 9000]) <= MAX_POINTS
        got = store.samples("7.0.c")
        assert [p[0] for p in got["points"]] == [p[0] for p in points]
        assert (got["max_rss_kb"], got["max_vsize_kb"]) == (5000, 9000)
        # the same point again is kept once
        store.add_samples("7.0.c", [got["points"][-1]])
        assert len(store.samples("7.0.c")["points"]) == len(got["points"])
        assert store.thin_samples("7.0.c", KEPT_POINTS) <= KEPT_POINTS
        ts = [p[0] for p in store.samples("7.0.c")["points"]]
        assert ts[0] == 0.0 and ts[-1] == 4999.0


def test_load_history_one_point_a_minute_for_a_day(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.transaction():
        t0 = 1_000_000.0
        kept = sum(store.note_load("m1", t0 + i * 5, 0.5 + i / 1000, 100)
                   for i in range(int(2 * LOAD_KEEP_S / 5)))
        assert kept == pytest.approx(2 * LOAD_KEEP_S / LOAD_EVERY_S, abs=2)
        hist = store.load_history(0)["m1"]
        assert len(hist[0]) <= LOAD_KEEP_S / LOAD_EVERY_S + 1
        assert hist[0][0] >= t0 + LOAD_KEEP_S - LOAD_EVERY_S
        assert not store.note_load("m1", t0 + 10, "high", 1)  # not a number: nothing kept


def test_sampler_measures_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c",
                             "b = bytearray(30 << 20)\nimport time\nt = time.time()\n"
                             "while time.time() - t < 1.2: pass\ntime.sleep(30)"])
    try:
        s = Sampler(str(tmp_path), "1.0.x", 0.5)
        first = s.take([proc.pid], 0.0, time.time())
        time.sleep(1.3)
        second = s.take([proc.pid], 0.0, time.time())
        assert second[1] > first[1] + 0.5  # CPU seconds grew
        assert second[2] > 25 * 1024  # 30 MiB resident
        assert second[3] >= second[2] and second[4] == 1
        saved = json.loads((tmp_path / "samples" / "1.0.x.json").read_text())
        assert saved["points"] == [first, second] and saved["peak"][0] == second[2]
    finally:
        proc.kill()
        proc.wait()


def test_samples_grow_with_a_real_job_and_sstat_shows_them(fleet) -> None:
    script = fleet.work / "grow.py"
    script.write_text(GROWER)
    job = fleet.sbatch("--mem=1G", str(script))
    fleet.wait(job, {"RUNNING"})
    points = _wait_points(fleet, job, 5)
    deadline = time.monotonic() + 60
    while points[-1][2] < 150 * 1024:  # all four blocks
        assert time.monotonic() < deadline, points
        time.sleep(0.5)
        points = _usage(fleet, job)["tasks"][0]["samples"]["points"]
    cpu = [p[1] for p in points]
    rss = [p[2] for p in points]
    assert cpu == sorted(cpu) and cpu[-1] > 2.0, points
    # memory rose in steps: several distinct levels, each about 40 MiB apart
    levels = sorted({round(r / (40 * 1024)) for r in rss if r > 20 * 1024})
    assert len(levels) >= 3 and levels[-1] >= 4, rss

    out = fleet.run("sstat", "-j", f"{job}.batch", "-P", "--format",
                    "JobID,AveCPU,MaxRSS,AveRSS,MaxVMSize,NTasks", check=True)
    header, row = out.stdout.splitlines()
    assert header == "JobID|AveCPU|MaxRSS|AveRSS|MaxVMSize|NTasks"
    jid, avecpu, maxrss, averss, maxvm, ntasks = row.split("|")
    assert jid == f"{job}.batch" and ntasks == "1" and maxrss == averss
    kb = int(maxrss.rstrip("K")) if maxrss.endswith("K") else float(maxrss[:-1]) * 1024
    assert kb >= 150 * 1024
    assert maxvm.endswith(("K", "M", "G"))
    h, m, s = (int(x) for x in avecpu.split(":"))
    assert h * 3600 + m * 60 + s >= 2

    # the default: a batch job without srun steps shows only the header; -a its batch step
    plain = fleet.run("sstat", "-j", str(job), check=True)
    assert plain.stdout.splitlines()[0].startswith("JobID         MaxVMSize  MaxVMSizeNode")
    assert len(plain.stdout.splitlines()) == 2 and plain.stderr == ""
    every = fleet.run("sstat", "-a", "-n", "-p", "-j", str(job), "-o", "jobid,ntasks", check=True)
    assert every.stdout == f"{job}.batch|1|\n"

    fleet.run("scancel", str(job), check=True)
    fleet.wait(job)
    ended = fleet.run("sstat", "-j", str(job), "-o", "jobid")
    assert ended.returncode == 0  # as SLURM's
    assert ended.stdout == "JobID        \n------------ \n"
    assert ended.stderr == f"sstat: error: No steps running for job {job}\n"
    ended = fleet.run("sstat", "-j", f"{job}.batch", "-o", "jobid")
    assert ended.stderr == f"sstat: error: StepId={job}.batch not found running.\n"
    # the series is kept after the end, bounded to KEPT_POINTS
    kept = _usage(fleet, job)["tasks"][0]["samples"]["points"]
    assert 0 < len(kept) <= KEPT_POINTS


@pytest.mark.parametrize("args, code, err", [
    ([], 1, "sstat: error: You didn't give me any jobs to stat.\n"),
    (["-j", "abc"], 1, "sstat: fatal: Bad job/step specified: abc\n"),
    (["-j", "99999"], 0, "sstat: error: couldn't get steps for job 99999\n"),
    (["-j", "1.batch", "-o", "bogus"], 1, 'sstat: error: Invalid field requested: "bogus"\n'),
    # getopt's words, and no 'Try "sstat --help"' line (SLURM 22.05's sstat has none)
    (["-j"], 1, "sstat: option requires an argument -- 'j'\n"),
    (["--par", "-j", "1"], 1,
     "sstat: option '--par' is ambiguous; possibilities: '--parsable' '--parsable2'\n"),
    (["-x"], 1, "sstat: invalid option -- 'x'\n"),
])
def test_sstat_errors_as_slurms(fleet, args: list, code: int, err: str) -> None:
    proc = fleet.run("sstat", *args)
    assert (proc.returncode, proc.stderr) == (code, err)


#: SLURM 22.05's sstat on a running batch step (the oracle, 2026-12-07):
#: `sstat -j 2489.batch -o AveCPU,MaxRSS,AveRSS,MaxVMSize,NTasks,JobID`, then
#: `-o maxr,avecpu%20,jobid%-20` and `-p -n -o JobID,AveCPU,MaxRSS`
ORACLE_TEXTS = [
    ("AveCPU,MaxRSS,AveRSS,MaxVMSize,NTasks,JobID", "fixed", True,
     "    AveCPU     MaxRSS     AveRSS  MaxVMSize   NTasks JobID        \n"
     "---------- ---------- ---------- ---------- -------- ------------ \n"
     "  00:00:15     45724K     45724K     49908K        1 2489.batch   \n"),
    ("maxr,avecpu%20,jobid%-20", "fixed", True,
     "    MaxRSS               AveCPU JobID                \n"
     "---------- -------------------- -------------------- \n"
     "    45724K             00:00:15 2489.batch           \n"),
    ("JobID,AveCPU,MaxRSS", "parsable", False, "2489.batch|00:00:15|45724K|\n"),
]


@pytest.mark.parametrize("fmt, mode, header, expected", ORACLE_TEXTS)
def test_sstat_shapes_match_slurm(fmt: str, mode: str, header: bool, expected: str) -> None:
    from fleetslurm.slurm import sacct_fmt, sstat_fmt

    fields = sstat_fmt.parse_fields(fmt)
    row = sstat_fmt.step_row("2489.batch", "localhost", [0.0, 15.2, 45724, 49908, 2], None, None)
    text = sacct_fmt.render(fields, [], mode=mode, header=header)  # type: ignore[arg-type]
    assert text + sacct_fmt.render(fields, [row], mode=mode, header=False) == expected  # type: ignore[arg-type]


def test_sstat_helpformat_is_slurms(fleet) -> None:
    out = fleet.run("sstat", "-e", check=True).stdout.splitlines()
    assert out[0] == "AveCPU              AveCPUFreq          AveDiskRead         AveDiskWrite       "
    assert out[8] == "ReqCPUFreqMin       ReqCPUFreqMax       ReqCPUFreqGov       TRESUsageInAve     "
    assert out[-1] == "TRESUsageOutMinNode TRESUsageOutMinTask TRESUsageOutTot    "


def test_sstat_default_header_is_slurms() -> None:
    from fleetslurm.slurm import sacct_fmt, sstat_fmt

    head = sacct_fmt.render(sstat_fmt.parse_fields(sstat_fmt.DEFAULT_FIELDS), [])
    first = head.splitlines()[0]
    assert first.startswith("JobID         MaxVMSize  MaxVMSizeNode  MaxVMSizeTask  AveVMSize "
                            "    MaxRSS MaxRSSNode MaxRSSTask     AveRSS MaxPages MaxPagesNode ")
    assert first.endswith(" TRESUsageOutMinTask TRESUsageOutTot ")
    assert len(first.split()) == 47


def test_samples_survive_a_controller_restart_without_doubles(fleet) -> None:
    """The job and its supervisor outlive the controller; the new agent sends
    the whole series again and the store keeps each point once, in order."""
    job = fleet.sbatch("--wrap", "python3 -c 'import time\nt = time.time()\n"
                       "while time.time() - t < 90: pass'")
    fleet.wait(job, {"RUNNING"})
    before = _wait_points(fleet, job, 3)
    fleet.stop()
    fleet.run("controller", "start", check=True)
    after = _wait_points(fleet, job, len(before) + 3)
    ts = [p[0] for p in after]
    assert ts == sorted(set(ts)), ts
    assert set(p[0] for p in before[:-1]) <= set(ts)  # the live last one may have moved on
    cpu = [p[1] for p in after]
    assert cpu == sorted(cpu)
    fleet.run("scancel", str(job), check=True)
    fleet.wait(job)


def test_srun_steps_have_their_own_samples(fleet) -> None:
    """A batch job whose srun step runs two tasks of 30 MiB each: sstat -j N
    shows step 0 (SLURM's default: the lowest running step) with its two
    tasks' figures; -a adds the batch step, which covers everything."""
    task = fleet.work / "task.py"
    task.write_text("import time\nkeep = bytearray(30 << 20)\nt = time.time()\n"
                    "while time.time() - t < 90:\n    pass\n")
    script = fleet.work / "steps.sh"
    script.write_text(f"#!/bin/sh\nsrun -n 2 python3 {task}\n")
    job = fleet.sbatch("-n", "2", str(script))
    fleet.wait(job, {"RUNNING"})
    deadline = time.monotonic() + 60
    while True:
        steps = _usage(fleet, job)["tasks"][0]["steps"]
        pts = [((s.get("samples") or {}).get("points") or [[0, 0, 0, 0, 0]])[-1] for s in steps]
        if steps and pts[0][2] > 55 * 1024 and pts[0][4] >= 2:
            break
        assert time.monotonic() < deadline, steps
        time.sleep(0.5)
    out = fleet.run("sstat", "-j", str(job), "-P", "-n", "-o",
                    "JobID,NTasks,MaxRSS,MaxRSSTask,AveRSS,MinCPU,MinCPUTask,AveCPU,"
                    "TRESUsageInTot", check=True).stdout
    jid, ntasks, maxrss, maxrsstask, averss, mincpu, mincputask, avecpu, tot = \
        out.strip().split("|")
    assert (jid, ntasks) == (f"{job}.0", "2")

    def kib(text: str) -> float:
        return float(text[:-1]) * {"K": 1, "M": 1024, "G": 1 << 20}[text[-1]]

    def secs(text: str) -> int:
        h, m, sec = (int(x) for x in text.split(":"))
        return h * 3600 + m * 60 + sec

    # SLURM's per-task figures: each task holds its own 30 MiB
    assert 28 * 1024 < kib(averss) <= kib(maxrss) < 55 * 1024
    assert maxrsstask in ("0", "1") and mincputask in ("0", "1")
    assert secs(mincpu) <= secs(avecpu)
    mem_tot = dict(kv.split("=") for kv in tot.split(","))["mem"]
    assert kib(mem_tot) > 55 * 1024  # both tasks
    every = fleet.run("sstat", "-a", "-j", str(job), "-P", "-n", "-o", "JobID,MaxRSS",
                      check=True).stdout.splitlines()
    assert [r.split("|")[0] for r in every] == [f"{job}.batch", f"{job}.0"]
    assert kib(every[0].split("|")[1]) >= kib(every[1].split("|")[1]) * 0.9
    assert fleet.run("sstat", "-j", f"{job}.7").stderr == \
        f"sstat: error: StepId={job}.7 not found running.\n"
    fleet.run("scancel", str(job), check=True)
    fleet.wait(job)


def test_a_fifo_in_the_steps_directory_does_not_stop_the_sampling(fleet) -> None:
    """The steps directory is the job's user's: a FIFO named like a process
    group there must not block the (root) supervisor that reads step ids."""
    job = fleet.sbatch("--wrap", 'mkdir -p "$FLEETSLURM_STEPS_DIR" && '
                       'mkfifo "$FLEETSLURM_STEPS_DIR/$$" && '
                       "python3 -c 'import time\nt = time.time()\n"
                       "while time.time() - t < 60: pass'")
    fleet.wait(job, {"RUNNING"})
    _wait_points(fleet, job, 4, timeout=30)
    fleet.run("scancel", str(job), check=True)
    assert fleet.wait(job, timeout=30)["state"] == "CANCELLED"


def test_a_samples_reply_stays_small_and_the_rest_follows(tmp_path: Path) -> None:
    """A new agent beside many long jobs: each reply carries at most
    MAX_REPLY_POINTS points, the next ones the rest, each point once."""
    from fleetslurm.node.agent import sampling
    from fleetslurm.node.agent.ops import Requests

    class Agent(Requests):
        def __init__(self) -> None:  # only what op_samples uses
            self.workdir = str(tmp_path)
            self.jobs = {}
            self.samples_sent = {}
            self.sent: list = []

        def send(self, obj: dict) -> None:
            self.sent.append(obj)

    agent = Agent()
    per_job = MAX_POINTS
    n_jobs = 2 * sampling.MAX_REPLY_POINTS // per_job + 3
    for j in range(n_jobs):
        key = f"{j}.0.c"
        agent.jobs[key] = object()
        (tmp_path / "samples").mkdir(exist_ok=True)
        (tmp_path / "samples" / f"{key}.json").write_text(json.dumps(
            {"peak": [100, 200], "points": [[float(i), i / 10, 100, 200, 1]
                                            for i in range(per_job)]}))
    seen: dict = {}
    for _ in range(10):
        agent.op_samples({}, None)
        reply = agent.sent[-1]
        assert sum(len(v["points"]) for v in reply["jobs"].values()) <= \
            sampling.MAX_REPLY_POINTS + per_job
        for key, got in reply["jobs"].items():
            assert key not in seen
            seen[key] = got["points"]
        if not reply["jobs"]:
            break
    assert len(seen) == n_jobs and all(len(p) == per_job for p in seen.values())


def test_a_steps_figures_are_over_its_tasks_as_slurms() -> None:
    from fleetslurm.slurm.sstat_fmt import step_row

    tasks = {"0": [10.0, 100, 1000, 150, 1200], "1": [4.0, 300, 900, 320, 950]}
    row = step_row("5.0", "m1", [0.0, 14.0, 400, 1900, 2], 470, 2150, ntasks=2, tasks=tasks)
    assert (row["maxrss"], row["maxrsstask"], row["averss"]) == ("320K", "1", "235K")
    assert (row["maxvmsize"], row["maxvmsizetask"], row["avevmsize"]) == ("1200K", "0", "1075K")
    assert (row["mincpu"], row["mincputask"], row["avecpu"]) == ("00:00:04", "1", "00:00:07")
    assert row["ntasks"] == "2"
    assert row["tresusageinmaxtask"] == "cpu=00:00:00,fs/disk=0,mem=1,pages=0,vmem=0"
    assert row["tresusageinmintask"] == "cpu=00:00:01,fs/disk=0,mem=0,pages=0,vmem=1"
    assert row["tresusageintot"] == \
        "cpu=00:00:14,energy=0,fs/disk=0,mem=470K,pages=0,vmem=2150K"
    # malformed per-task figures: the step counts as one task
    assert step_row("5.0", "m1", [0.0, 14.0, 400, 1900, 2], 470, 2150,
                    tasks={"0": "x"})["maxrss"] == "470K"


def test_a_backlog_of_20000_points_is_kept_in_one_step(tmp_path: Path) -> None:
    """A reconnecting agent's backlog (sampling.MAX_REPLY_POINTS points in one
    reply) is kept in one controller step by the supervisor's rule: the same
    points as add_point keeps, and the spacing it reached; the step's time is
    printed (here: ~0.7-1 s at five statements a point, ~30 ms batched)."""
    from stepping import pump, submit

    from fleetslurm.config import FleetConfig, MachineConfig
    from fleetslurm.ctld.inbox import AgentMessage
    from fleetslurm.ctld.loop import Controller
    from fleetslurm.node.agent import protocol as P
    from fleetslurm.node.agent.sampling import MAX_REPLY_POINTS
    from fleetslurm.paths import StatePaths
    from fleetslurm.transport.fake import FakeTransport

    cfg = FleetConfig(cluster_name="backlog", machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1)})
    clock = [time.time()]
    ctl = Controller(cfg, StatePaths(tmp_path / "home"),
                     transports={"m1": FakeTransport("m1", workdir="/fake/m1", auto_end=False)})
    ctl.start(clock[0])
    try:
        pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock)
        (tmp_path / "w").mkdir()
        job = submit(ctl, clock[0], {"wrap": "x"}, script="#!/bin/sh\n", cwd=str(tmp_path / "w"),
                     script_name="wrap")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock)
        key = ctl.store.task(job)["run_key"]
        # a few points already kept, then the backlog: those again, and the rest
        first = [[1000.0 + i * 5, i / 10, 1000 + i % 97, 2000 + i, 1] for i in range(MAX_REPLY_POINTS)]
        assert ctl.store.add_samples(key, first[:7]) == 7
        pts = [list(p) for p in first[::-1]]  # the order they come in does not matter
        pts.append(["bad", 1, 2, 3, 4])  # a malformed point: the others still count
        ctl.inbox.put(AgentMessage("m1", ctl.links["m1"].generation, P.ev_samples(
            None, {key: {"points": pts, "peak": [5, 6]}})))
        t0 = time.perf_counter()
        ctl.step(clock[0])
        took = time.perf_counter() - t0
        print(f"\none step keeping a backlog of {MAX_REPLY_POINTS} points: {took * 1000:.0f} ms")
        want: list = []
        step = 0.0
        for p in first:
            want, step = add_point(want, step, p)
        got = ctl.store.samples(key)
        assert got["points"] == [list(p) for p in want]
        assert MAX_POINTS // 2 <= len(want) <= MAX_POINTS
        assert got["max_rss_kb"] == 1096 and got["max_vsize_kb"] == 2000 + MAX_REPLY_POINTS - 1
        assert ctl.store._x("SELECT step FROM run_series WHERE run_key=?",
                            (key,)).fetchone()[0] == pytest.approx(step)
        # the next point follows the spacing reached: it replaces the live one
        last = want[-1][0]
        ctl.store.add_samples(key, [[last + 1, 0, 0, 0, 1]])
        want, step = add_point(want, step, [last + 1, 0, 0, 0, 1])
        assert ctl.store.samples(key)["points"] == [list(p) for p in want]
    finally:
        ctl.close()
