"""What fleetslurm does with each SLURM 22.05 option: the one table.

Every option of ``option_tables.TABLES`` has exactly one line here:

* ``yes``: implemented, as SLURM's option (a note says where it stops short);
* ``moot``: accepted and has no effect, because SLURM 22.05 itself does
  nothing different for it on a one-cluster, non-federated setup like
  fleetslurm's (the reason says why; e.g. ``--local`` when there is no
  federation);
* ``no``: refused: the command exits 1 with ``prog: error: fleetslurm does
  not support --OPTION``, never accepting and ignoring it.

Aliases (``--cluster``/``--clusters``, ``--nodes``/``--nodelist`` ...) share
their canonical option's line. ``docs/OPTIONS.md`` is generated from this
module (``python -m fleetslurm.slurm.option_support > docs/OPTIONS.md``), and
tests/test_option_support.py walks it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple, Optional

from fleetslurm.errors import UsageError
from fleetslurm.slurm.option_tables import TABLES, Opt

__all__ = ["Support", "SUPPORT", "support_of", "option_name", "refuse_unsupported",
           "STEP_OPTIONS", "refuse_for_step", "markdown"]

Status = Literal["yes", "moot", "no"]


class Support(NamedTuple):
    """One option's fate in fleetslurm, and why (for ``moot``, required)."""

    status: Status
    note: str = ""


# "name status [note...]": name is the option table's key (long name, or -X
# for a short-only option); the note of a refused option is the advice its
# message gives (default: leave it out).
_SBATCH = """
account yes the user's own account (one per user, named after the user), else refused as SLURM refuses an account without an association; any with accounting_storage_enforce "none"
acctg-freq no
array yes
batch no
begin yes
bb no
bbf no
cluster-constraint no
chdir yes
cluster yes only this fleet's own cluster name; another is refused as SLURM's database would
clusters yes only this fleet's own cluster name; another is refused as SLURM's database would
comment yes
container no
context no
contiguous no
constraint yes
core-spec no
cores-per-socket no
cpu-freq no
cpus-per-gpu yes
cpus-per-task yes
deadline no
delay-boot no
dependency yes
distribution no
error yes
exclude yes
exclusive yes the bare option only (--exclusive=user and =mcs are refused)
export yes
export-file no
extra-node-info no
get-user-env no
gid no
gpu-bind no
gpu-freq no
gpus yes
gpus-per-node yes
gpus-per-socket no
gpus-per-task yes
gres yes gpu only (gpu, gpu:N, gpu:type:N)
gres-flags no
help yes
hint no
hold yes
ignore-pbs moot fleetslurm never reads #PBS lines, which is all this option asks
input yes
job-name yes
kill-on-invalid-dep yes
licenses no
mail-type yes mail through the config's mail_prog (SLURM's MailProg, run as MailProg -s SUBJECT USER) with slurmctld's subject lines: BEGIN, END, FAIL, REQUEUE, INVALID_DEPEND, TIME_LIMIT_50/80/90, TIME_LIMIT, ARRAY_TASKS (STAGE_OUT is shown by scontrol but sends nothing: no burst buffers)
mail-user yes the mail's recipient (default: the job's owner), shown by scontrol
mcs-label no
mem yes
mem-bind no
mem-per-cpu yes
mem-per-gpu no
mincpus no
network no
nice yes
no-kill no
no-requeue yes
nodefile no
nodelist yes
nodes yes one node per job: -N 1 (or 1-N); more is refused at submission
ntasks yes
ntasks-per-core no
ntasks-per-gpu no
ntasks-per-node yes
ntasks-per-socket no
ntasks-per-tres no
open-mode yes
output yes
overcommit no
oversubscribe moot fleetslurm's partitions are OverSubscribe=NO (a CPU serves one job), where SLURM ignores the request too
parsable yes
partition yes
power no
prefer no
priority no
profile no
propagate no
qos yes the QOS must exist and its limits hold the job (QOSMaxJobsPerUserLimit...); with accounting_storage_enforce "none" any QOS is taken, as SLURM without accounting
quiet moot sbatch prints nothing -Q would silence (its job id line stays, as SLURM's)
reboot no
requeue yes
reservation no
signal yes
sockets-per-node no
spread-job no
switches no
tasks-per-node yes
test-only yes checks the job as a submission would and prints when and where it would start (backfill's estimate behind the queued jobs); nothing is submitted
thread-spec no
threads-per-core no
time yes
time-min no
tmp no
uid no
use-min-nodes moot a job has one node, so there is no node count range to minimise
verbose moot diagnostics only: fleetslurm's sbatch has no debug lines to add
version yes
usage yes
wait yes
wait-all-nodes no
wckey moot SLURM 22.05 without accounting (as here) records the wckey and enforces nothing; fleetslurm shows it
wrap yes
"""

# srun: sbatch's job options mean the same when srun makes a job (outside an
# allocation); srun's own options and those whose meaning differs follow.
_SRUN = """
accel-bind no
bcast no
bcast-exclude no
compress no
cpu-bind yes srun making its own job: none leaves the job unbound, any other type binds it to CPUs of its own (the machine picks the ids, as the default binding does); not for a step
cpu_bind yes srun making its own job: none leaves the job unbound, any other type binds it to CPUs of its own (the machine picks the ids, as the default binding does); not for a step
debugger-test no
disable-status no
epilog no
exact yes
het-group no
help yes
hold yes
immediate no
interactive no
jobid yes only the job srun runs in (SLURM_JOB_ID); another job is refused
kill-on-bad-exit yes
label yes
threads no
mpi no
msg-timeout no
multi-prog no run one srun per program
no-allocate no
overcommit yes
overlap yes steps of one job always share its CPUs, which is what --overlap asks
pack-group no
preserve-env no
prolog no
pty no run the command without a terminal (stdin and output are streamed all the same)
quit-on-interrupt yes
relative no
resv-ports no
send-libs no
slurmd-debug no
task-epilog no
task-prolog no
test-only no run sbatch --test-only with the same options for the expected start
unbuffered yes task output is passed on as it is written
usage yes
verbose moot diagnostics only: fleetslurm's srun has no debug lines to add
wait no
whole no
x11 no
cluster no
clusters no
quiet moot srun prints no informational lines for -Q to silence
"""

_SQUEUE = """
accounts no
all moot fleetslurm has no hidden partitions, so all partitions are shown anyway
array yes
array-unique no
Format yes
format yes
federation moot one cluster, no federation: the same jobs are shown
help yes
hide moot fleetslurm has no hidden partitions
iterate yes
jobs yes
local moot one cluster, no federation: the same jobs are shown
long yes
licenses no
cluster no
clusters no
me yes
name yes
noconvert no
node yes
nodes yes
nodelist yes
noheader yes
partitions yes
priority no
qos no
reservation no
sib moot one cluster, no federation: the same jobs are shown
sibling moot one cluster, no federation: the same jobs are shown
sort no
start no
steps no
states yes
usage yes
user yes
users yes
verbose moot diagnostics only: squeue's settings dump is not printed
version yes
json yes SLURM 22.05's OpenAPI v0.0.38 job list; as 22.05, every job whatever filter is given
yaml no use --json (the same records; fleetslurm does not write SLURM's YAML)
-U no
"""

_SINFO = """
all moot fleetslurm has no hidden partitions, so all partitions are shown anyway
dead no
exact no
federation moot one cluster, no federation: the same nodes are shown
help yes
hide moot fleetslurm has no hidden partitions
iterate yes
local moot one cluster, no federation: the same nodes are shown
long yes
cluster no
clusters no
nodes yes
noconvert no
noheader yes
Node yes
format yes
Format yes
partition yes
responding no
list-reasons yes
summarize yes
sort no
states yes
reservation no
usage yes
verbose moot diagnostics only: sinfo's settings dump is not printed
version yes
json yes SLURM 22.05's OpenAPI v0.0.38 node list; as 22.05, every node whatever filter is given
yaml no use --json (the same records; fleetslurm does not write SLURM's YAML)
"""

_SCANCEL = """
account no
batch yes
ctld moot fleetslurm's scancel always goes through its controller, which is what --ctld asks
full yes
help yes
hurry moot fleetslurm has no burst buffers, so there is no stage-out to skip
interactive no
cluster no
clusters no
jobname yes
me yes
name yes
nodelist no
partition yes
qos no
quiet no
reservation no
sibling no
signal yes
state yes
usage yes
user yes
verbose yes
version yes
wckey no
"""

_SACCT = """
allusers yes
accounts no
allocations yes
brief no
batch-script no
completion no
constraints no
delimiter no
duplicates no
federation moot one cluster, no federation: the same jobs are shown
helpformat yes
help-fields yes
endtime yes
env-vars no
file no
flags no
gid no
group no
help yes fleetslurm's own usage line (what it takes)
local moot one cluster, no federation: the same jobs are shown
name yes
nnodes no
ncpus no
jobs yes
timelimit-min no
timelimit-max no
long no
allclusters moot one cluster: all clusters are this one
cluster no
clusters no
nodelist no
noconvert no
units no
noheader yes
fields yes
format yes
parsable yes
parsable2 yes
qos no
partition yes
reason no
state yes
starttime yes
truncate no
uid yes
use-local-uid no
usage yes as --help
user yes
verbose moot diagnostics only: sacct's settings dump is not printed
version yes
wckeys no
whole-hetjob moot fleetslurm has no heterogeneous jobs, so there are no other components to show
associations no
json no SLURM 22.05 here cannot print it (its sacct needs an accounting database); use -P -o FIELDS
yaml no as --json; use -P -o FIELDS
-t yes
"""

_SCONTROL = """
all moot fleetslurm has no hidden partitions, so all partitions are shown anyway
cluster no
clusters no
details no
federation moot one cluster, no federation: the same records are shown
future moot fleetslurm has no FUTURE nodes
help yes fleetslurm's own usage lines (what it takes)
hide moot fleetslurm has no hidden partitions
local moot one cluster, no federation: the same records are shown
oneliner yes
quiet no
sibling moot one cluster, no federation: the same records are shown
uid no
usage yes as --help
verbose moot diagnostics only: scontrol prints no debug lines
version yes
"""


def _lines(text: str) -> dict[str, Support]:
    out: dict[str, Support] = {}
    for line in text.strip().splitlines():
        name, status, *note = line.split()
        assert status in ("yes", "moot", "no"), line
        out[name] = Support(status, " ".join(note))  # type: ignore[arg-type]
    return out


_SSTAT = """
allsteps yes
helpformat yes
help yes fleetslurm's own usage text (what it takes)
jobs yes
noheader yes
fields yes
format yes
noconvert yes
pidformat yes the Pids column holds nothing (the samples do not keep pids)
parsable yes
parsable2 yes
usage yes
verbose moot diagnostics only: sstat's settings dump is not printed
version yes
"""


def _srun() -> dict[str, Support]:
    own = _lines(_SRUN)
    batch = _lines(_SBATCH)
    out: dict[str, Support] = {}
    for opt in TABLES["srun"]:
        key = _key(opt)
        out[key] = own.get(key) or batch[key]
    return out


def _key(opt: Opt) -> str:
    return opt.long if opt.long is not None else "-" + str(opt.short)


#: prog -> {option table key: Support}
SUPPORT: dict[str, dict[str, Support]] = {
    "sbatch": _lines(_SBATCH),
    "srun": _srun(),
    "squeue": _lines(_SQUEUE),
    "sinfo": _lines(_SINFO),
    "scancel": _lines(_SCANCEL),
    "sacct": _lines(_SACCT),
    "scontrol": _lines(_SCONTROL),
    "sstat": _lines(_SSTAT),
}


def option_name(opt: Opt) -> str:
    """How messages and the docs name an option: ``--long``, or ``-X``."""
    return f"--{opt.long}" if opt.long is not None else f"-{opt.short}"


def support_of(prog: str, opt: Opt) -> Support:
    """The table's line for ``opt`` of ``prog``."""
    return SUPPORT[prog][_key(opt)]


def _canonical(prog: str) -> dict[str, Opt]:
    """dest -> the first option that sets it (what a message names)."""
    out: dict[str, Opt] = {}
    for opt in TABLES[prog]:
        out.setdefault(opt.dest, opt)
    return out


#: values of an implemented option that are not
_REFUSED_VALUES = {("sbatch", "exclusive"), ("srun", "exclusive")}


def refuse_unsupported(prog: str, opts: Mapping[str, object], *,
                       argv: Optional[Sequence[str]] = None,
                       environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise ``UsageError`` (exit 1) for the first option in ``opts`` (a
    parsed ``{dest: value}``) that fleetslurm does not support.

    With ``argv`` (the command line ``opts`` came from, which parses), the
    message names the option as it was spelled there (``--group``, not its
    alias ``--gid``); with ``environ``, an option that came from one of the
    command's input variables is named with it, so the user knows what to
    unset.
    """
    canonical = _canonical(prog)
    typed_dests: set[str] = set()
    if argv is not None:
        from fleetslurm.slurm.options import getopt

        pairs = getopt(prog, TABLES[prog], argv, posix_stop=prog in ("sbatch", "srun"))[0]
        for typed, _ in reversed(pairs):
            canonical[typed.dest] = typed
            typed_dests.add(typed.dest)
    for dest, value in opts.items():
        opt = canonical.get(dest)
        if opt is None:
            continue
        name = option_name(opt)
        line = support_of(prog, opt)
        advice = "leave it out (docs/OPTIONS.md lists what fleetslurm supports)"
        if line.status == "no":
            advice = line.note or advice
        elif (prog, dest) in _REFUSED_VALUES and value not in (True, None):
            name = f"{name}={value}"
        else:
            continue
        where = ""
        if environ is not None and dest not in typed_dests:
            from fleetslurm.slurm.option_env import ENV_VARS

            set_by = [var for var, d in ENV_VARS.get(prog, ()) if d == dest and var in environ]
            if set_by:
                where = f" (set by {set_by[0]} in the environment)"
        raise UsageError(f"fleetslurm does not support {name}{where}; {advice}",
                         prog=prog, code=1)


#: what srun inside an allocation (a job step) takes from its command line;
#: the job's own options there are refused (the step runs in the job as it is)
STEP_OPTIONS = frozenset({
    "ntasks", "cpus_per_task", "job_name", "output", "error", "input", "open_mode", "label",
    "unbuffered", "kill_on_bad_exit", "overcommit", "exact", "overlap", "quit_on_interrupt",
    "jobid", "help", "usage", "version", "verbose", "quiet"})


def refuse_for_step(opts: Mapping[str, object], argv: Sequence[str],
                    environ: Mapping[str, str]) -> None:
    """srun inside an allocation: refuse a job option given on its command
    line (``opts`` parsed from ``argv`` alone) unless it says what the job
    already is (``-N 1``, ``-p`` the job's own partition)."""
    import re

    from fleetslurm.slurm.options import getopt

    typed = {o.dest: o for o, _ in getopt("srun", TABLES["srun"], argv, posix_stop=True)[0]}
    for dest, value in opts.items():
        if dest in STEP_OPTIONS or dest not in typed:
            continue
        if dest == "nodes" and re.fullmatch(r"1(-\d+)?", str(value)):
            continue  # the job's one node
        if dest == "partition" and str(value) == environ.get("SLURM_JOB_PARTITION"):
            continue
        raise UsageError(f"fleetslurm does not support {option_name(typed[dest])} for a job "
                         "step (srun inside a job); give it to the job itself (sbatch) and "
                         "start the step without it", prog="srun", code=1)


def markdown() -> str:
    """docs/OPTIONS.md: one table per command, generated from SUPPORT."""
    words = {"yes": "implemented", "moot": "accepted, no effect", "no": "**refused**"}
    out = [
        "# SLURM options in fleetslurm",
        "",
        "Generated from `fleetslurm/slurm/option_support.py` by "
        "`python -m fleetslurm.slurm.option_support > docs/OPTIONS.md`; do not edit by hand.",
        "",
        "Every option of SLURM 22.05's sbatch, srun, squeue, sinfo, scancel, sacct, "
        "scontrol and sstat is one of:",
        "",
        "- **implemented**: works as SLURM's (a note says where it stops short);",
        "- **accepted, no effect**: SLURM 22.05 itself does nothing different for it on a "
        "one-cluster, non-federated setup like fleetslurm's (the note says why);",
        "- **refused**: the command exits 1 with "
        "`PROG: error: fleetslurm does not support --OPTION`.",
        "",
        "An option SLURM does not know gets SLURM's own (glibc's) complaint.",
        "",
    ]
    for prog in SUPPORT:
        counts = {k: 0 for k in words}
        rows = []
        for opt in TABLES[prog]:
            line = support_of(prog, opt)
            counts[line.status] += 1
            short = f"-{opt.short}" if opt.short and opt.long else ""
            rows.append(f"| `{option_name(opt)}` | {short and f'`{short}`'} | "
                        f"{words[line.status]} | {line.note} |")
        out += [f"## {prog}", "",
                f"{counts['yes']} implemented, {counts['moot']} accepted with no effect, "
                f"{counts['no']} refused.", ""]
        if prog == "srun":
            steps = ", ".join(f"`--{d.replace('_', '-')}`" for d in sorted(STEP_OPTIONS))
            out += ["The table is srun outside a job (it makes the job). Inside one (srun in "
                    "a batch script: a job step) only the step's options are taken from the "
                    f"command line: {steps}; `-N 1` and `-p` naming the job's own partition "
                    "are accepted, any other job option is refused.", ""]
        out += ["| option | short | in fleetslurm | note |", "|---|---|---|---|", *rows, ""]
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
