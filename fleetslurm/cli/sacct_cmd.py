"""``sacct``: accounting of finished and running jobs."""

from __future__ import annotations

import time

from ..errors import UsageError

PROG = "sacct"


def _flat(values: object) -> list[str]:
    if not values:
        return []
    items = values if isinstance(values, list) else [values]
    return [v for item in items for v in str(item).split(",") if v]

#: what fleetslurm's sacct takes (docs/OPTIONS.md lists every SLURM option)
USAGE = """\
Usage: sacct [-a] [-X] [-n] [-p | -P] [-j job(.step)[,...]] [-o field[,...]] [-e]
             [-S time] [-E time] [-s state[,...]] [-u user[,...]] [--name name[,...]]
             [-r partition[,...]] [-L] [-V]
"""


def main(argv: list[str], here=None) -> int:
    """sacct ``argv`` with what ``here`` (common.Here: this process's by
    default; a thin client's in the controller) gives."""
    from ..slurm import sacct_fmt
    from ..slurm.units import parse_datetime
    from .common import read_command

    here, opts, positionals = read_command(PROG, argv, here)
    environ = here.environ
    if opts.get("version"):
        here.out("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if opts.get("help") or opts.get("usage"):
        here.out(USAGE)
        return 0
    if positionals:
        raise UsageError(f"Unknown arguments: {' '.join(positionals)}", prog=PROG)
    if opts.get("helpformat"):
        names = list(sacct_fmt.FIELD_NAMES)
        for i in range(0, len(names), 6):
            here.out("".join(f"{n:<19}" for n in names[i:i + 6]).rstrip() + "\n")
        return 0
    spec = ",".join(_flat(opts.get("format"))) or environ.get("SACCT_FORMAT") \
        or sacct_fmt.DEFAULT_FIELDS
    fields = sacct_fmt.parse_fields(spec)
    now = time.time()
    ids = _flat(opts.get("jobs"))
    if opts.get("starttime") or opts.get("endtime") or not ids:
        here.here_only("the local time")  # -S, -E and the default start: the client's day
    query: dict = {"steps": True}
    try:
        if opts.get("starttime"):
            query["since"] = parse_datetime(str(opts["starttime"]), now)
        elif not ids:
            lt = time.localtime(now)
            query["since"] = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        if opts.get("endtime"):
            query["until"] = parse_datetime(str(opts["endtime"]), now)
    except ValueError as exc:
        raise UsageError(str(exc), prog=PROG) from None
    if ids:
        query["ids"] = ids
    states = _flat(opts.get("state"))
    if states:
        from .squeue_cmd import parse_states

        parsed = parse_states(",".join(states), PROG)
        if parsed != "all":
            query["states"] = parsed
    names = _flat(opts.get("name"))
    if names:
        query["names"] = names
    users = _flat(opts.get("user"))
    if not users and not opts.get("allusers") and here.uid() != 0:
        import pwd

        users = [pwd.getpwuid(here.uid()).pw_name]
    if users:
        query["users"] = users
    parts = _flat(opts.get("partition"))
    if parts:
        query["partitions"] = parts
    mode = "parsable2" if opts.get("parsable2") else "parsable" if opts.get("parsable") \
        else "fixed"
    # the controller renders the lines (SQLite writes them for the usual fields):
    # 100,000 jobs cross the socket as text, not as records
    query.update(fields=[[f.name, f.width, f.kind] for f in fields], mode=mode, now=now,
                 allocations_only=bool(opts.get("allocations")))
    with here.client() as c:
        text = c.call("acct", **query)["text"]
    here.out(sacct_fmt.render(fields, [], mode=mode, header=not opts.get("noheader")))
    here.out(text)
    return 0
