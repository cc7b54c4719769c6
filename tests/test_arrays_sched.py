"""The pure scheduler with job arrays: a few tasks submitted at a time, the rest
counted (ArrayTasks); a dependency on the whole array sees every task.

Expectations follow SLURM 22.05.8 (job_scheduler.c ``test_job_dependency``
with ``test_job_array_pending/completed/complete``) and what the oracle did
with ``--array=1-4%2`` whose task 3 failed: ``afterok:A`` never ran
(DependencyNeverSatisfied, ``afterok:A_*(failed)``), ``afternotok:A``,
``afterany:A`` and ``after:A`` ran, ``afterok:A_2`` ran.
"""

from __future__ import annotations

import pytest

from fleetslurm.scheduler import (ArrayTasks, JobEnded, JobReleased, JobRequeued, JobSubmitted,
                                  NodeSpec)

from test_scheduler import T0, cluster, job, starts, step, submit

A = 100  # the array's job id


def task(tid: int, index: int, **kw):
    kw.setdefault("submit_time", T0)
    return job(tid, array_job_id=A, array_task_id=index, **kw)


def waiting_on_array(kind: str):
    """Array A of 4 tasks: 1 (id 100+1) and 2 submitted, 2 more counted; job 9 depends on A."""
    st = cluster(NodeSpec("a", 2, 8000))
    acts = step(st, [ArrayTasks(A, unsubmitted=2), JobSubmitted(task(101, 1)),
                     JobSubmitted(task(102, 2)), JobSubmitted(job(9, dependency=f"{kind}:{A}"))])
    assert starts(acts) == {101: "a", 102: "a"}
    return st


@pytest.mark.parametrize("kind", ["after", "afterany", "afterok", "afternotok"])
def test_whole_array_waits_for_tasks_not_yet_submitted(kind):
    st = waiting_on_array(kind)
    assert st.reason(9) == "Dependency"
    # the two submitted tasks end: the array is not done, two tasks were never submitted
    step(st, [JobEnded(101, "COMPLETED", T0), JobEnded(102, "FAILED", T0)])
    assert st.reason(9) == "Dependency"


def finish_array(kind: str, last_state: str) -> dict:
    st = waiting_on_array(kind)
    step(st, [JobEnded(101, "COMPLETED", T0), JobEnded(102, "COMPLETED", T0)])
    # the controller submits the last two tasks: none left unsubmitted
    acts = step(st, [ArrayTasks(A, unsubmitted=0), JobSubmitted(task(103, 3)),
                     JobSubmitted(task(100, 4))])
    got = starts(acts)
    if kind == "after":  # no task pending any more: met before they end
        return {"after_start": got, "reason": st.reason(9) if 9 not in got else "started"}
    assert got == {103: "a", 100: "a"}
    assert st.reason(9) == "Dependency"
    got = starts(step(st, [JobEnded(103, last_state, T0), JobEnded(100, "COMPLETED", T0)]))
    return {"started": 9 in got, "reason": st.reason(9)}


@pytest.mark.parametrize("kind, last_state, started", [
    ("afterok", "COMPLETED", True), ("afterok", "FAILED", False),
    ("afternotok", "COMPLETED", False), ("afternotok", "FAILED", True),
    ("afterany", "FAILED", True), ("afterany", "COMPLETED", True),
])
def test_whole_array_verdict_once_every_task_ended(kind, last_state, started):
    out = finish_array(kind, last_state)
    assert out["started"] == started
    if not started:
        assert out["reason"] == "DependencyNeverSatisfied"


def test_after_on_an_array_is_met_once_no_task_is_pending():
    out = finish_array("after", "COMPLETED")
    assert out["after_start"] == {103: "a", 100: "a"}  # two CPUs: 9 waits for room, not for A
    assert out["reason"] in ("Resources", "Priority")


def test_a_cancelled_remainder_fails_afterok_and_meets_afternotok():
    st = cluster(NodeSpec("a", 2, 8000))
    step(st, [ArrayTasks(A, unsubmitted=5), JobSubmitted(task(101, 1, held=True)),
              JobSubmitted(job(8, dependency=f"afterok:{A}")),
              JobSubmitted(job(9, dependency=f"afternotok:{A}"))])
    # scancel A: the submitted task and the five others are cancelled
    got = starts(step(st, [JobEnded(101, "CANCELLED", T0), ArrayTasks(A, 0, ended_bad=5)]))
    assert got == {9: "a"}
    assert st.reason(8) == "DependencyNeverSatisfied"
    assert "array 100: 0 tasks pending, 0 running, 0 completed, 6 ended otherwise" in st.explain(8)


def test_one_task_and_the_corresponding_task():
    st = cluster(NodeSpec("a", 4, 8000))
    step(st, [ArrayTasks(A, unsubmitted=2), JobSubmitted(task(101, 1, held=True)),
              JobSubmitted(job(7, dependency=f"afterok:{A}_1")),
              JobSubmitted(job(8, dependency=f"afterok:{A}_3")),    # not submitted yet: pending
              JobSubmitted(job(201, array_job_id=200, array_task_id=1, dependency=f"aftercorr:{A}"))])
    assert {st.reason(j) for j in (7, 8, 201)} == {"Dependency"}
    got = starts(step(st, [JobReleased(101)]))
    assert got == {101: "a"}
    got = starts(step(st, [JobEnded(101, "COMPLETED", T0)]))
    assert got == {7: "a", 201: "a"}
    assert st.reason(8) == "Dependency"


def test_ended_tasks_leave_the_job_table_but_not_the_counts():
    st = cluster(NodeSpec("a", 1, 8000))
    step(st, [ArrayTasks(A, unsubmitted=0), JobSubmitted(task(101, 1))])
    step(st, [JobEnded(101, "COMPLETED", T0)])
    assert 101 not in st._jobs and st._arrays[A].ended_ok == 1
    # a finished task requeued by scontrol comes back as new, and counts as pending again
    step(st, [JobSubmitted(task(101, 1, held=True)), JobSubmitted(job(9, dependency=f"after:{A}"))])
    assert st._arrays[A].ended_ok == 0 and st._arrays[A].pending == 1
    assert st.reason(9) == "Dependency"
    assert starts(step(st, [JobReleased(101)])) == {101: "a"}
    assert starts(step(st, [JobRequeued(101)])) == {101: "a"}  # pending again, and restarted
    entry = st._arrays[A]
    assert (entry.pending, entry.running, entry.ended_ok, entry.ended_bad) == (0, 1, 0, 0)


def test_singleton_counts_an_array_from_its_submission():
    """Task ids are given as tasks start, after later jobs' ids: a singleton job
    submitted after the array still waits for it, as SLURM's does."""
    st = cluster(NodeSpec("a", 4, 8000))
    acts = step(st, [ArrayTasks(A, unsubmitted=3), JobSubmitted(task(300, 1, name="s", held=True)),
                     JobSubmitted(job(150, name="s", dependency="singleton"))])
    assert starts(acts) == {}
    assert st.reason(150) == "Dependency"
