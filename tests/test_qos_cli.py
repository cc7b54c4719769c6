"""sacctmgr show qos|assoc with limits, sacctmgr add|modify|delete qos (SLURM's
syntax and output), and QOS MaxJobsPerUser=2 holding under concurrent sbatch
processes on the embedded default."""

from __future__ import annotations

import threading
import time

import pytest

from fleetslurm.errors import UsageError
from fleetslurm.cli.sacctmgr_change import parse_change
from fleetslurm.slurm.assoc import render_table, tree
from fleetslurm.slurm.sacctmgr_fmt import Fleet, list_entity, parse_specs

QOS = ({"Name": "normal", "Priority": 0, "MaxJobsPerUser": 2},
       {"Name": "high", "Description": "for deadlines", "Priority": 100,
        "MaxTRESPerUser": "cpu=4,mem=8G,gres/gpu=1", "MaxWall": "1-0", "GrpTRES": "cpu=8",
        "MaxSubmitJobsPerUser": 10, "GrpJobs": 5})
FLEET = Fleet(cluster="c", assocs=tuple(tree(["alice", "root"])), qos=QOS,
              limits={"alice": {"GrpTRES": "cpu=2,mem=1000", "MaxJobs": 3, "MaxWall": "90"}})


def show(line: str) -> str:
    words = line.split()
    cols, rows = list_entity(words[0], parse_specs(words[0], words[1:]), FLEET)
    return render_table(cols, rows, mode="parsable2")


def test_show_qos_prints_the_limits_in_slurms_columns():
    assert show("qos") == (
        "Name|Priority|GraceTime|Preempt|PreemptExemptTime|PreemptMode|Flags|UsageThres|"
        "UsageFactor|GrpTRES|GrpTRESMins|GrpTRESRunMins|GrpJobs|GrpSubmit|GrpWall|MaxTRES|"
        "MaxTRESPerNode|MaxTRESMins|MaxWall|MaxTRESPU|MaxJobsPU|MaxSubmitPU|MaxTRESPA|MaxJobsPA|"
        "MaxSubmitPA|MinTRES\n"
        "normal|0|00:00:00|||cluster|||1.000000||||||||||||2|||||\n"
        "high|100|00:00:00|||cluster|||1.000000|cpu=8|||5||||||1-00:00:00|"
        "cpu=4,mem=8G,gres/gpu=1||10||||\n")
    assert show("qos high format=name,descr,id") == "Name|Descr|ID\nhigh|for deadlines|2\n"
    assert show("qos where name=normal format=name,maxjobsperuser") == \
        "Name|MaxJobsPU\nnormal|2\n"


def test_show_assoc_prints_an_accounts_limits():
    out = show("association format=account,user,grptres,maxjobs,maxwall,qos")
    assert out == ("Account|User|GrpTRES|MaxJobs|MaxWall|QOS\n"
                   "root|||||high,normal\nroot|root||||high,normal\n"
                   "alice||cpu=2,mem=1000M|3|01:30:00|high,normal\n"
                   "alice|alice||3|01:30:00|high,normal\n")


def test_change_syntax():
    assert parse_change("modify", ["normal", "set", "MaxJobsPerUser=2"]) == \
        ("modify", ["normal"], {"MaxJobsPerUser": "2"})
    assert parse_change("modify", ["where", "name=Normal", "set", "maxtrespu=cpu=4,mem=2G",
                                   "MaxWall=1:00:00"]) == \
        ("modify", ["normal"], {"MaxTRESPerUser": "cpu=4,mem=2G", "MaxWall": "1:00:00"})
    assert parse_change("add", ["high,low", "Priority=10"]) == \
        ("add", ["high", "low"], {"Priority": "10"})
    assert parse_change("delete", ["where", "name=high"]) == ("delete", ["high"], {})
    with pytest.raises(UsageError, match="Unknown option: Bogus=1"):
        parse_change("modify", ["normal", "set", "Bogus=1"])
    with pytest.raises(UsageError, match="You didn't give me anything to set"):
        parse_change("modify", ["normal"])
    with pytest.raises(UsageError, match="Need name of qos"):
        parse_change("delete", [])


# -- through the CLI, against a real controller ----------------------------------

def test_sacctmgr_modify_add_delete_qos(fleet):
    out = fleet.run("sacctmgr", "-i", "modify", "qos", "normal", "set", "MaxJobsPerUser=2",
                    check=True).stdout
    assert out == " Modified qos...\n  normal\n"
    assert fleet.run("sacctmgr", "show", "qos", "format=name,maxjobspu", "-P",
                     check=True).stdout == "Name|MaxJobsPU\nnormal|2\n"
    out = fleet.run("sacctmgr", "-i", "add", "qos", "high", "Priority=100",
                    "MaxTRESPerUser=cpu=1", check=True).stdout
    assert out.startswith(" Adding QOS(s)\n  high\n Settings\n  Description    = high\n")
    assert fleet.run("sacctmgr", "-i", "add", "qos", "high").stdout == " Nothing new added.\n"
    # without -i sacctmgr asks; anything but y discards
    proc = fleet.run("sacctmgr", "modify", "qos", "high", "set", "Priority=5", input="n\n")
    assert proc.returncode == 0
    assert proc.stdout == (" Modified qos...\n  high\nWould you like to commit changes? "
                           "(You have 30 seconds to decide)\n(N/y): \n Changes Discarded\n")
    proc = fleet.run("sacctmgr", "modify", "qos", "high", "set", "MaxTRESPerUser=mem=1G",
                     input="y\n", check=True)
    assert fleet.run("sacctmgr", "show", "qos", "high", "format=name,priority,maxtrespu", "-P",
                     check=True).stdout == "Name|Priority|MaxTRESPU\nhigh|100|cpu=1,mem=1G\n"
    # the new QOS is usable at once; a bad value is refused with the key named
    job = fleet.sbatch("--qos=high", "-H", "--wrap", "true")
    fleet.run("scancel", str(job), check=True)
    proc = fleet.run("sacctmgr", "-i", "modify", "qos", "high", "set", "MaxJobsPerUser=x")
    assert proc.returncode == 1 and "Invalid value for MaxJobsPerUser (x)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fleet.run("sacctmgr", "-i", "delete", "qos", "high",
                     check=True).stdout == " Deleting QOS(s)...\n  high\n"
    proc = fleet.run("sbatch", "--qos=high", "--wrap", "true")
    assert proc.returncode == 1
    assert proc.stderr == "sbatch: error: Batch job submission failed: Invalid qos specification\n"
    proc = fleet.run("sacctmgr", "-i", "modify", "qos", "nosuch", "set", "Priority=1")
    assert (proc.returncode, proc.stdout) == (1, " Nothing modified\n")
    # a restart keeps what sacctmgr set
    fleet.stop()
    assert fleet.run("sacctmgr", "show", "qos", "format=name,maxjobspu", "-P",
                     check=True).stdout == "Name|MaxJobsPU\nnormal|2\n"


@pytest.mark.parametrize("which", ["default_fleet", "wide_fleet"])
def test_qos_max_jobs_per_user_holds_under_concurrent_submission(request, which):
    # the embedded default (this machine: 2 CPUs here, so the limit and the CPUs
    # bind alike), and a machine declared with 8 CPUs, where only the limit holds
    fleet = request.getfixturevalue(which)
    fleet.run("sacctmgr", "-i", "modify", "qos", "normal", "set", "MaxJobsPerUser=2", check=True)
    ids: list[int] = []
    lock = threading.Lock()

    def submit() -> None:
        job = fleet.sbatch("--wrap", "sleep 1")
        with lock:
            ids.append(job)
    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6
    held = set()
    deadline = time.monotonic() + 90
    while True:
        with fleet.client() as c:  # one snapshot of all six (one record at a time is not)
            recs = c.call("jobs", ids=[str(j) for j in ids])
        assert len(recs) == 6
        assert sum(r["state"] == "RUNNING" for r in recs) <= 2
        held |= {r["reason"] for r in recs if r["state"] == "PENDING"}
        if all(r["state"] == "COMPLETED" for r in recs):
            break
        assert time.monotonic() < deadline, recs
        time.sleep(0.05)
    assert "QOSMaxJobsPerUserLimit" in held
    # and from the record: at no moment did three of them run at once
    spans = sorted((r["start_time"], r["end_time"]) for r in recs)
    for i, (start, _) in enumerate(spans):
        assert sum(1 for s, e in spans[:i] if e > start) < 2


def test_scontrol_show_partition_shows_access_lists_and_tier():
    from fleetslurm.slurm.scontrol_fmt import show_partition

    part = dict(name="gpu", default=False, state="up", max_time=60, default_time=None,
                priority=3, priority_tier=7, nodes=["n1"], allow_groups=["lab", "staff"],
                allow_accounts=None, allow_qos=["high"])
    text = show_partition(part)  # type: ignore[arg-type]
    assert "   AllowGroups=lab,staff AllowAccounts=ALL AllowQos=high\n" in text
    assert "   PriorityJobFactor=3 PriorityTier=7 RootOnly=NO" in text


def test_tres_strings():
    from fleetslurm.errors import InvalidValue
    from fleetslurm.slurm.tres import format_tres, parse_tres

    assert parse_tres("cpu=4,mem=8G,gres/gpu=1") == {"cpu": 4, "mem": 8192, "gres/gpu": 1}
    assert format_tres({"gres/gpu": 2, "mem": 1536, "cpu": 1}) == "cpu=1,mem=1.50G,gres/gpu=2"
    assert format_tres(parse_tres("mem=-1,cpu=3")) == "cpu=3"
    for bad in ("cpu", "node=2", "cpu=x", "mem=1.5G", "cpu=-2"):
        with pytest.raises(InvalidValue, match="cpu=N, mem=SIZE|whole number|negative"):
            parse_tres(bad)


@pytest.mark.parametrize("extra,message", [
    ({"qos": {"High": {}}}, "qos: invalid QOS name 'High'; use lower-case letters"),
    ({"qos": {"high": {"MaxTRESPerUser": "cpus=x"}}},
     'qos.high.MaxTRESPerUser: must be a TRES limit ("cpu=4,mem=8G,gres/gpu=1"), got "cpus=x"'),
    ({"qos": {"high": {"MaxWall": "soon"}}}, "qos.high.MaxWall: must be a SLURM time"),
    ({"qos": {"high": {"MaxJobs": 2}}}, "qos.high.MaxJobs: unknown field; allowed fields are: "
                                        "Description, Priority, MaxJobsPerUser"),
    ({"accounts": {"alice": {"GrpTRES": "cpu=-3"}}}, "accounts.alice.GrpTRES: must be a TRES"),
    ({"partitions": {"debug": {"allow_qos": ["nosuch"]}}},
     "partitions.debug.allow_qos: unknown QOS 'nosuch'; define it under \"qos\""),
    ({"accounting_storage_enforce": "everything"}, "accounting_storage_enforce: must be \"none\""),
])
def test_bad_qos_config_gets_one_line(tmp_path, extra, message):
    import json

    from fleetslurm.config import load_config
    from fleetslurm.errors import ConfigError

    cfg = {"machines": {"m": {"transport": "local", "cpus": 1}}, **extra}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
