"""``squeue``'s common calls without the option machinery.

Client libraries poll ``squeue`` in loops (``squeue``, ``squeue -h -u USER
-o FMT``, ``squeue -j IDS``), and every call paid for importing SLURM's
option tables, the environment rules and the formats (some 6 ms of a 30 ms
call). A command line made only of the options below, spelled the plain
way, with no ``SQUEUE_*`` (or ``SLURM_CLUSTERS``) variable set, is read here
instead and sent as the same request; anything else returns None and goes
the full way (``squeue_cmd``). Output and errors are the full path's own:
the same request, the same functions for ``-t`` and ``-o`` (imported only
when given), the same error handling (``common.run``);
``tests/test_shims_fast.py`` runs both paths side by side.

``FLEETSLURM_NO_FAST_PATH=1`` turns it off.
"""

from __future__ import annotations

import os
import sys

__all__ = ["squeue"]

#: flags (no value) -> the dest they set
_FLAGS = {"-h": "noheader", "--noheader": "noheader", "--me": "me", "-r": "array",
          "--array": "array"}
#: options with a required value, as a separate word (-u X) or --long=X
_VALUED = {"-u": "user", "--user": "user", "--users": "user", "-t": "states",
           "--states": "states", "-o": "format", "--format": "format", "-j": "jobs",
           "--jobs": "jobs"}


def _parse(argv: list[str]) -> "dict | None":
    """``{dest: value}`` for a plain command line, else None (the full path)."""
    opts: dict = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _FLAGS:
            opts[_FLAGS[word]] = True
            i += 1
            continue
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
            if name not in _VALUED or not name.startswith("--") or not value:
                return None
            opts[_VALUED[name]] = value
            i += 1
            continue
        # -u X, -t X, -o X: the next word, whatever it is (getopt's rule for a
        # required value); -j's value is optional: only a next word that is no option
        if word in ("-u", "-t", "-o", "-j") and i + 1 < len(argv):
            value = argv[i + 1]
            if not value or (word == "-j" and value.startswith("-")):
                return None
            opts[_VALUED[word]] = value
            i += 2
            continue
        return None
    return opts


def squeue(argv: list[str]) -> "int | None":
    """Run ``squeue argv`` the fast way; None when the full path must."""
    if os.environ.get("FLEETSLURM_NO_FAST_PATH") or os.environ.get("SLURM_CLUSTERS") or any(
            k.startswith("SQUEUE_") for k in os.environ):
        return None
    opts = _parse(argv)
    if opts is None:
        return None
    from .common import run

    return run("squeue", lambda _: _squeue(opts), argv)


def _squeue(opts: dict) -> int:
    import time

    from .squeue_cmd import _split, parse_states

    query: dict = {"squeue": True, "group_arrays": not opts.get("array"), "steps": False}
    if opts.get("jobs"):
        query["ids"] = _split(opts["jobs"])
    if opts.get("states"):
        query["states"] = parse_states(str(opts["states"]))
    users = _split(opts["user"]) if opts.get("user") else []
    if opts.get("me"):
        import pwd

        users.append(pwd.getpwuid(os.getuid()).pw_name)
    if users:
        query["users"] = users
    if opts.get("format") and _clean(str(opts["format"])):
        fmt = str(opts["format"])  # nothing to warn about: the controller renders it
    elif opts.get("format"):
        from .squeue_cmd import _format

        fmt, _long = _format({"format": opts["format"]})
    else:
        fmt = DEFAULT_FORMAT
    from .common import client

    header = not opts.get("noheader")
    query.update(format=fmt, format_long=False, header=header)
    now = time.time()
    with client() as c:
        reply = c.call("squeue", **dict(query, now=now))
    if query.get("ids") and not reply["known"]:
        from ..errors import InvalidJobId

        raise InvalidJobId("slurm_load_jobs error: Invalid job id specified")
    sys.stdout.write(reply["text"])
    return 0


#: squeue_fmt's ``-o`` field letters (tests/test_shims_fast.py checks they agree)
LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _clean(fmt: str) -> bool:
    """Whether the ``-o`` string has no field squeue warns about, split as
    squeue_fmt.parse_format splits it (``%[.][width]LETTER``), so that the
    format tables need not be imported to find out (some 4 ms)."""
    for token in fmt.split("%")[1:]:
        if not token:
            continue  # a run of '%' splits once (strtok)
        i = 1 if token[0] == "." else 0
        while i < len(token) and token[i].isdigit():
            i += 1
        if i >= len(token) or token[i] not in LETTERS:
            return False
    return True


#: squeue_fmt.DEFAULT_FORMAT (tests/test_shims_fast.py checks they agree)
DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
