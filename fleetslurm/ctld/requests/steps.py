"""Client requests about job steps: ``srun`` inside a job records its steps
(``N.0``, ``N.1``...) so that sacct shows them, and ``srun`` outside a job
forwards its standard input to the job's tasks.

Like every request, these run inside the controller's transaction
(see requests/__init__.py).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from ...node.agent import protocol
from ... import errors
from ...errors import AccessDenied, InvalidJobId
from ...jobids import find_tasks

if TYPE_CHECKING:
    from ..context import Context

#: states a step ends in (sacct's State for an N.S row)
STEP_END_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
                             "NODE_FAIL"})


def _running_task(ctx: "Context", job_id: object, uid: int) -> dict:
    """The task ``job_id`` names, owned by ``uid`` and running; else SLURM's error."""
    text = str(job_id)
    if not text.isdigit():
        raise InvalidJobId(f"Unable to create step for job {text}: Invalid job id specified")
    task = ctx.store.task(int(text))
    if task is None:
        raise InvalidJobId(f"Unable to create step for job {text}: Invalid job id specified")
    job = ctx.store.job(task["job_id"])
    assert job is not None
    if uid not in (0, job["uid"]):
        raise AccessDenied(f"Unable to create step for job {text}: Access/permission denied")
    if task["state"] != "RUNNING" or not task["run_key"]:
        what = ("Job is pending execution" if task["state"] == "PENDING"
                else "Job/step already completing or completed")
        raise errors.JobError(f"Unable to create step for job {text}: {what}")
    return task


def op_step_begin(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """A new srun step in a running job: returns its step id.

    ``run_key`` (the job's FLEETSLURM_RUN_KEY) guards against a stale srun of an
    earlier run of a requeued job recording itself in the new run.
    """
    task = _running_task(ctx, args.get("job_id"), uid)
    if args.get("run_key") and args["run_key"] != task["run_key"]:
        raise errors.JobError(f"Unable to create step for job {task['task_id']}: "
                              "Job/step already completing or completed")
    ntasks = int(args.get("ntasks") or 1)
    cpus = int(args.get("cpus") or task["alloc_cpus"] or 1)
    name = str(args.get("name") or "")[:1024]
    step_id = ctx.store.add_srun_step(task["run_key"], task["task_id"], task["node"], now,
                                      name, ntasks, cpus)
    ctx.store.log(task["task_id"], now, "step", f"{step_id} start {name}")
    return {"step_id": step_id, "kill_wait": ctx.config.kill_wait, "node": task["node"]}


def op_step_end(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """An srun step ended: its state, exit status and usage."""
    text = str(args.get("job_id"))
    task = ctx.store.task(int(text)) if text.isdigit() else None
    if task is None:
        raise InvalidJobId(f"Invalid job id specified for job {text}")
    job = ctx.store.job(task["job_id"])
    assert job is not None
    if uid not in (0, job["uid"]):
        raise AccessDenied(f"Access/permission denied for job {text}")
    key = f"{args.get('run_key') or task['run_key']}.{int(args['step_id'])}"
    step = ctx.store.step(key)
    if step is None or step["task_id"] != task["task_id"]:
        raise InvalidJobId(f"Invalid job step specified: {text}.{args['step_id']}")
    state = str(args.get("state") or "COMPLETED")
    if state not in STEP_END_STATES:
        raise errors.UsageError(f"invalid step state {state!r}", prog="srun")
    fields = {"state": state, "end_time": now,
              "exit_code": int(args.get("exit_code") or 0),
              "exit_signal": int(args.get("exit_signal") or 0)}
    for name in ("user_cpu", "system_cpu"):
        if args.get(name) is not None:
            fields[name] = float(args[name])
    if args.get("max_rss_kb") is not None:
        fields["max_rss_kb"] = int(args["max_rss_kb"])
    ctx.store.update_step(key, **fields)
    ctx.store.log(task["task_id"], now, "step",
                  f"{args['step_id']} end {state} {fields['exit_code']}:{fields['exit_signal']}")
    return {}


def decode_chunk(data: object) -> bytes:
    """Standard input travels base64-encoded inside the JSON requests."""
    try:
        return base64.b64decode(str(data or ""), validate=True)
    except (ValueError, TypeError):
        raise errors.UsageError("stdin data must be base64", prog="srun") from None


def op_stdin(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """``srun`` outside an allocation forwards its standard input: ``data``
    (base64) and ``eof`` go to the agent running the job, which writes them into
    the tasks' stdin. The reply says how far the machine got (``written``
    bytes), so srun keeps a bounded amount in flight, and whether the job's
    stdin is gone (``closed``: the job ended, or its tasks closed it)."""
    text = str(args.get("id"))
    tasks = find_tasks(ctx.store, text)
    if len(tasks) != 1:
        raise InvalidJobId(f"Invalid job id specified for job {text}")
    task = tasks[0]
    job = ctx.store.job(task["job_id"])
    assert job is not None
    if uid not in (0, job["uid"]):
        raise AccessDenied(f"Access/permission denied for job {text}")
    if task["state"] == "PENDING":
        return {"state": "PENDING", "written": 0, "closed": False}
    if task["state"] != "RUNNING" or not task["run_key"]:
        return {"state": task["state"], "written": 0, "closed": True}
    data = args.get("data") or ""
    if len(data) > 2 * 1024 * 1024:
        raise errors.UsageError("stdin chunk too large (at most 1 MiB per request)",
                                prog="srun")
    decode_chunk(data)  # refuse garbage here, not on the machine
    key = task["run_key"]
    written, closed = ctx.stdin_acks.get(key, (0, False))
    if data or args.get("eof"):
        ctx.send(task["node"], protocol.stdin(key, data, bool(args.get("eof"))))
    return {"state": "RUNNING", "written": written, "closed": closed}
