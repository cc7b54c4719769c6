"""``sprio``: each pending job's priority factors, in SLURM 22.05's formats.

Options as SLURM's opts.c takes them: ``-l``, ``-o``, ``-u``, ``-j[list]``,
``-w``, ``-n``, ``-h``, ``-p``; ``SPRIO_FORMAT`` unless ``-o``/``-l``. With no
multifactor priority configured it says what the real sprio says under
``priority/basic`` and exits 1.
"""

from __future__ import annotations

import getopt
import os
import sys

from ..errors import UsageError
from .common import help_or_version

PROG = "sprio"

_SHORT = "hj::lM:no:S:p:u:vVw"
_LONG = ["noheader", "jobs=", "long", "cluster=", "clusters=", "norm", "format=", "sort=",
         "partition=", "user=", "users=", "verbose", "version", "weights", "help", "usage",
         "federation", "local", "sib", "sibling"]

NOT_MULTIFACTOR = ("You are not running a supported priority plugin\n(priority/basic).\n"
                   "Only 'priority/multifactor' is supported.\n")

HELP = """\
Usage: sprio [OPTIONS]
      --federation                display jobs in federation if a member of one
  -h, --noheader                  no headers on output
  -j, --jobs                      comma separated list of jobs
                                  to view, default is all
      --local                     display jobs on local cluster only
  -l, --long                      long report
  -M, --cluster=cluster_name      cluster to issue commands to.  Default is
                                  current cluster.  cluster with no name will
                                  reset to default.
                                  NOTE: SlurmDBD must be up.
  -n, --norm                      display normalized values
  -o, --format=format             format specification
      --sibling                   display job records separately for each federation cluster
  -p, --partition=partition_name  comma separated list of partitions
  -u, --user=user_name            comma separated list of users to view
  -v, --verbose                   verbosity level
  -V, --version                   output version information and exit
  -w, --weights                   show the weights for each priority factor

Help options:
  --help                          show this help message
  --usage                         display a brief summary of sprio options
"""

USAGE = """\
Usage: sprio [-j jid[s]] [-u user_name[s]] [-o format] [-p partitions]
   [--federation] [--local] [--sibling] [--usage] [-hlnvVw]
"""


def parse_args(argv: list[str]) -> dict:
    """Options as a dict; getopt's complaints in glibc's words."""
    from .sshare_cmd import glibc_message

    # getopt has no optional-argument short option: -j takes one only when glued (-j5)
    argv = ["--jobs=" + a[2:] if a.startswith("-j") and len(a) > 2 else
            ("--jobs=" if a == "-j" else a) for a in argv]
    try:
        opts, rest = getopt.gnu_getopt(argv, _SHORT.replace("j::", ""), _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(glibc_message(exc, argv), prog=PROG, hint=True) from None
    out: dict = {}
    for flag, value in opts:
        key = flag.lstrip("-")
        if key in ("h", "noheader"):
            out["noheader"] = True
        elif key == "jobs":
            out["jobs_flag"] = True
            if value:
                out["jobs"] = value
        elif key in ("l", "long"):
            out["long"] = True
        elif key in ("n", "norm"):
            out["norm"] = True
        elif key in ("o", "format"):
            out["format"] = value
        elif key in ("p", "partition"):
            out["partitions"] = [p for p in value.split(",") if p]
        elif key in ("u", "user", "users"):
            out["users"] = [u for u in value.split(",") if u]
        elif key in ("w", "weights"):
            out["weights"] = True
        elif key in ("V", "version"):
            out["version"] = True
        elif key in ("help", "usage"):
            out[key] = True
    if rest:
        if out.get("jobs_flag") and "jobs" not in out:
            out["jobs"], rest = rest[0], rest[1:]
        if rest:
            raise UsageError(f"error: Unrecognized option: {rest[0]}", prog=PROG)
    if out.get("long") and out.get("format"):
        raise UsageError("fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
                         "Please remove one and retry.", prog=PROG)
    return out


def _job_ids(text: str) -> set[int]:
    ids = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise UsageError(f"error: Invalid job id: {part}", prog=PROG)
        ids.add(int(part))
    return ids


def main(argv: list[str]) -> int:
    from ..slurm import sprio_fmt
    from .common import client

    opts = parse_args(argv)
    if help_or_version(opts, USAGE, HELP):
        return 0
    with client() as c:
        data = c.call("priorities")
        cluster = str(c.call("ping")["cluster"])
    if not data.get("enabled"):
        sys.stderr.write(NOT_MULTIFACTOR)
        return 1
    weights = data["weights"]
    jobs = data["jobs"]
    if opts.get("users"):
        jobs = [j for j in jobs if j["user"] in opts["users"]]
    if opts.get("jobs"):
        wanted = _job_ids(opts["jobs"])
        jobs = [j for j in jobs if j["job_id"] in wanted]
    if opts.get("partitions"):
        jobs = [j for j in jobs if j["partition"] in opts["partitions"]]
    if opts.get("format"):
        fmt = opts["format"]
    elif opts.get("long"):
        fmt = sprio_fmt.NORM_LONG_FORMAT if opts.get("norm") else sprio_fmt.LONG_FORMAT
    else:
        fmt = os.environ.get("SPRIO_FORMAT") or sprio_fmt.default_format(
            weights, bool(opts.get("users")), bool(opts.get("norm")))
    text, errors = sprio_fmt.render(fmt, sprio_fmt.sort_jobs(jobs), weights,
                                    header=not opts.get("noheader"),
                                    weights_line=bool(opts.get("weights")), cluster=cluster)
    for e in errors:
        sys.stderr.write(f"{PROG}: error: {e}\n")
    sys.stdout.write(text)
    return 0
