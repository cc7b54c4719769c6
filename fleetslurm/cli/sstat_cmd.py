"""``sstat``: a running job's resource use, from its supervisor's samples
(``node/agent/sampling.py``), in SLURM 22.05's shapes.

``-j JOB[.STEP][,...]`` (also repeated, or as words after the options), ``-a``,
``-o/--format``, ``-n``, ``-p``, ``-P``, ``--noconvert``, ``-e``. As SLURM's:
the header comes first, a job that is not running is a message on stderr
(``No steps running for job N``, ``StepId=N.batch not found running.``) and
exit 0; a malformed id is ``fatal`` and exit 1.

Steps: ``N.batch`` is the whole run (the batch script and every srun
step's tasks); ``N.S`` is the srun step's tasks (the process groups srun
registered under the step's id and each task's rank), with SLURM's per-task
figures (MaxRSS and MaxRSSTask, MinCPU, AveRSS over the tasks...).
"""

from __future__ import annotations

import os
import re
import sys

from ..errors import UsageError
from .common import help_or_version

PROG = "sstat"

USAGE = "Usage: sstat [options] -j <job(.stepid)>\n\tUse --help for help\n"
HELP = """\
sstat [<OPTION>] -j <job(.stepid)>
    Valid <OPTION> values are:
      -a, --allsteps:  Print all steps for the given job(s) when no step is
                       specified.
      -e, --helpformat: Print a list of fields that can be specified with the
                       '--format' option
      -h, --help:      Print this description of use.
      -i, --pidformat: Predefined format to list the pids running for each
                       job step.  (JobId,Nodes,Pids)
      -j, --jobs:      Format is <job(.step)>. Stat this job step or
                       comma-separated list of job steps. This option is
                       required.
      -n, --noheader:  No header will be added to the beginning of output.
      --noconvert:     Don't convert units from their original type
                       (e.g. 2048M won't be converted to 2G).
      -o, --format:    Comma separated list of fields. (use "--helpformat"
                       for a list of available fields).
      -p, --parsable:  output will be '|' delimited with a '|' at the end
      -P, --parsable2: output will be '|' delimited without a '|' at the end
      --usage:         Display brief usage message.
      -V, --version:   Print version.
"""

_ID_RE = re.compile(r"(\d+)(?:_(\d+))?(?:\.(batch|extern|\d+))?\Z")


def parse_args(argv: list[str]) -> dict:
    """Options as a dict (SLURM's getopt table, ``option_tables.SSTAT``;
    refused ones refused, ``option_support``); job ids given after the
    options count as ``-j``'s."""
    from ..slurm.option_env import command_options
    from ..slurm.option_support import refuse_unsupported

    try:
        opts, positionals = command_options(PROG, argv, os.environ)
    except UsageError as exc:
        if not exc.hint:
            raise
        # getopt's complaint, without the 'Try "sstat --help"' line: sstat has none
        raise UsageError(f"{PROG}: {exc}", prog=PROG) from None
    refuse_unsupported(PROG, opts, argv=argv, environ=os.environ)
    out: dict = {"jobs": [], "format": [str(f) for f in _list(opts.get("format"))]}
    for value in [*_list(opts.get("jobs")), *positionals]:
        out["jobs"].extend(w for w in str(value).split(",") if w)
    if opts.get("pidformat"):
        out["format"].append("JobID,Nodelist,Pids")
    if opts.get("parsable2"):
        out["mode"] = "parsable2"
    elif opts.get("parsable"):
        out["mode"] = "parsable"
    for dest in ("allsteps", "helpformat", "help", "noheader", "noconvert", "usage",
                 "version"):
        if opts.get(dest):
            out[dest] = True
    return out


def _list(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def main(argv: list[str]) -> int:
    from ..slurm import sacct_fmt, sstat_fmt
    from .common import client

    opts = parse_args(argv)
    if help_or_version(opts, USAGE, HELP):
        return 0
    if opts.get("helpformat"):
        names = sstat_fmt.FIELD_NAMES  # in its table's order, four a line
        for i in range(0, len(names), 4):
            sys.stdout.write(" ".join(f"{n:<19}" for n in names[i:i + 4]) + "\n")
        return 0
    if not opts["jobs"]:
        raise UsageError("error: You didn't give me any jobs to stat.", prog=PROG)
    wanted = []
    for word in opts["jobs"]:
        m = _ID_RE.match(word)
        if m is None:
            raise UsageError(f"fatal: Bad job/step specified: {word}", prog=PROG)
        wanted.append((word.split(".")[0], m.group(3)))
    fields = sstat_fmt.parse_fields(",".join(opts["format"]) or sstat_fmt.DEFAULT_FIELDS)
    mode = opts.get("mode", "fixed")
    sys.stdout.write(sacct_fmt.render(fields, [], mode=mode, header=not opts.get("noheader")))
    rows, errors = [], []
    with client() as c:
        for job, step in wanted:
            reply = c.call("usage", id=job)
            rows_here, errs = _rows(job, step, reply, bool(opts.get("allsteps")),
                                    not opts.get("noconvert"))
            rows += rows_here
            errors += errs
    sys.stdout.write(sacct_fmt.render(fields, rows, mode=mode, header=False))
    sys.stdout.flush()
    for e in errors:
        sys.stderr.write(f"{PROG}: error: {e}\n")
    return 0


def _rows(job: str, step: "str | None", reply: dict, allsteps: bool,
          convert: bool) -> tuple[list[dict], list[str]]:
    """sstat's rows for one ``-j`` entry, and its error lines (SLURM's words)."""
    from ..slurm import sstat_fmt

    if not reply.get("known"):
        return [], [f"couldn't get steps for job {job}"]
    rows: list[dict] = []
    errors: list[str] = []
    for task in reply["tasks"]:
        jid = str(task["task_id"])
        running = task["state"] == "RUNNING" and task["run_key"]
        if not running:
            errors.append(f"StepId={jid}.{step} not found running." if step
                          else f"No steps running for job {jid}")
            continue
        steps = {s["step"]: s for s in task["steps"]}

        def row(step_name: str) -> dict:
            if task.get("denied"):
                # another user's job: slurmd's refusal, and no row
                errors.extend([f"slurm_job_step_stat: there was an error with the request to "
                               f"{task['node']} rc = Invalid user id",
                               f"problem getting step_layout for StepId={jid}.{step_name}: "
                               "Invalid user id"])
                return {}
            rec = steps.get(step_name) or {}
            samples = (task.get("samples") if step_name == "batch" else rec.get("samples")) or {}
            point = (samples.get("points") or [None])[-1]
            return sstat_fmt.step_row(f"{jid}.{step_name}", task["node"] or "", point,
                                      samples.get("max_rss_kb"), samples.get("max_vsize_kb"),
                                      ntasks=int(rec.get("ntasks") or 1), convert=convert,
                                      tasks=samples.get("tasks"))

        sruns = [s["step"] for s in task["steps"]
                 if s["step"].isdigit() and s["state"] == "RUNNING"]
        if step == "batch":
            rows.append(row("batch"))
        elif step is not None:
            if step in sruns:
                rows.append(row(step))
            else:
                errors.append(f"StepId={jid}.{step} not found running.")
        elif allsteps:
            rows.append(row("batch"))
            rows += [row(s) for s in sorted(sruns, key=int)]
        elif sruns:
            # SLURM's default: the lowest numbered running step (not batch)
            rows.append(row(min(sruns, key=int)))
    return [r for r in rows if r], errors
