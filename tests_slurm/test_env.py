"""The environment inside a batch job, judged by real SLURM: the same
variable names, and the same values once ids, pids and the submit directory
are normalised; for a plain job, -c/-n/--mem, --mem-per-cpu, -A, an array's
tasks, --export=NONE and a requeued job's second run."""

from __future__ import annotations

import pytest

from .batch import Snap
from .rules import family
from .shape import norm_path
from .sides import MARK

#: env-<dump>.bin files written by env.sh / rq.sh / the srun tasks (see batch.JOBS)
DUMPS = ["plain-x", "res-x", "mpc-x", "acct-x", "arr-1", "arr-3", "export-x", "rq-0", "rq-1",
         "step-0-x", "step-1-x"]

#: point at a real SLURM's slurm.conf and slurmctld; fleetslurm has neither
#: (README, "on purpose")
SLURM_ONLY = {"SLURM_CONF", "SLURM_WORKING_CLUSTER"}
#: srun's plumbing to slurmstepd (its ports and address); fleetslurm's srun
#: starts the tasks itself (README, "on purpose")
STEP_ONLY = {"SLURM_SRUN_COMM_HOST", "SLURM_SRUN_COMM_PORT", "SLURM_STEP_LAUNCHER_PORT",
             "SLURM_LAUNCH_NODE_IPADDR"}
#: task/affinity's: the oracle runs TaskPlugin=task/none (no binding, so
#: none of these in its jobs); fleetslurm binds every job as task/affinity
#: does (README, "CPU binding"), values checked in tests/test_cpu_binding.py
AFFINITY_ONLY = {"SLURM_CPU_BIND", "SLURM_CPU_BIND_LIST", "SLURM_CPU_BIND_TYPE",
                 "SLURM_CPU_BIND_VERBOSE"}
#: the login environment SLURM loads for --export=NONE
LOGIN = {"HOME", "USER", "LOGNAME", "SHELL", "PATH"}


def _dump(snap: Snap, name: str) -> dict[str, str]:
    data = snap.files[f"env-{name}.bin"].decode()
    return dict(item.split("=", 1) for item in data.split("\0") if item)


def _relevant(name: str) -> bool:
    return (name.startswith(("SLURM_", "SLURMD_"))
            and name not in SLURM_ONLY | STEP_ONLY | AFFINITY_ONLY) \
        or name in {"ENVIRONMENT", "HOSTNAME", "TMPDIR", "CUDA_VISIBLE_DEVICES", MARK}


def _norm(snap: Snap, name: str, value: str) -> str:
    if name in ("SLURM_JOB_ID", "SLURM_JOBID"):
        return family(snap.tokens.token(value))
    if name == "SLURM_ARRAY_JOB_ID":
        return snap.tokens.token(value)
    if name == "SLURM_SUBMIT_DIR":
        return norm_path(value, snap.work, snap.tokens)
    if name == "SLURM_TASK_PID":
        return "<pid>" if value.isdigit() else value
    return value


def _env(snap: Snap, dump: str) -> dict[str, str]:
    env = _dump(snap, dump)
    return {k: _norm(snap, k, v) for k, v in env.items() if _relevant(k)}


@pytest.mark.parametrize("dump", DUMPS)
def test_job_environment(batch, dump):
    s, f = batch.pair()
    assert _env(f, dump) == _env(s, dump)


@pytest.mark.parametrize("dump", DUMPS)
def test_only_documented_extras(batch, dump):
    """What SLURM sets that fleetslurm does not is the documented pair; what
    fleetslurm adds is its own FLEETSLURM_* (and PATH, where its commands
    come first) and task/affinity's SLURM_CPU_BIND*, which the oracle lacks."""
    s, f = batch.pair()
    want, got = _dump(s, dump), _dump(f, dump)
    slurm_only = {k for k in set(want) - set(got) if k.startswith("SLURM")}
    assert slurm_only == SLURM_ONLY | (STEP_ONLY if dump.startswith("step-") else set())
    fleet_only = {k for k in set(got) - set(want) - AFFINITY_ONLY
                  if not k.startswith("FLEETSLURM_")}
    assert fleet_only == set()


def test_export_none_login_environment(batch):
    """--export=NONE: the submitter's variables stay out, a login
    environment (HOME, USER, LOGNAME, SHELL, PATH) comes in."""
    for snap in batch.pair():
        env = _dump(snap, "export-x")
        assert MARK not in env, snap.side.label
        assert LOGIN <= set(env), (snap.side.label, sorted(env))
    s, f = batch.pair()
    want, got = _dump(s, "export-x"), _dump(f, "export-x")
    assert {k: got[k] for k in LOGIN - {"PATH"}} == {k: want[k] for k in LOGIN - {"PATH"}}
