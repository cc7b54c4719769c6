"""SLURM 22.05's command-line option tables for sbatch, srun, squeue, sinfo,
scancel, sacct, scontrol and sstat, in SLURM's own order (glibc lists ambiguous abbreviations in
table order, so the order is part of the contract).

Dumped from Debian's slurm-wlm 22.05.8 binaries by wrapping ``getopt_long``
(LD_PRELOAD) and printing the ``struct option`` array and optstring each
command passes; sbatch and srun build theirs from ``common_options`` in
``src/common/slurm_opt.c``, the others from ``long_options[]`` in their
``opts.c``/``opt.c``/``options.c``.

Spec lines read ``long short kind [dest] [+]``: ``-`` for no long or short
spelling; kind ``=`` required argument, ``.`` none, ``?`` optional; dest
defaults to the long name with ``-`` turned into ``_`` (aliases share their
canonical option's dest); ``+`` marks options SLURM accumulates: a flag becomes
a count (``-v``), an argument a list (``--mail-type``, sacct's selectors).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["Opt", "SBATCH", "SRUN", "SQUEUE", "SINFO", "SCANCEL", "SACCT", "SCONTROL", "SSTAT",
           "TABLES"]


class Opt(NamedTuple):
    """One option as ``getopt_long`` sees it.

    ``long`` is None for SLURM's few short-only options (squeue ``-U``, sacct
    ``-t``). ``append`` on an ``arg="none"`` option means a count (``-vvv``),
    on an argument option a list of every value given.
    """

    long: str | None
    short: str | None
    arg: Literal["required", "none", "optional"]
    dest: str
    append: bool = False

_KINDS = {"=": "required", ".": "none", "?": "optional"}


def _specs(text: str) -> dict[str, Opt]:
    """Parse spec lines into ``{long or -short: Opt}``, keeping their order."""
    out: dict[str, Opt] = {}
    for line in text.strip().splitlines():
        long, short, kind, *extra = line.split()
        append = "+" in extra
        names = [word for word in extra if word != "+"]
        opt = Opt(
            long=None if long == "-" else long,
            short=None if short == "-" else short,
            arg=_KINDS[kind],  # type: ignore[arg-type]
            dest=names[0] if names else long.replace("-", "_"),
            append=append,
        )
        out[long if long != "-" else "-" + short] = opt
    return out


def _ordered(specs: dict[str, Opt], order: str) -> tuple[Opt, ...]:
    return tuple(specs[name] for name in order.split())


_BATCH_SPECS = """
account                A =
acctg-freq             - =
array                  a =
batch                  - =
begin                  b =
bb                     - =
bbf                    - =
cluster-constraint     - =
chdir                  D =
cluster                - = clusters
clusters               M =
comment                - =
container              - =
context                - =
contiguous             - .
constraint             C =
core-spec              S =
cores-per-socket       - =
cpu-freq               - =
cpus-per-gpu           - =
cpus-per-task          c =
deadline               - =
delay-boot             - =
dependency             d =
distribution           m =
error                  e =
exclude                x =
exclusive              - ?
export                 - =
export-file            - =
extra-node-info        B =
get-user-env           - ?
gid                    - =
gpu-bind               - =
gpu-freq               - =
gpus                   G =
gpus-per-node          - =
gpus-per-socket        - =
gpus-per-task          - =
gres                   - =
gres-flags             - =
help                   h .
hint                   - =
hold                   H .
ignore-pbs             - .
input                  i =
job-name               J =
kill-on-invalid-dep    - =
licenses               L =
mail-type              - = +
mail-user              - =
mcs-label              - =
mem                    - =
mem-bind               - =
mem-per-cpu            - =
mem-per-gpu            - =
mincpus                - =
network                - =
nice                   - ?
no-kill                k ?
no-requeue             - .
nodefile               F =
nodelist               w =
nodes                  N =
ntasks                 n =
ntasks-per-core        - =
ntasks-per-gpu         - =
ntasks-per-node        - =
ntasks-per-socket      - =
ntasks-per-tres        - =
open-mode              - =
output                 o =
overcommit             O .
oversubscribe          s .
parsable               - .
partition              p =
power                  - =
prefer                 - =
priority               - =
profile                - =
propagate              - ?
qos                    q =
quiet                  Q .
reboot                 - .
requeue                - .
reservation            - =
signal                 - =
sockets-per-node       - =
spread-job             - .
switches               - =
tasks-per-node         - = ntasks_per_node
test-only              - .
thread-spec            - =
threads-per-core       - =
time                   t =
time-min               - =
tmp                    - =
uid                    - =
use-min-nodes          - .
verbose                v . +
version                V .
usage                  - .
wait                   W .
wait-all-nodes         - =
wckey                  - =
wrap                   - =
"""

# srun: options sbatch lacks, and those srun spells differently
_SRUN_SPECS = """
accel-bind             - =
bcast                  - ?
bcast-exclude          - =
compress               - ?
cpu-bind               - =
cpu_bind               - =
debugger-test          - .
disable-status         X .
epilog                 - =
exact                  - .
het-group              - =
immediate              I ?
interactive            - .
jobid                  - =
kill-on-bad-exit       K ?
label                  l .
threads                T =
mpi                    - =
msg-timeout            - =
multi-prog             - .
no-allocate            Z .
overlap                - ?
pack-group             - = het_group
preserve-env           E .
prolog                 - =
pty                    - .
quit-on-interrupt      - .
relative               r =
resv-ports             - ?
send-libs              - ?
slurmd-debug           - =
task-epilog            - =
task-prolog            - =
unbuffered             u .
wait                   W =
whole                  - .
x11                    - ?
"""

_SRUN_ORDER = """
accel-bind account acctg-freq bcast bcast-exclude begin bb bbf cluster-constraint chdir cluster
clusters comment compress container context contiguous constraint core-spec cores-per-socket
cpu-bind cpu_bind cpu-freq cpus-per-gpu cpus-per-task deadline debugger-test delay-boot
dependency disable-status distribution epilog error exact exclude exclusive export
extra-node-info gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres
gres-flags help het-group hint hold immediate input interactive jobid job-name kill-on-bad-exit
label licenses mail-type mail-user threads mcs-label mem mem-bind mem-per-cpu mem-per-gpu
mincpus mpi msg-timeout multi-prog network nice no-allocate no-kill nodefile nodelist nodes
ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres
open-mode output overcommit overlap oversubscribe pack-group partition power prefer preserve-env
priority profile prolog propagate pty qos quiet quit-on-interrupt reboot relative reservation
resv-ports send-libs signal slurmd-debug sockets-per-node spread-job switches task-epilog
task-prolog tasks-per-node test-only thread-spec threads-per-core time time-min tmp uid
unbuffered use-min-nodes verbose version usage wait wckey whole x11
"""

_SQUEUE_SPECS = """
accounts               A =
all                    a .
array                  r .
array-unique           - .
Format                 O = format_long
format                 o =
federation             - .
help                   - .
hide                   - .
iterate                i =
jobs                   j ?
local                  - .
long                   l .
licenses               L =
cluster                M = clusters
clusters               M =
me                     - .
name                   n =
noconvert              - .
node                   w = nodelist
nodes                  w = nodelist
nodelist               w =
noheader               h .
partitions             p =
priority               P .
qos                    q =
reservation            R =
sib                    - . sibling
sibling                - .
sort                   S =
start                  - .
steps                  s ?
states                 t =
usage                  - .
user                   u =
users                  u = user
verbose                v . +
version                V .
json                   - .
yaml                   - .
-                      U = accounts
"""

_SINFO_SPECS = """
all                    a .
dead                   d .
exact                  e .
federation             - .
help                   - .
hide                   - .
iterate                i =
local                  - .
long                   l .
cluster                M = clusters
clusters               M =
nodes                  n =
noconvert              - .
noheader               h .
Node                   N . node_oriented
format                 o =
Format                 O = format_long
partition              p =
responding             r .
list-reasons           R .
summarize              s .
sort                   S =
states                 t =
reservation            T .
usage                  - .
verbose                v . +
version                V .
json                   - .
yaml                   - .
"""

_SCANCEL_SPECS = """
account                A =
batch                  b .
ctld                   - .
full                   f .
help                   - .
hurry                  H .
interactive            i .
cluster                M = clusters
clusters               M =
jobname                n = name
me                     - .
name                   n =
nodelist               w =
partition              p =
qos                    q =
quiet                  Q .
reservation            R =
sibling                - =
signal                 s =
state                  t =
usage                  - .
user                   u =
verbose                v . +
version                V .
wckey                  - =
"""

_SACCT_SPECS = """
allusers               a .
accounts               A = +
allocations            X .
brief                  b .
batch-script           B .
completion             c .
constraints            C = +
delimiter              - =
duplicates             D .
federation             - .
helpformat             e .
help-fields            e . helpformat
endtime                E =
env-vars               - .
file                   f =
flags                  F =
gid                    g = +
group                  g = gid +
help                   h .
local                  - .
name                   - = +
nnodes                 i =
ncpus                  I =
jobs                   j = +
timelimit-min          k =
timelimit-max          K =
long                   l .
allclusters            L .
cluster                M = clusters +
clusters               M = +
nodelist               N =
noconvert              - .
units                  - =
noheader               n .
fields                 o = format +
format                 o = +
parsable               p .
parsable2              P .
qos                    q = +
partition              r = +
reason                 - = +
state                  s = +
starttime              S =
truncate               T .
uid                    u = user +
use-local-uid          - .
usage                  U .
user                   u = +
verbose                v . +
version                V .
wckeys                 W = +
whole-hetjob           - ?
associations           x = +
json                   - .
yaml                   - .
-                      t . allocations
"""

# scontrol's long_options[] (src/scontrol/scontrol.c); checked against the
# 22.05 binary's ambiguity messages ('--u': '--uid' '--usage'; '--h': '--help'
# '--hide'; '--f': '--federation' '--future'). 22.05's scontrol has no --json.
_SCONTROL_SPECS = """
all                    a .
cluster                M = clusters
clusters               M =
details                d .
federation             - .
future                 F .
help                   h .
hide                   - .
local                  - .
oneliner               o .
quiet                  Q .
sibling                - .
uid                    u =
usage                  - . help
verbose                v . +
version                V .
"""


# sstat (src/sstat/options.c); optstring "aehij:no:pPvV"
_SSTAT_SPECS = """
allsteps               a .
helpformat             e .
help                   h .
jobs                   j = +
noheader               n .
fields                 o = format +
format                 o = +
noconvert              - .
pidformat              i .
parsable               p .
parsable2              P .
usage                  - .
verbose                v . +
version                V .
"""


_BATCH = _specs(_BATCH_SPECS)
SBATCH: tuple[Opt, ...] = tuple(_BATCH.values())
SRUN: tuple[Opt, ...] = _ordered({**_BATCH, **_specs(_SRUN_SPECS)}, _SRUN_ORDER)
SQUEUE: tuple[Opt, ...] = tuple(_specs(_SQUEUE_SPECS).values())
SINFO: tuple[Opt, ...] = tuple(_specs(_SINFO_SPECS).values())
SCANCEL: tuple[Opt, ...] = tuple(_specs(_SCANCEL_SPECS).values())
SACCT: tuple[Opt, ...] = tuple(_specs(_SACCT_SPECS).values())
SCONTROL: tuple[Opt, ...] = tuple(_specs(_SCONTROL_SPECS).values())
SSTAT: tuple[Opt, ...] = tuple(_specs(_SSTAT_SPECS).values())

#: prog name -> its option table
TABLES: dict[str, tuple[Opt, ...]] = {
    "sbatch": SBATCH,
    "srun": SRUN,
    "squeue": SQUEUE,
    "sinfo": SINFO,
    "scancel": SCANCEL,
    "sacct": SACCT,
    "scontrol": SCONTROL,
    "sstat": SSTAT,
}
