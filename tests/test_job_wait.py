"""The controller's ``wait`` request (ctld/waiters.py): held by the loop
until the named jobs end, bounded, answered when the controller stops; and
its clients (``sbatch -W``, ``Job.result()``, DataBench's ``wait_for_jobs``)."""

from __future__ import annotations

import threading
import time

import pytest

from fleetslurm.errors import ControllerError, ControllerLost


def _wait(fleet, ids, timeout):
    with fleet.client() as c:
        c.set_timeout(60)
        t0 = time.monotonic()
        reply = c.call("wait", ids=[str(i) for i in ids], timeout=timeout)
        return reply, time.monotonic() - t0


def test_a_wait_is_answered_when_the_job_ends_not_before(fleet):
    job = fleet.sbatch("-o", "/dev/null", "--wrap", "sleep 1.5")
    fleet.wait(job, {"RUNNING"})
    reply, took = _wait(fleet, [job], 25)
    assert reply == {"done": True}
    rec = fleet.record(job)
    assert rec["state"] == "COMPLETED"  # over when answered
    assert 0.5 < took < 20  # held while it ran, answered long before the bound
    # answered in the step that recorded the end, not at a later poll
    assert time.time() - rec["end_time"] < 1.0


def test_a_wait_is_bounded_and_says_not_yet(fleet):
    job = fleet.sbatch("-o", "/dev/null", "--wrap", "sleep 30")
    reply, took = _wait(fleet, [job], 0.5)
    assert reply == {"done": False}
    assert 0.4 < took < 5
    assert fleet.record(job)["state"] in ("PENDING", "RUNNING")
    fleet.run("scancel", str(job), check=True)
    reply, _ = _wait(fleet, [job], 25)
    assert reply == {"done": True}
    assert fleet.record(job)["state"] == "CANCELLED"


def test_ended_and_unknown_jobs_are_answered_at_once(fleet):
    job = fleet.sbatch("-o", "/dev/null", "--wrap", "true")
    fleet.wait(job)
    reply, took = _wait(fleet, [job, 999999], 25)
    assert reply == {"done": True} and took < 5


def test_a_wait_for_an_array_waits_for_every_task(fleet):
    job = fleet.sbatch("-o", "/dev/null", "--array=0-3%1", "--wrap", "sleep 0.3")
    reply, _ = _wait(fleet, [job], 25)
    assert reply == {"done": True}
    recs = fleet.records(job)
    assert len(recs) == 4 and {r["state"] for r in recs} == {"COMPLETED"}


def test_a_wait_request_is_checked(fleet):
    fleet.run("controller", "start", check=True)
    with fleet.client() as c:
        with pytest.raises(ControllerError, match="ids is required"):
            c.call("wait", timeout=1)
    with fleet.client() as c:
        with pytest.raises(ControllerError, match="timeout"):
            c.call("wait", ids=["1"], timeout=-1)


def test_a_stopping_controller_answers_its_waiters(fleet):
    job = fleet.sbatch("-o", "/dev/null", "--wrap", "sleep 30")
    got: list = []

    def waiter():
        try:
            got.append(_wait(fleet, [job], 25))
        except Exception as exc:  # what the waiter sees
            got.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    fleet.stop()
    t.join(20)
    assert not t.is_alive()
    assert isinstance(got[0], ControllerLost), got
    assert "stopped while you waited" in str(got[0])
    assert time.monotonic() - t0 < 15


def test_sbatch_wait_exits_with_the_jobs_code_as_it_ends(fleet):
    t0 = time.time()
    proc = fleet.run("sbatch", "-W", "--parsable", "-o", "/dev/null", "--wrap",
                     "sleep 0.5; exit 3")
    done = time.time()
    assert proc.returncode == 3, proc.stderr
    rec = fleet.record(int(proc.stdout.split()[0]))
    assert rec["state"] == "FAILED"
    assert done - rec["end_time"] < 1.0 and done - t0 < 20


def test_job_result_and_wait_for_jobs_are_told(fleet_env):
    from fleetslurm.api.databench.bench import DataBenchSLURM
    from fleetslurm.api.executor.client import FleetClient
    from fleetslurm.api.executor.executor import Executor

    ex = Executor()
    job = ex.submit(time.sleep, 0.5)
    assert job.result(timeout=60) is None
    assert job.state == "COMPLETED"
    client = FleetClient()
    ids = [client.submit("#!/bin/sh\nsleep 0.3\n", {"output": "/dev/null"}) for _ in range(2)]
    db = DataBenchSLURM(store=fleet_env.root / "db.h5", output_dir=fleet_env.root / "out",
                        data_dir=fleet_env.root / "data")
    assert db.wait_for_jobs(ids, timeout=60, progress=False) == \
        {i: "COMPLETED" for i in ids}
    # a bounded wait on a job that goes on raises, the job is untouched
    slow = client.submit("#!/bin/sh\nsleep 30\n", {"output": "/dev/null"})
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        db.wait_for_jobs([slow], timeout=0.5, progress=False)
    assert time.monotonic() - t0 < 10
    assert client.states([slow])[slow] in ("PENDING", "RUNNING")
    client.cancel([slow])


def test_a_user_has_a_bounded_number_of_waits_held(monkeypatch):
    """Past MAX_PER_UID held waits of one user, a wait is answered at once
    with a pause to take (the user's other requests must not queue behind
    a crowd of waiting threads); other users' waits are still held."""
    from fleetslurm.ctld import waiters
    from fleetslurm.ctld.inbox import Pending

    monkeypatch.setattr(waiters, "jobs_over", lambda store, ids: ids)  # never over
    w = waiters.Waiters()
    mine = [Pending("wait", {"ids": ["1"], "timeout": 20}, 1000)
            for _ in range(waiters.MAX_PER_UID + 2)]
    other = Pending("wait", {"ids": ["1"], "timeout": 20}, 1001)
    for p in mine + [other]:
        w.add(p, 100.0)
    answered = w.due(None, 100.0, ended=False)
    assert answered == mine[waiters.MAX_PER_UID:]
    assert all(p.result == {"done": False, "retry": waiters.RETRY} for p in answered)
    assert len(w) == waiters.MAX_PER_UID + 1  # the others' wait is held too
    # at their deadline the held ones are answered "not yet", without a pause
    late = w.due(None, 121.0, ended=False)
    assert len(late) == waiters.MAX_PER_UID + 1
    assert all(p.result == {"done": False} for p in late) and len(w) == 0
