"""sacctmgr and sshare: the fleet's one-account-per-user tree in SLURM's shapes.

Expected texts are sacctmgr/sshare 22.05 reading a slurmdbd (MariaDB) that
holds the same tree (cluster ``fleetacct``; accounts root and alice; users
root and alice, added with ``sacctmgr add account alice``/``add user alice
account=alice``), with ``PriorityType=priority/basic``.
"""

from __future__ import annotations

import os
import pwd

import pytest

from fleetslurm.errors import UsageError
from fleetslurm.slurm.assoc import render_table, sshare_fields, sshare_table, tree
from fleetslurm.slurm.sacctmgr_fmt import Fleet, entity_of, list_entity, parse_specs

FLEET = Fleet(cluster="fleetacct", assocs=tuple(tree(["alice", "root"])), node_count=1, cpus=2,
              mem_mb=20000)

SACCTMGR = [
    ("show assoc",
     '   Cluster    Account       User  Partition     Share   Priority GrpJobs       GrpTRES GrpSubmit     GrpWall   GrpTRESMins MaxJobs       MaxTRES MaxTRESPerNode MaxSubmit     MaxWall   MaxTRESMins                  QOS   Def QOS GrpTRESRunMin \n---------- ---------- ---------- ---------- --------- ---------- ------- ------------- --------- ----------- ------------- ------- ------------- -------------- --------- ----------- ------------- -------------------- --------- ------------- \n fleetacct       root                               1                                                                                                                                                             normal                         \n fleetacct       root       root                    1                                                                                                                                                             normal                         \n fleetacct      alice                               1                                                                                                                                                             normal                         \n fleetacct      alice      alice                    1                                                                                                                                                             normal                         \n'),  # noqa: E501
    ("show user -s -P",
     'User|Def Acct|Admin|Cluster|Account|Partition|Share|Priority|MaxJobs|MaxNodes|MaxCPUs|MaxSubmit|MaxWall|MaxCPUMins|QOS|Def QOS\nalice|alice|None|fleetacct|alice||1||||||||normal|\nroot|root|Administrator|fleetacct|root||1||||||||normal|\n'),  # noqa: E501
    ("-n -s list user alice format=account%30", '                         alice \n'),
    # (the real tree's alice was added with Description=x Organization=y; without
    # them SLURM uses the account's name, as the fleet does)
    ("show account -s -P",
     'Account|Descr|Org|Cluster|ParentName|User|Share|Priority|GrpJobs|GrpNodes|GrpCPUs|GrpMem|GrpSubmit|GrpWall|GrpCPUMins|MaxJobs|MaxNodes|MaxCPUs|MaxSubmit|MaxWall|MaxCPUMins|QOS|Def QOS\nalice|alice|alice|fleetacct|root||1|||||||||||||||normal|\nalice|alice|alice|fleetacct||alice|1|||||||||||||||normal|\nroot|default root account|root|fleetacct|||1|||||||||||||||normal|\nroot|default root account|root|fleetacct||root|1|||||||||||||||normal|\n'),  # noqa: E501
    ("show assoc tree format=cluster,account,user",
     '   Cluster Account                    User \n---------- -------------------- ---------- \n fleetacct root                            \n fleetacct  root                      root \n fleetacct  alice                          \n fleetacct   alice                   alice \n'),  # noqa: E501
    ("show assoc where account=alice format=account,user,parentname",
     '   Account       User ParentName \n---------- ---------- ---------- \n     alice                  root \n     alice      alice            \n'),  # noqa: E501
    ("show user",
     '      User   Def Acct     Admin \n---------- ---------- --------- \n     alice      alice      None \n      root       root Administ+ \n'),  # noqa: E501
    ("list assoc user=alice format=account,user,partition,qos -p",
     'Account|User|Partition|QOS|\nalice|alice||normal|\n'),
    ("show user root format=user%-20,account%30",
     'User                                        Account \n-------------------- ------------------------------ \nroot                                                \n'),  # noqa: E501
    ("show qos -P",
     'Name|Priority|GraceTime|Preempt|PreemptExemptTime|PreemptMode|Flags|UsageThres|UsageFactor|GrpTRES|GrpTRESMins|GrpTRESRunMins|GrpJobs|GrpSubmit|GrpWall|MaxTRES|MaxTRESPerNode|MaxTRESMins|MaxWall|MaxTRESPU|MaxJobsPU|MaxSubmitPU|MaxTRESPA|MaxJobsPA|MaxSubmitPA|MinTRES\nnormal|0|00:00:00|||cluster|||1.000000|||||||||||||||||\n'),  # noqa: E501
    ("show tres",
     '    Type            Name     ID \n-------- --------------- ------ \n     cpu                      1 \n     mem                      2 \n  energy                      3 \n    node                      4 \n billing                      5 \n      fs            disk      6 \n    vmem                      7 \n   pages                      8 \n'),  # noqa: E501
    ("show cluster format=cluster,nodecount,tres%70 -P",
     'Cluster|NodeCount|TRES\nfleetacct|1|billing=2,cpu=2,energy=0,fs/disk=0,mem=20000M,node=1,pages=0,vmem=0\n'),  # noqa: E501
    ("show wckey", '     WCKey    Cluster       User \n---------- ---------- ---------- \n'),
]


def sacctmgr(line: str) -> str:
    words = line.split()
    mode, header, with_assoc = "fixed", True, False
    rest = []
    for w in words:
        if w == "-P":
            mode = "parsable2"
        elif w == "-p":
            mode = "parsable"
        elif w == "-n":
            header = False
        elif w == "-s":
            with_assoc = True
        else:
            rest.append(w)
    entity = entity_of(rest[1])
    assert entity is not None
    cols, rows = list_entity(entity, parse_specs(entity, rest[2:]), FLEET, with_assoc)
    return render_table(cols, rows, mode=mode, header=header)  # type: ignore[arg-type]


@pytest.mark.parametrize("line,expected", SACCTMGR, ids=[c[0] for c in SACCTMGR])
def test_sacctmgr_shapes_match_slurm(line: str, expected: str) -> None:
    assert sacctmgr(line) == expected


@pytest.mark.parametrize("line,message", [
    ("show user format=bogus", "Unknown field 'bogus'"),
    ("show user format=Def", "Unknown field 'def'"),       # DefaultAccount or DefaultWCKey?
    ("show assoc format=par", "Unknown field 'par'"),      # ParentID, ParentName, Partition
    ("show user wrongkey=3", " Unknown condition: wrongkey=3\n Use keyword 'set' to modify value"),
])
def test_sacctmgr_refusals_match_slurm(line: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        sacctmgr(line)
    assert str(info.value) == message


def test_entity_names_need_a_few_letters() -> None:
    assert [entity_of(w) for w in ("users", "u", "assoc", "associations", "acc", "qos",
                                   "tres", "txn", "runaway", "ac", "foo")] == [
        "user", "user", "association", "association", "account", "qos", "tres", "transaction",
        "runawayjobs", None, None]


SSHARE = [
    ({}, 'Account                    User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare \n-------------------- ---------- ---------- ----------- ----------- ------------- ---------- \nroot                                                             0      0.000000            \n root                      root          1                       0      0.000000   0.000000 \n alice                                   1                       0      0.000000            \n'),  # noqa: E501
    ({"all_users": True}, 'Account                    User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare \n-------------------- ---------- ---------- ----------- ----------- ------------- ---------- \nroot                                                             0      0.000000            \n root                      root          1                       0      0.000000   0.000000 \n alice                                   1                       0      0.000000            \n  alice                   alice          1                       0      0.000000   0.000000 \n'),  # noqa: E501
    ({"all_users": True, "users_only": True}, 'Account                    User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare \n-------------------- ---------- ---------- ----------- ----------- ------------- ---------- \nroot                       root          1                       0      0.000000   0.000000 \nalice                     alice          1                       0      0.000000   0.000000 \n'),  # noqa: E501
    ({"accounts": ["alice"], "all_users": True}, 'Account                    User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare \n-------------------- ---------- ---------- ----------- ----------- ------------- ---------- \nalice                                    1                       0      0.000000            \n alice                    alice          1                       0      0.000000   0.000000 \n'),  # noqa: E501
    ({"all_users": True, "mode": "parsable2", "long": True}, 'Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS|GrpTRESMins|TRESRunMins\nroot||||0||0.000000||0.000000||cpu=0,mem=0,energy=0,node=0,billing=0,fs/disk=0,vmem=0,pages=0\n root|root|1||0||0.000000|0.000000|0.000000||cpu=0,mem=0,energy=0,node=0,billing=0,fs/disk=0,vmem=0,pages=0\n alice||1||0||0.000000||0.000000||cpu=0,mem=0,energy=0,node=0,billing=0,fs/disk=0,vmem=0,pages=0\n  alice|alice|1||0||0.000000|0.000000|0.000000||cpu=0,mem=0,energy=0,node=0,billing=0,fs/disk=0,vmem=0,pages=0\n'),  # noqa: E501
    ({"all_users": True, "partition": True, "header": False}, 'root                                                                          0      0.000000            \n root                      root                       1                       0      0.000000   0.000000 \n alice                                                1                       0      0.000000            \n  alice                   alice                       1                       0      0.000000   0.000000 \n'),  # noqa: E501
    ({"format": "acc,us%4,raw"}, 'Account              User  RawShares \n-------------------- ---- ---------- \nroot                                 \n root                root          1 \n alice                             1 \n'),  # noqa: E501
]


@pytest.mark.parametrize("opts,expected", SSHARE, ids=[str(o) for o, _ in SSHARE])
def test_sshare_shapes_match_slurm(opts: dict, expected: str) -> None:
    """As sshare shows it to root (caller), reading the tree above."""
    cols = sshare_fields(opts.get("format"), opts.get("long", False), opts.get("partition", False))
    rows = sshare_table(list(FLEET.assocs), FLEET.cluster, caller="root",
                        all_users=opts.get("all_users", False), accounts=opts.get("accounts"),
                        users_only=opts.get("users_only", False))
    assert render_table(cols, rows, mode=opts.get("mode", "fixed"),
                        header=opts.get("header", True)) == expected


def test_tree_is_a_valid_nested_set() -> None:
    assocs = tree(["bob", "alice", "root", "alice"])
    assert [(a.account, a.user) for a in assocs] == [
        ("root", ""), ("root", "root"), ("alice", ""), ("alice", "alice"), ("bob", ""),
        ("bob", "bob")]
    by_id = {a.id: a for a in assocs}
    for a in assocs:
        assert a.lft < a.rgt
        if a.parent_id:
            parent = by_id[a.parent_id]
            assert parent.lft < a.lft and a.rgt < parent.rgt and a.depth == parent.depth + 1


# -- through the CLI, against a real controller ----------------------------------
def me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_what_client_libraries_ask(fleet) -> None:
    user = me()
    # snakemake's SLURM executor: which accounts may I use?
    out = fleet.run("sacctmgr", "-n", "-s", "list", "user", user, "format=account%256",
                    check=True).stdout
    assert out == f"{user:>256} \n"
    out = fleet.run("sshare", "-U", "--format", "Account%256", "--noheader", check=True).stdout
    assert out == f"{user:>256} \n"  # an explicit width right-aligns, as in SLURM
    out = fleet.run("sacctmgr", "show", "user", user, "-P", "-n", check=True).stdout
    admin = "Administrator" if user == "root" else "None"
    assert out == f"{user}|{user}|{admin}\n"
    out = fleet.run("sacctmgr", "show", "cluster", "format=cluster,nodecount", "-P",
                    check=True).stdout
    assert out == "Cluster|NodeCount\ntestfleet|1\n"
    out = fleet.run("sacctmgr", "show", "runaway", check=True).stdout
    assert out == "Runaway Jobs: No runaway jobs found on cluster testfleet\n"
    out = fleet.run("sshare", "-M", "testfleet", "-U", "-n", "-P", check=True).stdout
    assert out == f"CLUSTER: testfleet\n{user}|{user}|1||0|0.000000|0.000000\n"


@pytest.mark.parametrize("args,code,stderr", [
    # (root may change accounts and users: a user's refusal is in test_sacctmgr_assoc.py)
    (["sacctmgr", "-i", "add", "account", "lab", "Bogus=1"], 1,
     " Unknown option: Bogus=1\n Use keyword 'where' to modify condition\n"),
    (["sacctmgr", "-i", "delete", "user"], 1,
     " No conditions given to remove, not executing.\n"),
    (["sacctmgr", "-i", "dump", "testfleet"], 1,
     "sacctmgr: error: Your user doesn't have privilege"),
    (["sacctmgr", "show", "foo"], 1, "No valid entity in list command\n"),
    (["sacctmgr", "bogus"], 1, "invalid keyword: bogus\n"),
    (["sacctmgr", "show", "user", "format=bogus"], 1, "Unknown field 'bogus'\n"),
    (["sacctmgr", "show", "event"], 1, "sacctmgr: error: fleetslurm keeps no event records"),
    (["sacctmgr", "--bogus"], 1, "sacctmgr: unrecognized option '--bogus'\n"
     'Try "sacctmgr --help" for more information\n'),
    (["sshare", "-x"], 1, "sshare: invalid option -- 'x'\nTry \"sshare --help\" for more"),
    (["sshare", "-o", "foo"], 1, 'sshare: error: Invalid field requested: "foo"\n'),
    (["sshare", "-M", "other"], 1, "sshare: error: No cluster 'other' known by database.\n"
     "sshare: error: 'other' can't be reached now"),
])
def test_bad_input_gets_slurms_message(fleet, args: list, code: int, stderr: str) -> None:
    proc = fleet.run(*args)
    assert proc.returncode == code, proc
    assert proc.stderr.startswith(stderr), proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
