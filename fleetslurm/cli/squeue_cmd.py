"""``squeue``: pending, running and recently finished jobs."""

from __future__ import annotations

import os
import sys
import time

from ..errors import UsageError

PROG = "squeue"


def _split(value: object) -> list[str]:
    return [v for v in str(value).split(",") if v]


def parse_states(text: str, prog: str = PROG) -> "list[str] | str":
    from ..model import JobState

    if text.strip().lower() == "all":
        return "all"
    out = []
    for item in _split(text):
        try:
            out.append(JobState.parse(item).value)
        except ValueError:
            raise UsageError(
                f"Invalid job state specified: {item}\n"
                "Valid job states include: PENDING,RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,"
                "TIMEOUT,NODE_FAIL,PREEMPTED,BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,COMPLETING,"
                "CONFIGURING,RESIZING,RESV_DEL_HOLD,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,"
                "SIGNALING,SPECIAL_EXIT,STAGE_OUT,STOPPED\n", prog=prog) from None
    return out


def main(argv: list[str]) -> int:
    from ..slurm.option_env import command_options

    opts, positionals = command_options(PROG, argv, os.environ)
    if opts.get("version"):
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if opts.get("help") or opts.get("usage"):
        sys.stdout.write("Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]\n"
                         "              [-n name] [-o format] [-p partitions] [--qos qos]\n"
                         "              [--reservation reservation] [--sort fields] [--start]\n"
                         "              [--step step_id] [-t states] [-u user_name] [--usage]\n"
                         "              [-L licenses] [-w nodes] [--federation] [--local]\n"
                         "              [--sibling] [--json] [--yaml] [-ahjlrvV]\n")
        return 0
    jobs = opts.get("jobs")
    if jobs is True and positionals:
        # squeue's -j takes the next word when it is not attached (like SLURM's)
        jobs = positionals.pop(0)
    if positionals:
        raise UsageError(f"Unrecognized option: {positionals[0]}", prog=PROG)
    query: dict = {"squeue": True, "group_arrays": not opts.get("array"), "steps": False}
    if jobs and jobs is not True:
        query["ids"] = _split(jobs)
    states = opts.get("states") or os.environ.get("SQUEUE_STATES")
    if states:
        query["states"] = parse_states(str(states))
    users = _split(opts["user"]) if opts.get("user") else []
    if not users and os.environ.get("SQUEUE_USERS"):
        users = _split(os.environ["SQUEUE_USERS"])
    if opts.get("me"):
        import pwd

        users.append(pwd.getpwuid(os.getuid()).pw_name)
    if users:
        query["users"] = users
    if opts.get("name"):
        query["names"] = _split(opts["name"])
    parts = opts.get("partitions") or os.environ.get("SQUEUE_PARTITION")
    if parts:
        query["partitions"] = _split(parts)
    from ..slurm import squeue_fmt

    fmt = str(opts.get("format") or squeue_fmt.DEFAULT_FORMAT)
    for text in squeue_fmt.format_warnings(squeue_fmt.parse_format(fmt)):
        sys.stderr.write(f"squeue: error: {text}\n")
    if opts.get("nodelist"):
        from ..slurm.hostlist import expand

        query["nodelist"] = expand(str(opts["nodelist"]))
    # the controller sorts and renders (10,000 jobs cross the socket as text)
    query.update(format=fmt, header=not opts.get("noheader"), now=time.time())
    from .common import client

    with client() as c:
        reply = c.call("squeue", **query)
    if query.get("ids") and not reply["known"]:
        from ..errors import InvalidJobId

        raise InvalidJobId("slurm_load_jobs error: Invalid job id specified")
    sys.stdout.write(reply["text"])
    return 0
