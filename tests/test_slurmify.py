"""The decorator API: @slurmify, distribute, wait_for, Batch, the dispatchers
and the flood guard. Fleet runs use a real controller on this machine."""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest

import fleetslurm
from fleetslurm.api.compat import slurmify as sm
from fleetslurm.api.compat.dispatch import TestDispatcher
from fleetslurm.errors import RemoteJobError, SerializationError, UsageError


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch, tmp_path, no_slurm_env):
    """Each test starts with no dispatcher and no default options, and its
    own FLEETSLURM_HOME (the local/debug backends keep state there)."""
    monkeypatch.setattr(sm, "_SETTINGS", sm._Settings())
    monkeypatch.setenv("FLEETSLURM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETSLURM_CONFIG", raising=False)


@pytest.fixture
def fleet_env(fleet, monkeypatch):
    monkeypatch.setenv("FLEETSLURM_HOME", str(fleet.home))
    monkeypatch.setenv("FLEETSLURM_CONFIG", fleet.env["FLEETSLURM_CONFIG"])
    monkeypatch.chdir(fleet.work)
    return fleet


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A python for jobs that has cloudpickle and nothing of fleetslurm: what a
    lab machine without fleetslurm installed offers."""
    import cloudpickle

    root = tmp_path_factory.mktemp("bare")
    shutil.copytree(Path(cloudpickle.__file__).parent, root / "lib" / "cloudpickle")
    exe = root / "python"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={root / 'lib'} exec {sys.executable} -S \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


class Point:
    """Not JSON: a user class (pickled by value from this test module)."""

    def __init__(self, x, y):
        self.x, self.y = x, y


def test_the_function_still_runs_here_and_keeps_its_identity():
    @fleetslurm.slurmify(cpus_per_task=2)
    def add(a, b=1):
        """Adds."""
        return a + b

    assert add(2, b=3) == 5
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.options == {
        "cpus_per_task": 2}

    @fleetslurm.slurmify
    def bare():
        return 7

    assert bare() == 7 and bare.options == {}


def test_test_dispatcher_prints_what_would_be_sent():
    out = io.StringIO()
    d = fleetslurm.set_dispatcher(TestDispatcher(stream=out))
    fleetslurm.update_default_configuration(partition="debug", time="10")

    @fleetslurm.slurmify(constraint="ssd")
    def prepare():
        pass

    @fleetslurm.slurmify(mem="1G", time="5")
    def f(x):
        pass

    jid = prepare.distribute()
    assert jid == "1"
    with fleetslurm.Batch(max_size=4) as batch:
        handles = [f.wait_for(jid).distribute(i) for i in range(10)]
        other = f.distribute("x")  # no dependency: another group, another job
        with pytest.raises(UsageError, match="no job id yet: call batch.flush"):
            handles[0].job_id
        assert len(batch) == 11
        ids = batch.flush()
        assert len(batch) == 0
    assert ids == ["2", "3", "4", "5"]
    assert [h.job_id for h in handles] == ["2"] * 4 + ["3"] * 4 + ["4"] * 2
    assert other.job_id == "5" and batch.job_ids == ids
    last = f.wait_for(ids[:3], method="afterok").distribute(99)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("fleetslurm test dispatcher: job 1: prepare() "
                        "[constraint=ssd, partition=debug, time=10]")
    assert lines[1] == ("fleetslurm test dispatcher: job 2: a bundle of 4 calls: f(0), f(1), "
                        "f(2), f(3) [dependency=afterany:1, mem=1G, partition=debug, time=5]")
    assert lines[3].startswith("fleetslurm test dispatcher: job 4: a bundle of 2 calls: f(8), f(9)")
    assert lines[4].startswith("fleetslurm test dispatcher: job 5: a bundle of 1 calls: f('x')")
    assert lines[5] == ("fleetslurm test dispatcher: job 6: f(99) [dependency=afterok:2:3:4, "
                        "mem=1G, partition=debug, time=5]")
    assert last == "6" and d.submitted[5]["options"]["dependency"] == "afterok:2:3:4"
    # wait_for chains add up, and accept the handles of a flushed batch
    g = f.wait_for("7").wait_for(handles[:1])
    assert g.dependency == "afterany:7,afterany:2" and f.dependency is None


def test_batch_submits_nothing_when_its_block_raises_and_does_not_nest():
    d = fleetslurm.set_dispatcher("test", stream=io.StringIO())

    @fleetslurm.slurmify
    def f(x):
        pass

    with pytest.raises(KeyError):
        with fleetslurm.Batch():
            f.distribute(1)
            raise KeyError("boom")
    assert d.submitted == []
    with fleetslurm.Batch() as outer:
        with pytest.raises(UsageError, match="Batch blocks do not nest"):
            with fleetslurm.Batch():
                pass
        f.distribute(2)
    assert outer.job_ids == ["1"]
    with pytest.raises(UsageError, match="positive number of calls"):
        fleetslurm.Batch(max_size=0)
    with pytest.raises(UsageError, match="cannot run inside a Batch"):
        with fleetslurm.Batch():
            f.distribute_and_wait(1)


def test_the_guard_refuses_a_flood_of_single_jobs_but_not_a_batch():
    d = fleetslurm.set_dispatcher("test", max_single_jobs=5, stream=io.StringIO())

    @fleetslurm.slurmify
    def f(x):
        pass

    for i in range(5):
        f.distribute(i)
    with pytest.raises(UsageError) as err:
        f.distribute(5)
    msg = str(err.value)
    assert "refusing to submit more than 5 single jobs outside a Batch" in msg
    assert "with fleetslurm.Batch(max_size=50)" in msg
    assert "set_dispatcher('test', max_single_jobs=N)" in msg
    with fleetslurm.Batch(max_size=100) as batch:
        for i in range(1000):
            f.distribute(i)
    assert len(batch.job_ids) == 10 and len(d.submitted) == 15
    # the default limit is in the thousands
    assert TestDispatcher().max_single_jobs == 1000


def test_what_cannot_travel_fails_at_distribute():
    fleetslurm.set_dispatcher("test", stream=io.StringIO())

    @fleetslurm.slurmify
    def f(x):
        pass

    with pytest.raises(SerializationError, match="cannot pickle argument 0 of .*a lock"):
        f.distribute(threading.Lock())
    with pytest.raises(UsageError, match="valid dispatchers are: fleet, slurm, subprocess, "
                                         "direct, test"):
        fleetslurm.set_dispatcher("cloud")
    with pytest.raises(UsageError, match="not one of afterany"):
        f.wait_for("1", method="before")
    with pytest.raises(UsageError, match="is not a job id"):
        f.wait_for(["12", "abc"])


def test_direct_dispatcher_runs_here_with_non_json_arguments():
    d = fleetslurm.set_dispatcher("direct")

    @fleetslurm.slurmify
    def f(p, s, frac, data=b"\x00\xff"):
        return (p.x + p.y, sorted(s), frac * 2, data[::-1], os.getpid())

    jid = f.distribute(Point(1, 2), {3, 1}, Fraction(1, 3))
    # right here, in this process (the call still went through pickling)
    assert d.result(jid) == (3, [1, 3], Fraction(2, 3), b"\xff\x00", os.getpid())
    assert f.distribute_and_wait(Point(0, 0), set(), Fraction(0))[:4] == (0, [], 0, b"\xff\x00")

    @fleetslurm.slurmify
    def boom():
        raise ValueError("bad input")

    bad = boom.distribute()
    with pytest.raises(RemoteJobError, match="ValueError: bad input"):
        d.result(bad)
    with pytest.raises(UsageError, match=f"afterok:{bad} can never be satisfied: job {bad} "
                                         "ended FAILED"):
        f.wait_for(bad, method="afterok").distribute(Point(0, 0), set(), 0)


def test_subprocess_dispatcher_runs_elsewhere_and_waits_for_dependencies(tmp_path):
    d = fleetslurm.set_dispatcher("subprocess")
    log = tmp_path / "order.txt"

    @fleetslurm.slurmify
    def step(name, delay=0.0):
        import time

        time.sleep(delay)
        with open(log, "a") as f:
            f.write(name + "\n")
        return os.getpid()

    first = step.distribute("first", 0.5)
    with fleetslurm.Batch(max_size=2) as batch:
        for i in range(3):
            step.wait_for(first).distribute(f"b{i}")
    ids = batch.job_ids
    assert len(ids) == 2
    last = step.wait_for(ids).distribute("last")
    assert d.result(last, timeout=60) != os.getpid()
    order = log.read_text().split()
    assert order[0] == "first" and order[-1] == "last" and sorted(order[1:4]) == ["b0", "b1",
                                                                                  "b2"]
    assert d.result(ids[0], timeout=60)[0] == d.result(ids[0])[1]  # one job, two calls


def test_fleet_prepare_f_clean_up_in_dependency_order(fleet_env):
    d = fleetslurm.set_dispatcher("fleet")
    stamps = fleet_env.work / "stamps"
    stamps.mkdir()

    @fleetslurm.slurmify(partition="debug", mem="100M")
    def prepare():
        import time
        time.sleep(0.5)
        (stamps / "prepare").write_text(str(time.time()))
        return "prepared"

    @fleetslurm.slurmify(mem="100M")
    def f(x, point):
        import time
        (stamps / f"f{x}").write_text(str(time.time()))
        return x * point.x

    @fleetslurm.slurmify(mem="100M")
    def clean_up():
        import time
        (stamps / "clean_up").write_text(str(time.time()))
        return sorted(p.name for p in stamps.iterdir())

    jid = prepare.distribute()
    with fleetslurm.Batch(max_size=3) as batch:
        for i in range(7):
            f.wait_for(jid).distribute(i, Point(10, 0))
        jids = batch.flush()
    assert len(jids) == 3
    last = clean_up.wait_for(jids).distribute()
    done = d.result(last, timeout=120)
    assert done == ["clean_up", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "prepare"]
    t = {p.name: float(p.read_text()) for p in stamps.iterdir()}
    assert all(t["prepare"] <= t[f"f{i}"] <= t["clean_up"] for i in range(7))
    assert [d.result(j) for j in jids] == [[0, 10, 20], [30, 40, 50], [60]]
    # the controller held clean_up until every bundle had ended (a met
    # dependency shows as "", as in SLURM, so it is judged by the times)
    last_rec = fleet_env.record(last)
    assert all(last_rec["start_time"] >= fleet_env.record(j)["end_time"] for j in jids)
    assert fleet_env.record(jids[0])["name"] == "f" and fleet_env.record(jid)["name"] == "prepare"
    assert fleet_env.record(jids[0])["mem_mb"] == 100


def test_fleet_bundle_runs_every_call_and_fails_naming_the_bad_ones(fleet_env):
    d = fleetslurm.set_dispatcher("fleet")

    @fleetslurm.slurmify
    def maybe(x):
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    with fleetslurm.Batch(max_size=5) as batch:
        for i in range(4):
            maybe.distribute(i)
    (job,) = batch.job_ids
    with pytest.raises(RemoteJobError) as err:
        d.result(job, timeout=120)
    assert "2 of 4 calls in this bundle failed: call 1 (maybe(1)): ValueError: odd 1; " \
           "call 3 (maybe(3)): ValueError: odd 3" in str(err.value)
    assert fleet_env.record(job)["state"] == "FAILED"


def test_fleet_jobs_need_no_fleetslurm_on_the_machine(fleet_env, bare_python):
    """Slurmified functions calling each other, and a Process, run with a
    python that cannot import fleetslurm."""
    d = fleetslurm.set_dispatcher("fleet")
    fleetslurm.update_default_configuration(python=bare_python)

    @fleetslurm.slurmify
    def inner(x):
        return x + 1

    @fleetslurm.slurmify
    def outer(x):
        import sys
        return inner(x) * 10, "fleetslurm" in sys.modules

    assert d.result(outer.distribute(1), timeout=120) == (20, False)

    class Square(fleetslurm.Process):
        def __init__(self, n):
            self.n = n

        def run(self):
            import sys
            return self.n ** 2, "fleetslurm" in sys.modules

    job = Square(7).submit(python=bare_python)
    assert job.result(timeout=120) == (49, False)
