"""Node health: a machine that stops answering is *not responding* (three
missed heartbeats: no new jobs, its jobs left alone), then DOWN after
``node_timeout`` (SLURM's SlurmdTimeout; ``handlers.periodic`` keeps the
clock and ``handlers.mark_down`` requeues its jobs). What a lost run turns
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

from typing import TYPE_CHECKING

from .model import FINAL_STATE_NAMES, LIVE_STATE_NAMES
from .scheduler import NodeDown, NodeDrain, NodeResume, NodeUp

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["not_responding", "responding_again", "hello_request", "lost_run_stands",
           "SUPERSEDED", "UNWANTED_FOR_S"]

_LIVE = LIVE_STATE_NAMES
#: a run that ended on its own (handlers' result states) and was not stopped by us
_ENDED_ON_ITS_OWN = {"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY"}
#: how long a run given up for lost (NODE_FAIL, requeued) is still named to its
#: machine's agent at each hello, to be stopped if it is still running there
UNWANTED_FOR_S = 7 * 86400.0


def not_responding(ctl: "Controller", name: str, now: float) -> None:
    """The machine missed three heartbeats: nothing new starts there; its
    jobs are left alone until ``node_timeout`` (they may well be running)."""
    ctl._not_responding.add(name)
    ctl._nodes_dirty = True
    if name not in ctl._node_down and ctl.store.node(name)["admin_state"] != "down":
        ctl.emit(NodeDown(name, "Not responding"))
    heard = ctl.links[name].last_heard
    if heard is not None:
        ctl.log(f"node {name}: not responding (silent for {now - heard:.1f} s)")


def responding_again(ctl: "Controller", name: str) -> None:
    """A not-responding machine spoke again before ``node_timeout``: back in
    service as it was (drained stays drained); a DOWN one needs its hello."""
    ctl._not_responding.discard(name)
    ctl._nodes_dirty = True
    if name in ctl._node_down:
        return
    admin = ctl.store.node(name)
    if admin["admin_state"] == "down":
        return
    ctl.emit(NodeUp(ctl.node_spec(name, ctl.links[name].facts)))
    ctl.emit(NodeDrain(name, admin["reason"]) if admin["admin_state"] == "drain"
             else NodeResume(name))
    ctl.log(f"node {name}: responding again")


def hello_request(ctl: "Controller", name: str, now: float) -> dict:
    """The first request to a machine's new agent: runs of it given up for
    lost (requeued) are named, to be stopped before anything else."""
    return {"op": "hello", "id": "hello",
            "unwanted": ctl.store.unwanted_runs(name, now - UNWANTED_FOR_S)}


#: the error of a run stopped because an earlier run of its job turned out to
#: have ended first (its output does not come home)
SUPERSEDED = "superseded: an earlier run of the job had ended before it started"


def lost_run_stands(ctl: "Controller", name: str, task: dict, step: dict, result: dict,
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
        ctl.send(task["node"], {"op": "cancel", "key": task["run_key"], "signal": 9,
                                "requeue": True})
        ctl.store.update_step(task["run_key"], state="CANCELLED", end_time=now,
                              error=SUPERSEDED)
    elif task["state"] != "PENDING" or task["task_id"] not in ctl._fed:
        if task["start_time"] is not None and (task["state"] in _LIVE
                                               or task["state"] in FINAL_STATE_NAMES):
            # (it ended while its machine was cut off or frozen, after the
            # requeue: nothing could stop it; said where an audit looks)
            why = (f"its run {step['run_key']} on {name}, given up for lost, ended {state} "
                   "after its new run started")
            ctl.log(f"job {task['task_id']}: {why}: it ran twice")
            ctl.store.log(task["task_id"], now, "ran-twice", why)
        return False
    ctl.store.update_task(task["task_id"], state="RUNNING", node=name, run_key=step["run_key"],
                          start_time=result.get("start_time") or step["start_time"],
                          end_time=None, exit_code=None, exit_signal=None, collected=0)
    ctl.store.update_step(step["run_key"], state="RUNNING", end_time=None)
    ctl.store.log(task["task_id"], now, "reconciled",
                  f"run {step['run_key']} on {name} had ended {state} before a new run "
                  "started: it is the job's result")
    return True
