"""The fleet's configuration: pydantic models, lookup, and the embedded default.

Lookup order: ``--config``, ``$FLEETSLURM_CONFIG``, ``./config/fleet_config.json``,
``$FLEETSLURM_HOME/fleet_config.json``; with none of them, the fleet is this
machine alone (``localhost``, local transport).

Declared resources are authoritative (as slurm.conf's NodeName lines are): the
scheduler allocates what the config declares; what the agent detects is shown
beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .paths import DEFAULT_WORKDIR, find_config

__all__ = [
    "MachineConfig",
    "PolicyConfig",
    "PartitionConfig",
    "PriorityConfig",
    "QosConfig",
    "AccountConfig",
    "FleetConfig",
    "find_config",
    "load_config",
    "default_config",
    "resolve_config",
]

DEFAULT_PARTITION = "debug"
#: the embedded default's partitions, the machine in each: ``debug`` (the
#: default, as before) and the two the seed's examples name (``compute``,
#: ``gpu``). ``gpu`` is only a name where the machine has no GPU: a job there
#: asking for --gres=gpu is refused as SLURM refuses it.
DEFAULT_PARTITIONS = (DEFAULT_PARTITION, "compute", "gpu")


class _Strict(BaseModel):
    # NaN and Infinity are valid in Python's JSON but in no field of a config;
    # strict: true is not 1 CPU, "4" not 4 (an integer is still a number)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False,
                              strict=True)


#: limits of numeric fields: SLURM's where slurm.conf has one (65533 for its
#: 16-bit settings, MaxArraySize's 4000001), else what SQLite and the clock hold
_U16 = 65533
_U32 = 4294967294


class PolicyConfig(_Strict):
    """A workstation's policy (``machines.NAME.policy``), as HTCondor's desktop
    pools have one: no new job while its owner is active (a tty or the
    activity file used within ``owner_idle_minutes``), while the load not
    caused by fleetslurm's jobs is above ``max_foreign_load`` or its free
    memory under ``min_free_mem_gb``; ``when_owner_active`` says what happens
    to the jobs running there then. ``null`` turns one check off."""

    max_foreign_load: Optional[float] = Field(1.0, ge=0, le=1e6)
    min_free_mem_gb: Optional[float] = Field(2, ge=0, le=1024 ** 2)
    owner_idle_minutes: Optional[float] = Field(15, ge=0, le=525600)
    when_owner_active: Literal["stop_starting", "suspend", "requeue"] = "stop_starting"
    #: a file whose modification time is the owner's last activity (for sites
    #: without utmp, a screen-saver hook, tests)
    activity_file: Optional[str] = Field(None, min_length=1)


class MachineConfig(_Strict):
    """One machine (a SLURM node). Keyed by node name in ``machines``."""

    hostname: str = Field("localhost", min_length=1)
    ip: Optional[str] = Field(None, min_length=1)
    port: int = Field(22, ge=1, le=65535)
    cpus: Optional[int] = Field(None, gt=0, le=_U16)
    memory_gb: Optional[float] = Field(None, ge=0.001, le=1024 ** 2)  # 1 MB to 1 PB
    gpu_available: bool = False
    gpus: Optional[int] = Field(None, ge=0, le=_U16)
    ssh_user: Optional[str] = Field(None, min_length=1)
    ssh_key_path: Optional[str] = Field(None, min_length=1)
    description: str = ""
    partitions: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    weight: int = Field(1, ge=0, le=_U32)
    workdir: str = Field(DEFAULT_WORKDIR, min_length=1)
    python: str = Field("python3", min_length=1)
    shared_fs: bool = False
    transport: Literal["ssh", "local"] = "ssh"
    #: "sudo": the ssh account is not root; the agent, its files and copies run
    #: as root through ``sudo -n`` (see transport.ssh_become for the sudoers rule)
    become: Optional[Literal["sudo"]] = None
    #: the machine's sftp-server, run through sudo with ``become`` (absent: the
    #: first of the usual places that exists there)
    sftp_server: Optional[str] = Field(None, min_length=1)
    #: the workstation policy (omitted: jobs start whatever the machine does)
    policy: Optional[PolicyConfig] = None
    #: when it may take jobs (see fleetslurm.hours; omitted: always)
    available: Optional[list[str]] = None

    @model_validator(mode="after")
    def _become_over_ssh(self) -> "MachineConfig":
        if self.become and self.transport == "local":
            raise ValueError("become on a local machine")
        return self

    @field_validator("sftp_server")
    @classmethod
    def _absolute(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith("/"):
            raise ValueError("sftp_server")
        return v

    @field_validator("available")
    @classmethod
    def _hours(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None:
            from .hours import parse_windows

            parse_windows(v)  # raises InvalidValue naming the window
        return v

    @property
    def address(self) -> str:
        """What to connect to: ``ip`` when given, else ``hostname``."""
        return self.ip or self.hostname

    @property
    def gpu_count(self) -> Optional[int]:
        """Declared GPUs: ``gpus``; ``gpu_available`` alone means "detect"."""
        if self.gpus is not None:
            return self.gpus
        return None if self.gpu_available else 0

    @property
    def mem_mb(self) -> Optional[int]:
        return None if self.memory_gb is None else int(self.memory_gb * 1024)


class PartitionConfig(_Strict):
    """A partition. ``priority`` is SLURM's ``Priority=`` (its PriorityJobFactor
    and, unless ``priority_tier`` is given, its PriorityTier). ``allow_groups``,
    ``allow_accounts``, ``allow_qos``: who may submit to it (absent: ALL), as
    slurm.conf's AllowGroups, AllowAccounts and AllowQos."""

    default: bool = False
    max_time: Optional[str] = "UNLIMITED"
    default_time: Optional[str] = None
    priority: int = Field(1, ge=0, le=_U16)
    priority_tier: Optional[int] = Field(None, ge=0, le=_U16)
    state: Literal["UP", "DOWN", "up", "down"] = "UP"
    allow_groups: Optional[list[str]] = None
    allow_accounts: Optional[list[str]] = None
    allow_qos: Optional[list[str]] = None
    #: node order: "pack" (best fit, lowest weight first) or "spread" (least
    #: loaded first, by measured load)
    placement: Literal["pack", "spread"] = "pack"

    @property
    def tier(self) -> int:
        """PriorityTier: ``priority_tier``, else ``priority``."""
        return self.priority if self.priority_tier is None else self.priority_tier

    @field_validator("max_time", "default_time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError("time")
        from .slurm.units import parse_time_limit

        parse_time_limit(str(v))  # raises InvalidValue on garbage
        return str(v)

    def max_minutes(self) -> Optional[int]:
        from .slurm.units import parse_time_limit

        return None if self.max_time is None else parse_time_limit(self.max_time)

    def default_minutes(self) -> Optional[int]:
        from .slurm.units import parse_time_limit

        return None if self.default_time is None else parse_time_limit(self.default_time)


class PriorityConfig(_Strict):
    """slurm.conf's priority/multifactor settings, with SLURM's names and defaults.

    Every weight 0 (SLURM's default) keeps the queue first come, first served.
    ``Fairshare`` gives an account's initial shares (every user starts with an
    account named after them; sacctmgr changes them); accounts not named have 1. ``TRESBillingWeights``
    applies to every partition. A partition's ``priority`` is both its
    PriorityTier and its PriorityJobFactor, as SLURM's ``Priority=`` is.
    """

    PriorityType: Literal["priority/multifactor", "priority/basic"] = "priority/multifactor"
    PriorityWeightAge: int = Field(0, ge=0, le=_U32)
    PriorityWeightFairshare: int = Field(0, ge=0, le=_U32)
    PriorityWeightJobSize: int = Field(0, ge=0, le=_U32)
    PriorityWeightPartition: int = Field(0, ge=0, le=_U32)
    PriorityWeightQOS: int = Field(0, ge=0, le=_U32)
    PriorityMaxAge: str = "7-0"
    PriorityDecayHalfLife: str = "7-0"
    #: minutes between recomputations (SLURM's default 5)
    PriorityCalcPeriod: int = Field(5, ge=1, le=1440)
    PriorityFavorSmall: bool = False
    TRESBillingWeights: str = ""
    Fairshare: dict[str, int] = Field(default_factory=dict)

    @field_validator("PriorityMaxAge", "PriorityDecayHalfLife")
    @classmethod
    def _span(cls, v: str) -> str:
        from .slurm.units import parse_time_limit

        if parse_time_limit(v) is None:  # raises InvalidValue on garbage
            raise ValueError("time")
        return v

    @field_validator("TRESBillingWeights")
    @classmethod
    def _billing(cls, v: str) -> str:
        from .scheduler.multifactor import parse_billing_weights

        parse_billing_weights(v)  # raises InvalidValue naming the bad item
        return v

    @field_validator("Fairshare")
    @classmethod
    def _shares(cls, v: dict[str, int]) -> dict[str, int]:
        for name, shares in v.items():
            if not 0 <= shares <= _U32:
                raise ValueError("shares")
        return v


def _check_tres(v: str) -> str:
    from .slurm.tres import parse_tres

    if any(x < 0 for x in parse_tres(v).values()):  # raises InvalidValue naming the item
        raise ValueError("tres")
    return v


def _check_wall(v: Optional[str]) -> Optional[str]:
    from .slurm.units import parse_time_limit

    if v is not None:
        parse_time_limit(v)  # raises InvalidValue on garbage
    return v


class QosConfig(_Strict):
    """A QOS, as ``sacctmgr add qos NAME ...`` would make it (SLURM's names;
    absent: no limit). ``MaxTRESPerUser`` and ``GrpTRES`` are TRES strings
    (``cpu=4,mem=8G,gres/gpu=1``), ``MaxWall`` a SLURM time. The QOS
    ``normal`` always exists (SLURM's default QOS, no limits unless given)."""

    Description: Optional[str] = None
    Priority: int = Field(0, ge=0, le=_U32)
    MaxJobsPerUser: Optional[int] = Field(None, ge=0, le=_U32)
    MaxSubmitJobsPerUser: Optional[int] = Field(None, ge=0, le=_U32)
    MaxTRESPerUser: str = ""
    MaxWall: Optional[str] = None
    GrpTRES: str = ""
    GrpJobs: Optional[int] = Field(None, ge=0, le=_U32)

    _tres = field_validator("MaxTRESPerUser", "GrpTRES")(classmethod(lambda cls, v: _check_tres(v)))
    _wall = field_validator("MaxWall")(classmethod(lambda cls, v: _check_wall(v)))


class AccountConfig(_Strict):
    """An account's association limits (``sacctmgr modify account NAME set ...``):
    ``GrpTRES``/``GrpJobs`` over all its running jobs, ``MaxJobs`` and
    ``MaxSubmitJobs`` per user of the account, ``MaxWall`` per job: the initial
    set (every user starts with an account named after them; sacctmgr changes
    them, see ctld/assocs.py)."""

    GrpTRES: str = ""
    GrpJobs: Optional[int] = Field(None, ge=0, le=_U32)
    MaxJobs: Optional[int] = Field(None, ge=0, le=_U32)
    MaxSubmitJobs: Optional[int] = Field(None, ge=0, le=_U32)
    MaxWall: Optional[str] = None

    _tres = field_validator("GrpTRES")(classmethod(lambda cls, v: _check_tres(v)))
    _wall = field_validator("MaxWall")(classmethod(lambda cls, v: _check_wall(v)))


#: the words of AccountingStorageEnforce fleetslurm takes (nojobs, nosteps and
#: wckeys change nothing here: there is no accounting database to spare)
_ENFORCE = {"none", "associations", "limits", "qos", "safe", "nojobs", "nosteps", "wckeys"}


class FleetConfig(_Strict):
    cluster_name: str = Field("fleet", min_length=1)
    machines: dict[str, MachineConfig] = Field(default_factory=dict)
    partitions: dict[str, PartitionConfig] = Field(default_factory=dict)
    host_key_policy: Literal["reject", "accept-new"] = "reject"
    kill_wait: int = Field(30, ge=0, le=_U16)
    # below 0.05 s the controller's loop spins on heartbeats
    heartbeat_interval: float = Field(5.0, ge=0.05, le=600)
    #: seconds of silence before a machine is DOWN and its jobs requeued
    #: (SLURM's SlurmdTimeout); three missed heartbeats only make it "not
    #: responding" (no new jobs)
    node_timeout: float = Field(300.0, gt=0, le=65533)
    min_job_age: int = Field(300, ge=0, le=_U32)
    #: priority/multifactor (absent: jobs are ordered as before, see PriorityConfig)
    priority: Optional[PriorityConfig] = None
    #: slurm.conf's EnforcePartLimits: NO (SLURM's default) leaves a job over its
    #: partition's MaxTime PENDING (PartitionTimeLimit); YES/ALL/ANY refuse it at submit
    enforce_part_limits: Literal["NO", "YES", "ALL", "ANY"] = "NO"
    #: slurm.conf's AccountingStorageEnforce: "associations" refuses an -A naming no
    #: account, "qos" a --qos naming no QOS, "limits" (which implies associations)
    #: enforces QOS and account limits; "none" accepts any account and QOS and
    #: enforces no limit, as a SLURM without accounting does
    accounting_storage_enforce: str = "associations,limits,qos"
    #: QOS definitions (the initial set: sacctmgr add/modify/delete qos changes them)
    qos: dict[str, QosConfig] = Field(default_factory=dict)
    #: association limits per account (named after its user)
    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    max_array_size: int = Field(1001, gt=0, le=4000001)
    #: slurm.conf's MailProg, run for --mail-type as ``MailProg -s SUBJECT USER``
    #: (empty body, SLURM_JOB_* in its environment). Absent: SLURM's /bin/mail
    #: or /usr/bin/mail, else /usr/sbin/sendmail (given the subject as a
    #: header), whichever exists; "" for none (sbatch then warns)
    mail_prog: Optional[str] = None
    #: where the config came from (not part of the file)
    source: Optional[str] = Field(None, exclude=True)

    @field_validator("accounting_storage_enforce")
    @classmethod
    def _enforce(cls, v: str) -> str:
        words = {w.strip().lower() for w in v.split(",") if w.strip()}
        if not words or not words <= _ENFORCE or ("none" in words and len(words) > 1):
            raise ValueError("enforce")
        return ",".join(sorted(words))

    def mail_program(self) -> Optional[str]:
        """The mail program job mail goes through, or None for none."""
        import os

        if self.mail_prog is not None:
            return self.mail_prog or None
        for path in ("/bin/mail", "/usr/bin/mail", "/usr/sbin/sendmail"):
            if os.access(path, os.X_OK):
                return path
        return None

    def enforces(self, what: str) -> bool:
        """Whether AccountingStorageEnforce includes ``what`` (limits implies
        associations, as in SLURM)."""
        words = set(self.accounting_storage_enforce.split(","))
        if what == "associations":
            return bool(words & {"associations", "limits", "safe"})
        if what == "limits":
            return bool(words & {"limits", "safe"})
        return what in words

    @field_validator("machines")
    @classmethod
    def _names(cls, v: dict[str, MachineConfig]) -> dict[str, MachineConfig]:
        import re

        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ValueError(f"node name {name!r}")
        return v

    @model_validator(mode="after")
    def _fill(self) -> "FleetConfig":
        if not self.machines:
            raise ValueError("no machines")
        if not self.partitions:
            self.partitions = {DEFAULT_PARTITION: PartitionConfig(default=True)}
        defaults = [n for n, p in self.partitions.items() if p.default]
        if len(defaults) > 1:
            raise ValueError("several default partitions")
        if not defaults:
            first = next(iter(self.partitions))
            self.partitions[first].default = True
        import re

        for qname in self.qos:
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", qname):
                raise ValueError(f"qos name {qname!r}")
        if "normal" not in self.qos:
            self.qos = {"normal": QosConfig(), **self.qos}
        for pname, p in self.partitions.items():
            for q in p.allow_qos or ():
                if q not in self.qos:
                    raise ValueError(f"partition {pname} allow_qos {q}")
        for mname, m in self.machines.items():
            for p in m.partitions:
                if p not in self.partitions:
                    raise ValueError(f"machine {mname} partition {p}")
        return self

    @property
    def default_partition(self) -> str:
        return next(n for n, p in self.partitions.items() if p.default)

    def partition_nodes(self, partition: str) -> list[str]:
        """Machines in a partition; a machine with no partitions is in the default one."""
        out = []
        for name, m in self.machines.items():
            parts = m.partitions or [self.default_partition]
            if partition in parts:
                out.append(name)
        return out


# what each field allows, for messages
_ALLOWED = {
    "cpus": "a positive integer",
    "port": "an integer from 1 to 65535",
    "memory_gb": "a positive number",
    "gpus": "a non-negative integer",
    "weight": "a non-negative integer",
    "priority": "a non-negative integer",
    "kill_wait": "an integer from 0 to 65533 (seconds)",
    "min_job_age": "a non-negative integer (seconds)",
    "max_array_size": "an integer from 1 to 4000001",
    "heartbeat_interval": "a number of seconds from 0.05 to 600",
    "mail_prog": 'a mail program\'s path (SLURM\'s MailProg), or "" for none',
    "node_timeout": "a number of seconds above 0, at most 65533 (SLURM's SlurmdTimeout)",
    "workdir": "a non-empty path",
    "ssh_key_path": "a non-empty path",
    "python": 'a non-empty command ("python3")',
    "hostname": "a non-empty host name",
    "ip": "a non-empty address",
    "ssh_user": "a non-empty user name",
    "cluster_name": "a non-empty name",
    "gpu_available": "true or false",
    "shared_fs": "true or false",
    "default": "true or false",
    "max_time": 'a SLURM time ("60", "1:00:00", "2-0", "UNLIMITED")',
    "default_time": 'a SLURM time ("60", "1:00:00", "2-0", "UNLIMITED")',
    "host_key_policy": '"reject" or "accept-new"',
    "transport": '"ssh" or "local"',
    "become": '"sudo" (or null: the ssh account itself runs the agent)',
    "sftp_server": 'the absolute path of the machine\'s sftp-server '
                   '("/usr/lib/openssh/sftp-server")',
    "max_foreign_load": "a non-negative number (null: no check)",
    "min_free_mem_gb": "a non-negative number of GB (null: no check)",
    "owner_idle_minutes": "a non-negative number of minutes (null: no check)",
    "when_owner_active": '"stop_starting", "suspend" or "requeue"',
    "activity_file": "a non-empty path",
    "policy": "an object (max_foreign_load, min_free_mem_gb, owner_idle_minutes, "
              "when_owner_active, activity_file)",
    "available": 'a list of windows ("Mon-Fri 19:00-07:00", "Sat-Sun")',
    "placement": '"pack" or "spread"',
    "state": '"UP" or "DOWN"',
    "partitions": "a list of partition names",
    "features": "a list of strings",
    **{f"PriorityWeight{w}": "an integer from 0 to 4294967294"
       for w in ("Age", "Fairshare", "JobSize", "Partition", "QOS")},
    "PriorityType": '"priority/multifactor" or "priority/basic"',
    "PriorityFavorSmall": "true or false",
    "PriorityMaxAge": 'a SLURM time ("60", "1:00:00", "7-0"), not UNLIMITED',
    "PriorityDecayHalfLife": 'a SLURM time ("60", "1:00:00", "7-0"; 0 for no decay), not UNLIMITED',
    "PriorityCalcPeriod": "an integer from 1 to 1440 (minutes)",
    "TRESBillingWeights": 'SLURM\'s TRES weights ("CPU=1.0,Mem=0.25G,GRES/gpu=2.0")',
    "Fairshare": "an object of account names to shares (integers from 0 to 4294967294)",
    "priority_tier": "an integer from 0 to 65533",
    "allow_groups": "a list of group names",
    "allow_accounts": "a list of account names",
    "allow_qos": "a list of QOS names",
    **{k: "an integer from 0 to 4294967294 (absent: no limit)"
       for k in ("Priority", "MaxJobsPerUser", "MaxSubmitJobsPerUser", "GrpJobs", "MaxJobs",
                 "MaxSubmitJobs")},
    "MaxTRESPerUser": 'a TRES limit ("cpu=4,mem=8G,gres/gpu=1")',
    "GrpTRES": 'a TRES limit ("cpu=4,mem=8G,gres/gpu=1")',
    "MaxWall": 'a SLURM time ("60", "1:00:00", "2-0", "UNLIMITED")',
    "Description": "a string",
    "qos": "an object of QOS names to their limits",
    "accounting_storage_enforce": ('"none" or a comma list of associations, limits, qos, '
                                   'safe, nojobs, nosteps, wckeys (slurm.conf\'s '
                                   'AccountingStorageEnforce)'),
    "enforce_part_limits": '"NO", "YES", "ALL" or "ANY" (slurm.conf\'s EnforcePartLimits)',
    "accounts": "an object of account names to their limits",
}


def _describe(err: dict[str, Any], cfg_data: Any) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    path = ".".join(loc) if loc else "(top level)"
    etype = err.get("type", "")
    got = err.get("input")
    field = loc[-1] if loc else ""
    if etype == "extra_forbidden":
        model = {
            "machines": MachineConfig, "partitions": PartitionConfig, "priority": PriorityConfig,
            "qos": QosConfig, "accounts": AccountConfig,
        }.get(loc[0] if loc else "", FleetConfig) if len(loc) > 1 else FleetConfig
        if len(loc) > 3 and loc[0] == "machines" and loc[2] == "policy":
            model = PolicyConfig
        allowed = ", ".join(k for k in model.model_fields if k != "source")
        return f"{path}: unknown field; allowed fields are: {allowed}"
    if etype == "missing":
        return f"{path}: required field is missing"
    msg = str(err.get("msg", ""))
    if etype == "value_error":
        ctx = msg.removeprefix("Value error, ")
        if ctx.startswith("invalid window"):
            return f"{path}: {ctx}"
        if ctx == "no machines":
            return "machines: at least one machine is required"
        if ctx == "become on a local machine":
            return (f"{path}.become: applies to a machine reached over SSH; a local "
                    "machine's agent runs as the controller does (run the lab as root for "
                    "jobs run as their users): remove \"become\" or \"transport\": \"local\"")
        if ctx == "several default partitions":
            return "partitions: only one partition may have \"default\": true"
        if ctx.startswith("machine "):
            _, m, _, p = ctx.split(" ", 3)
            return (f"machines.{m}.partitions: unknown partition {p!r}; "
                    f"define it under \"partitions\"")
        if ctx.startswith("qos name"):
            return (f"qos: invalid QOS name {ctx[9:]}; use lower-case letters, digits, "
                    "'.', '_' and '-'")
        if ctx.startswith("partition ") and " allow_qos " in ctx:
            _, pn, _, q = ctx.split(" ", 3)
            return (f"partitions.{pn}.allow_qos: unknown QOS {q!r}; define it under \"qos\"")
        if ctx.startswith("node name"):
            return (f"machines: invalid node name {ctx[10:]}; use letters, digits, "
                    "'.', '_' and '-'")
    if field.isdigit() and len(loc) > 1:
        field = loc[-2]
    allowed = _ALLOWED.get(field)
    if allowed is None:
        if "dict" in etype:
            allowed = "an object"
        elif "string" in etype:
            allowed = "a string"
        else:
            allowed = msg[0].lower() + msg[1:] if msg else "a valid value"
    allowed += _bound(etype, err.get("ctx") or {}, allowed)
    return f"{path}: must be {allowed}, got {json.dumps(got) if _jsonable(got) else repr(got)}"


def _bound(etype: str, ctx: dict, allowed: str) -> str:
    """" no larger than N" / " of at least N" for a range error whose limit
    the field's description does not already state."""
    for key, words in (("le", "no larger than"), ("lt", "smaller than"),
                       ("ge", "of at least"), ("gt", "larger than")):
        limit = ctx.get(key)
        if etype.startswith(("less_than", "greater_than")) and limit is not None:
            shown = str(int(limit)) if float(limit).is_integer() else f"{limit:g}"
            if limit == 0 or shown in allowed:
                return ""
            return f" {words} {shown}"
    return ""


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def load_config(path: Path) -> FleetConfig:
    """Read and validate one file; any problem raises ConfigError with one line."""
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found; create it from "
                          "config/fleet_config.json.template or unset FLEETSLURM_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror}") from None
    text = _decode(raw, shown)
    _check_depth(text, shown)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{shown}: line {exc.lineno} column {exc.colno}: "
                          f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: must be a JSON object with \"machines\"")
    try:
        cfg = FleetConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{shown}: {_describe(first, data)}") from None
    cfg.source = str(path)
    return cfg


#: a fleet config nests 4 deep (machines.m1.partitions[0]); far deeper is not
#: a config, and would exhaust the JSON parser's recursion
_MAX_DEPTH = 32


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _decode(raw: bytes, shown: str) -> str:
    """The file as UTF-8 (as JSON requires), or ConfigError at the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = raw[:exc.start].decode("utf-8")
        raise ConfigError(
            f"{shown}: {_where(good, len(good))} (byte {exc.start}): byte "
            f"0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8") from None


def _check_depth(text: str, shown: str) -> None:
    """ConfigError where objects and lists nest deeper than _MAX_DEPTH."""
    import re

    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                raise ConfigError(
                    f"{shown}: {_where(text, m.start())}: objects and lists nest deeper "
                    f"than {_MAX_DEPTH} levels; a fleet config needs 4 (see "
                    "config/fleet_config.json.template)")
        elif c in "]}":
            depth -= 1


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_config() -> FleetConfig:
    """The embedded default: this machine alone, sized by psutil/nvidia-smi."""
    import socket

    from .node.facts import local_facts

    facts = local_facts()
    machine = MachineConfig(
        hostname=socket.gethostname(),
        cpus=facts["cpus"],
        memory_gb=facts["mem_mb"] / 1024,
        gpu_available=bool(facts["gpus"]),
        gpus=len(facts["gpus"]),
        description="this machine (embedded default)",
        transport="local",
        partitions=list(DEFAULT_PARTITIONS),
    )
    return FleetConfig(cluster_name="fleet", machines={"localhost": machine},
                       partitions={name: PartitionConfig(default=name == DEFAULT_PARTITION)
                                   for name in DEFAULT_PARTITIONS})


def resolve_config(explicit: Optional[str] = None) -> FleetConfig:
    path = find_config(explicit)
    return default_config() if path is None else load_config(path)
