"""QOS, account limits and partition access in the controller: real agent
subprocess, real SQLite, step(now); a real second Unix user where groups matter."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from second_user import other_user  # noqa: F401  (fixture)
from stepping import pump, submit

from fleetslurm.config import AccountConfig, FleetConfig, MachineConfig, PartitionConfig, QosConfig
from fleetslurm.ctld.inbox import Pending, Request
from fleetslurm.ctld.loop import Controller
from fleetslurm.errors import AccessDenied, SubmitError
from fleetslurm.paths import StatePaths


def _controller(home: Path, **cfg) -> Controller:
    cfg.setdefault("partitions", {"debug": PartitionConfig(default=True)})
    machine = MachineConfig(transport="local", cpus=4, memory_gb=2,
                            partitions=list(cfg["partitions"]))
    config = FleetConfig(cluster_name="q", kill_wait=1, heartbeat_interval=0.5,
                         machines={"n1": machine}, **cfg)
    ctl = Controller(config, StatePaths(home))
    ctl.start(time.time())
    return ctl


def _submit(ctl: Controller, options: dict | None = None, uid: int = 0, seconds: float = 30) -> int:
    return submit(ctl, time.time(), options or {}, script=f"#!/bin/sh\nsleep {seconds}\n",
                  cwd="/tmp", uid=uid, env={"PATH": os.environ["PATH"]})


def _request(ctl: Controller, op: str, args: dict, uid: int = 0):
    p = Pending(op, args, uid)
    ctl.inbox.put(Request(p))
    ctl.step(time.time())
    if p.error:
        raise p.error
    return p.result


def _cancel_all(ctl: Controller, ids) -> None:
    _request(ctl, "cancel", {"ids": [str(i) for i in ids]})
    pump(ctl, lambda: all(ctl.store.task(j)["state"] not in ("PENDING", "RUNNING", "COMPLETING")
                          for j in ids), timeout=30)


def test_unknown_qos_and_account_are_refused_with_slurms_messages(tmp_path):
    ctl = _controller(tmp_path / "h", qos={"high": QosConfig(Priority=10)})
    try:
        with pytest.raises(SubmitError, match=r"^Batch job submission failed: Invalid qos "
                                              r"specification$"):
            _submit(ctl, {"qos": "doesnotexist"})
        with pytest.raises(SubmitError, match="Invalid account or account/partition "
                                              "combination specified"):
            _submit(ctl, {"account": "nosuchacct"})
        ok = [_submit(ctl, {"qos": "high", "account": "root"}), _submit(ctl)]
        reqs = [ctl.store.task(j)["req"] for j in ok]
        assert [(r["qos"], r["account"]) for r in reqs] == [("high", "root"), ("normal", "root")]
        _cancel_all(ctl, ok)
    finally:
        ctl.close()


def test_max_jobs_per_user_holds_with_slurms_reason_then_starts(tmp_path):
    ctl = _controller(tmp_path / "h", qos={"normal": QosConfig(MaxJobsPerUser=2)})
    try:
        ids = [_submit(ctl, seconds=1) for _ in range(4)]
        pump(ctl, lambda: sum(ctl.store.task(j)["state"] == "RUNNING" for j in ids) == 2)
        ctl.step(time.time())
        assert {ctl.sched.reason(j) for j in ids[2:]} == {"QOSMaxJobsPerUserLimit"}
        assert "MaxJobsPerUser=2" in _request(ctl, "explain", {"id": str(ids[3])})
        seen = []

        def done() -> bool:
            seen.append(sum(ctl.store.task(j)["state"] == "RUNNING" for j in ids))
            return all(ctl.store.task(j)["state"] == "COMPLETED" for j in ids)
        pump(ctl, done, timeout=60)
        assert max(seen) <= 2
    finally:
        ctl.close()


def test_max_submit_jobs_per_user_refuses_the_next_submission(tmp_path):
    ctl = _controller(tmp_path / "h", qos={"normal": QosConfig(MaxSubmitJobsPerUser=2)})
    try:
        ids = [_submit(ctl), _submit(ctl)]
        with pytest.raises(SubmitError, match=r"Job violates accounting/QOS policy \(job submit "
                                              r"limit, user's size and/or time limits\)"):
            _submit(ctl)
        with pytest.raises(SubmitError, match="job submit limit"):
            _submit(ctl, {"array": "0-3"})
        _cancel_all(ctl, ids)
        ids.append(_submit(ctl))  # the count is of pending and running jobs only
        _cancel_all(ctl, ids[-1:])
    finally:
        ctl.close()


def test_account_grp_cpu_limit_holds_and_qos_max_wall_sets_the_time_limit(tmp_path):
    ctl = _controller(tmp_path / "h", accounts={"root": AccountConfig(GrpTRES="cpu=2")},
                      qos={"short": QosConfig(MaxWall="10")})
    try:
        a = _submit(ctl, {"cpus_per_task": 2})
        b = _submit(ctl, {"cpus_per_task": 1})
        pump(ctl, lambda: ctl.store.task(a)["state"] == "RUNNING")
        ctl.step(time.time())
        assert ctl.sched.reason(b) == "AssocGrpCpuLimit"
        c = _submit(ctl, {"qos": "short"})
        assert ctl.store.task(c)["req"]["time_limit"] == 10
        _cancel_all(ctl, [a, b, c])
    finally:
        ctl.close()


def test_partition_allow_lists_and_tiers(tmp_path, other_user):
    group = __import__("grp").getgrgid(other_user.pw_gid).gr_name
    parts = {"debug": PartitionConfig(default=True),
             "mine": PartitionConfig(allow_groups=[group], priority_tier=5),
             "theirs": PartitionConfig(allow_groups=["nosuchgroup-fsl"]),
             "acct": PartitionConfig(allow_accounts=["root"]),
             "hiq": PartitionConfig(allow_qos=["high"])}
    ctl = _controller(tmp_path / "h", partitions=parts, qos={"high": QosConfig()})
    uid = other_user.pw_uid
    try:
        held = {"hold": True}
        ok = [_submit(ctl, {"partition": "mine", **held}, uid=uid)]
        with pytest.raises(SubmitError, match="^Batch job submission failed: User's group not "
                                              "permitted to use this partition$"):
            _submit(ctl, {"partition": "theirs", **held}, uid=uid)
        ok.append(_submit(ctl, {"partition": "theirs", **held}, uid=0))  # root may
        with pytest.raises(SubmitError, match="Invalid account or account/partition"):
            _submit(ctl, {"partition": "acct", **held}, uid=uid)
        with pytest.raises(SubmitError, match="Invalid qos specification"):
            _submit(ctl, {"partition": "hiq", **held})
        ok.append(_submit(ctl, {"partition": "hiq", "qos": "high", **held}))
        # PriorityTier orders the partitions' jobs
        assert ctl.sched._parts["mine"].priority == 5
        _cancel_all(ctl, ok)
    finally:
        ctl.close()


def test_sacctmgr_changes_are_root_only_apply_at_once_and_survive_a_restart(tmp_path,
                                                                           other_user):
    home = tmp_path / "h"
    ctl = _controller(home)
    try:
        with pytest.raises(AccessDenied):
            _request(ctl, "qos_change", {"mode": "modify", "names": ["normal"],
                                         "fields": {"MaxJobsPerUser": "1"}}, uid=other_user.pw_uid)
        ids = [_submit(ctl), _submit(ctl)]
        pump(ctl, lambda: all(ctl.store.task(j)["state"] == "RUNNING" for j in ids))
        assert _request(ctl, "qos_change", {"mode": "modify", "names": ["normal"],
                                            "fields": {"MaxJobsPerUser": "1"}}) == \
            {"changed": ["normal"]}
        third = _submit(ctl)
        ctl.step(time.time())
        assert ctl.sched.reason(third) == "QOSMaxJobsPerUserLimit"
        _request(ctl, "qos_change", {"mode": "add", "names": ["high"],
                                     "fields": {"Priority": "100", "MaxTRESPerUser": "cpu=2"}})
        _cancel_all(ctl, ids + [third])
    finally:
        ctl.close()
    ctl = _controller(home)
    try:
        shown = _request(ctl, "qos_show", {})
        byname = {q["Name"]: q for q in shown["qos"]}
        assert byname["normal"]["MaxJobsPerUser"] == 1
        assert byname["high"]["Priority"] == 100 and byname["high"]["MaxTRESPerUser"] == "cpu=2"
        assert ctl.fairshare.qos_priorities["high"] == 100
        _request(ctl, "qos_change", {"mode": "delete", "names": ["high"]})
        with pytest.raises(SubmitError, match="Invalid qos specification"):
            _submit(ctl, {"qos": "high"})
    finally:
        ctl.close()


def test_partition_max_time_pends_by_default_and_is_refused_with_enforce_part_limits(tmp_path):
    parts = {"debug": PartitionConfig(default=True, max_time="10")}
    ctl = _controller(tmp_path / "h", partitions=parts)
    try:
        job = _submit(ctl, {"time": "20"})
        assert ctl.sched.reason(job) == "PartitionTimeLimit"  # SLURM's EnforcePartLimits=NO
        _cancel_all(ctl, [job])
    finally:
        ctl.close()
    ctl = _controller(tmp_path / "h2", partitions=parts, enforce_part_limits="ALL")
    try:
        with pytest.raises(SubmitError, match=r"^Batch job submission failed: Requested time "
                                              r"limit is invalid \(missing or exceeds some limit\)$"):
            _submit(ctl, {"time": "20"})
        _cancel_all(ctl, [_submit(ctl, {"time": "10"})])
    finally:
        ctl.close()


def test_qos_priority_feeds_the_multifactor_qos_factor(tmp_path):
    from fleetslurm.config import PriorityConfig

    ctl = _controller(tmp_path / "h", priority=PriorityConfig(PriorityWeightQOS=1000),
                      qos={"high": QosConfig(Priority=100), "mid": QosConfig(Priority=50)})
    try:
        later = {"begin": "now+1hour"}
        jobs = {q: _submit(ctl, {"qos": q, **later}) for q in ("normal", "mid", "high")}
        ctl.step(time.time())
        assert {q: ctl.fairshare.priority_of(j) for q, j in jobs.items()} == \
            {"normal": 1, "mid": 500, "high": 1000}  # (SLURM: at least 1)
        # a change of a QOS's Priority counts from the next computation
        _request(ctl, "qos_change", {"mode": "modify", "names": ["mid"],
                                     "fields": {"Priority": "100"}})
        newer = _submit(ctl, {"qos": "mid", **later})
        assert ctl.fairshare.priority_of(newer) == 1000
        _cancel_all(ctl, list(jobs.values()) + [newer])
    finally:
        ctl.close()


def test_scontrol_update_qos_moves_a_pending_job_out_of_a_limit(tmp_path):
    from fleetslurm.errors import JobError

    ctl = _controller(tmp_path / "h", qos={"normal": QosConfig(MaxJobsPerUser=1),
                                           "free": QosConfig()})
    try:
        a, b = _submit(ctl), _submit(ctl)
        pump(ctl, lambda: ctl.store.task(a)["state"] == "RUNNING")
        ctl.step(time.time())
        assert ctl.sched.reason(b) == "QOSMaxJobsPerUserLimit"
        with pytest.raises(JobError, match=f"^Invalid qos specification for job {b}$"):
            _request(ctl, "update_job", {"ids": [str(b)], "fields": {"QOS": "nosuch"}})
        with pytest.raises(JobError, match="Invalid account or account/partition"):
            _request(ctl, "update_job", {"ids": [str(b)], "fields": {"Account": "nosuch"}})
        _request(ctl, "update_job", {"ids": [str(b)], "fields": {"QOS": "free"}})
        pump(ctl, lambda: ctl.store.task(b)["state"] == "RUNNING")
        assert ctl.store.task(b)["req"]["qos"] == "free"
        _cancel_all(ctl, [a, b])
    finally:
        ctl.close()


def test_accounting_storage_enforce_none_accepts_any_account_and_qos_as_the_oracle(tmp_path):
    # the oracle (no accounting): sbatch --qos=doesnotexist -A nosuchacct is accepted
    ctl = _controller(tmp_path / "h", accounting_storage_enforce="none",
                      qos={"normal": QosConfig(MaxJobsPerUser=1)})
    try:
        ids = [_submit(ctl, {"qos": "doesnotexist", "account": "nosuchacct"}), _submit(ctl),
               _submit(ctl)]
        pump(ctl, lambda: all(ctl.store.task(j)["state"] == "RUNNING" for j in ids))  # no limits
        assert ctl.store.task(ids[0])["req"]["account"] == "nosuchacct"
        _cancel_all(ctl, ids)
    finally:
        ctl.close()


def test_accounting_storage_enforce_is_checked():
    from fleetslurm.config import FleetConfig

    machines = {"n1": MachineConfig(transport="local", cpus=1)}
    cfg = FleetConfig(machines=machines, accounting_storage_enforce="Limits")
    assert cfg.enforces("limits") and cfg.enforces("associations") and not cfg.enforces("qos")
    with pytest.raises(ValueError):
        FleetConfig(machines=machines, accounting_storage_enforce="none,limits")
    with pytest.raises(ValueError):
        FleetConfig(machines=machines, accounting_storage_enforce="bogus")
