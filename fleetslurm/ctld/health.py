"""Node health: a machine that stops answering is *not responding* (three
missed heartbeats: no new jobs, its jobs left alone), then DOWN after
``node_timeout`` (SLURM's SlurmdTimeout; ``periodic`` keeps the
clock and ``mark_down`` requeues its jobs). What a lost run turns
out to have done when its machine returns decides whether its job ran:

- a run given up for lost that ended before its job's new run started (or
  while none has) is the job's result, and a new run is stopped;
- one still running is named ``unwanted`` in the agent's hello, which stops
  it before anything else (before it can write a result);
- one that ended after the new run started ran twice: nothing could stop it
  (its machine was cut off or frozen), and the job's history says so.

Every function here runs inside :meth:`Controller.step`'s transaction.
"""

from __future__ import annotations

import json

from typing import TYPE_CHECKING

from ..node.agent import protocol
from ..model import FINAL_STATE_NAMES, LIVE_STATE_NAMES
from ..scheduler import NodeDown, NodeDrain, NodeMeasured, NodeResume, NodeUp
from .lifecycle import final_state, move, node_fail

if TYPE_CHECKING:
    from .context import Context

__all__ = ["not_responding", "responding_again", "hello_request", "lost_run_stands",
           "SUPERSEDED", "UNWANTED_FOR_S", "measured"]

_LIVE = LIVE_STATE_NAMES
#: a run that ended on its own (lifecycle.RESULT_STATES) and was not stopped by us
_ENDED_ON_ITS_OWN = {"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY"}
#: how long a run given up for lost (NODE_FAIL, requeued) is still named to its
#: machine's agent at each hello, to be stopped if it is still running there
UNWANTED_FOR_S = 7 * 86400.0


def not_responding(ctx: "Context", name: str, now: float) -> None:
    """The machine missed three heartbeats: nothing new starts there; its
    jobs are left alone until ``node_timeout`` (they may well be running)."""
    ctx.nodes.not_responding.add(name)
    ctx.nodes.dirty = True
    if name not in ctx.nodes.down and ctx.store.node(name)["admin_state"] != "down":
        ctx.emit(NodeDown(name, "Not responding"))
    heard = ctx.links[name].last_heard
    if heard is not None:
        ctx.log(f"node {name}: not responding (silent for {now - heard:.1f} s)")


def responding_again(ctx: "Context", name: str) -> None:
    """A not-responding machine spoke again before ``node_timeout``: back in
    service as it was (drained stays drained); a DOWN one needs its hello."""
    ctx.nodes.not_responding.discard(name)
    ctx.nodes.dirty = True
    if name in ctx.nodes.down:
        return
    admin = ctx.store.node(name)
    if admin["admin_state"] == "down":
        return
    ctx.emit(NodeUp(ctx.node_spec(name, ctx.links[name].facts)))
    ctx.emit(NodeDrain(name, admin["reason"]) if admin["admin_state"] == "drain"
             else NodeResume(name))
    ctx.log(f"node {name}: responding again")


def _num(v: object) -> "float | None":
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def measured(name: str, facts: dict) -> NodeMeasured:
    """What the scheduler's workstation policy and ``spread`` placement need
    of a machine's heartbeat (an older agent's missing fields: unknown)."""
    free = _num(facts.get("free_mem_mb"))
    return NodeMeasured(name, load1=_num(facts.get("load1")),
                        foreign_load=_num(facts.get("foreign_load")),
                        free_mem_mb=None if free is None else int(free),
                        owner_idle_s=_num(facts.get("owner_idle_s")))


def facts_request(ctx: "Context", name: str) -> dict:
    """The heartbeat: with the workstation facts (foreign load, owner idle:
    the agent scans /proc for them) only where they are used, a machine with
    a policy or in a ``spread`` partition."""
    m = ctx.config.machines[name]
    parts = m.partitions or [ctx.config.default_partition]
    spread = any(p in ctx.config.partitions and ctx.config.partitions[p].placement == "spread"
                 for p in parts)
    if m.policy is None and m.available is None and not spread:
        return protocol.facts()
    return protocol.facts(measure=True,
                          activity_file=m.policy.activity_file if m.policy else None)


def hello_request(ctx: "Context", name: str, now: float) -> dict:
    """The first request to a machine's new agent: runs of it given up for
    lost (requeued) are named, to be stopped before anything else."""
    return protocol.hello(ctx.store.unwanted_runs(name, now - UNWANTED_FOR_S))


#: the error of a run stopped because an earlier run of its job turned out to
#: have ended first (its output does not come home)
SUPERSEDED = "superseded: an earlier run of the job had ended before it started"


def lost_run_stands(ctx: "Context", name: str, task: dict, step: dict, result: dict,
                    now: float) -> bool:
    """A run given up for lost (NODE_FAIL, its job requeued) turns out to have
    ended on its own. If it ended before the job's new run started, or no
    new run has started, the job did run: that run is its result, and a new
    run (a second one) is stopped. Returns whether the task now points at it."""
    state = str(result.get("state") or "")
    if step["state"] != "NODE_FAIL" or step["step"] != "batch" or \
            state not in _ENDED_ON_ITS_OWN:
        return False  # not given up for lost, or stopped (by us) rather than ended
    # (the run's end by its machine's clock, the new start by ours: as SLURM,
    # this assumes the clocks agree, to well under a job's length)
    end = float(result.get("end_time") or now)
    if task["state"] == "RUNNING" and task["start_time"] is not None \
            and end < task["start_time"]:
        # the new run is a second one: stopped at once, its output stays there
        ctx.send(task["node"], protocol.cancel(task["run_key"], 9, requeue=True))
        ctx.store.update_step(task["run_key"], state="CANCELLED", end_time=now,
                              error=SUPERSEDED)
    elif task["state"] != "PENDING" or task["task_id"] not in ctx.fed:
        if task["start_time"] is not None and (task["state"] in _LIVE
                                               or task["state"] in FINAL_STATE_NAMES):
            # (it ended while its machine was cut off or frozen, after the
            # requeue: nothing could stop it; said where an audit looks)
            why = (f"its run {step['run_key']} on {name}, given up for lost, ended {state} "
                   "after its new run started")
            ctx.log(f"job {task['task_id']}: {why}: it ran twice")
            ctx.store.log(task["task_id"], now, "ran-twice", why)
        return False
    start = result.get("start_time") or step["start_time"]
    # the run gets back what it was given and its own restart count (its key
    # names it): its output is then written as that run's, not appended
    given = dict(alloc_cpus=step.get("alloc_cpus"), alloc_mem_mb=step.get("alloc_mem_mb"),
                 gpu_ids=json.loads(step["gpu_ids"]) if step.get("gpu_ids") else [])
    # the requeue charged the run's use up to then; its end charges the whole
    # run: what the requeue charged is taken back, so it counts once
    ctx.fairshare.charge_run(ctx, dict(task, start_time=start, **given),
                             step["end_time"] or now, now, sign=-1.0)
    move(ctx, task, "RUNNING", node=name, run_key=step["run_key"], start_time=start,
         end_time=None, exit_code=None, exit_signal=None, collected=0,
         restart_count=_restarts_of(step["run_key"], task["restart_count"]), **given)
    ctx.store.update_step(step["run_key"], state="RUNNING", end_time=None)
    ctx.store.log(task["task_id"], now, "reconciled",
                  f"run {step['run_key']} on {name} had ended {state} before a new run "
                  "started: it is the job's result")
    return True


def _restarts_of(run_key: str, default: int) -> int:
    """The restart count a run was started with (``TASK.RESTARTS.CLUSTER``)."""
    try:
        return int(run_key.split(".")[1])
    except (IndexError, ValueError):
        return default


#: how long a machine not yet heard from since the controller started may take,
#: from the first connection attempt, to connect and say hello before its jobs
#: are failed (at least three heartbeats)
START_GRACE_S = 10.0


def periodic(ctx: "Context", now: float) -> None:
    hb = ctx.config.heartbeat_interval
    for name, link in ctx.links.items():
        if link.status == "up" and now - getattr(link, "last_ping", 0) >= hb:
            link.last_ping = now  # type: ignore[attr-defined]
            ctx.send(name, facts_request(ctx, name))
            ctx.send(name, protocol.samples())  # the runs' resource samples
        if link.status == "lost":
            backoff = min(30.0, 0.5 * (2 ** min(link.failures, 6)))
            if ctx.config.machines[name].transport == "local":
                backoff = min(backoff, 1.0)
            if now - link.last_attempt >= backoff:
                link.connect(now)
        if link.last_heard is not None:
            heard, down_after = link.last_heard, ctx.config.node_timeout
        else:
            # Not heard from since this controller started: its SSH handshake
            # and the agent's start can take longer than a short node_timeout
            # on a busy host, and a restart must not requeue (run twice) the
            # jobs of a machine that is merely slow to answer. SLURM's
            # slurmctld likewise gives nodes SlurmdTimeout after it restarts.
            heard = link.first_attempt if link.first_attempt is not None else ctx.started_at
            down_after = max(ctx.config.node_timeout, START_GRACE_S)
        silent = now - heard
        if silent > min(3 * hb, down_after) and name not in ctx.nodes.not_responding:
            # three missed heartbeats: no new jobs, its jobs stay (SLURM's
            # NOT_RESPONDING, sinfo's "*")
            not_responding(ctx, name, now)
        if silent > down_after and name not in ctx.nodes.failed:
            # silent for node_timeout (SlurmdTimeout): DOWN, and its jobs NODE_FAIL
            mark_down(ctx, name, ctx.nodes.down.get(name) or link.error or "Not responding",
                      now)


def mark_down(ctx: "Context", name: str, reason: str, now: float,
              fail_jobs: bool = True) -> None:
    """DOWN in sinfo with the reason; with ``fail_jobs`` its running jobs become
    NODE_FAIL (and are requeued where allowed)."""
    if name not in ctx.nodes.down:
        ctx.nodes.down[name] = reason
        ctx.emit(NodeDown(name, reason))
        ctx.links[name].drop()
    if fail_jobs:
        fail_node_jobs(ctx, name, reason, now)


def fail_node_jobs(ctx: "Context", name: str, reason: str, now: float) -> None:
    ctx.nodes.failed.add(name)
    for task in ctx.store.live_tasks_on(name):
        if task["state"] == "COMPLETING":
            # it ended; only its output copy was pending, and that is now lost
            move(ctx, task, final_state(task, ctx.store.step(task["run_key"])))
            ctx.store.log(task["task_id"], now, "output-lost", f"node {name} down")
            continue
        node_fail(ctx, task, now, f"node {name} down: {reason}")

