"""The launch spec (SPEC in ``protocol``): checked and normalized in the
agent, so a bad spec never forks. Standard library only."""
from __future__ import annotations

import os
import signal

try:
    import pwd
except ImportError:  # pragma: no cover - not on Linux
    pwd = None  # type: ignore[assignment]

from . import cpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

_OPEN_MODES = ("truncate", "append")


class UnknownUser(ValueError):
    """The job's user has no account on this machine: the job cannot run here
    as its user (the controller stops placing that user's jobs here)."""


def _opt_int(spec: Dict[str, Any], name: str, default: Optional[int] = None,
             minimum: int = 0) -> Optional[int]:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError("spec.%s must be an integer >= %d or null, got %r" % (name, minimum, value))
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise ValueError("%s must be a string without NUL bytes, got %r" % (what, value))
    return value


def validate_spec(spec: Any) -> Dict[str, Any]:
    """Return a normalized copy of a launch spec; raise ValueError on bad input."""
    if not isinstance(spec, dict):
        raise ValueError("spec must be a JSON object")
    out: Dict[str, Any] = {}
    out["script"] = spec.get("script")
    if not isinstance(out["script"], str) or not out["script"]:
        raise ValueError("spec.script must be a non-empty string")
    argv = spec.get("argv") or []
    if not isinstance(argv, list):
        raise ValueError("spec.argv must be a list of strings")
    out["argv"] = [a if isinstance(a, str) and "\0" not in a else _text(a, "spec.argv[%d]" % i)
                   for i, a in enumerate(argv)]
    env = spec.get("env")
    if env is None:
        env = dict(os.environ)
    if not isinstance(env, dict):
        raise ValueError("spec.env must be an object of string values")
    for k, v in env.items():
        if not isinstance(v, str) or "\0" in v:  # what _text says, formatted only then
            _text(v, "spec.env[%r]" % k)
        if not k or "=" in k or "\0" in k:
            raise ValueError("spec.env has an invalid variable name %r" % (k,))
    out["env"] = env
    out["cwd"] = _text(spec.get("cwd") or "/", "spec.cwd")
    out["stdin"] = _text(spec.get("stdin") or "/dev/null", "spec.stdin")
    out["stdin_stream"] = bool(spec.get("stdin_stream"))
    # a job srun made with one task: argv is the task, run as step 0 (no script)
    out["srun_direct"] = bool(spec.get("srun_direct"))
    out["stdout"] = _text(spec.get("stdout") or "/dev/null", "spec.stdout")
    out["stderr"] = _text(spec.get("stderr") or out["stdout"], "spec.stderr")
    # named in slurmstepd's "*** JOB 12 ON node01 CANCELLED AT ... ***" line
    out["node"] = _text(spec.get("node") or os.uname().nodename, "spec.node")
    out["job_id"] = _text(str(spec.get("job_id") or ""), "spec.job_id")
    mode = spec.get("open_mode") or "truncate"
    if mode not in _OPEN_MODES:
        raise ValueError("spec.open_mode must be one of %s, got %r" % (", ".join(_OPEN_MODES), mode))
    out["open_mode"] = mode
    out["time_limit_s"] = _opt_int(spec, "time_limit_s") or None  # 0 = unlimited, as SLURM
    out["kill_wait_s"] = _opt_int(spec, "kill_wait_s", 30)
    if out["kill_wait_s"] is None:
        out["kill_wait_s"] = 30
    out["mem_limit_mb"] = _opt_int(spec, "mem_limit_mb") or None  # 0 = unlimited, as SLURM
    out["umask"] = _opt_int(spec, "umask")
    if out["umask"] is not None and out["umask"] > 0o777:
        raise ValueError("spec.umask must be a file mode mask 0..0o777, got %o" % out["umask"])
    # bytes of output small enough to send home with the `ended` event
    out["inline_output"] = _opt_int(spec, "inline_output")
    # the job gets <jobdir>/stage: <workdir>/stage/<key> moved in (files the
    # controller put there before the launch), else an empty directory
    out["stage"] = bool(spec.get("stage", False))
    # SLURM's commands inside the job through this agent (``injob``)
    out["injob"] = bool(spec.get("injob", False))
    sig = spec.get("signal")
    if sig is not None:
        if not isinstance(sig, dict):
            raise ValueError("spec.signal must be {num, secs_before, batch_only} or null")
        num = _opt_int(sig, "num", minimum=1)
        if num is None or num >= signal.NSIG:
            raise ValueError("spec.signal.num must be a signal number 1..%d" % (signal.NSIG - 1))
        sig = {"num": num, "secs_before": _opt_int(sig, "secs_before", 0) or 0,
               "batch_only": bool(sig.get("batch_only", False))}
    out["signal"] = sig
    # CPUs given on this machine and whether to bind to them (see ``cpus``):
    # by default what the job's environment says, as SLURM's do
    out["cpus"] = _opt_int(spec, "cpus", minimum=1)
    if out["cpus"] is None:
        out["cpus"] = cpus.job_cpus(env)
    bind = spec.get("cpu_bind")
    if bind is None:
        bind = "none" if cpus.unbound(env) else "cores"
    if bind not in ("none", "cores"):
        raise ValueError("spec.cpu_bind must be \"cores\" or \"none\", got %r" % (bind,))
    out["cpu_bind"] = bind
    # seconds between the supervisor's samples of the job's use (``sampling``)
    sample_s = spec.get("sample_s")
    if sample_s is not None and (isinstance(sample_s, bool)
                                 or not isinstance(sample_s, (int, float))
                                 or not 0.2 <= sample_s <= 3600):
        raise ValueError("spec.sample_s must be a number of seconds from 0.2 to 3600, got %r"
                         % (sample_s,))
    out["sample_s"] = sample_s
    out["uid"] = _opt_int(spec, "uid")
    out["gid"] = _opt_int(spec, "gid")
    out["user"] = None
    user = spec.get("user")
    if user is not None:
        if not isinstance(user, str) or not user or "\0" in user or "/" in user:
            raise ValueError("spec.user must be a user name, got %r" % (user,))
        if os.geteuid() == 0:
            # as slurmd: the job's user is looked up on this machine by name
            # (uids need not agree between machines), never run as another
            try:
                pw = pwd.getpwnam(user) if pwd is not None else None
            except KeyError:
                pw = None
            if pw is None:
                raise UnknownUser("user %s is unknown on machine %s (host %s): the job "
                                 "cannot run there as its user"
                                 % (user, out["node"], os.uname().nodename))
            if pw.pw_uid != 0:
                out["uid"], out["gid"], out["user"] = pw.pw_uid, pw.pw_gid, user
                out["home"] = pw.pw_dir
            else:
                out["uid"] = out["gid"] = None
        # an agent that is not root runs every job as itself, as it always did
    if os.geteuid() != 0:
        if out["uid"] not in (None, os.getuid()) or out["gid"] not in (None, os.getgid()):
            raise ValueError("cannot run the job as uid %s gid %s: the agent runs as uid %d, "
                             "not root" % (out["uid"], out["gid"], os.getuid()))
        out["uid"] = out["gid"] = None
    return out
