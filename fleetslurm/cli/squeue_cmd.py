"""``squeue``: pending, running and recently finished jobs."""

from __future__ import annotations

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


def main(argv: list[str], here=None) -> int:
    """squeue ``argv`` with what ``here`` (common.Here: this process's by
    default; a thin client's in the controller) gives."""
    from .common import read_command

    here, opts, positionals = read_command(PROG, argv, here)
    environ = here.environ
    if opts.get("version"):
        here.out("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if opts.get("help") or opts.get("usage"):
        here.out("Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]\n"
                 "              [-n name] [-o format] [-p partitions] [--qos qos]\n"
                 "              [--reservation reservation] [--sort fields] [--start]\n"
                 "              [--step step_id] [-t states] [-u user_name] [--usage]\n"
                 "              [-L licenses] [-w nodes] [--federation] [--local]\n"
                 "              [--sibling] [--json] [--yaml] [-ahjlrvV]\n")
        return 0
    if opts.get("json"):
        here.here_only("json")
        return _json()
    jobs = opts.get("jobs")
    if jobs is True and positionals:
        # squeue's -j takes the next word when it is not attached (like SLURM's)
        jobs = positionals.pop(0)
    if positionals:
        raise UsageError(f"Unrecognized option: {positionals[0]}", prog=PROG)
    query: dict = {"squeue": True, "group_arrays": not opts.get("array"), "steps": False}
    if jobs and jobs is not True:
        query["ids"] = _split(jobs)
    states = opts.get("states") or environ.get("SQUEUE_STATES")
    if states:
        query["states"] = parse_states(str(states))
    users = _split(opts["user"]) if opts.get("user") else []
    if not users and environ.get("SQUEUE_USERS"):
        users = _split(environ["SQUEUE_USERS"])
    if opts.get("me"):
        import pwd

        users.append(pwd.getpwuid(here.uid()).pw_name)
    if users:
        query["users"] = users
    if opts.get("name"):
        query["names"] = _split(opts["name"])
    parts = opts.get("partitions") or environ.get("SQUEUE_PARTITION")
    if parts:
        query["partitions"] = _split(parts)
    fmt, long = _format(opts, here.err)
    if opts.get("nodelist"):
        from ..slurm.hostlist import expand

        query["nodelist"] = expand(str(opts["nodelist"]))
    from .common import iterate_seconds

    iterate = iterate_seconds(opts.get("iterate"), "--iterate={}\n", PROG)
    header = not opts.get("noheader")
    # -l and -i print the time first, above the header (none with -h)
    dated = header and (opts.get("long") or iterate)
    if dated or iterate is not None:
        here.here_only("the local time" if dated else "iterate")
    # the controller sorts and renders (10,000 jobs cross the socket as text)
    query.update(format=fmt, format_long=long, header=header)
    while True:
        now = time.time()
        # a connection per report: the controller closes one idle for 60 s
        with here.client() as c:
            reply = c.call("squeue", **dict(query, now=now))
        if query.get("ids") and not reply["known"]:
            from ..errors import InvalidJobId

            raise InvalidJobId("slurm_load_jobs error: Invalid job id specified")
        text = (time.strftime("%a %b %d %H:%M:%S %Y\n", time.localtime(now))
                if dated else "") + reply["text"]
        if iterate is None:
            here.out(text)
            return 0
        here.out(text + "\n")
        sys.stdout.flush()
        time.sleep(iterate)


def _json() -> int:
    """``--json``: SLURM 22.05 lists every job then, whatever filter was given."""
    from ..slurm.json_fmt import squeue_json
    from .common import client

    now = time.time()
    with client() as c:
        records = c.call("jobs", squeue=True, group_arrays=True, steps=False)
    sys.stdout.write(squeue_json(records, now))
    return 0


def _format(opts: dict, err=None) -> "tuple[str, bool]":
    """The format for the controller and whether it is ``-O`` text: ``-o``,
    ``-O``, ``-l``'s or the default; invalid fields are reported here, as
    squeue does, before any output."""
    from ..slurm import squeue_fmt

    if opts.get("format") and opts.get("format_long"):
        raise UsageError("-o (--format) is incompatible with -O (--Format)", prog=PROG)
    if opts.get("format") and opts.get("long"):
        raise UsageError("fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
                         "Please remove one and retry.", prog=PROG)
    long = bool(opts.get("format_long"))
    if long:
        fmt = str(opts["format_long"])
    elif opts.get("format"):
        fmt = str(opts["format"])
    else:
        fmt = squeue_fmt.LONG_FORMAT if opts.get("long") else squeue_fmt.DEFAULT_FORMAT
    parsed = squeue_fmt.parse_format(squeue_fmt.long_format(fmt) if long else fmt)
    for text in squeue_fmt.format_warnings(parsed):
        (err or sys.stderr.write)(f"squeue: error: {text}\n")
    return fmt, long

