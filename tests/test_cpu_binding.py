"""CPU binding and limits (issue 15, part 1): each job is bound to CPU ids of
its own (SLURM's task/affinity), limited by a per-job cgroup where the
machine allows it, with SLURM_CPU_BIND* in its environment; --cpu-bind=none
leaves it the whole machine; --exclusive gets every CPU. Real controller,
agent and jobs on this machine; affinity read from /proc/PID/status."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_agent import AgentClient, spec, workdir  # noqa: F401 (workdir: a fixture)

from fleetslurm.errors import UsageError
from fleetslurm.node.agent import cpus
from fleetslurm.node.agent.cgroups import detect_cgroups
from fleetslurm.slurm.cpubind import bind_environment, parse_cpu_bind

REAL = sorted(os.sched_getaffinity(0))
two_cores = pytest.mark.skipif(len(REAL) < 2, reason="needs 2 CPUs this process may use")


# -- choosing ids (pure) ---------------------------------------------------------


def test_free_cpus_first_then_round_robin():
    avail = [0, 1, 2, 3]
    ids, cur, shared = cpus.choose(1, avail, {}, 0)
    assert (ids, shared) == ([0], False)
    ids, cur, shared = cpus.choose(2, avail, {0: 1}, cur)
    assert (ids, shared) == ([1, 2], False)
    ids, cur, shared = cpus.choose(1, avail, {0: 1, 1: 1, 2: 1}, cur)
    assert (ids, shared) == ([3], False)
    # all taken: shared, continuing round-robin after the last ids given
    ids, cur, shared = cpus.choose(1, avail, {0: 1, 1: 1, 2: 1, 3: 1}, cur)
    assert (ids, shared) == ([0], True)
    ids, cur, shared = cpus.choose(1, avail, {0: 2, 1: 1, 2: 1, 3: 1}, cur)
    assert (ids, shared) == ([1], True)


def test_more_cpus_than_the_machine_has_binds_to_all():
    assert cpus.choose(8, [0, 1], {}, 0)[::2] == ([0, 1], True)
    assert cpus.choose(2, [0, 1], {}, 0)[::2] == ([0, 1], False)
    assert cpus.choose(2, [0, 1], {1: 1}, 0)[::2] == ([0, 1], True)


def test_lists_and_masks_in_the_kernels_and_slurms_formats():
    assert cpus.format_list([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert cpus.parse_list("0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8]
    assert cpus.hex_mask([0], 2) == "0x1"
    assert cpus.hex_mask([1, 4], 16) == "0x0012"
    assert cpus.bind_env([1], 2, False) == {
        "SLURM_CPU_BIND": "quiet,mask_cpu:0x2", "SLURM_CPU_BIND_LIST": "0x2",
        "SLURM_CPU_BIND_TYPE": "mask_cpu:", "SLURM_CPU_BIND_VERBOSE": "quiet"}


def test_cpu_bind_option_checked_as_srun_does():
    assert parse_cpu_bind(None) is None
    assert parse_cpu_bind("none") == parse_cpu_bind("no") == "quiet,none"
    assert parse_cpu_bind("verbose,cores") == "verbose,bind"
    assert parse_cpu_bind("mask_cpu:0x3") == "quiet,bind"
    with pytest.raises(UsageError) as err:
        parse_cpu_bind("cores,bogus")
    assert str(err.value) == ('error: unrecognized --cpu-bind argument "bogus"\n'
                              "srun: fatal: Failed to parse --cpu-bind= values.")
    # what srun (SLURM 22.05, checked on the oracle) puts in the task's env
    assert bind_environment("quiet,none") == {
        "SLURM_CPU_BIND": "quiet,none", "SLURM_CPU_BIND_LIST": "",
        "SLURM_CPU_BIND_TYPE": "none", "SLURM_CPU_BIND_VERBOSE": "quiet"}


def test_srun_refuses_a_bad_cpu_bind(fleet):
    proc = fleet.run("srun", "--cpu-bind=bogus", "true")
    assert proc.returncode == 1
    assert proc.stderr == ('srun: error: unrecognized --cpu-bind argument "bogus"\n'
                           "srun: fatal: Failed to parse --cpu-bind= values.\n")


# -- real jobs ---------------------------------------------------------------------

_HOLD = 'echo $$ > "pid.$SLURM_JOB_ID"; env | grep -E "^(SLURM_CPU_BIND|FLEETSLURM_CPU)" ' \
        '> "env.$SLURM_JOB_ID"; exec sleep 60'


def _running_pid(fleet, job: int, timeout: float = 30) -> int:
    path = fleet.work / f"pid.{job}"
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"job {job} did not start: {fleet.record(job)}"
        time.sleep(0.05)
    pid = int(path.read_text())
    # the shell writes its pid, then execs sleep (same pid): wait for the exec
    while "sleep" not in _status(pid).get("Name", ""):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return pid


def _status(pid: int) -> dict:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _allowed(pid: int) -> str:
    return _status(pid)["Cpus_allowed_list"].strip()


def _env(fleet, job: int) -> dict:
    lines = (fleet.work / f"env.{job}").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@two_cores
def test_two_jobs_get_different_cpus(fleet):
    a = fleet.sbatch("-c", "1", "--wrap", _HOLD)
    pa = _running_pid(fleet, a)
    b = fleet.sbatch("-c", "1", "--wrap", _HOLD)
    pb = _running_pid(fleet, b)
    assert {_allowed(pa), _allowed(pb)} == {str(REAL[0]), str(REAL[1])}
    env = _env(fleet, a)
    mask = cpus.hex_mask([int(_allowed(pa))], REAL[-1] + 1)
    assert env == {"SLURM_CPU_BIND": f"quiet,mask_cpu:{mask}", "SLURM_CPU_BIND_LIST": mask,
                   "SLURM_CPU_BIND_TYPE": "mask_cpu:", "SLURM_CPU_BIND_VERBOSE": "quiet"}
    fleet.run("scancel", str(a), str(b), check=True)
    fleet.wait(a)
    fleet.wait(b)
    # both gone: the next job gets the first CPU again
    c = fleet.sbatch("-c", "1", "--wrap", _HOLD)
    assert _allowed(_running_pid(fleet, c)) == str(REAL[0])
    fleet.run("scancel", str(c), check=True)
    fleet.wait(c)


@two_cores
def test_exclusive_and_whole_machine_jobs_get_every_cpu(fleet):
    a = fleet.sbatch("--exclusive", "--wrap", _HOLD)
    assert _allowed(_running_pid(fleet, a)) == cpus.format_list(REAL)
    assert "FLEETSLURM_CPU_SHARING" not in _env(fleet, a)
    fleet.run("scancel", str(a), check=True)
    fleet.wait(a)


def test_cpu_bind_none_leaves_the_full_set(fleet):
    proc = fleet.run("srun", "--cpu-bind=none", "-c", "1", "sh", "-c",
                     "grep Cpus_allowed_list /proc/self/status; "
                     "env | grep ^SLURM_CPU_BIND | sort")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split(":\t")[1] == cpus.format_list(REAL)
    assert lines[1:] == ["SLURM_CPU_BIND=quiet,none", "SLURM_CPU_BIND_LIST=",
                         "SLURM_CPU_BIND_TYPE=none", "SLURM_CPU_BIND_VERBOSE=quiet"]
    # and without it, srun's job is bound like any other
    proc = fleet.run("srun", "-c", "1", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(":\t")[1].strip() == str(REAL[0])


@two_cores
def test_declared_cpus_beyond_the_real_ones_share_them_and_say_so(wide_fleet):
    """This machine declared with 8 CPUs on a host with fewer: jobs are
    bound to real ids, round-robin once each is taken; never failed."""
    fleet = wide_fleet
    jobs = [fleet.sbatch("-c", "1", "--wrap", _HOLD) for _ in range(len(REAL) + 1)]
    pids = [_running_pid(fleet, j) for j in jobs]
    got = [_allowed(p) for p in pids]
    assert sorted(got[:-1]) == [str(i) for i in REAL]
    assert got[-1] in {str(i) for i in REAL}
    assert "FLEETSLURM_CPU_SHARING" not in _env(fleet, jobs[0])
    note = _env(fleet, jobs[-1])["FLEETSLURM_CPU_SHARING"]
    assert note == (f"given 1 CPU on a machine that has {len(REAL)} ({cpus.format_list(REAL)}): "
                    f"bound to CPU {got[-1]}, shared with other running jobs in round-robin "
                    "order")
    big = fleet.sbatch("-c", str(8 - len(jobs)), "--wrap", _HOLD)
    assert _allowed(_running_pid(fleet, big)) == cpus.format_list(REAL)
    assert _env(fleet, big)["FLEETSLURM_CPU_SHARING"].startswith(
        f"given {8 - len(jobs)} CPUs on a machine that has {len(REAL)}")
    fleet.run("scancel", *map(str, jobs + [big]), check=True)
    for j in jobs + [big]:
        fleet.wait(j)


_CG = detect_cgroups()


@two_cores
@pytest.mark.skipif(_CG[0] is None or "cpuset" not in _CG[1],
                    reason=f"no cpuset cgroup here: {_CG[2]}")
def test_a_job_cannot_widen_its_cpus_past_its_cpuset(fleet):
    code = ("import os\n"
            "try:\n    os.sched_setaffinity(0, range(os.cpu_count()))\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
            "print(sorted(os.sched_getaffinity(0)))\n")
    (fleet.work / "widen.py").write_text(code)
    before = {d: set(_cgroups(d)) for d in _CG[1].values()}
    job = fleet.sbatch("-c", "1", "-o", "widen.out", "--wrap", f"python3 {fleet.work}/widen.py")
    assert fleet.wait(job)["state"] == "COMPLETED"
    out = (fleet.work / "widen.out").read_text().splitlines()
    assert out[-1] == f"[{REAL[0]}]"
    # the job's cgroups are gone with it
    for d, had in before.items():
        assert set(_cgroups(d)) <= had


def _cgroups(hierarchy: str) -> list[str]:
    base = os.path.join(hierarchy, "fleetslurm")
    try:
        return [n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n))]
    except FileNotFoundError:
        return []


_TIMER = """import time
best = None
for _ in range(20):
    t = time.perf_counter()
    x = 0
    for i in range(1000000):
        x += i * i
    took = time.perf_counter() - t
    best = took if best is None else min(best, took)
print(best)
"""

# each spinner in a session of its own: with sched_autogroup (on here) the
# kernel shares CPU fairly between sessions, so 8 spinners in the job's one
# session would weigh as one process and hide a missing binding
_SPIN8 = ("for i in 1 2 3 4 5 6 7 8; do setsid sh -c 'while :; do :; done' & done; "
          "echo up > spin.up; wait")


def _timed(fleet, name: str) -> float:
    job = fleet.sbatch("-c", "1", "-o", f"{name}.out", "--wrap", f"python3 {fleet.work}/timer.py")
    assert fleet.wait(job, timeout=120)["state"] == "COMPLETED"
    return float((fleet.work / f"{name}.out").read_text())


@two_cores
def test_noisy_neighbour_cannot_slow_a_job_down(fleet):
    """Two -c 1 jobs on one machine: one spins 8 processes, the other times
    a fixed CPU loop; bound to a core of its own, the timed one stays within
    15% of its time alone. Each time is the best of 20 short loops, and the
    comparison gets three tries: other work on this host (not bound by
    fleetslurm) is pushed onto the timed job's core while the spinner holds
    the other one. Unbound, the timed job shares 2 cores with 9 busy
    processes: several times slower in every try (checked: 4x)."""
    (fleet.work / "timer.py").write_text(_TIMER)
    tries = []
    for n in range(3):
        alone = _timed(fleet, f"alone{n}")
        spin = fleet.sbatch("-c", "1", "--wrap", _SPIN8.replace("spin.up", f"spin{n}.up"))
        deadline = time.monotonic() + 30
        while not (fleet.work / f"spin{n}.up").exists():
            assert time.monotonic() < deadline, fleet.record(spin)
            time.sleep(0.05)
        try:
            beside = _timed(fleet, f"beside{n}")
        finally:
            fleet.run("scancel", str(spin), check=True)
        fleet.wait(spin)
        tries.append((alone, beside))
        if beside <= alone * 1.15:
            return
    raise AssertionError(f"the timed job was slowed by its neighbour: (alone, beside) {tries}")


# -- the agent on its own ------------------------------------------------------------

def _execd(pid: int, name: str = "sleep", timeout: float = 10) -> int:
    """``pid`` once it has exec'd ``name`` (bound before that, by then)."""
    deadline = time.monotonic() + timeout
    while _status(pid).get("Name") != name:
        assert time.monotonic() < deadline, _status(pid)
        time.sleep(0.01)
    return pid


@two_cores
def test_a_new_agent_knows_the_cpus_of_the_jobs_it_adopts(workdir, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_CPUS_ON_NODE": "1"}
    hold = "#!/bin/sh\nexec sleep 30\n"
    agent = AgentClient(workdir)
    a = agent.launch("1.0", spec(hold, tmp_path, env=env))
    assert a["ev"] == "started", a
    agent.proc.kill()
    agent.close()
    agent = AgentClient(workdir)
    try:
        agent.request({"op": "hello"})
        b = agent.launch("2.0", spec(hold, tmp_path, env=env))
        assert {_allowed(_execd(a["pid"])), _allowed(_execd(b["pid"]))} == {"0", "1"}
        # a spec that gives no CPUs (not a SLURM job's): not bound, as before
        c = agent.launch("3.0", spec(hold, tmp_path, env={"PATH": env["PATH"]}))
        assert _allowed(_execd(c["pid"])) == cpus.format_list(REAL)
        # an explicit spec field wins over the environment
        d = agent.launch("4.0", spec(hold, tmp_path, env=env, cpus=2))
        assert _allowed(_execd(d["pid"])) == cpus.format_list(REAL)
        bad = agent.launch("5.0", spec(hold, tmp_path, env=env, cpu_bind="sockets"))
        assert bad == {"ev": "launch_failed", "re": bad["re"], "key": "5.0", "cause": "job",
                       "error": 'job 5.0: spec.cpu_bind must be "cores" or "none", '
                                "got 'sockets'"}
    finally:
        for key in ("1.0", "2.0", "3.0", "4.0"):
            agent.request({"op": "cancel", "key": key, "signal": 9})
        agent.close()


@pytest.mark.skipif(_CG[0] != "v1", reason=f"cgroup v1 CPU hierarchies only: {_CG[2]}")
def test_cgroups_of_a_supervisor_that_died_are_removed(workdir, tmp_path):
    import json
    import signal

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_CPUS_ON_NODE": "1"}
    agent = AgentClient(workdir)
    try:
        started = agent.launch("7.0", spec("#!/bin/sh\nexec sleep 30\n", tmp_path, env=env))
        sup = json.loads((workdir / "jobs" / "7.0" / "supervisor.json").read_text())
        name = f"7.0-{sup['pid']}"
        assert all(name in _cgroups(d) for d in _CG[1].values())
        # the agent finds its supervisor gone: LOST, and kills the job
        os.kill(sup["pid"], signal.SIGKILL)
        assert agent.ended("7.0")["state"] == "LOST"
        # at once, or on the agent's next polls (busy until init reaps the job)
        deadline = time.monotonic() + 5
        while any(name in _cgroups(d) for d in _CG[1].values()):
            assert time.monotonic() < deadline, [_cgroups(d) for d in _CG[1].values()]
            time.sleep(0.05)
    finally:
        agent.close()


@pytest.mark.skipif(_CG[0] != "v1", reason=f"cgroup v1 CPU hierarchies only: {_CG[2]}")
def test_the_job_and_its_children_sit_in_its_v1_cgroups(workdir, tmp_path):
    """The job child joins its cgroups by writing "0" to each v1 ``tasks``
    file (one thread, no global lock): the batch shell and what it starts
    are in the job's cpu and cpuset groups, under its CPU quota."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_CPUS_ON_NODE": "1"}
    out = tmp_path / "cg.out"
    agent = AgentClient(workdir)
    try:
        agent.launch("8.0", spec(f"#!/bin/sh\ncat /proc/self/cgroup > {out}\nexec sleep 30\n",
                                 tmp_path, env=env, cpus=1))
        import json

        sup = json.loads((workdir / "jobs" / "8.0" / "supervisor.json").read_text())
        name = f"8.0-{sup['pid']}"
        deadline = time.monotonic() + 10
        while not out.exists() or not out.read_text().endswith("\n"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        groups = {}
        for line in out.read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(","):
                groups[c] = path
        for c in _CG[1]:
            assert groups[c].endswith(f"/fleetslurm/{name}"), (c, groups)
        if "cpu" in _CG[1]:
            cg = os.path.join(_CG[1]["cpu"], "fleetslurm", name)
            assert Path(cg, "cpu.cfs_quota_us").read_text().strip() == "100000"
            assert Path(cg, "cpu.cfs_period_us").read_text().strip() == "100000"
            assert sup["job_pid"] in [int(p) for p in Path(cg, "cgroup.procs").read_text().split()]
    finally:
        agent.request({"op": "cancel", "key": "8.0", "signal": 9})
        agent.close()
