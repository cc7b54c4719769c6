"""A user unknown on a machine: the job fails there naming user and machine,
and the scheduler stops placing that user's jobs there (issue 12, item 4).

The agent (as root) reports such a launch with ``cause: "user"``; the
controller fails the job (JobLaunchFailure, the machine stays in service)
and bars (user, machine) in memory until the machine's agent says hello
again, an admin resumes it, or the controller restarts. The scheduler, pure
code, places none of that user's jobs on a barred machine, others' jobs
still go there, and ``explain`` says why.

Controller tests drive ``step(now)`` against FakeTransport machines whose
agent answers as the real root agent does for an unknown user (the real
agent's side is checked by running it: test_agent_reports_an_unknown_user).
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest
from stepping import pump, submit
from test_agent import AgentClient, kill_leftovers, spec

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.node.agent import protocol as P
from fleetslurm.paths import StatePaths
from fleetslurm.scheduler import (JobRequest, JobSubmitted, NodeSpec, NodeUp, PartitionSet,
                                  PartitionSpec, SchedulerState, StartJob, UserNodeExcluded,
                                  UserNodesCleared)
from fleetslurm.transport.fake import FakeTransport

NOBODY = pwd.getpwnam("nobody")


# ------------------------------------------------------------------ the pure scheduler

def _sched() -> SchedulerState:
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("p", default=True)),
               NodeUp(NodeSpec("m1", cpus=2, mem_mb=1000, weight=1)),
               NodeUp(NodeSpec("m2", cpus=2, mem_mb=1000, weight=2))], 0.0)
    return st


def _job(jid: int, user: str) -> JobSubmitted:
    return JobSubmitted(JobRequest(job_id=jid, user=user, partition="p", submit_time=float(jid)))


def test_a_barred_user_is_placed_elsewhere_and_others_are_not() -> None:
    st = _sched()
    st.handle([UserNodeExcluded("ann", "m1", "user ann is unknown on machine m1")], 1.0)
    acts = st.handle([_job(1, "ann"), _job(2, "bob")], 2.0)
    placed = {a.job_id: a.node for a in acts if isinstance(a, StartJob)}
    # m1 is preferred (lower weight): bob goes there, ann never
    assert placed == {1: "m2", 2: "m1"}, placed
    st.validate()


def test_a_job_of_a_user_barred_everywhere_waits_and_explain_says_why() -> None:
    st = _sched()
    st.handle([UserNodeExcluded("ann", "m1", "user ann is unknown on machine m1"),
               UserNodeExcluded("ann", "m2", "user ann is unknown on machine m2")], 1.0)
    acts = st.handle([_job(1, "ann")], 2.0)
    assert not [a for a in acts if isinstance(a, StartJob)]
    text = st.explain(1)
    assert "node m1 is not used for ann's jobs: user ann is unknown on machine m1" in text, text
    assert "node m2 is not used for ann's jobs: user ann is unknown on machine m2" in text, text
    assert "scontrol update NodeName=m1 State=RESUME" in text, text
    assert st.user_exclusions("ann") == {"m1": "user ann is unknown on machine m1",
                                         "m2": "user ann is unknown on machine m2"}
    # the machine is cleared (its agent said hello again): the waiting job starts there
    acts = st.handle([UserNodesCleared("m2")], 3.0)
    assert [(a.job_id, a.node) for a in acts if isinstance(a, StartJob)] == [(1, "m2")]
    assert st.user_exclusions("ann") == {"m1": "user ann is unknown on machine m1"}
    st.validate()


def test_barring_an_unknown_node_is_an_invalid_transition() -> None:
    from fleetslurm.scheduler import InvalidTransition

    st = _sched()
    with pytest.raises(InvalidTransition, match="unknown node 'm9'"):
        st.handle([UserNodeExcluded("ann", "m9")], 1.0)


# ------------------------------------------------------------------ the controller

class UsersFake(FakeTransport):
    """A machine whose (root) agent knows only the users in ``known``: a launch
    for anyone else fails as the real agent's does (``cause: "user"``)."""

    def __init__(self, *args, known: set[str], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.known = known

    def answer(self, req: dict) -> list[dict]:
        user = (req.get("spec") or {}).get("user") if req.get("op") == "launch" else None
        if user is not None and user not in self.known:
            return [P.ev_launch_failed(
                req.get("id"), req.get("key"),
                f"job {req.get('key')}: user {user} is unknown on machine {self.node} "
                f"(host {self.node}): the job cannot run there as its user", cause="user")]
        return super().answer(req)


class Fleet:
    """m1 (preferred) knows only root; m2 knows nobody too."""

    def __init__(self, tmp_path: Path) -> None:
        self.cfg = FleetConfig(cluster_name="users", heartbeat_interval=0.5, machines={
            n: MachineConfig(hostname=f"127.0.0.{i + 2}", cpus=1, memory_gb=1, weight=i + 1)
            for i, n in enumerate(("m1", "m2"))})
        self.fakes = {"m1": UsersFake("m1", workdir="/fake/m1", auto_end=False, known={"root"}),
                      "m2": UsersFake("m2", workdir="/fake/m2", auto_end=False,
                                      known={"root", NOBODY.pw_name})}
        self.clock = [time.time()]
        self.work = tmp_path / "work"
        self.work.mkdir(mode=0o777)
        os.chmod(self.work, 0o777)
        self.ctl = Controller(self.cfg, StatePaths(tmp_path / "home"), transports=self.fakes)
        self.ctl.start(self.clock[0])
        self.pump(lambda: all(self.ctl.sched.node_state(n) == "idle" for n in ("m1", "m2")))

    def pump(self, until) -> None:  # type: ignore[no-untyped-def]
        pump(self.ctl, until, self.clock, 0.1)

    def submit(self, uid: int) -> int:
        return submit(self.ctl, self.clock[0], {"wrap": "work", "output": "/dev/null"},
                      script="#!/bin/sh\nwork\n", cwd=str(self.work), script_name="wrap",
                      uid=uid)

    def task(self, job: int) -> dict:
        return self.ctl.store.task(job)

    def launches(self, name: str) -> list[str]:
        return [r["key"] for r in self.fakes[name].requests if r.get("op") == "launch"]


@pytest.fixture
def fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root: jobs of another user carry that user's name to the agent")
    f = Fleet(tmp_path)
    yield f
    f.ctl.close()


def test_the_failure_bars_the_user_from_that_machine_only(fleet: Fleet) -> None:
    f = fleet
    first = f.submit(NOBODY.pw_uid)
    f.pump(lambda: f.task(first)["state"] == "FAILED")
    rec = f.task(first)
    assert rec["node"] == "m1" and rec["reason"] == "JobLaunchFailure", rec
    assert f"user {NOBODY.pw_name} is unknown on machine m1" in f.ctl.store.step(
        rec["run_key"])["error"]
    # the job's fault, not the machine's: m1 stays in service...
    assert f.ctl.sched.node_state("m1") == "idle"
    assert f.ctl.sched.user_exclusions(NOBODY.pw_name) == {
        "m1": f"user {NOBODY.pw_name} is unknown on machine m1"}
    # ...root's jobs still go there (the preferred machine), nobody's go to m2
    theirs, mine = f.submit(NOBODY.pw_uid), f.submit(0)
    f.pump(lambda: f.task(theirs)["state"] == "RUNNING" and f.task(mine)["state"] == "RUNNING")
    assert (f.task(theirs)["node"], f.task(mine)["node"]) == ("m2", "m1")
    assert len(f.launches("m1")) == 2  # the failed one and root's: nobody's never again
    # explain, through the controller's request
    f.fakes["m2"].end(f.task(theirs)["run_key"])
    f.fakes["m1"].end(f.task(mine)["run_key"])
    busy = f.submit(0)  # holds m2 (m1 is taken by the next one)
    f.pump(lambda: f.task(busy)["state"] == "RUNNING")
    occupy = f.submit(0)
    f.pump(lambda: f.task(occupy)["state"] == "RUNNING")
    waiting = f.submit(NOBODY.pw_uid)
    f.pump(lambda: f.ctl.sched.reason(waiting) in ("Resources", "Priority"))
    text = f.ctl.sched.explain(waiting)
    assert f"node m1 is not used for {NOBODY.pw_name}'s jobs: user {NOBODY.pw_name} is " \
           "unknown on machine m1" in text, text


def test_a_hello_or_a_resume_lifts_the_bar(fleet: Fleet) -> None:
    f = fleet
    job = f.submit(NOBODY.pw_uid)
    f.pump(lambda: f.task(job)["state"] == "FAILED")
    assert f.ctl.sched.user_exclusions(NOBODY.pw_name)
    # the admin adds the user on m1 and resumes it
    f.fakes["m1"].known.add(NOBODY.pw_name)
    from fleetslurm.ctld.inbox import Pending, Request

    p = Pending("update_node", {"nodes": "m1", "state": "RESUME"}, 0)
    f.ctl.inbox.put(Request(p))
    f.ctl.step(f.clock[0])
    assert p.error is None, p.error
    assert f.ctl.sched.user_exclusions(NOBODY.pw_name) == {}
    again = f.submit(NOBODY.pw_uid)
    f.pump(lambda: f.task(again)["state"] == "RUNNING")
    assert f.task(again)["node"] == "m1"
    f.fakes["m1"].end(f.task(again)["run_key"])
    f.pump(lambda: f.task(again)["state"] == "COMPLETED")
    # barred again, then the machine's agent reconnects (hello): lifted too
    f.fakes["m1"].known.discard(NOBODY.pw_name)
    job = f.submit(NOBODY.pw_uid)
    f.pump(lambda: f.task(job)["state"] == "FAILED")
    assert f.ctl.sched.user_exclusions(NOBODY.pw_name)
    hellos = len([r for r in f.fakes["m1"].requests if r.get("op") == "hello"])
    f.fakes["m1"].drop()
    # (pump fails the test if the bar is never lifted)
    f.pump(lambda: len([r for r in f.fakes["m1"].requests if r.get("op") == "hello"]) > hellos
           and f.ctl.sched.user_exclusions(NOBODY.pw_name) == {})
    assert f.ctl.sched.node_state("m1") == "idle"


def test_agent_reports_an_unknown_user(tmp_path: Path) -> None:
    """The real agent, as root: the launch of a user unknown here fails with
    cause "user" and nothing runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a privileged agent)")
    agent = AgentClient(tmp_path / "work")
    try:
        reply = agent.launch("7.0", spec("#!/bin/sh\ntouch '%s'\n" % (tmp_path / "ran"),
                                         tmp_path, user="nosuchfsluser", node="m7"))
        assert reply["ev"] == "launch_failed" and reply.get("cause") == "user", reply
        assert "user nosuchfsluser is unknown on machine m7" in reply["error"], reply
        time.sleep(0.2)
        assert not (tmp_path / "ran").exists()
    finally:
        agent.close()
        kill_leftovers(tmp_path / "work")


def _uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def test_a_job_is_named_after_the_uids_user_now(fleet: Fleet) -> None:
    """A uid given to a new user since someone else had it: the job carries the
    new user's name (a remembered old name would make the user unknown on the
    machines, and bar them there)."""
    import shutil
    import subprocess
    import uuid

    from fleetslurm.views import user_name

    if not shutil.which("useradd"):
        pytest.skip("needs useradd")
    old, new = (f"fsl{uuid.uuid4().hex[:10]}" for _ in range(2))
    # a uid far above the others, not the next one useradd gives: another
    # test running beside this one (pytest-xdist) may create a user while
    # the uid is free, and must not get it
    uid = next(u for u in range(59000, 59900) if not _uid_taken(u))
    subprocess.run(["useradd", "-M", "-u", str(uid), old], check=True, capture_output=True)
    try:
        user_name.cache_clear()  # (earlier tests' users may have had this uid)
        assert user_name(uid) == old  # remembered for display
        subprocess.run(["userdel", old], check=True, capture_output=True)
        subprocess.run(["useradd", "-M", "-u", str(uid), new], check=True, capture_output=True)
        f = fleet
        f.fakes["m1"].known.add(new)
        job = f.submit(uid)
        assert f.ctl.store.job(job)["user"] == new
        f.pump(lambda: f.task(job)["state"] == "RUNNING")
        assert f.ctl.sched.user_exclusions(new) == {}
    finally:
        for name in (old, new):
            subprocess.run(["userdel", name], capture_output=True)
        user_name.cache_clear()
