"""What the controller does with what reaches its inbox from elsewhere than a
client: agent messages, link news, staged inputs and copied outputs.

Every function here runs inside :meth:`Controller.step`'s transaction: it
changes the store and queues scheduler events and agent messages; nothing is
sent before the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from ..node.agent import protocol
from . import gpustats, health, srun_direct, suspend
from ..model import FINAL_STATE_NAMES
from ..scheduler import JobRestored, NodeDrain, NodeResume, NodeUp, UserNodeExcluded, UserNodesCleared
from ..store_samples import KEPT_POINTS
from .collect import collect_output, kept_where
from ..paths import JobPaths
from .injob import on_rpc
from .launch import fail_launch, safe_launch
from .lifecycle import (RESULT_STATES, end_task, finish_cancel, finish_collection, move,
                        node_fail, requeue_task)
from .health import mark_down, measured
from .inbox import (AgentMessage, Collected, ConnectFailed, Connected, LinkLost, Message,
                    Staged, Wake)

if TYPE_CHECKING:
    from .context import Context


# -- dispatch -----------------------------------------------------------------
def handle(ctx: "Context", item: "Message", now: float) -> None:
    """One inbox message that is not a client's request, by its type."""
    if isinstance(item, (Connected, ConnectFailed, LinkLost, AgentMessage)):
        link = ctx.links.get(item.node)
        if link is None or item.gen != link.generation:
            return  # news from a channel we already dropped
    _HANDLERS[type(item)](ctx, item, now)


def _ignore(ctx: "Context", item: "Message", now: float) -> None:
    pass


def on_collected(ctx: "Context", item: Collected, now: float) -> None:
    if item.error:
        ctx.log(f"job {item.task_id}: could not copy its output back from {item.node}: "
                f"{item.error}")
        return  # retried when the agent reports the run again
    finish_collection(ctx, item.task_id, item.run_key, item.node, now, keep=item.kept)


def on_connected(ctx: "Context", item: Connected, now: float) -> None:
    ctx.send(item.node, health.hello_request(ctx, item.node, now))


def on_link_failed(ctx: "Context", item: "ConnectFailed | LinkLost", now: float) -> None:
    """Connecting failed, or a link that was up broke."""
    name = item.node
    link = ctx.links[name]
    ctx.nodes.dirty = True  # sinfo shows link state
    failed = isinstance(item, ConnectFailed)
    never_up = link.last_heard is None
    link.drop()
    link.failures += 1
    link.error = item.error
    if failed and link.failures == 1:
        ctx.log(f"node {name}: {item.error}")
    definitive = failed and item.kind in (  # type: ignore[union-attr]
        "AuthenticationFailed", "HostKeyError", "WorkdirTaken")
    if (never_up or definitive) and failed and name not in ctx.nodes.down:
        # a machine that never answered, or refuses us: DOWN at once (its
        # jobs, if any, are failed only after the heartbeat timeout)
        mark_down(ctx, name, item.error, now, fail_jobs=False)
    elif name in ctx.nodes.down and link.error:
        ctx.nodes.down[name] = link.error


def on_agent(ctx: "Context", item: AgentMessage, now: float) -> None:
    """One event from a machine's agent."""
    name, msg = item.node, item.msg
    link = ctx.links[name]
    ev = msg.get("ev")
    if ev in ("hello", "facts"):
        ctx.nodes.dirty = True  # sinfo shows load and free memory
    link.last_heard = now
    if name in ctx.nodes.not_responding and ev != "hello":
        health.responding_again(ctx, name)
    if ev == "hello":
        _hello(ctx, name, msg, now)
        ctx.store.note_load(name, now, link.facts.get("load1"), link.facts.get("free_mem_mb"))
    elif ev == "facts":
        gpustats.on_facts(ctx, name, link.facts, msg, now)
        link.facts.update({k: v for k, v in msg.items() if k not in ("ev", "re")})
        # the dashboard's sparkline: one point a minute, a day of them
        ctx.store.note_load(name, now, link.facts.get("load1"), link.facts.get("free_mem_mb"))
        ctx.emit(measured(name, link.facts))
    elif ev == "samples":
        _samples(ctx, msg.get("jobs"))
    elif ev == "started":
        # no row for an unknown key: the update changes nothing
        ctx.store.update_step(str(msg.get("key")), pid=msg.get("pid"))
    elif ev == "ended":
        _result(ctx, name, msg.get("result") or {}, now, msg.get("output"))
    elif ev == "launch_failed":
        launch_failed(ctx, name, str(msg.get("key")), str(msg.get("error") or ""), now,
                      cause=str(msg.get("cause") or "node"))
    elif ev == "stdin":
        # how much of srun's standard input reached the job (see requests.steps.op_stdin)
        ctx.stdin_acks[str(msg.get("key"))] = (int(msg.get("written") or 0),
                                               bool(msg.get("closed")))
    elif ev == "rpc":
        on_rpc(ctx, name, msg)  # a command inside a job there
    elif ev == "error":
        ctx.log(f"node {name}: agent error: {msg.get('error')}")


def _samples(ctx: "Context", jobs: object) -> None:
    """Runs' new resource samples (``sampling``): kept, bounded (an ended
    run's to KEPT_POINTS), for sstat and the dashboard's job chart."""
    if not isinstance(jobs, dict):
        return
    for key, got in jobs.items():
        if not isinstance(got, dict) or not isinstance(got.get("points"), list):
            continue
        step = ctx.store.step(str(key))
        if step is None:
            continue  # a run the controller does not know: nothing to show it under
        tasks = got.get("tasks")
        ctx.store.add_samples(str(key), got["points"], got.get("peak"),
                              tasks if isinstance(tasks, dict) else None)
        if step["state"] != "RUNNING":
            ctx.store.thin_samples(str(key), KEPT_POINTS)


#: launch failures (on machines that were drained for them) after which a
#: job is held rather than requeued again: it is likely the job, not the machines
MAX_LAUNCH_FAILURES = 3
#: SLURM's reason for such a job (WAIT_MAX_REQUEUE)
LAUNCH_HELD = "launch_failed_requeued_held"


def launch_failed(ctx: "Context", name: str, key: str, error: str, now: float,
                  cause: str = "node") -> None:
    """A job could not start (nothing ran). Blame the right party:

    * ``cause == "job"`` (the agent refused the job's own spec): the job ends
      FAILED (JobLaunchFailure); the machine is left alone.
    * otherwise the machine failed (full disk, unwritable workdir...): as SLURM
      does, it is drained with the reason and the job requeued (FAILED if it
      may not be); after :data:`MAX_LAUNCH_FAILURES` such failures the job is
      requeued held (``launch_failed_requeued_held``), so one job cannot
      drain a whole fleet.
    """
    step = ctx.store.step(key)
    task = ctx.store.task(step["task_id"]) if step else None
    if task is None or task["run_key"] != key or task["state"] != "RUNNING":
        return
    if cause in ("job", "user"):
        fail_launch(ctx, task, key, error, now)
        if cause == "user":
            _bar_user(ctx, task, name, error, now)
        return
    reason = (f"Launch failed on {name}: {error[:300]}; fix the machine (disk space, "
              f"workdir permissions), then: scontrol update NodeName={name} State=RESUME")
    ctx.log(f"job {task['task_id']}: {reason}")
    ctx.store.set_node(name, admin_state="drain", reason=reason, reason_time=now)
    ctx.emit(NodeDrain(name, reason))
    ctx.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    job = ctx.store.job(task["job_id"])
    if job and job["spec"].get("requeue", True):
        failures = int(task["req"].get("launch_failures") or 0) + 1
        hold = failures >= MAX_LAUNCH_FAILURES
        requeue_task(ctx, task, now, f"launch failed on {name}: {error}",
                     state_note="FAILED", hold=hold)
        req = dict(ctx.store.task(task["task_id"])["req"])  # type: ignore[index]
        req["launch_failures"] = failures
        if hold:
            req["held_reason"] = LAUNCH_HELD
            ctx.log(f"job {task['task_id']}: launch failed on {failures} machines: held "
                    f"({LAUNCH_HELD}); see `scontrol show job {task['task_id']}`, then "
                    "`scontrol release`")
        ctx.store.update_task(task["task_id"], req=req)
        return
    end_task(ctx, task, "FAILED", now, f"FAILED launch: {error}", exit_code=1,
             reason="JobLaunchFailure")


def _bar_user(ctx: "Context", task: dict, name: str, error: str, now: float) -> None:
    """The job's user is unknown on machine ``name``: none of their jobs is placed
    there any more, until the machine's agent says hello again (it reconnected:
    perhaps its users changed), an admin resumes it (``scontrol update
    NodeName=... State=RESUME``) or the controller restarts. Kept in memory
    only: after a restart one more job of theirs may fail there and bar it again."""
    job = ctx.store.job(task["job_id"])
    if job is None:
        return
    user = job["user"]
    barred = ctx.nodes.barred.setdefault(name, set())
    if user in barred:
        return
    barred.add(user)
    why = f"user {user} is unknown on machine {name}"
    ctx.log(f"node {name}: {why}: {user}'s jobs are no longer placed there (until its "
            f"agent reconnects or: scontrol update NodeName={name} State=RESUME)")
    ctx.emit(UserNodeExcluded(user, name, why))


def clear_barred(ctx: "Context", name: str) -> None:
    """Users barred from machine ``name`` may be placed there again."""
    if ctx.nodes.barred.pop(name, None):
        ctx.emit(UserNodesCleared(name))


def _hello(ctx: "Context", name: str, msg: dict, now: float) -> None:
    link = ctx.links[name]
    link.status = "up"
    link.failures = 0
    link.error = ""
    link.facts = dict(msg.get("facts") or {})
    ctx.store.set_node(name, facts=link.facts, last_seen=now)
    # (a hello's facts carry no workstation measurements: the heartbeats do,
    # and until then the scheduler keeps what it knew)
    admin = ctx.store.node(name)
    ctx.nodes.awaiting_hello.discard(name)
    clear_barred(ctx, name)
    silent = name in ctx.nodes.not_responding
    ctx.nodes.not_responding.discard(name)
    if admin["admin_state"] == "down":
        pass  # an admin's DOWN stands until State=RESUME
    elif name in ctx.nodes.down or silent or ctx.sched.node_state(name) == "down":
        ctx.nodes.down.pop(name, None)
        ctx.nodes.failed.discard(name)
        ctx.emit(NodeUp(ctx.node_spec(name, link.facts)))
        if admin["admin_state"] == "drain":
            ctx.emit(NodeDrain(name, admin["reason"]))
        else:
            ctx.emit(NodeResume(name))  # a RESUME given while it was down
    reported = {j["key"]: j for j in msg.get("jobs") or []}
    for task in ctx.store.live_tasks_on(name):
        info = reported.pop(task["run_key"], None)
        if info is None and task["state"] == "COMPLETING":
            finish_collection(ctx, task["task_id"], task["run_key"], name, now)
        elif info is None and task["cancelled_by"] is not None:
            # cancelled before its launch reached the machine: it never ran
            finish_cancel(ctx, task, task["cancelled_by"], now)
        elif info is not None and info.get("status") != "ended" \
                and task["cancelled_by"] is not None:
            # a cancel that was committed but never reached the agent
            ctx.send(name, protocol.cancel(task["run_key"], 15))
        elif info is None:
            # committed as started but the launch never reached the agent: the
            # agent's launch is idempotent per run key, so sending it again is safe
            safe_launch(ctx, task, now)
        elif info.get("status") == "ended" and info.get("result"):
            _result(ctx, name, info["result"], now)
        elif info.get("status") != "ended":
            suspend.reassert(ctx, name, task)
    for key, info in reported.items():
        if info.get("status") == "ended" and info.get("result"):
            _result(ctx, name, info["result"], now)
        else:
            _stray_running(ctx, name, key, now)


def _stray_running(ctx: "Context", name: str, key: str, now: float) -> None:
    """A run the controller no longer expects on this machine is still going."""
    step = ctx.store.step(key)
    task = ctx.store.task(step["task_id"]) if step else None
    if (task is not None and task["state"] == "NODE_FAIL" and task["run_key"] == key
            and task["node"] == name):
        # it survived the outage and was not requeued: take it back
        job = ctx.store.job(task["job_id"])
        move(ctx, task, "RUNNING", end_time=None)
        ctx.store.log(task["task_id"], now, "reconciled", f"still running on {name}")
        ctx.emit(JobRestored(ctx.request_of(task, job), name,  # type: ignore[arg-type]
                             tuple(task["gpu_ids"]), task["start_time"] or now))
        ctx.mark_fed(task, job)
        return
    # requeued elsewhere (or unknown): it must not run twice
    ctx.send(name, protocol.cancel(key, 9))


#: a run's supervisor takes its first resource sample no sooner than this
#: many seconds after the run's start (node.agent.sampling.Sampler: the
#: interval is at least 0.2 s, the first sample after min(1 s, interval))
FIRST_SAMPLE_S = 0.2


def _may_have_samples(result: dict) -> bool:
    """Whether an ended run may have resource samples on its machine: not
    one that ended before its supervisor's first sample (most short jobs),
    so its end costs no `samples` request and reply (each a message over
    SSH, and a scan of every run's series on the machine). Times missing or
    odd: it may."""
    start, end = result.get("start_time"), result.get("end_time")
    if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
        return True
    return end - start >= FIRST_SAMPLE_S


def _result(ctx: "Context", name: str, result: dict, now: float,
            output: Optional[dict] = None) -> None:
    """A run ended on a machine (reported live, or found at the agent's hello).

    With a shared filesystem the job is final at once. Without one it is
    COMPLETING until its output is safe on the submit host (then final), the
    way SLURM's COMPLETING covers a job's epilogue.
    """
    key = str(result.get("key"))
    step = ctx.store.step(key)
    if step is None:
        ctx.send(name, protocol.forget(key))
        return
    sampled = _may_have_samples(result)
    if step["state"] == "RUNNING" and sampled:
        # its last samples, before any forget below removes them there (one
        # request a machine a step: a hello may bring a thousand ends)
        link = ctx.links.get(name)
        if link is not None and getattr(link, "samples_asked", None) != now:
            link.samples_asked = now  # type: ignore[attr-defined]
            ctx.send(name, protocol.samples())
    if sampled:  # (a run too short for samples has none to thin, nor its steps)
        ctx.store.thin_samples(key, KEPT_POINTS)
        for srun in ctx.store.steps_of(step["task_id"]):
            # the run's srun steps too: one whose last points came before srun's
            # step end was never thinned when it ended
            if srun["run_key"].startswith(key + "."):
                ctx.store.thin_samples(srun["run_key"], KEPT_POINTS)
    task = ctx.store.task(step["task_id"])
    if task is not None and task["run_key"] != key and health.lost_run_stands(
            ctx, name, task, step, result, now):
        task, step = ctx.store.task(step["task_id"]), ctx.store.step(key)
        assert task is not None and step is not None
    shared = ctx.transport_for(name).shared_fs
    if task is not None and task["run_key"] != key and not shared and \
            step["error"] != health.SUPERSEDED:
        # an earlier run of a requeued job: its output goes home too (SLURM
        # appends every run to the same file), then the agent may forget it
        collect_output(ctx, dict(task, run_key=key, restart_count=1), name, output)
    elif shared or task is None or task["run_key"] != key:
        ctx.send(name, protocol.forget(key))
    state = str(result.get("state") or "FAILED")
    if step["state"] == "RUNNING" or step["end_time"] is None:
        ctx.store.update_step(
            key, state="NODE_FAIL" if state == "LOST" else state,
            end_time=result.get("end_time") or now,
            exit_code=result.get("exit_code"), exit_signal=result.get("signal"),
            user_cpu=result.get("user_cpu"), system_cpu=result.get("system_cpu"),
            max_rss_kb=result.get("max_rss_kb"), error=result.get("error"))
        if task is not None:
            srun_direct.end(ctx, task, key, result, now)
    if task is None or task["run_key"] != key:
        return  # an earlier run of a requeued job: recorded on its step, not counted again
    if task["state"] == "COMPLETING" or (task["state"] in FINAL_STATE_NAMES
                                          and task["state"] != "NODE_FAIL"):
        if not shared and not task["collected"]:
            collect_output(ctx, task, name)  # a copy that did not finish: again
        elif not shared and task["state"] != "COMPLETING":
            # its output was dealt with (home, or kept there) and the forget
            # that said so never reached the agent (sent after the commit, or
            # held a moment to share a write: nodelink.Held, when the
            # controller stopped or the link dropped): forgotten now, its
            # directory moved aside, not deleted (whether its output came
            # home is not recorded), so the agent stops reporting it
            where = kept_where(name, JobPaths(ctx.transport_for(name).workdir, key))
            ctx.log(f"job {task['task_id']}: its ended run {key} was still on {name}: "
                    f"moved aside there ({where})")
            ctx.send(name, protocol.forget(key, keep=True))
        return
    reconcile = task["state"] == "NODE_FAIL" and task["node"] == name
    if task["state"] not in ("RUNNING", "SUSPENDED") and not reconcile:
        return
    if state == "LOST":
        if not reconcile:
            node_fail(ctx, task, now, "the machine lost the job's supervisor")
        return
    final = state if state in RESULT_STATES else "FAILED"
    if task["cancelled_by"] is not None:
        final = "CANCELLED"
    end_task(ctx, task, final if shared else "COMPLETING", now,
             f"{final} {result.get('exit_code')}:{result.get('signal')}",
             exit_code=result.get("exit_code"), exit_signal=result.get("signal"),
             end_time=result.get("end_time"), ended_as=final, tell_scheduler=not reconcile)
    if not shared:
        collect_output(ctx, task, name, output)


def on_staged(ctx: "Context", item: Staged, now: float) -> None:
    """A run's staged inputs are on its machine (or failed to get there)."""
    node, task_id, key, msg, error, fatal = (item.node, item.task_id, item.run_key,
                                             item.launch, item.error, item.fatal)
    task = ctx.store.task(task_id)
    if task is None or task["run_key"] != key or task["state"] != "RUNNING":
        ctx.send(node, protocol.forget(key))  # requeued or gone: drop the files
        return
    if task["cancelled_by"] is not None:
        ctx.send(node, protocol.forget(key))
        finish_cancel(ctx, task, task["cancelled_by"], now)
        return
    if not error:
        ctx.send(node, msg)
        return
    ctx.log(f"job {task_id}: {error}")
    if not fatal:
        return  # the link dropped: the agent's hello launches (and stages) it again
    # a staged file that cannot be read, or a fault of the controller's own,
    # fails the job; the machine is drained only when the fault is the machine's
    if item.machine:
        launch_failed(ctx, node, key, error, now)
    else:
        _fail(ctx, task, key, error, now)


def _fail(ctx: "Context", task: dict, key: str, error: str, now: float) -> None:
    ctx.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    ctx.send(task["node"], protocol.forget(key))
    end_task(ctx, task, "FAILED", now, f"FAILED staging: {error}", exit_code=1,
             reason="JobLaunchFailure", collected=1)


_HANDLERS: dict[type, Callable[..., None]] = {
    Wake: _ignore, Connected: on_connected, ConnectFailed: on_link_failed,
    LinkLost: on_link_failed, AgentMessage: on_agent, Staged: on_staged,
    Collected: on_collected,
}
