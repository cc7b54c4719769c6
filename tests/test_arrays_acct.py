"""sacct's fast path (fleetslurm.acct: lines rendered by SQLite) prints the same
bytes as the general path (records rendered by slurm.sacct_fmt), for every
field it supports, widths, alignments and modes, over jobs in every state.

The jobs are written with the Store API the controller uses; both paths read
them through the controller's query layer.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fleetslurm.acct import FIELDS
from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import StatePaths, private_dir
from fleetslurm.slurm import sacct_fmt
from fleetslurm.store import Store

NOW = 1_800_000_000.0
DAY = 86400


def _req(name: str, partition: str = "debug", cpus: int = 1) -> dict:
    return {"name": name, "partition": partition, "cpus": cpus, "mem_mb": 0, "gpus": 0,
            "time_limit": None, "nice": 0, "nodelist": [], "exclude": [], "constraint": "",
            "begin_time": None, "dependency": "", "exclusive": False, "priority": 0}


def _job(store: Store, job_id: int, state: str, *, name: str = "wrap", account: str = "",
         user: str = "alice", uid: int = 1000, start: "float | None" = NOW - 100,
         end: "float | None" = NOW - 10, code: "int | None" = 0, sig: "int | None" = 0,
         node: "str | None" = "node01", cpus: int = 1, cancelled_by: "int | None" = None,
         array: "tuple[int, int] | None" = None, pending: "str | None" = None,
         spec_name: str = "", partition: str = "debug", step: bool = True) -> None:
    parent = array[0] if array else job_id
    if store.job(parent) is None:
        spec = {"name": spec_name, "account": account, "workdir": "/w", "array_throttle": None}
        store.add_job(parent, uid, user, NOW - 200, spec, "#!/bin/sh\n",
                      "0-9" if (array or pending) else None)
    store.add_task(job_id, parent, array[1] if array else None, _req(name, partition, cpus),
                   NOW - 200, False, array_pending=pending)
    fields = dict(state=state, start_time=start, end_time=end, exit_code=code, exit_signal=sig,
                  node=node if start else None, alloc_cpus=cpus if start else None,
                  cancelled_by=cancelled_by)
    if start and step:
        key = f"{job_id}.0"
        fields["run_key"] = key
        store.add_step(key, job_id, node or "node01", start)
        store.update_step(key, state=state, end_time=end, exit_code=code, exit_signal=sig,
                          user_cpu=1.25, system_cpu=0.5, max_rss_kb=3000)
    store.update_task(job_id, **fields)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory):
    home = tmp_path_factory.mktemp("acct") / "home"
    private_dir(home)
    paths = StatePaths(home)
    store = Store(paths.db)
    with store.transaction():
        _job(store, 1, "COMPLETED")
        _job(store, 2, "FAILED", code=3, name="a-very-long-job-name-indeed", account="physics")
        _job(store, 3, "CANCELLED", cancelled_by=1000, sig=15, start=None, end=NOW - 5)
        _job(store, 4, "CANCELLED", cancelled_by=0, code=0, sig=9)
        _job(store, 5, "TIMEOUT", code=0, sig=15, start=NOW - 3 * DAY - 7, end=NOW)
        _job(store, 6, "NODE_FAIL", code=None, sig=None)
        _job(store, 7, "OUT_OF_MEMORY", code=0, sig=9, partition="")
        _job(store, 8, "RUNNING", end=None, cpus=4)
        _job(store, 9, "COMPLETING", code=0)
        _job(store, 10, "PENDING", start=None, end=None, name="", spec_name="fromspec")
        _job(store, 11, "PENDING", start=None, end=None, user="bob", uid=1001)
        _job(store, 12, "COMPLETED", name="näme-ünïcode", account="écurie")
        _job(store, 13, "PREEMPTED", code=0, sig=0)
        _job(store, 14, "DEADLINE", start=None, end=NOW)
        _job(store, 15, "BOOT_FAIL", code=1, sig=0, node=None, start=0, end=NOW)
        # array 20: tasks 20_1 (raw 21), 20_2 (raw 22) done, a pending remainder record
        _job(store, 20, "PENDING", start=None, end=None, pending="3-9", array=None)
        _job(store, 21, "COMPLETED", array=(20, 1))
        _job(store, 22, "FAILED", code=2, array=(20, 2))
        # array 30: a cancelled remainder and one task that ran
        _job(store, 30, "CANCELLED", start=None, end=NOW - 1, pending="0,2,4-9",
             cancelled_by=1000)
        _job(store, 31, "COMPLETED", array=(30, 1))
        # requeued: pending again, its old run still recorded
        _job(store, 40, "PENDING", start=None, end=None)
        store.add_step("40.0", 40, "node01", NOW - 50)
        store.update_step("40.0", state="NODE_FAIL", end_time=NOW - 40)
        # finished jobs keep their default-format lines; some do not have them yet
        assert store.keep_acct_lines(limit=9) == 9
    store.close()
    cfg = FleetConfig(cluster_name="acctc", machines={
        "node01": MachineConfig(transport="local", cpus=2, memory_gb=1)})
    controller = Controller(cfg, paths)
    yield controller
    controller.close()


def general(ctl, query: dict, fields, mode: str, only: bool) -> str:
    """The general path: records, then sacct_fmt (what sacct printed before)."""
    records = ctl.queries.q_jobs(dict(query, steps=True, per_task=False), 0)
    rows = [r for rec in records for r in sacct_fmt.rows_for(rec, allocations_only=only, now=NOW)]
    return sacct_fmt.render(fields, rows, mode=mode, header=False)


def fast(ctl, query: dict, fields, mode: str, only: bool) -> str:
    return ctl.queries.q_acct(dict(query, fields=[[f.name, f.width, f.kind] for f in fields],
                                   mode=mode, allocations_only=only, now=NOW), 0)["text"]


NAMES = [n for n in sacct_fmt.FIELD_NAMES if n.lower() in FIELDS]


def test_every_fast_field_is_a_sacct_field():
    assert len(NAMES) == len(FIELDS)
    from fleetslurm.acct import DEFAULT

    assert DEFAULT == tuple((f.name, f.width, f.kind)
                            for f in sacct_fmt.parse_fields(sacct_fmt.DEFAULT_FIELDS))


def test_kept_lines_are_dropped_when_a_task_changes(ctl):
    store = ctl.queries._store()
    kept = store._x("SELECT task_id FROM tasks WHERE acct_lines IS NOT NULL").fetchall()
    assert len(kept) == 9
    # a change to the row (scontrol requeue of a finished job, say) forgets them
    first = kept[0][0]
    store.update_task(first, collected=1)
    assert store.task(first)["acct_lines"] is None


@pytest.mark.parametrize("mode", ["fixed", "parsable", "parsable2"])
@pytest.mark.parametrize("only", [False, True])
def test_default_fields_and_all_fast_fields(ctl, mode, only):
    for spec in (sacct_fmt.DEFAULT_FIELDS, ",".join(NAMES), "jobid%-30,jobname%3,state%1,end%5",
                 "JobID,State,NodeList", "jobidraw%0,account%4,user%-2"):
        fields = sacct_fmt.parse_fields(spec)
        assert fast(ctl, {}, fields, mode, only) == general(ctl, {}, fields, mode, only), spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=6),
       widths=st.lists(st.integers(-25, 25), min_size=6, max_size=6),
       mode=st.sampled_from(["fixed", "parsable", "parsable2"]), only=st.booleans(),
       query=st.sampled_from([{}, {"states": ["COMPLETED", "FAILED"]}, {"users": ["bob"]},
                              {"users": ["1000"]}, {"names": ["wrap"]},
                              {"partitions": ["debug"]}, {"ids": ["20"]}, {"ids": ["20_5"]},
                              {"ids": ["30", "2"]}, {"since": NOW - 20},
                              {"until": NOW - 300}, {"ids": ["999"]}]))
def test_fast_path_equals_general_path(ctl, names, widths, mode, only, query):
    spec = ",".join(f"{n}%{w}" for n, w in zip(names, widths))
    fields = sacct_fmt.parse_fields(spec)
    assert fast(ctl, query, fields, mode, only) == general(ctl, query, fields, mode, only)


def test_a_field_without_sql_form_takes_the_general_path(ctl):
    fields = sacct_fmt.parse_fields("JobID,MaxRSS,TotalCPU,ReqMem")
    text = fast(ctl, {}, fields, "parsable2", False)
    assert text == general(ctl, {}, fields, "parsable2", False)
    assert "1.batch|3000K|00:01.750|" in text


def test_sacct_through_the_cli_uses_it(fleet):
    """The real command: header from the client, lines from the controller."""
    job = fleet.sbatch("-J", "named", "--wrap", "exit 2")
    fleet.wait(job)
    out = fleet.run("sacct", "-j", str(job), "-o", "JobID,JobName%6,State,ExitCode",
                    check=True).stdout.splitlines()
    assert out[0].split() == ["JobID", "JobNam", "State", "ExitCode"]
    assert out[2].split() == [str(job), "named", "FAILED", "2:0"]
    assert out[3].split() == [f"{job}.batch", "batch", "FAILED", "2:0"]
    assert len(out) == 4
    mine = fleet.run("sacct", "-n", "-X", "-P", "-o", "jobid,user", check=True).stdout
    assert mine == f"{job}|{__import__('pwd').getpwuid(os.getuid()).pw_name}\n"
