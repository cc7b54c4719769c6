"""``sacctmgr list|show ENTITY [SPECS]``: the fleet's accounting entities in
SLURM 22.05's shapes.

Pure: no I/O. The fleet's associations come from :mod:`fleetslurm.slurm.assoc`
(one cluster; the controller's tree, by default one account per user). Column headers, default widths and
default column lists are sacctmgr 22.05's, as it prints them reading a
slurmdbd that holds the same tree; so are the matching rules kept here:

* an entity name needs a few letters (``acc``, ``ass``, ``u``, ``q``...);
* a ``format=`` field is matched case-insensitively, by its name or a
  prefix that names one field only (``us`` is User, ``def`` is ambiguous
  among DefaultAccount/DefaultWCKey: ``Unknown field 'def'``);
* ``name%N`` sets a width, negative left-aligns; cells are cut with ``+``;
* ``where`` is a noise word; bare words are names (or flags such as
  ``WithAssoc``); an unknown ``key=value`` is `` Unknown condition: ...``.

Entities a fleet has none of (reservations, resources, WCKeys, federations,
problems, transactions) list as empty tables; RunAwayJobs says there are none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from fleetslurm.errors import UsageError
from fleetslurm.slurm.assoc import TRES_NAMES, Assoc, Column, parse_format

__all__ = ["Fleet", "Query", "ENTITY_ERROR", "entity_of", "parse_specs", "list_entity"]

PROG = "sacctmgr"


def _cols(spec: str) -> dict[str, Column]:
    """``Key:Header:width[:n]`` entries (``_`` in a header is a space)."""
    out = {}
    for item in spec.split():
        parts = item.split(":")
        out[parts[0]] = Column(parts[0].lower(), parts[1].replace("_", " "), int(parts[2]),
                               len(parts) > 3)
    return out


ASSOC = _cols("""
Account:Account:10 Cluster:Cluster:10 DefaultQOS:Def_QOS:9 Share:Share:9:n GrpJobs:GrpJobs:7
GrpJobsAccrue:GrpJobsAccrue:13 GrpSubmit:GrpSubmit:9 GrpTRES:GrpTRES:13
GrpTRESMins:GrpTRESMins:13 GrpTRESRunMins:GrpTRESRunMins:13 GrpWall:GrpWall:11 ID:ID:6:n
LFT:LFT:6:n MaxJobs:MaxJobs:7 MaxJobsAccrue:MaxJobsAccrue:13 MaxSubmit:MaxSubmit:9
MaxTRES:MaxTRES:13 MaxTRESMins:MaxTRESMins:13 MaxTRESPerNode:MaxTRESPerNode:14
MaxWall:MaxWall:11 QOS:QOS:20 QOSRaw:QOS_RAW:10 ParentID:ParentID:8:n ParentName:ParentName:10
Partition:Partition:10 Priority:Priority:10 RGT:RGT:6:n User:User:10 MaxNodes:MaxNodes:8
MaxCPUs:MaxCPUs:8 MaxCPUMins:MaxCPUMins:11 GrpNodes:GrpNodes:8 GrpCPUs:GrpCPUs:8
GrpMem:GrpMem:7 GrpCPUMins:GrpCPUMins:11
""")
ASSOC_ALIASES = {"Fairshare": "Share", "GrpSubmitJobs": "GrpSubmit", "MaxSubmitJobs": "MaxSubmit",
                 "MaxTRESPerJob": "MaxTRES", "MaxTRESMinsPerJob": "MaxTRESMins",
                 "MaxWallDurationPerJob": "MaxWall"}
USER = _cols("User:User:10 AdminLevel:Admin:9 DefaultAccount:Def_Acct:10 "
             "DefaultWCKey:Def_WCKey:10 Coordinators:Coord_Accounts:20")
ACCOUNT = _cols("Account:Account:10 Description:Descr:20 Organization:Org:20 "
                "Coordinators:Coord_Accounts:20")
CLUSTER = _cols("""
Classification:Class:9 Cluster:Cluster:10 ControlHost:ControlHost:15 ControlPort:ControlPort:12:n
Features:Features:20 Federation:Federation:10 FedState:FedState:12 FedStateRaw:FedStateRaw:11:n
Flags:Flags:20 ID:ID:6:n NodeCount:NodeCount:9:n NodeNames:NodeName:15
PluginIDSelect:PluginIDSelect:14:n RPC:RPC:5:n TRES:TRES:20 Share:Share:9:n GrpJobs:GrpJobs:7
GrpTRES:GrpTRES:13 GrpSubmit:GrpSubmit:9 MaxJobs:MaxJobs:7 MaxTRES:MaxTRES:13
MaxSubmit:MaxSubmit:9 MaxWall:MaxWall:11 QOS:QOS:20 DefaultQOS:Def_QOS:9
""")
QOS = _cols("""
Description:Descr:20 GraceTime:GraceTime:10 GrpJobs:GrpJobs:7 GrpJobsAccrue:GrpJobsAccrue:13
GrpSubmit:GrpSubmit:9 GrpTRES:GrpTRES:13 GrpTRESMins:GrpTRESMins:13
GrpTRESRunMins:GrpTRESRunMins:13 GrpWall:GrpWall:11 LimitFactor:LimitFactor:11
MaxJobsAccruePA:MaxJobsAccruePA:15 MaxJobsAccruePU:MaxJobsAccruePU:15 MaxJobsPA:MaxJobsPA:9
MaxJobsPU:MaxJobsPU:9 MaxTRESMins:MaxTRESMins:13 MaxTRESPA:MaxTRESPA:13 MaxTRES:MaxTRES:13
MaxTRESPerNode:MaxTRESPerNode:14 MaxTRESPU:MaxTRESPU:13 MaxSubmitPA:MaxSubmitPA:11
MaxSubmitPU:MaxSubmitPU:11 MaxWall:MaxWall:11 MinPrioThreshold:MinPrioThres:12
MinTRES:MinTRES:13 Name:Name:10 Preempt:Preempt:10 PreemptExemptTime:PreemptExemptTime:19
PreemptMode:PreemptMode:11 Priority:Priority:10:n UsageFactor:UsageFactor:11
UsageThres:UsageThres:10 Flags:Flags:20 ID:ID:6:n
""")
QOS_ALIASES = {"MaxJobsPerAccount": "MaxJobsPA", "MaxJobsPerUser": "MaxJobsPU",
               "MaxTRESPerAccount": "MaxTRESPA", "MaxTRESPerUser": "MaxTRESPU",
               "MaxTRESPerJob": "MaxTRES", "MaxTRESMinsPerJob": "MaxTRESMins",
               "MaxSubmitJobsPA": "MaxSubmitPA", "MaxSubmitJobsPU": "MaxSubmitPU",
               "MaxSubmitJobsPerAccount": "MaxSubmitPA", "MaxSubmitJobsPerUser": "MaxSubmitPU",
               "MaxJobsAccruePerAccount": "MaxJobsAccruePA",
               "MaxJobsAccruePerUser": "MaxJobsAccruePU", "MaxWallDurationPerJob": "MaxWall",
               "GrpSubmitJobs": "GrpSubmit"}
TRES = _cols("Type:Type:8 Name:Name:10 ID:ID:6:n")

#: default columns, as sacctmgr 22.05 prints them (``%N``: a width of its own)
DEFAULTS = {
    "user": "User,DefaultAccount,AdminLevel",
    "user+assoc": "User,DefaultAccount,AdminLevel,Cluster,Account,Partition,Share,Priority,"
                  "MaxJobs,MaxNodes,MaxCPUs,MaxSubmit,MaxWall,MaxCPUMins,QOS,DefaultQOS",
    "account": "Account,Description,Organization",
    "account+assoc": "Account,Description,Organization,Cluster,ParentName,User,Share,"
                     "Priority,GrpJobs,GrpNodes,GrpCPUs,GrpMem,GrpSubmit,GrpWall,GrpCPUMins,"
                     "MaxJobs,MaxNodes,MaxCPUs,MaxSubmit,MaxWall,MaxCPUMins,QOS,DefaultQOS",
    "association": "Cluster,Account,User,Partition,Share,Priority,GrpJobs,GrpTRES,GrpSubmit,"
                   "GrpWall,GrpTRESMins,MaxJobs,MaxTRES,MaxTRESPerNode,MaxSubmit,MaxWall,"
                   "MaxTRESMins,QOS,DefaultQOS,GrpTRESRunMins",
    "cluster": "Cluster,ControlHost,ControlPort,RPC,Share,GrpJobs,GrpTRES,GrpSubmit,MaxJobs,"
               "MaxTRES,MaxSubmit,MaxWall,QOS,DefaultQOS",
    "qos": "Name,Priority,GraceTime,Preempt,PreemptExemptTime,PreemptMode,Flags%40,UsageThres,"
           "UsageFactor,GrpTRES,GrpTRESMins,GrpTRESRunMins,GrpJobs,GrpSubmit,GrpWall,MaxTRES,"
           "MaxTRESPerNode,MaxTRESMins,MaxWall,MaxTRESPU,MaxJobsPU,MaxSubmitPU,MaxTRESPA,"
           "MaxJobsPA,MaxSubmitPA,MinTRES",
    "tres": "Type,Name%15,ID",
}

#: entities a fleet has none of: their (empty) tables
EMPTY = {
    "wckey": [Column("wckey", "WCKey", 10), Column("cluster", "Cluster", 10),
              Column("user", "User", 10)],
    "reservation": [Column("cluster", "Cluster", 10), Column("name", "Name", 15),
                    Column("tres", "TRES", 30), Column("timestart", "TimeStart", 19),
                    Column("timeend", "TimeEnd", 19), Column("unusedwall", "UnusedWall", 10)],
    "resource": [Column("name", "Name", 10), Column("server", "Server", 10),
                 Column("type", "Type", 8), Column("count", "Count", 6),
                 Column("allocated", "% Allocated", 11), Column("servertype", "ServerType", 10)],
    "federation": [Column("federation", "Federation", -10), Column("cluster", "Cluster", 10),
                   Column("id", "ID", 2), Column("features", "Features", 20),
                   Column("fedstate", "FedState", 12)],
    "problem": [Column("cluster", "Cluster", 10), Column("account", "Account", 10),
                Column("user", "User", 10), Column("problem", "Problem", 40)],
    "transaction": [Column("time", "Time", 19), Column("action", "Action", 20),
                    Column("actor", "Actor", 10), Column("where", "Where", 20),
                    Column("info", "Info", 20)],
}

#: (entity, letters needed to name it)
_ENTITIES = (("account", 3), ("association", 3), ("cluster", 2), ("configuration", 2),
             ("event", 1), ("federation", 3), ("problem", 1), ("qos", 1), ("reservation", 4),
             ("resource", 4), ("runawayjobs", 2), ("stats", 3), ("transaction", 2), ("tres", 2),
             ("user", 1), ("wckey", 1))
ENTITY_ERROR = (
    'No valid entity in list command\n'
    'Input line must include "Account", "Association", "Cluster", "Configuration",\n'
    '"Event", "Federation", "Problem", "QOS", "Resource", "Reservation",\n'
    '"RunAwayJobs", "Stats", "Transaction", "TRES", "User", or "WCKey"')


def entity_of(word: str) -> Optional[str]:
    """The entity a word names (``users`` -> user, ``assoc`` -> association)."""
    low = word.lower()
    if low in ("txn",):
        return "transaction"
    for name, need in _ENTITIES:
        if len(low) >= need and (name.startswith(low) or low in (name + "s",)):
            return name
    return None


@dataclass(frozen=True)
class Fleet:
    """What sacctmgr reports about: the cluster, its associations, its size."""

    cluster: str
    assocs: tuple[Assoc, ...]
    node_count: int = 0
    cpus: int = 0
    mem_mb: int = 0
    gpus: int = 0
    #: the QOS in force, each as the config's fields with its ``Name`` (``normal`` first)
    qos: tuple[dict, ...] = ({"Name": "normal"},)
    #: account -> its limits (the config's ``accounts`` fields), for a tree
    #: without ``records``
    limits: dict = field(default_factory=dict)
    #: (account, user) -> the controller's record of that association: ``own``
    #: settings, ``inherited`` ones, ``default_account`` (a user's)
    records: dict = field(default_factory=dict)


@dataclass
class Query:
    """The specs after ``list ENTITY``."""

    names: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    format: Optional[str] = None


#: per entity: condition keyword -> (canonical key, letters needed)
_CONDITIONS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "user": (("names", "user", 1), ("users", "user", 1), ("defaultaccount", "defaultaccount", 8),
             ("adminlevel", "adminlevel", 2), ("accounts", "account", 3),
             ("clusters", "cluster", 3), ("partitions", "partition", 3)),
    "account": (("names", "account", 1), ("accounts", "account", 3),
                ("descriptions", "description", 1), ("organizations", "organization", 1),
                ("clusters", "cluster", 3), ("users", "user", 1), ("parent", "parentname", 3)),
    "association": (("accounts", "account", 3), ("clusters", "cluster", 3),
                    ("users", "user", 1), ("partitions", "partition", 4), ("ids", "id", 2),
                    ("parentname", "parentname", 3)),
    "cluster": (("names", "cluster", 1), ("clusters", "cluster", 3),
                ("classification", "classification", 3), ("flags", "flags", 3)),
    "qos": (("names", "name", 1), ("ids", "id", 2), ("descriptions", "description", 1),
            ("preemptmode", "preemptmode", 8)),
    "tres": (("names", "name", 1), ("types", "type", 1), ("ids", "id", 2)),
}
_FLAGS = ("withassoc", "withcoord", "withdeleted", "tree", "onlydefaults", "withsubaccounts",
          "wopinfo", "woplimits", "wolimits", "withrawqoslevel", "associations")


def parse_specs(entity: str, words: list[str]) -> Query:
    q = Query()
    conds = _CONDITIONS.get(entity, ())
    for word in words:
        key, eq, value = word.partition("=")
        low = key.lower()
        if not eq:
            if low in ("where", "set"):
                continue
            flag = next((f for f in _FLAGS if len(low) >= min(len(f), 5) and f.startswith(low)),
                        None)
            if flag:
                q.flags.add("withassoc" if flag == "associations" else flag)
            else:
                q.names += [n for n in word.split(",") if n]
            continue
        if low == "format"[:max(len(low), 3)]:
            q.format = value
            continue
        match = next((canon for name, canon, need in conds
                      if len(low) >= need and name.startswith(low)), None)
        if match is None:
            raise UsageError(f" Unknown condition: {word}\n Use keyword 'set' to modify value",
                             prog=PROG)
        q.where.setdefault(match, []).extend(v for v in value.split(",") if v)
    return q


def _columns(entity: str, q: Query, table: dict[str, Column], aliases: dict[str, str],
             default: str) -> list[Column]:
    # sacctmgr lowercases what it reads (its database is lower case)
    return parse_format((q.format or default).lower(), table, PROG, aliases,
                        error="Unknown field '{}'")


def _wall(text: Optional[str]) -> str:
    """sacctmgr's MaxWall (``mins2time_str``): ``01:00:00``, ``1-00:00:00``; blank for none."""
    if text is None:
        return ""
    from fleetslurm.slurm.units import format_limit_hms, parse_time_limit

    minutes = parse_time_limit(text)
    return "" if minutes is None else format_limit_hms(minutes)


def _num(v: Optional[int]) -> str:
    return "" if v is None else str(v)


def _tres(text: Optional[str]) -> str:
    from fleetslurm.slurm.tres import format_tres, parse_tres

    return format_tres(parse_tres(text or ""))


def _assoc_row(a: Assoc, cluster: str, tree_view: bool = False,
               fleet: Optional["Fleet"] = None) -> dict[str, str]:
    ids = {q["Name"]: i + 1 for i, q in enumerate(fleet.qos)} if fleet else {"normal": 1}
    row = {"cluster": cluster, "account": (" " * a.depth if tree_view else "") + a.account,
           "user": a.user, "share": "1", "qos": ",".join(sorted(ids)),
           "qosraw": ",".join(str(ids[n]) for n in sorted(ids)), "id": str(a.id),
           "lft": str(a.lft), "rgt": str(a.rgt), "parentid": str(a.parent_id),
           "parentname": a.parent_name}
    rec = fleet.records.get((a.account, a.user)) if fleet else None
    if rec is not None:
        own, eff = rec.get("own") or {}, {**(rec.get("own") or {}), **(rec.get("inherited") or {})}
        if eff.get("QOS"):
            row.update(qos=",".join(sorted(eff["QOS"])),
                       qosraw=",".join(str(ids[n]) for n in sorted(eff["QOS"]) if n in ids))
        row.update(share=str(own.get("Fairshare", 1)), maxjobs=_num(eff.get("MaxJobs")),
                   maxsubmit=_num(eff.get("MaxSubmitJobs")), maxwall=_wall(eff.get("MaxWall")),
                   maxtres=_tres(eff.get("MaxTRES")), grptres=_tres(own.get("GrpTRES")),
                   grpjobs=_num(own.get("GrpJobs")), defaultqos=eff.get("DefaultQOS") or "")
        return row
    lim = (fleet.limits.get(a.account) if fleet else None) or {}
    if lim:
        # the account's own association holds every limit; its users' inherit the per-job
        # and per-user ones (GrpTRES, GrpJobs count the whole account)
        row.update(maxjobs=_num(lim.get("MaxJobs")), maxsubmit=_num(lim.get("MaxSubmitJobs")),
                   maxwall=_wall(lim.get("MaxWall")))
        if not a.user:
            row.update(grptres=_tres(lim.get("GrpTRES")), grpjobs=_num(lim.get("GrpJobs")))
    return row


def _qos_row(q: dict, qid: int) -> dict[str, str]:
    name = q["Name"]
    descr = q.get("Description") or ("Normal QOS default" if name == "normal" else name)
    return {"name": name, "description": descr, "priority": str(q.get("Priority") or 0),
            "gracetime": "00:00:00", "preemptmode": "cluster", "usagefactor": "1.000000",
            "id": str(qid), "grptres": _tres(q.get("GrpTRES")), "grpjobs": _num(q.get("GrpJobs")),
            "maxtrespu": _tres(q.get("MaxTRESPerUser")), "maxjobspu": _num(q.get("MaxJobsPerUser")),
            "maxsubmitpu": _num(q.get("MaxSubmitJobsPerUser")), "maxwall": _wall(q.get("MaxWall"))}


def _match(value: str, wanted: Optional[list[str]]) -> bool:
    return not wanted or value.lower() in {w.lower() for w in wanted}


def list_entity(entity: str, q: Query, fleet: Fleet, with_assoc: bool = False
                ) -> tuple[list[Column], list[dict[str, str]]]:
    """Columns and rows for ``sacctmgr list ENTITY`` (``with_assoc``: ``-s``)."""
    assoc_wanted = with_assoc or "withassoc" in q.flags
    assocs = [a for a in fleet.assocs
              if _match(fleet.cluster, q.where.get("cluster"))
              and _match(a.account, q.where.get("account") if entity != "account" else None)
              and not q.where.get("partition")]
    if entity == "user":
        users = sorted({a.user for a in fleet.assocs if a.user})
        # association fields may be asked for without -s: they are blank then
        table = {**USER, **ASSOC}
        cols = _columns(entity, q, table, ASSOC_ALIASES,
                        DEFAULTS["user+assoc" if assoc_wanted else "user"])
        if "withcoord" in q.flags and not q.format:
            cols.append(USER["Coordinators"])
        rows = []
        for u in users:
            if not _match(u, q.names + q.where.get("user", [])):
                continue
            first = next(a for a in fleet.assocs if a.user == u)
            default = (fleet.records.get((first.account, u)) or {}).get("default_account")
            base = {"user": u, "adminlevel": "Administrator" if u == "root" else "None",
                    "defaultaccount": default or first.account}
            if not _match(base["defaultaccount"], q.where.get("defaultaccount")) or not _match(
                    base["adminlevel"], q.where.get("adminlevel")):
                continue
            mine = [a for a in assocs if a.user == u]
            if assoc_wanted:
                rows += [{**_assoc_row(a, fleet.cluster, fleet=fleet), **base} for a in mine]
            elif mine or not (q.where.get("account") or q.where.get("cluster")):
                rows.append(base)
        return cols, rows
    if entity == "account":
        accounts = sorted({a.account for a in fleet.assocs})
        table = {**ACCOUNT, **ASSOC}
        cols = _columns(entity, q, table, ASSOC_ALIASES,
                        DEFAULTS["account+assoc" if assoc_wanted else "account"])
        if "withcoord" in q.flags and not q.format:
            cols.append(ACCOUNT["Coordinators"])
        rows = []
        for name in accounts:
            if not _match(name, q.names + q.where.get("account", [])):
                continue
            own = (fleet.records.get((name, "")) or {}).get("own") or {}
            base = {"account": name,
                    "description": own.get("Description") or (
                        "default root account" if name == "root" else name),
                    "organization": own.get("Organization") or name}
            if not (_match(base["description"], q.where.get("description"))
                    and _match(base["organization"], q.where.get("organization"))):
                continue
            mine = [a for a in assocs if a.account == name
                    and _match(a.user or "", q.where.get("user"))
                    and _match(a.parent_name, q.where.get("parentname"))]
            if assoc_wanted:
                rows += [{**_assoc_row(a, fleet.cluster, fleet=fleet), **base} for a in mine]
            elif mine:
                rows.append(base)
        return cols, rows
    if entity == "association":
        tree_view = "tree" in q.flags
        cols = _columns(entity, q, ASSOC, ASSOC_ALIASES, DEFAULTS["association"])
        if tree_view:
            cols = [Column(c.key, c.header, -20) if c.key == "account" else c for c in cols]
        rows = [_assoc_row(a, fleet.cluster, tree_view, fleet) for a in assocs
                if _match(a.user, q.where.get("user"))  # account rows have no user
                and _match(str(a.id), q.where.get("id"))
                and _match(a.parent_name, q.where.get("parentname"))
                and not ("onlydefaults" in q.flags and not a.user)]
        return cols, rows
    if entity == "cluster":
        cols = _columns(entity, q, CLUSTER, {}, DEFAULTS["cluster"])
        if not _match(fleet.cluster, q.names + q.where.get("cluster", [])):
            return cols, []
        tres = (f"billing={fleet.cpus},cpu={fleet.cpus},energy=0,fs/disk=0,mem={fleet.mem_mb}M,"
                f"node={fleet.node_count},pages=0,vmem=0")
        if fleet.gpus:
            tres += f",gres/gpu={fleet.gpus}"
        return cols, [{"cluster": fleet.cluster, "controlhost": "127.0.0.1", "controlport": "0",
                       "rpc": "9728", "share": "1", "qos": "normal", "fedstate": "NA",
                       "fedstateraw": "0", "id": "1", "nodecount": str(fleet.node_count),
                       "pluginidselect": "109", "tres": tres}]
    if entity == "qos":
        cols = _columns(entity, q, QOS, QOS_ALIASES, DEFAULTS["qos"])
        rows = [_qos_row(rec, i + 1) for i, rec in enumerate(fleet.qos)]
        return cols, [r for r in rows
                      if _match(r["name"], q.names + q.where.get("name", []))
                      and _match(r["id"], q.where.get("id"))
                      and _match(r["description"], q.where.get("description"))
                      and _match("cluster", q.where.get("preemptmode"))]
    if entity == "tres":
        cols = _columns(entity, q, TRES, {}, DEFAULTS["tres"])
        names = [(t.split("/")[0], t.split("/")[1] if "/" in t else "") for t in TRES_NAMES]
        if fleet.gpus:
            names.append(("gres", "gpu"))
        rows = []
        for i, (kind, name) in enumerate(names):
            tid = str(1001 if kind == "gres" else i + 1)
            if (_match(kind, q.where.get("type")) and _match(tid, q.where.get("id"))
                    and _match(name, q.names + q.where.get("name", []))):
                rows.append({"type": kind, "name": name, "id": tid})
        return cols, rows
    if entity in EMPTY:
        return EMPTY[entity], []
    raise UsageError(f"sacctmgr: error: fleetslurm keeps no {entity} records (there is no "
                     "slurmdbd); sacct and scontrol show what happened to jobs and machines",
                     prog=PROG)
