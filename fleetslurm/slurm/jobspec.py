"""From sbatch's parsed options to a job spec (pure; no I/O, no clock).

The spec is a plain JSON-able dict the store keeps and the controller launches
from. Errors are SLURM's messages (``sbatch: error: ...`` is added by the CLI).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ..errors import InvalidValue, UsageError

__all__ = ["build_spec", "WRAP_HEADER", "wrap_script", "job_environment", "SIGNALS",
           "MAX_SCRIPT_BYTES", "SCRIPT_TOO_LONG", "script_too_long"]

WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"
#: SLURM's ``max_script_size`` default (SchedulerParameters), in bytes
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
#: SLURM's words for a script over it (ESLURM_PATHNAME_TOO_LONG)
SCRIPT_TOO_LONG = ("Batch job submission failed: Pathname of a file, directory or other "
                   "parameter too long")


def script_too_long(script: str) -> bool:
    """Whether a batch script is over SLURM's max_script_size."""
    return len(script) > MAX_SCRIPT_BYTES and \
        len(script.encode("utf-8", "surrogateescape")) > MAX_SCRIPT_BYTES

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "PWR": 30, "SYS": 31,
}


def wrap_script(command: str) -> str:
    """The script SLURM generates for ``--wrap``."""
    return f"{WRAP_HEADER}{command}\n"


def parse_signal_name(text: str) -> int:
    """``USR1``, ``SIGUSR1``, ``10`` -> 10; InvalidValue otherwise."""
    t = text.strip().upper()
    if t.isdigit() and 0 < int(t) < 65:
        return int(t)
    t = t[3:] if t.startswith("SIG") else t
    if t in SIGNALS:
        return SIGNALS[t]
    raise InvalidValue(f"Invalid signal name: {text}")


#: C's INT_MAX and LONG_MAX: SLURM reads numbers with strtol (saturating at
#: LONG_MAX) into ints
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
#: the largest --nice SLURM takes (NICE_OFFSET - 3)
NICE_MAX = 2147483645


def _int(opts: Mapping[str, Any], key: str, flag: str, minimum: int = 1) -> Optional[int]:
    """A count option as SLURM's ``parse_int`` reads it: strtol (a value past
    LONG_MAX is "to big"), then stored in a C int (2147483648 becomes
    -2147483648, which the option's own check refuses)."""
    v = opts.get(key)
    if v is None:
        return None
    s = str(v).strip()
    if not re.fullmatch(r"[+-]?\d+", s):
        raise UsageError(f'Invalid numeric value "{v}" for {flag}.', prog="sbatch")
    n = int(s)
    if n > LONG_MAX:
        raise UsageError(f"Numeric argument ({LONG_MAX}) to big for {flag}.", prog="sbatch")
    if n < minimum:
        raise UsageError(f'Invalid numeric value "{v}" for {flag}.', prog="sbatch")
    n = _c_int(n)
    if n < minimum:
        # the C int wrapped: SLURM's own words where it has them
        if key == "ntasks" and n == 0:
            return None  # 0 tasks: as if not given
        words = _WRAPPED.get(key)
        if words:
            raise UsageError(f"invalid number of {words} {n})", prog="sbatch")
        raise UsageError(f'Invalid numeric value "{v}" for {flag}.', prog="sbatch")
    return n


_WRAPPED = {"ntasks": "tasks (-n", "cpus_per_task": "cpus per task (-c"}


def _c_int(n: int) -> int:
    """What C's ``(int) strtol(...)`` makes of ``n``: cut to 32 bits."""
    n &= 0xFFFFFFFF
    return n - 2**32 if n > INT_MAX else n


def _gpu_count(opts: Mapping[str, Any], ntasks: int = 1) -> int:
    """The job's GPUs (on its one node): --gpus, --gpus-per-node, --gres=gpu
    as given, --gpus-per-task times the tasks; the largest of them."""
    total = 0
    for key, flag in (("gpus", "--gpus"), ("gpus_per_node", "--gpus-per-node"),
                      ("gpus_per_task", "--gpus-per-task")):
        v = opts.get(key)
        if v is None:
            continue
        count = str(v).rsplit(":", 1)[-1]
        if not count.isdigit():
            raise UsageError(f"Invalid {flag} specification: {v}", prog="sbatch")
        total = max(total, int(count) * (ntasks if key == "gpus_per_task" else 1))
    gres = opts.get("gres")
    if gres:
        for item in str(gres).split(","):
            parts = item.split(":")
            if parts[0] != "gpu":
                if parts[0] in ("", "none"):
                    continue
                raise UsageError(f"Invalid generic resource (gres) specification: {item}",
                                 prog="sbatch")
            n = parts[-1] if len(parts) > 1 and parts[-1].isdigit() else "1"
            total = max(total, int(n))
    return total


def _signal(text: Optional[str]) -> Optional[dict]:
    if not text:
        return None
    s = str(text)
    batch_only = False
    if s.startswith("B:"):
        batch_only, s = True, s[2:]
    elif s.startswith("R:") or s.startswith("RB:") or s.startswith("BR:"):
        batch_only = "B" in s.split(":", 1)[0]
        s = s.split(":", 1)[1]
    name, _, secs = s.partition("@")
    try:
        num = parse_signal_name(name)
        before = int(secs) if secs else 60
    except (InvalidValue, ValueError):
        raise UsageError("Invalid --signal specification", prog="sbatch", code=255) from None
    if before < 0 or before > 0xFFFF:
        raise UsageError("Invalid --signal specification", prog="sbatch", code=255)
    return {"num": num, "secs_before": before, "batch_only": batch_only}


def build_spec(opts: Mapping[str, Any], *, script: str, script_args: list[str],
               env: Mapping[str, str], cwd: str, submit_host: str, now: float) -> dict:
    """Validate sbatch options and return the job spec (partition not yet resolved)."""
    from .units import NoTimeGiven, parse_datetime, parse_mem, parse_time_limit

    if not script.startswith("#!"):
        raise UsageError("This does not look like a batch script.  The first\n"
                         "sbatch: error: line must start with #! followed by the path to an "
                         "interpreter.\nsbatch: error: For instance: #!/bin/sh", prog="sbatch")
    if "\0" in script:
        raise UsageError("The SLURM controller does not allow scripts that contain a NULL "
                         "character '\\0'.", prog="sbatch")
    # the commands refuse these first, naming where they came from; this
    # catches the other ways in (the Python API, a client of another version)
    from .option_support import refuse_unsupported

    refuse_unsupported("sbatch", opts)
    spec: dict[str, Any] = {}
    try:
        tl = opts.get("time")
        spec["time_limit"] = parse_time_limit(str(tl)) if tl is not None else None
        spec["time_set"] = tl is not None
    except InvalidValue:
        raise UsageError("Invalid --time specification", prog="sbatch", code=255) from None
    for key, flag in (("mem", "--mem"), ("mem_per_cpu", "--mem-per-cpu")):
        v = opts.get(key)
        try:
            spec[key + "_mb"] = parse_mem(str(v)) if v is not None else None
            if (spec[key + "_mb"] or 0) > LONG_MAX:
                raise InvalidValue(f"{flag} out of range")  # strtoll's ERANGE
        except InvalidValue:
            raise UsageError(f"Invalid {flag} specification", prog="sbatch", code=255) from None
    if spec["mem_mb"] is not None and spec["mem_per_cpu_mb"] is not None:
        raise UsageError("--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.",
                         prog="sbatch")
    cpt = _int(opts, "cpus_per_task", "--cpus-per-task")
    ntasks = _int(opts, "ntasks", "--ntasks")
    nodes_opt = opts.get("nodes")
    if nodes_opt is not None:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", str(nodes_opt).strip())
        if m and any(int(g) > INT_MAX for g in m.groups() if g):
            raise UsageError(f'"{nodes_opt}" is not a valid node count', prog="sbatch",
                             code=255)
        if not m or int(m.group(1)) < 1:
            raise UsageError('Invalid node count specification', prog="sbatch")
        if int(m.group(1)) > 1:
            raise UsageError("Batch job submission failed: Requested node configuration is "
                             "not available (fleetslurm runs each job on one machine; "
                             "use --nodes=1)", prog="sbatch")
    tpn = _int(opts, "ntasks_per_node", "--ntasks-per-node")
    spec["cpus_per_task"] = cpt or 1
    spec["cpus_per_task_set"] = cpt is not None
    spec["ntasks"] = ntasks or tpn or 1
    spec["ntasks_set"] = ntasks is not None or tpn is not None
    spec["gpus"] = _gpu_count(opts, spec["ntasks"])
    cpg = _int(opts, "cpus_per_gpu", "--cpus-per-gpu")
    cpus = spec["cpus_per_task"] * spec["ntasks"]
    if cpg and spec["gpus"]:
        cpus = max(cpus, cpg * spec["gpus"])
    spec["cpus"] = cpus
    if spec["mem_per_cpu_mb"] is not None:
        spec["req_mem_mb"] = spec["mem_per_cpu_mb"] * cpus
    else:
        spec["req_mem_mb"] = spec["mem_mb"] or 0
    nice = opts.get("nice")
    if nice is not None and nice is not True:
        # SLURM's atoi: a non-numeric --nice counts as 0
        m = re.match(r"\s*([+-]?\d+)", str(nice))
        spec["nice"] = int(m.group(1)) if m else 0
        if abs(spec["nice"]) > NICE_MAX:
            raise UsageError(f"Invalid --nice value, out of range (+/- {NICE_MAX})",
                             prog="sbatch", code=255)
    else:
        spec["nice"] = 100 if nice is True else 0
    begin = opts.get("begin")
    if begin is not None and not str(begin).strip():
        raise UsageError("Invalid --begin specification", prog="sbatch", code=255)
    try:
        spec["begin_time"] = parse_datetime(str(begin), now) if begin is not None else None
    except (OverflowError, OSError, ValueError) as exc:
        # SLURM prints parse_time's complaint bare (when it has one), then its own;
        # a time past what the platform's time_t holds is just invalid here
        lines = [str(exc)] if isinstance(exc, InvalidValue) and \
            not isinstance(exc, NoTimeGiven) else []
        raise UsageError("\n".join([*lines, "Invalid --begin specification"]), prog="sbatch",
                         code=255) from None
    spec["signal"] = _signal(opts.get("signal"))
    om = opts.get("open_mode")
    if om is not None and str(om) not in ("append", "truncate", "a", "t"):
        raise UsageError("Invalid --open-mode specification", prog="sbatch", code=255)
    spec["open_mode"] = "append" if str(om or "").startswith("a") else "truncate"
    spec["open_mode_set"] = om is not None
    array = opts.get("array")
    spec["array"] = str(array) if array is not None else None
    kill = opts.get("kill_on_invalid_dep")
    if kill is not None and str(kill).lower() not in ("yes", "no"):
        raise UsageError("Invalid --kill-on-invalid-dep specification", prog="sbatch", code=255)
    spec["kill_on_invalid_dep"] = kill is not None and str(kill).lower() == "yes"
    dep = opts.get("dependency")
    spec["dependency"] = str(dep) if dep else ""
    if spec["dependency"]:
        from .deps import parse_dependency

        try:
            parse_dependency(spec["dependency"])
        except InvalidValue:
            raise UsageError("Batch job submission failed: Job dependency problem",
                             prog="sbatch") from None
    workdir = opts.get("chdir")
    spec["workdir"] = _abs(str(workdir), cwd) if workdir else cwd
    spec["chdir_set"] = bool(workdir)
    spec["submit_dir"] = cwd
    spec["submit_host"] = submit_host
    name = opts.get("job_name")
    spec["name"] = str(name) if name else None  # resolved by the caller (script name/wrap)
    for key in ("output", "error", "input"):
        v = opts.get(key)
        spec[key] = str(v) if v else None
    spec["partition"] = str(opts["partition"]) if opts.get("partition") else None
    spec["account"] = str(opts.get("account") or "")
    spec["comment"] = str(opts.get("comment") or "")
    spec["constraint"] = str(opts.get("constraint") or "")
    spec["nodelist"] = _hosts(opts.get("nodelist"))
    spec["exclude"] = _hosts(opts.get("exclude"))
    spec["exclusive"] = bool(opts.get("exclusive"))
    from .cpubind import parse_cpu_bind

    spec["cpu_bind"] = parse_cpu_bind(opts.get("cpu_bind"))  # srun's; see cpubind
    spec["hold"] = bool(opts.get("hold"))
    spec["requeue"] = not bool(opts.get("no_requeue")) or bool(opts.get("requeue"))
    if opts.get("requeue") and opts.get("no_requeue"):
        spec["requeue"] = True
    spec["parsable"] = bool(opts.get("parsable"))
    for key in ("qos", "wckey", "reservation", "mail_user", "clusters", "ntasks_per_gpu"):
        spec[key] = str(opts.get(key) or "")
    from .mail import mail_user_error

    why = mail_user_error(spec["mail_user"])
    if why is not None:
        raise UsageError(f"Invalid --mail-user {spec['mail_user']!r}: {why} (give a user "
                         "name or an e-mail address)", prog="sbatch")
    mt = opts.get("mail_type")
    from .mail import format_mail_type, parse_mail_type

    mail: set[str] = set()
    for value in (mt if isinstance(mt, list) else [mt] if mt is not None else []):
        # parse_mail_type: unknown words are skipped, but one known word is
        # needed; each --mail-type adds to the others (sbatch ORs them)
        words = parse_mail_type(str(value))
        if words is None:
            raise UsageError("Invalid --mail-type specification", prog="sbatch", code=255)
        mail |= words
    # as scontrol prints it (SLURM's order, ALL spelled out); "" for none
    spec["mail_type"] = format_mail_type(mail) if mail else ""
    spec["export"] = str(opts.get("export") or "ALL")
    spec["argv"] = list(script_args)
    # the submitter's umask (sbatch records it as SLURM_UMASK): the job runs
    # with it, its output files sent home get its modes. Not in the job's
    # environment: SLURM 22.05's batch job has no SLURM_UMASK (oracle)
    spec["umask"] = _umask(env.get("SLURM_UMASK"))
    spec["env"] = _exported_env(spec["export"], env)
    return spec


def _umask(text: Optional[str]) -> Optional[int]:
    """``SLURM_UMASK`` (octal, "0022") as a number; None when absent or not a
    umask (slurmstepd's strtol would make garbage 0: no mask at all)."""
    if text and re.fullmatch(r"[0-7]{1,4}", text.strip()) and int(text, 8) <= 0o777:
        return int(text, 8)
    return None


def _abs(path: str, base: str) -> str:
    import posixpath

    return path if path.startswith("/") else posixpath.normpath(posixpath.join(base, path))


def _hosts(v: Any) -> list[str]:
    if not v:
        return []
    from .hostlist import expand

    out: list[str] = []
    for item in (v if isinstance(v, list) else [v]):
        try:
            out.extend(expand(str(item)))
        except InvalidValue:
            raise UsageError("Invalid node name specified", prog="sbatch") from None
    return out


_LOGIN_VARS = ("HOME", "USER", "LOGNAME", "SHELL", "MAIL")


def _passwd_login(user: str) -> dict[str, str]:
    """HOME and SHELL of ``user`` from the passwd database, as login sets them."""
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:  # no such user on this host: nothing to add
        return {}
    return {k: v for k, v in (("HOME", pw.pw_dir), ("SHELL", pw.pw_shell)) if v}


def _exported_env(export: str, env: Mapping[str, str]) -> dict[str, str]:
    """SLURM's --export: ALL (default), NONE, or [ALL,]VAR[=value],..."""
    # the submitter's own SLURM_* variables must not leak into a nested job
    clean = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    items = [i for i in export.split(",") if i]
    base: dict[str, str] = {}
    if not items or items[0].upper() == "ALL" or "ALL" in (i.upper() for i in items):
        base = dict(clean)
    else:
        # SLURM loads the user's login environment instead (--get-user-env)
        base = {k: env[k] for k in _LOGIN_VARS if k in env}
    for item in items:
        if item.upper() in ("ALL", "NONE", "NIL"):
            continue
        name, eq, value = item.partition("=")
        if not name:
            continue  # "=x": SLURM skips an item without a name
        if eq:
            base[name] = value
        elif name in env:
            base[name] = env[name]
    return base


def job_environment(spec: Mapping[str, Any], *, job_id: int, node: str, partition: str,
                    cluster: str, cpus: int, gpu_ids: list[int], user: str, uid: int,
                    array: Optional[Mapping[str, int]] = None, restart_count: int = 0,
                    name: str = "") -> dict[str, str]:
    """The environment of a batch job, as SLURM_COMPAT.md lists it."""
    env = dict(spec.get("env") or {})
    jid = str(job_id)
    s = {
        "SLURM_JOB_ID": jid, "SLURM_JOBID": jid,
        "SLURM_JOB_NAME": name,
        "SLURM_JOB_NODELIST": node, "SLURM_NODELIST": node,
        "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1",
        "SLURM_JOB_PARTITION": partition,
        "SLURM_SUBMIT_DIR": str(spec.get("submit_dir", "")),
        "SLURM_SUBMIT_HOST": str(spec.get("submit_host", "")),
        "SLURM_CPUS_ON_NODE": str(cpus),
        "SLURM_JOB_CPUS_PER_NODE": str(cpus),
        "SLURM_TASKS_PER_NODE": str(spec.get("ntasks", 1)),
        "SLURM_CLUSTER_NAME": cluster,
        "SLURMD_NODENAME": node,
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
        "SLURM_GTIDS": "0",
        "SLURM_JOB_UID": str(uid), "SLURM_JOB_USER": user,
        "SLURM_JOB_GID": str(spec.get("gid", uid)),
        "SLURM_PRIO_PROCESS": str(spec.get("prio_process") or 0),
        "SLURM_NODE_ALIASES": "(null)",
        "SLURM_TOPOLOGY_ADDR": node, "SLURM_TOPOLOGY_ADDR_PATTERN": "node",
        "HOSTNAME": node,
        "ENVIRONMENT": "BATCH",
    }
    # no accounting database: SLURM sets SLURM_JOB_QOS only with one, and
    # SLURM_JOB_ACCOUNT only for a job that has an account
    if spec.get("account"):
        s["SLURM_JOB_ACCOUNT"] = str(spec["account"])
    if spec.get("open_mode_set"):
        # as sbatch does: the job's sruns then open their files the same way
        s["SLURM_OPEN_MODE"] = "a" if spec.get("open_mode") == "append" else "t"
    export = str(spec.get("export") or "ALL")
    if export.upper() != "ALL":
        s["SLURM_EXPORT_ENV"] = export
        s["SLURM_GET_USER_ENV"] = "1"
        env.setdefault("USER", user)  # part of the login environment SLURM loads
        env.setdefault("LOGNAME", user)
        # a submitter without a login shell (a CI runner, cron) has no SHELL;
        # the login environment SLURM loads always does
        for name, value in _passwd_login(user).items():
            env.setdefault(name, value)
    env.setdefault("TMPDIR", "/tmp")
    if array:
        s["SLURM_ARRAY_JOB_ID"] = str(array["job_id"])
        s["SLURM_ARRAY_TASK_ID"] = str(array["task_id"])
        s["SLURM_ARRAY_TASK_MIN"] = str(array["min"])
        s["SLURM_ARRAY_TASK_MAX"] = str(array["max"])
        s["SLURM_ARRAY_TASK_COUNT"] = str(array["count"])
        s["SLURM_ARRAY_TASK_STEP"] = str(array["step"])
    if spec.get("ntasks_set"):
        s["SLURM_NTASKS"] = s["SLURM_NPROCS"] = str(spec["ntasks"])
    if spec.get("cpus_per_task_set"):
        s["SLURM_CPUS_PER_TASK"] = str(spec["cpus_per_task"])
    if spec.get("mem_mb") is not None:
        s["SLURM_MEM_PER_NODE"] = str(spec["mem_mb"])
    if spec.get("mem_per_cpu_mb") is not None:
        s["SLURM_MEM_PER_CPU"] = str(spec["mem_per_cpu_mb"])
    if spec.get("gpus"):
        s["SLURM_GPUS"] = str(spec["gpus"])
    if gpu_ids:
        s["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        s["SLURM_JOB_GPUS"] = s["CUDA_VISIBLE_DEVICES"]
    if restart_count:
        s["SLURM_RESTART_COUNT"] = str(restart_count)
    if spec.get("cpu_bind"):
        from .cpubind import bind_environment

        s.update(bind_environment(spec["cpu_bind"]))
    env.update(s)
    return env
