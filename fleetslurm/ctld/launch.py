"""Starting a job: what the scheduler's :class:`StartJob` becomes.

The start is recorded first (the task RUNNING on its node, its run key and
step row); the launch message for the node's agent is queued and goes out
after the commit. A job whose record cannot be launched fails on its own,
never stopping the loop.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Optional

from ..node.agent import protocol
from ..paths import JobPaths
from ..scheduler import StartJob
from .lifecycle import end_task, start_task
from ..slurm.jobspec import job_environment
from ..slurm.patterns import expand_pattern
from . import srun_direct
from .staging import has_stage, launch_staged

if TYPE_CHECKING:
    from .context import Context

#: outputs up to this size come home inside the agent's `ended` event
INLINE_OUTPUT = 256 * 1024


def start_job(ctx: "Context", action: StartJob, now: float) -> None:
    """Record the start (committed first), then queue the launch."""
    # a task of an array's window gets its row now, as SLURM splits it from the array
    task = ctx.arrays.materialize(action.job_id) or ctx.store.task(action.job_id)
    assert task is not None, action
    # the fleet's id in the key: a run of another fleet on the same machine
    # can never be taken for one of ours
    run_key = f"{task['task_id']}.{task['restart_count']}.{ctx.cluster_id}"
    started = dict(reason="None", node=action.node,
                   gpu_ids=list(action.gpu_ids), alloc_cpus=action.cpus,
                   alloc_mem_mb=action.mem_mb, run_key=run_key, start_time=now, end_time=None,
                   exit_code=None, exit_signal=None, collected=0)
    # its output paths in the same row write (launch then finds them set); a
    # record they cannot be made of is left to safe_launch, which fails the job
    try:
        job = ctx.store.job(task["job_id"])
        if job is not None:
            started["stdout"], started["stderr"] = output_paths(
                ctx, dict(task, node=action.node), job)
    except Exception:
        pass
    start_task(ctx, task, **started)
    ctx.store.add_step(run_key, task["task_id"], action.node, now, action.cpus, action.mem_mb,
                       list(action.gpu_ids))
    ctx.store.log(task["task_id"], now, "start", f"{action.node} {run_key}")
    # the row as it now reads, without reading it back
    safe_launch(ctx, dict(task, acct_lines=None, state="RUNNING", **started), now)


def safe_launch(ctx: "Context", task: dict, now: float) -> None:
    """:func:`launch`, where a job whose record cannot be launched (a stored
    spec no agent would take, or that this code cannot even read) fails with
    the reason instead of taking the controller down: one bad job record
    must never stop the loop (it would again at every restart)."""
    try:
        launch(ctx, task, now)
    except Exception as exc:  # defence in depth: submit refuses such specs
        import traceback

        ctx.log(f"job {task['task_id']}: cannot be launched:\n{traceback.format_exc()}")
        fail_launch(ctx, task, task["run_key"], f"its record cannot be launched: "
                    f"{type(exc).__name__}: {exc}", now)


def fail_launch(ctx: "Context", task: dict, key: str, error: str, now: float) -> None:
    """The job itself cannot be launched (its spec, environment or script): it
    ends FAILED with reason JobLaunchFailure; no machine is blamed."""
    ctx.log(f"job {task['task_id']}: launch failed: {error}")
    ctx.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    end_task(ctx, task, "FAILED", now, f"FAILED launch: {error}", exit_code=1,
             reason="JobLaunchFailure", collected=1)


def _spec_error(spec: dict) -> Optional[str]:
    """What the agent would refuse in a launch spec (its validate_spec), checked
    before anything is sent: such a launch is the job's failure, never the
    machine's. None when it is fine."""
    env = spec.get("env")
    if not isinstance(env, dict):
        return "its environment is not a mapping"
    for k, v in env.items():
        if not isinstance(k, str) or not k or "=" in k or "\0" in k:
            return f"invalid environment variable name {k!r}"
        if not isinstance(v, str) or "\0" in v:
            return f"the environment variable {k} is not a string without NUL characters"
    for field in ("script", "cwd", "stdout", "stderr", "stdin"):
        if not isinstance(spec.get(field), str) or "\0" in spec[field]:
            return f"its {field} is not a string without NUL characters"
    if not all(isinstance(a, str) and "\0" not in a for a in spec.get("argv") or []):
        return "its arguments are not strings without NUL characters"
    return None


def output_paths(ctx: "Context", task: dict, job: dict) -> tuple[str, str]:
    """The submit-host paths SLURM's patterns give for stdout and stderr."""
    spec = job["spec"]
    # an array's record for its tasks not started yet is an array job too
    # (SLURM shows its StdOut with %a as NO_VAL: slurm-A_4294967294.out)
    array = task["array_index"] is not None or task.get("array_pending") is not None
    default = "slurm-%A_%a.out" if array else "slurm-%j.out"
    fields = dict(job_id=task["task_id"],
                  array_job_id=job["job_id"] if array else None,
                  array_task_id=task["array_index"], node=_host_name(ctx, task["node"]),
                  user=job["user"], job_name=task["req"]["name"])
    out = expand_pattern(spec.get("output") or default, **fields)
    err = expand_pattern(spec["error"], **fields) if spec.get("error") else out
    wd = spec["workdir"]
    return (posixpath.join(wd, out) if not out.startswith("/") else out,
            posixpath.join(wd, err) if not err.startswith("/") else err)


def _array_env(job_id: int, index: int, spec: dict) -> dict:
    """SLURM_ARRAY_* values (older stores listed every index in the spec)."""
    if "array_count" not in spec:
        idx = spec["array_indices"]
        spec = dict(spec, array_min=min(idx), array_max=max(idx), array_count=len(idx))
    return {"job_id": job_id, "task_id": index, "min": spec["array_min"],
            "max": spec["array_max"], "count": spec["array_count"],
            "step": spec.get("array_step", 1)}


def _host_name(ctx: "Context", node: Optional[str]) -> str:
    """The machine's own host name, as its agent reports it (SLURM's ``%N``
    is the host's name, not the node's), else the node name."""
    link = ctx.links.get(node) if node else None
    return str((link.facts.get("hostname") if link else None) or node or "")


def launch(ctx: "Context", task: dict, now: float) -> None:
    job = ctx.store.job(task["job_id"])
    assert job is not None
    spec = job["spec"]
    node = task["node"]
    transport = ctx.transport_for(node)
    stdout, stderr = output_paths(ctx, task, job)
    if (task.get("stdout"), task.get("stderr")) != (stdout, stderr):
        ctx.store.update_task(task["task_id"], stdout=stdout, stderr=stderr)
        task = dict(task, stdout=stdout, stderr=stderr)
    if not transport.shared_fs:
        paths = JobPaths(transport.workdir, task["run_key"])
        node_out = paths.stdout
        node_err = paths.stdout if stderr == stdout else paths.stderr
    else:
        node_out, node_err = stdout, stderr
    array = None
    if task["array_index"] is not None:
        array = _array_env(job["job_id"], task["array_index"], spec)
    env = job_environment(
        spec, job_id=task["task_id"], node=node, partition=task["req"]["partition"],
        cluster=ctx.config.cluster_name, cpus=task["alloc_cpus"], gpu_ids=task["gpu_ids"],
        user=job["user"], uid=job["uid"], array=array, restart_count=task["restart_count"],
        name=task["req"]["name"])
    # the machine's python, for Python-function jobs (fleetslurm's Executor)
    env["FLEETSLURM_PYTHON"] = (getattr(transport, "python", None)
                                or ctx.config.machines[node].python)
    if transport.local_process:
        # SLURM's commands inside the job are fleetslurm's (srun steps, scontrol
        # requeue), talking to this controller's socket, first on PATH
        bin_dir, path = str(ctx.paths.home / "bin"), env.get("PATH", "/usr/bin:/bin")
        env["PATH"] = f"{bin_dir}:{path}"
        env["FLEETSLURM_HOME"] = str(ctx.paths.home)
        env["FLEETSLURM_CONTROLLER_HOST"] = "1"
    else:
        # on every other machine (loopback ones too: one way for all) the
        # agent's shims come first on PATH and reach this controller through
        # the agent, as the job's owner (``injob``); never a controller of
        # the job's own
        env.pop("FLEETSLURM_CONTROLLER_HOST", None)
    if spec.get("srun_direct"):
        # srun's step 0 without a second srun: the supervisor runs the task
        srun_direct.begin(ctx, task, spec, env, now)
    limit = task["req"]["time_limit"]
    mem = task["req"]["mem_mb"] or None
    agent_spec = {
        "script": job["script"],
        "argv": spec.get("argv", []),
        "env": env,
        # without a shared filesystem the submit directory need not exist on the
        # machine: run in the job's own directory there unless -D named one
        "cwd": spec["workdir"] if transport.shared_fs or spec.get("chdir_set")
        else JobPaths(transport.workdir, task["run_key"]).dir,
        "stdout": node_out,
        "stderr": node_err,
        "node": node,
        "job_id": task["task_id"],
        "stdin": spec.get("input") or "/dev/null",
        # srun outside an allocation streams its stdin to the job (requests.steps.op_stdin)
        "stdin_stream": bool(spec.get("stdin_stream")),
        "open_mode": "append" if (spec.get("open_mode") == "append"
                                  or task["restart_count"] > 0) else "truncate",
        "time_limit_s": None if limit is None else int(limit) * 60,
        "kill_wait_s": ctx.config.kill_wait,
        "signal": spec.get("signal"),
        "mem_limit_mb": mem,
        "umask": spec.get("umask"),  # the submitter's (SLURM_UMASK)
        # small outputs come home inside the `ended` event: no SFTP round trips
        "inline_output": None if transport.shared_fs else INLINE_OUTPUT,
        # a job of another user than the controller's (a lab's): its user's
        # name, looked up by a privileged agent on that machine (as slurmd
        # does); an agent that is not root runs it as its own account
        "user": job["user"] if job["uid"] != os.getuid() else None,
        # SLURM's commands inside the job through the machine's agent
        # (node/agent/injob.py, ctld/injob.py): only where the job runs as
        # its own user (an agent that is not root runs every user's job as
        # its account, whose jobs could then reach each other's sockets and
        # act as their owners)
        "injob": not transport.local_process and _runs_as_owner(ctx, node, job),
        # the supervisor's samples of the job's use: every heartbeat at most
        # (5 s by default), never below 0.5 s
        "sample_s": max(0.5, min(5.0, ctx.config.heartbeat_interval)),
    }
    if spec.get("srun_direct"):
        agent_spec["srun_direct"] = True
    error = _spec_error(agent_spec)
    if error is not None:
        fail_launch(ctx, task, task["run_key"], error, now)
        return
    if has_stage(job) and not transport.shared_fs:
        launch_staged(ctx, task, job, transport, agent_spec)
        return
    ctx.send(node, protocol.launch(task["run_key"], agent_spec))


def _runs_as_owner(ctx: "Context", node: str, job: dict) -> bool:
    """Whether ``job`` runs as its own user on ``node``: it is the
    controller's user's (the agent's account in personal mode), or the
    machine's agent is root (it then drops to the job's user)."""
    if job["uid"] == os.getuid():
        return True
    link = ctx.links.get(node)
    return bool(link is not None and link.facts.get("uid") == 0)
