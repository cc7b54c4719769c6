"""``scancel``: cancel or signal jobs."""

from __future__ import annotations

import os
import sys

from ..errors import UsageError
from .common import help_or_version

PROG = "scancel"

#: SLURM 22.05's scancel --usage
USAGE = """\
Usage: scancel [-A account] [--batch] [--full] [--interactive] [-n job_name]
               [-p partition] [-Q] [-q qos] [-R reservation] [-s signal | integer]
               [-t PENDING | RUNNING | SUSPENDED] [--usage] [-u user_name]
               [--hurry] [-V] [-v] [-w hosts...] [--wckey=wckey]
               [job_id[_array_id][.step_id]]
"""


def main(argv: list[str]) -> int:
    from ..slurm.jobspec import parse_signal_name
    from ..slurm.option_env import command_options
    from .squeue_cmd import parse_states

    opts, ids = command_options(PROG, argv, os.environ)
    from ..slurm.option_support import refuse_unsupported

    refuse_unsupported(PROG, opts, argv=argv, environ=os.environ)
    if help_or_version(opts, USAGE):
        return 0
    request: dict = {"ids": ids, "verbose": bool(opts.get("verbose"))}
    if opts.get("signal"):
        try:
            request["signal"] = parse_signal_name(str(opts["signal"]))
        except ValueError:
            sys.stderr.write(f"Unknown job signal: {opts['signal']}\n")  # SLURM's, bare
            return 1
    request["batch"] = bool(opts.get("batch"))
    request["full"] = bool(opts.get("full"))
    users = [u for u in str(opts.get("user") or "").split(",") if u]
    if opts.get("me"):
        import pwd

        users.append(pwd.getpwuid(os.getuid()).pw_name)
    if users:
        request["users"] = users
    if opts.get("name"):
        request["name"] = str(opts["name"]).split(",")
    if opts.get("state"):
        states = parse_states(str(opts["state"]), PROG)
        if states != "all":
            request["states"] = states
    if opts.get("partition"):
        request["partition"] = str(opts["partition"]).split(",")
    filtered = any(k in request for k in ("users", "name", "states", "partition"))
    if not ids and not filtered:
        raise UsageError("No job identification provided", prog=PROG)
    for text in ids:
        import re

        if not re.fullmatch(r"\d+(_(\d+|\[[0-9,\-:%]+\]))?(\.\w+)?", text):
            raise UsageError(f"Invalid job id {text}", prog=PROG)
    from .common import client, warn

    with client() as c:
        reply = c.call("cancel", **request)
    for message in reply["errors"]:
        warn(PROG, message)
    return int(reply.get("code", 1)) if reply["failed"] else 0
