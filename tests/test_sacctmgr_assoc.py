"""sacctmgr add|modify|delete account|user: SLURM 22.05's syntax, messages and
output, kept by the controller (a restart keeps them), shown by ``sacctmgr
show assoc|user|account`` and ``sshare``, and in force for submission,
limits and fair share.

The shapes were taken from SLURM 22.05's source (src/sacctmgr/
account_functions.c, user_functions.c, common.c: sacctmgr_print_assoc_limits;
src/plugins/accounting_storage/mysql/as_mysql_assoc.c for the names of
changed associations). The real SLURM on this machine (the oracle) has no
slurmdbd, so its sacctmgr cannot run at all: nothing here is compared with
it live.
"""

from __future__ import annotations

import time

import pytest

from fleetslurm.cli.sacctmgr_assoc import parse_assoc_change
from fleetslurm.config import FleetConfig, MachineConfig, PriorityConfig
from fleetslurm.ctld.assocs import Associations
from fleetslurm.ctld.fairshare import FairShare
from fleetslurm.errors import UsageError
from fleetslurm.scheduler import (AssocLimits, JobRequest, JobSubmitted, LimitsSet, NodeSpec,
                                  NodeUp, PartitionSet, PartitionSpec, SchedulerState, StartJob,
                                  Tres)
from fleetslurm.scheduler.multifactor import fair_tree
from fleetslurm.store import Store


# ------------------------------------------------------------------ the syntax

def test_change_syntax() -> None:
    assert parse_assoc_change("modify", "account", ["Physics", "set", "GrpTRES=cpu=8",
                                                    "maxjobs=4", "MaxWall=1:00:00"]) == (
        "modify", ["physics"], [], {"GrpTRES": "cpu=8", "MaxJobs": "4", "MaxWall": "1:00:00"})
    assert parse_assoc_change("modify", "user", ["where", "name=alice", "account=physics",
                                                 "set", "fairshare=5", "QOS+=high",
                                                 "DefaultQOS=High", "MaxTRES=cpu=2"]) == (
        "modify", ["alice"], ["physics"],
        {"Fairshare": "5", "QOS+": "high", "DefaultQOS": "high", "MaxTRES": "cpu=2"})
    assert parse_assoc_change("add", "user", ["alice,bob", "Account=physics",
                                              "DefaultAccount=physics", "MaxJobs=3"]) == (
        "add", ["alice", "bob"], ["physics"], {"DefaultAccount": "physics", "MaxJobs": "3"})
    assert parse_assoc_change("add", "account", ["theory", "Parent=physics",
                                                 'Description="the theorists"']) == (
        "add", ["theory"], [], {"Parent": "physics", "Description": "the theorists"})
    assert parse_assoc_change("delete", "user", ["alice", "where", "account=physics"]) == (
        "delete", ["alice"], ["physics"], {})
    for words, message in (
            (["physics", "set", "Bogus=1"], " Unknown option: Bogus=1\n Use keyword 'where'"),
            (["physics"], " You didn't give me anything to set"),
            (["set", "MaxJobs=1"], " Need name of account to modify."),
            (["physics", "Bogus=1", "set", "MaxJobs=1"], " Unknown condition: Bogus=1\n Use "
                                                         "keyword 'set' to modify value"),
            (["physics", "set", "MaxJobs+=1"], " Unknown option: MaxJobs+=1")):
        with pytest.raises(UsageError) as info:
            parse_assoc_change("modify", "account", words)
        assert str(info.value).startswith(message), info.value
    with pytest.raises(UsageError, match="Need name of account to add user to"):
        parse_assoc_change("add", "user", ["alice"])
    with pytest.raises(UsageError, match="No conditions given to remove"):
        parse_assoc_change("delete", "user", [])


# ------------------------------------------------------------------ the CLI, a real controller

def test_add_modify_show_delete_accounts_and_users(fleet) -> None:
    run = fleet.run
    out = run("sacctmgr", "-i", "add", "account", "physics", "Description=physics dept",
              "Fairshare=10", check=True).stdout
    assert out == (" Adding Account(s)\n  physics\n Settings\n"
                   "  Description     = physics dept\n"
                   "  Organization    = Parent/Account Name\n"
                   " Associations\n  A = physics    C = testfleet \n"
                   " Settings\n  Fairshare     = 10\n  Parent        = root\n")
    assert run("sacctmgr", "-i", "add", "account", "physics").stdout == " Nothing new added.\n"
    out = run("sacctmgr", "-i", "add", "user", "root", "Account=physics", check=True).stdout
    assert out == " Associations =\n  U = root      A = physics    C = testfleet \n"
    out = run("sacctmgr", "-i", "modify", "account", "physics", "set", "GrpTRES=cpu=8",
              "MaxJobs=4", check=True).stdout
    assert out == " Modified account associations...\n  C = testfleet  A = physics of root\n"
    out = run("sacctmgr", "-i", "modify", "user", "root", "where", "account=physics", "set",
              "Fairshare=5", check=True).stdout
    assert out == (" Modified user associations...\n"
                   "  C = testfleet  A = physics              U = root     \n")
    out = run("sacctmgr", "-i", "modify", "user", "root", "set", "DefaultAccount=physics",
              check=True).stdout
    assert out == " Modified users...\n  root\n"
    out = run("sacctmgr", "-i", "modify", "account", "physics", "set", "Organization=sci",
              check=True).stdout
    assert out == " Modified accounts...\n  physics\n"
    # without -i sacctmgr asks, and anything but y discards
    proc = run("sacctmgr", "modify", "account", "physics", "set", "MaxJobs=1", input="n\n")
    assert proc.returncode == 0 and proc.stdout.endswith("(N/y): \n Changes Discarded\n")
    show = run("sacctmgr", "show", "assoc", "format=account,user,share,grptres,maxjobs", "-P",
               check=True).stdout
    # the user's association in physics inherits the account's MaxJobs (sacctmgr
    # shows parents' limits, as without WOPLimits)
    assert show == ("Account|User|Share|GrpTRES|MaxJobs\n"
                    "root||1||\nroot|root|1||\n"
                    "physics||10|cpu=8|4\nphysics|root|5||4\n")
    assert run("sacctmgr", "show", "user", "root", "format=user,defaultaccount", "-P",
               check=True).stdout == "User|Def Acct\nroot|physics\n"
    assert run("sacctmgr", "show", "account", "physics", "format=account,descr,org", "-P",
               check=True).stdout == "Account|Descr|Org\nphysics|physics dept|sci\n"
    # sshare shows the shares (priority/basic: no usage)
    out = run("sshare", "-a", "-P", "-o", "account,user,rawshares", check=True).stdout
    assert out == ("Account|User|RawShares\nroot||\n root|root|1\n physics||10\n"
                   "  physics|root|5\n")
    # a job names no account: it is charged to the default one
    job = fleet.sbatch("--wrap", "true")
    fleet.wait(job)
    assert run("sacct", "-X", "-n", "-P", "-j", str(job), "-o", "account",
               check=True).stdout == "physics\n"
    # a restart keeps every change
    fleet.stop()
    assert run("sacctmgr", "show", "assoc", "format=account,user,share,grptres,maxjobs", "-P",
               check=True).stdout == show
    # delete: the user's association, then the account
    out = run("sacctmgr", "-i", "delete", "user", "root", "where", "account=physics",
              check=True).stdout
    assert out == (" Deleting user associations...\n"
                   "  C = testfleet  A = physics    U = root     \n")
    assert run("sacctmgr", "-i", "delete", "account", "physics",
               check=True).stdout == " Deleting accounts...\n  physics\n"
    assert run("sacctmgr", "show", "assoc", "format=account,user", "-P",
               check=True).stdout == "Account|User\nroot|\nroot|root\n"
    assert run("sacctmgr", "-i", "delete", "account", "physics").stdout == " Nothing deleted\n"


def test_without_i_sacctmgr_asks_as_slurms_commit_check(fleet) -> None:
    """One character at a time, a newline after each: anything but y, n or a
    newline asks again (so "x<Enter>" is x, then a newline: no); y commits;
    the end of the input discards."""
    proc = fleet.run("sacctmgr", "add", "account", "tmp2", input="x\n")
    assert proc.stdout.endswith("(N/y): \nY or N please\n(N/y): \n Changes Discarded\n")
    proc = fleet.run("sacctmgr", "add", "account", "tmp", input="xy")
    assert proc.returncode == 0, proc
    assert proc.stdout.endswith("Would you like to commit changes? (You have 30 seconds to "
                                "decide)\n(N/y): \nY or N please\n(N/y): \n"), proc.stdout
    assert "tmp" in fleet.run("sacctmgr", "show", "account", "-P", check=True).stdout
    proc = fleet.run("sacctmgr", "delete", "account", "tmp", input="")
    assert proc.returncode == 0 and proc.stdout.endswith("(N/y):  Changes Discarded\n"), proc
    assert "tmp" in fleet.run("sacctmgr", "show", "account", "-P", check=True).stdout


@pytest.mark.parametrize("args,stderr", [
    (["delete", "account", "root"], " You are not allowed to remove the root account.\n"
                                    " Use remove cluster instead.\n"),
    (["add", "user", "bob", "Account=nosuch"], " This account 'nosuch' doesn't exist.\n"
                                               "        Contact your admin to add this "
                                               "account.\n"),
    (["add", "account", "x", "Parent=nosuch"], " Parent account 'nosuch' doesn't exist on "
                                               "cluster testfleet\n"),
    (["modify", "user", "root", "set", "QOS=nosuch"], " You gave a bad qos 'nosuch'."),
    (["modify", "user", "root", "set", "MaxJobs=x"], " Invalid value for MaxJobs (x)"),
    (["modify", "user", "root", "set", "MaxWall=soon"], " Bad MaxWall time format: soon"),
])
def test_bad_changes_get_a_message_and_change_nothing(fleet, args, stderr) -> None:
    before = fleet.run("sacctmgr", "show", "assoc", "-P", check=True).stdout
    proc = fleet.run("sacctmgr", "-i", *args)
    assert proc.returncode == 1 and proc.stderr.startswith(stderr), proc
    assert "Traceback" not in proc.stderr
    assert fleet.run("sacctmgr", "show", "assoc", "-P", check=True).stdout == before


def test_changes_are_in_force_at_submission_and_in_scheduling(fleet) -> None:
    run = fleet.run
    refused = run("sbatch", "-A", "physics", "--wrap", "true")
    assert refused.returncode == 1 and refused.stderr == (
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified\n")
    run("sacctmgr", "-i", "add", "account", "physics", check=True)
    run("sacctmgr", "-i", "add", "user", "root", "Account=physics", check=True)
    # MaxJobs on the user's association: the second job waits with SLURM's reason
    run("sacctmgr", "-i", "modify", "user", "root", "where", "account=physics", "set",
        "MaxJobs=1", check=True)
    first = fleet.sbatch("-A", "physics", "--wrap", "sleep 30")
    second = fleet.sbatch("-A", "physics", "--wrap", "true")
    fleet.wait(first, states={"RUNNING"})
    assert _reason(fleet, second, "AssocMaxJobsLimit") == "AssocMaxJobsLimit"
    # the user's own account is not limited
    own = fleet.sbatch("--wrap", "true")
    assert fleet.wait(own)["state"] == "COMPLETED"
    # lifting the limit lets it start
    run("sacctmgr", "-i", "modify", "user", "root", "where", "account=physics", "set",
        "MaxJobs=-1", check=True)
    assert fleet.wait(second)["state"] == "COMPLETED"
    run("scancel", str(first), check=True)
    # the association's QOS list is enforced at submission, DefaultQOS applies
    run("sacctmgr", "-i", "add", "qos", "high", check=True)
    run("sacctmgr", "-i", "modify", "account", "physics", "set", "QOS=high",
        "DefaultQOS=high", check=True)
    job = fleet.sbatch("-A", "physics", "-H", "--wrap", "true")
    assert run("squeue", "-h", "-j", str(job), "-o", "%q", check=True).stdout.strip() == "high"
    refused = run("sbatch", "-A", "physics", "--qos=normal", "--wrap", "true")
    assert refused.stderr == ("sbatch: error: Batch job submission failed: Invalid qos "
                              "specification\n")
    run("scancel", str(job), check=True)
    # an association with jobs cannot go
    busy = fleet.sbatch("-A", "physics", "-H", "--wrap", "true")
    proc = run("sacctmgr", "-i", "delete", "account", "physics")
    assert proc.returncode == 1
    assert proc.stderr.startswith(" Error with request: Job(s) active, cancel job(s) before "
                                  f"remove\n  JobID = {busy:<10} C = testfleet ")
    run("scancel", str(busy), check=True)


def _reason(fleet, job: int, want: str, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
    """The job's pending reason once it is ``want`` (or the last one seen at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fleet.run("squeue", "-h", "-j", str(job), "-o", "%r").stdout.strip()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


# ------------------------------------------------------------------ the pure parts

def _sched(assocs: tuple[AssocLimits, ...]) -> SchedulerState:
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("p", default=True)),
               NodeUp(NodeSpec("n", cpus=8, mem_mb=8000)), LimitsSet((), assocs)], 0.0)
    return st


def _job(jid: int, user: str, account: str, cpus: int = 1) -> JobSubmitted:
    return JobSubmitted(JobRequest(job_id=jid, user=user, partition="p", submit_time=float(jid),
                                   cpus=cpus, account=account, time_limit=10))


def _started(acts) -> list[int]:  # type: ignore[no-untyped-def]
    return [a.job_id for a in acts if isinstance(a, StartJob)]


def test_a_parents_group_limit_counts_its_sub_accounts_jobs() -> None:
    st = _sched((AssocLimits("physics", parent="root", grp_tres=Tres(cpu=3)),
                 AssocLimits("theory", parent="physics")))
    acts = st.handle([_job(1, "a", "theory", 2), _job(2, "b", "physics", 2),
                      _job(3, "c", "theory", 1)], 1.0)
    assert _started(acts) == [1, 3]
    assert st.reason(2) == "AssocGrpCpuLimit"
    assert "account physics GrpTRES=cpu=3 (3 CPUs held by its running jobs)" in st.explain(2)
    st.validate()


def test_a_users_association_overrides_the_accounts_per_user_limits() -> None:
    st = _sched((AssocLimits("lab", max_jobs=1, max_tres=Tres(cpu=4)),
                 AssocLimits("lab", user="boss", max_jobs=3, max_tres=Tres(cpu=4))))
    acts = st.handle([_job(1, "ann", "lab"), _job(2, "ann", "lab"), _job(3, "boss", "lab"),
                      _job(4, "boss", "lab"), _job(5, "boss", "lab", 6)], 1.0)
    assert _started(acts) == [1, 3, 4]
    assert st.reason(2) == "AssocMaxJobsLimit"
    assert st.reason(5) == "AssocMaxCpuPerJobLimit"
    assert "user boss in account lab MaxTRES=cpu=4 per job" in st.explain(5)


def test_the_fair_share_tree_has_the_accounts_shares(tmp_path) -> None:
    cfg = FleetConfig(machines={"m": MachineConfig(cpus=2, memory_gb=1)},
                      priority=PriorityConfig(PriorityWeightFairshare=1000))
    store = Store(tmp_path / "state.db")
    book = Associations(cfg, store)
    with store.transaction():
        store.set_assoc("physics", "", {"Parent": "root", "Fairshare": 3})
        store.set_assoc("physics", "ann", {"Fairshare": 1})
        store.set_assoc("physics", "bob", {"Fairshare": 1})
    book.reload(store)
    fs = FairShare(cfg)
    fs.book = book
    rows = fair_tree(fs.tree({"ann", "bob", "cy"}), {("physics", "ann"): 100.0})
    # root's children: the root user, physics (3 shares) and ann, bob, cy's own accounts
    assert rows[("physics", "")].raw_shares == 3
    assert rows[("physics", "")].norm_shares == pytest.approx(3 / 7)
    assert rows[("cy", "")].norm_shares == pytest.approx(1 / 7)
    # within physics: ann used it all, bob nothing -> bob ranks higher
    assert rows[("physics", "bob")].fairshare > rows[("physics", "ann")].fairshare
    store.close()


# ------------------------------------------------------------------ property: a tree's limits

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

from fleetslurm.scheduler import JobEnded  # noqa: E402

#: root <- a0 <- a1 <- a2, and b0 beside a0
_PARENT = {"a0": "root", "a1": "a0", "a2": "a1", "b0": "root"}
_USERS = ("u0", "u1")
_cap = hs.none() | hs.integers(1, 8)
_t = hs.builds(Tres, cpu=_cap)
_account_rec = hs.builds(lambda name, grp, jobs, mj, mt: AssocLimits(
    name, parent=_PARENT[name], grp_tres=grp, grp_jobs=jobs, max_jobs=mj, max_tres=mt),
    hs.sampled_from(sorted(_PARENT)), _t, hs.none() | hs.integers(0, 5),
    hs.none() | hs.integers(0, 3), _t)
_user_rec = hs.builds(lambda acct, user, grp, mj, mt: AssocLimits(
    acct, user=user, grp_tres=grp, max_jobs=mj, max_tres=mt),
    hs.sampled_from(sorted(_PARENT)), hs.sampled_from(_USERS), _t,
    hs.none() | hs.integers(0, 3), _t)
_jreq = hs.tuples(hs.sampled_from(_USERS), hs.sampled_from(sorted(_PARENT)), hs.integers(1, 4))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accts=hs.lists(_account_rec, max_size=4, unique_by=lambda a: a.account),
       users=hs.lists(_user_rec, max_size=3, unique_by=lambda a: (a.account, a.user)),
       steps=hs.lists(hs.tuples(hs.lists(_jreq, max_size=5), hs.lists(hs.integers(0, 20),
                                                                       max_size=3)),
                      min_size=1, max_size=10))
def test_no_association_limit_of_a_tree_is_ever_exceeded(accts, users, steps) -> None:
    st = SchedulerState()
    # every account of the tree has a record (its place in it), as the controller sends
    plain = [AssocLimits(n, parent=p) for n, p in _PARENT.items()
             if n not in {a.account for a in accts}]
    st.handle([PartitionSet(PartitionSpec("p", default=True)),
               NodeUp(NodeSpec("n", cpus=16, mem_mb=8000)),
               LimitsSet((), tuple(accts) + tuple(plain) + tuple(users))], 0.0)
    acct = {a.account: a for a in accts}
    own = {(a.account, a.user): a for a in users}

    def above(name: str) -> list[str]:
        out = [name]
        while _PARENT.get(out[-1], "root") != "root":
            out.append(_PARENT[out[-1]])
        return out

    now, jid, running = 1.0, 0, []
    for reqs, ends in steps:
        now += 1
        events = []
        for user, account, cpus in reqs:
            jid += 1
            events.append(JobSubmitted(JobRequest(job_id=jid, user=user, partition="p",
                                                  submit_time=now, cpus=cpus, account=account)))
        for k in ends:
            if running:
                events.append(JobEnded(running.pop(k % len(running)), "COMPLETED", now))
        running += _started(st.handle(events, now))
        st.validate()
        jobs = [st._jobs[j].req for j in running]
        for name, a in acct.items():
            below = [r for r in jobs if name in above(r.account)]
            assert a.grp_jobs is None or len(below) <= a.grp_jobs
            assert a.grp_tres.cpu is None or sum(r.cpus for r in below) <= a.grp_tres.cpu
        for r in jobs:
            eff = own.get((r.account, r.user)) or acct.get(r.account)
            if eff is not None:
                assert eff.max_tres.cpu is None or r.cpus <= eff.max_tres.cpu
                mine = [x for x in jobs if (x.account, x.user) == (r.account, r.user)]
                assert eff.max_jobs is None or len(mine) <= eff.max_jobs
            u = own.get((r.account, r.user))
            if u is not None and u.grp_tres.cpu is not None:
                assert sum(x.cpus for x in jobs
                           if (x.account, x.user) == (r.account, r.user)) <= u.grp_tres.cpu
