"""One batch of jobs run on both sides at once, and what both printed.

Real SLURM starts about one job every few seconds here, and a requeued job
waits for its credential to expire (120 s) before it runs again, so every
job the suite needs is submitted up front, in the same order on both sides,
and the outputs the tests compare are captured at two moments:

* ``live``: every finite job has ended, a sleeper runs, the held jobs and a
  job whose dependency can never be satisfied are pending;
* ``idle``: after the sleeper was cancelled.

Tests that need running jobs read :class:`Batch` and compare; they submit
nothing themselves.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field

from .shape import Ids
from .sides import FleetSide, Result, Side, SlurmSide, wait_until

__all__ = ["Batch", "Snap", "JOBS", "SQUEUE_FIELDS", "SINFO_FIELDS", "run_batch"]

ENV_SH = """#!/bin/bash
# dump the job's environment (NUL-separated) under a name given as $1
env -0 > "env-$1-${SLURM_ARRAY_TASK_ID:-x}.bin"
echo "stdout of $1"
echo "stderr of $1" >&2
"""

REQUEUE_SH = """#!/bin/bash
echo "run restart=${SLURM_RESTART_COUNT:-unset}"
env -0 > "env-rq-${SLURM_RESTART_COUNT:-0}.bin"
if [ -z "$SLURM_RESTART_COUNT" ]; then
    scontrol requeue "$SLURM_JOB_ID"
    sleep 60
fi
echo "done restart=${SLURM_RESTART_COUNT:-unset}"
"""

HELD_SCRIPT = """#!/bin/bash
#SBATCH --comment=from-stdin
true
"""

#: squeue letters SLURM_COMPAT.md lists, one format with widths and one without
SQUEUE_FIELDS = "iAFKjPutTMLlDCmbRNrkSV"
#: sinfo letters SLURM_COMPAT.md lists
SINFO_FIELDS = "PalDtNcmOeGf"

# label -> (kind, sbatch arguments); kind: "run" ends by itself, "live" stays
# (pending or running) until the end, "held" is submitted with --hold.
# {node} and {partition} are the oracle's names, {dep} the id of "exit3",
# {tok} makes a name unique to this run (squeue -n must see only ours).
# Order matters on real SLURM: "plain" asks for no memory, which SLURM reads
# as the whole node, so it goes first, before anything holds memory.
JOBS: list[tuple[str, str, str]] = [
    ("plain", "run", "env.sh plain"),
    ("rq", "run", "--mem=50M -o rq.out --open-mode=append rq.sh"),
    # exec: the oracle's proctrack/linuxproc signals a job's processes one at a
    # time, children first, so a shell waiting on a child may reap it before its
    # own SIGTERM lands and exit 143 saying "Terminated" (seen on a loaded CI
    # machine). SLURM's cgroup plugin, like fleetslurm's process group, signals
    # them all at once; tests/test_e2e_local.py checks a shell with a child.
    ("tmo", "run", "--mem=50M -t 1 --wrap 'exec sleep 300'"),
    ("res", "run", "-c 2 -n 1 --mem=100M -o app.out --open-mode=append env.sh res"),
    # two srun steps: per-task output files and environments, then a second step
    ("steps", "run", "-n 2 --mem=100M --wrap \"srun -o 'step-%j-%s-%t-%J-%N.out' sh -c "
                     "'echo task $SLURM_PROCID; env -0 > env-step-$SLURM_PROCID-x.bin'; "
                     "srun -n 1 sh -c 'echo step $SLURM_STEP_ID'\""),
    ("mpc", "run", "--mem-per-cpu=200 -o trunc.out env.sh mpc"),
    ("acct", "run", "-A diffacct -J nm{tok} --mem=50M env.sh acct"),
    ("arr", "run", "--array=1-3:2 --mem=50M env.sh arr"),
    ("pat", "run", "--mem=50M -J patname "
                   "-o 'pat-%j-%A-%a-%x-%u-%N-%n-%s-%t-%J-%%-%5j-%b-%q.out' "
                   "-e 'perr-%j-%x.err' --wrap 'echo out; echo err >&2'"),
    ("parr", "run", "--array=0-1 --mem=50M -J parrname -o 'parr-%A_%a-%j-%3a-%x.out' "
                    "--wrap 'echo task $SLURM_ARRAY_TASK_ID'"),
    ("noesc", "run", "--mem=50M -o 'lit\\%j-%x.out' --wrap 'echo literal'"),
    ("chdir", "run", "--mem=50M -D sub -o 'rel-%j.out' --wrap pwd"),
    ("export", "run", "--mem=50M --export=NONE env.sh export"),
    ("exit3", "run", "--mem=50M --wrap 'exit 3'"),
    ("sigkill", "run", "--mem=50M --wrap 'kill -9 $$'"),
    ("dep", "live", "--mem=50M --dependency=afterok:{dep} --wrap true"),
    ("begin", "live", "--mem=50M --begin=now+1hour -J later --wrap true"),
    ("h1", "held", "-c 2 --mem=100M -t 10 --comment hello "
                   "-o 'ho-%j-%x-%A-%a-%u-%N.out' env.sh h1"),
    ("h2", "held", "--array=0-9%4 -J ha{tok} --wrap true"),
    ("h3", "held", "-n 2 --mem-per-cpu=300 -t 1-2:3:4 --nice=10 -w {node} -p {partition} "
                   "-J h3name --wrap true"),
    ("h4", "held", "-"),  # the script on standard input
    ("sleep", "live", "--mem=50M -t 10 -J sl{tok} --wrap 'exec sleep 600'"),
]


@dataclass
class Snap:
    """One side's view of the batch."""

    side: Side
    ids: dict[str, int] = field(default_factory=dict)      # label -> job id
    tokens: Ids = field(default_factory=Ids)
    views: dict = field(default_factory=dict)              # key -> (command, arguments)
    tasks: dict = field(default_factory=dict)              # array label -> {own id: index}
    live: dict[str, Result] = field(default_factory=dict)  # outputs while the sleeper ran
    idle: dict[str, Result] = field(default_factory=dict)  # after it was cancelled
    files: dict[str, bytes] = field(default_factory=dict)  # working directory, after

    @property
    def work(self) -> str:
        return str(self.side.work)

    def ids_of(self, *labels: str) -> str:
        return ",".join(str(self.ids[label]) for label in labels)


@dataclass
class Batch:
    slurm: Snap
    fleet: Snap
    seconds: float = 0.0
    #: real SLURM ran nothing of others' while ``live`` / ``idle`` were captured
    slurm_exclusive: bool = True
    slurm_idle_exclusive: bool = True

    def exclusive(self, view: str) -> bool:
        return self.slurm_exclusive if view == "live" else self.slurm_idle_exclusive

    def pair(self) -> tuple[Snap, Snap]:
        return self.slurm, self.fleet


def _submit(snap: Snap, label: str, kind: str, args: str, fill: dict) -> None:
    side = snap.side
    argv = shlex.split(args.format(**fill))
    if kind == "held":
        argv.insert(0, "--hold")
    if argv == ["--hold", "-"]:
        job = side.sbatch("--hold", input=HELD_SCRIPT)
    else:
        job = side.sbatch(*argv)
    snap.ids[label] = job
    snap.tokens.add(job, f"<{label}>")


#: -O texts of the views, and the -o formats they print the same columns as
#: (-O names print the headers of their -o letters; no width means 20)
SQUEUE_O = "JobArrayID:.18,Partition:.9,Name,UserName:8,StateCompact:.2|,TimeUsed,NumNodes:,ReasonList"
SQUEUE_O_AS = "%.18i%.9P%20j%8u%.2t|%20M%D%20R"
SINFO_O = "Partition,Available:.5,Time:.10,Nodes,StateCompact:6|,NodeList"
SINFO_O_AS = "%20P%.5a%.10l%20D%6t|%20N"


def _views(snap: Snap, records: str, everything: str, node: str, partition: str,
           tok: str) -> dict:
    """The command lines compared between the sides, by name."""
    q = {
        "squeue": ["-j", records],
        "squeue_h": ["-h", "-j", records],
        "squeue_pd": ["-t", "PD", "-j", records],
        "squeue_pd_r": ["-t", "pending,running", "-j", records],
        "squeue_r_lower": ["-t", "r", "-j", records],
        "squeue_all": ["-t", "all", "-j", everything],
        "squeue_array": ["-r", "-j", snap.ids_of("h2")],
        "squeue_fields": ["-t", "all", "-j", everything,
                          "-o", " ".join(f"%.20{c}" for c in SQUEUE_FIELDS)],
        "squeue_fields_natural": ["-j", records, "-o", "|".join(f"%{c}" for c in SQUEUE_FIELDS)],
        "squeue_allfields": ["-j", records, "-o", "%all"],
        "squeue_literal": ["-j", records, "-o", '"%i","%j"'],
        "squeue_sortkeys": ["-t", "all", "-j", everything, "-o", "%i|%P|%t|%Q"],
        "squeue_name": ["-n", f"sl{tok},ha{tok}"],
        "squeue_long": ["-l", "-j", records],
        "squeue_O": ["-j", records, "-O", SQUEUE_O],
    }
    s = {
        "sinfo": [],
        "sinfo_N": ["-N"],
        "sinfo_h": ["-h"],
        "sinfo_p": ["-p", partition],
        "sinfo_fields": ["-o", " ".join(f"%.15{c}" for c in SINFO_FIELDS)],
        "sinfo_N_fields": ["-N", "-o", "|".join(f"%{c}" for c in SINFO_FIELDS)],
        "sinfo_allfields": ["-o", "%all"],
        "sinfo_s": ["-s"],
        "sinfo_l": ["-l"],
        "sinfo_N_l": ["-N", "-l"],
        "sinfo_R": ["-R"],
        "sinfo_R_l": ["-R", "-l"],
        "sinfo_O": ["-O", SINFO_O],
    }
    c = {
        "show_node": ["show", "node"],
        "show_node_one": ["show", "node", node],
        "show_partition": ["show", "partition"],
        "show_partition_one": ["show", "partition", partition],
    }
    out = {key: ("squeue", args) for key, args in q.items()}
    out.update({key: ("sinfo", args) for key, args in s.items()})
    out.update({key: ("scontrol", args) for key, args in c.items()})
    for label in snap.ids:
        out[f"job_{label}"] = ("scontrol", ["show", "job", str(snap.ids[label])])
    return out


def _capture(snap: Snap, views: dict) -> dict[str, Result]:
    return {key: snap.side.run(cmd, *args) for key, (cmd, args) in views.items()}


def _learn_tasks(snap: Snap) -> None:
    for label in ("arr", "parr", "h2"):
        snap.tasks[label] = snap.side.tasks(snap.ids[label])
        for own, index in snap.tasks[label].items():
            if own != snap.ids[label]:
                snap.tokens.add(own, f"<{label}_{index}>")


def _files(snap: Snap) -> dict[str, bytes]:
    out = {}
    for root, _dirs, names in os.walk(snap.work):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, snap.work)] = f.read()
    return out


def run_batch(slurm: SlurmSide, fleet: FleetSide, node: str, partition: str,
              timeout: float = 420) -> Batch:
    """Submit every job of :data:`JOBS` to both sides, wait, capture."""
    started = time.monotonic()
    tok = format(os.getpid() % 1296, "02x")
    batch = Batch(Snap(slurm), Snap(fleet))
    for snap in batch.pair():
        side = snap.side
        side.write("env.sh", ENV_SH)
        side.write("rq.sh", REQUEUE_SH)
        side.write("app.out", "old line\n", 0o644)
        side.write("trunc.out", "old line\n", 0o644)
        (side.work / "sub").mkdir()
    for label, kind, args in JOBS:
        for snap in batch.pair():
            fill = {"node": node, "partition": partition, "dep": snap.ids.get("exit3"), "tok": tok}
            _submit(snap, label, kind, args, fill)
    finite = [label for label, kind, _ in JOBS if kind == "run"]
    for snap in batch.pair():
        ids = [snap.ids[label] for label in finite]
        wait_until(lambda: snap.side.settled(ids, running=[snap.ids["sleep"]]),
                   timeout - (time.monotonic() - started),
                   f"{snap.side.label}: jobs {ids} to end and the sleeper to run")
    for snap in batch.pair():
        # a dependency on a failed job is judged on the scheduler's next pass
        wait_until(lambda: snap.side.states([snap.ids["dep"]]).get(
            str(snap.ids["dep"]), ("", ""))[1] == "DependencyNeverSatisfied",
            60, f"{snap.side.label}: DependencyNeverSatisfied")
        _learn_tasks(snap)
    running = slurm.run("squeue", "-h", "-t", "running,completing", "-o", "%A")
    batch.slurm_exclusive = running.out.split() == [str(batch.slurm.ids["sleep"])]
    everything = {snap.side.label: snap.ids_of(*snap.ids) for snap in batch.pair()}
    records = ("dep", "begin", "h1", "h2", "h3", "h4", "sleep")
    for snap in batch.pair():
        views = _views(snap, snap.ids_of(*records), everything[snap.side.label], node, partition,
                       tok)
        snap.views = views
        snap.live = _capture(snap, views)
    for snap in batch.pair():
        snap.side.scancel(snap.ids["sleep"])
    for snap in batch.pair():
        wait_until(lambda: snap.side.settled([snap.ids["sleep"]]), 120,
                   f"{snap.side.label}: the sleeper to end after scancel")
        # a node stays "completing" for a moment after its last job
        wait_until(lambda: "comp" not in snap.side.run("sinfo", "-h", "-o", "%t").out, 60,
                   f"{snap.side.label}: the node to leave the completing state")
    running = slurm.run("squeue", "-h", "-t", "running,completing", "-o", "%A")
    batch.slurm_idle_exclusive = running.out.split() == []
    for snap in batch.pair():
        views = _views(snap, snap.ids_of(*records), everything[snap.side.label], node, partition,
                       tok)
        snap.idle = _capture(snap, {k: v for k, v in views.items()
                                    if k.startswith(("sinfo", "show_node", "job_sleep",
                                                     "squeue_all"))})
        snap.files = _files(snap)
    batch.seconds = time.monotonic() - started
    return batch

