"""What the controller does with agent messages and its own clock.

Every function here runs inside :meth:`Controller.step`'s transaction: it
changes the store and queues scheduler events and agent messages; nothing is
sent before the commit.
"""

from __future__ import annotations

import functools
import os
import posixpath
from typing import TYPE_CHECKING, Optional

from . import health
from .model import FINAL_STATE_NAMES, LIVE_STATE_NAMES
from .paths import JobPaths
from .scheduler import (JobEnded, JobRequeued, JobRestored, JobSubmitted, NodeDown, NodeDrain,
                        NodeResume, NodeUp, StartJob)
from .slurm.jobspec import job_environment
from .slurm.patterns import expand_pattern

if TYPE_CHECKING:
    from .controller import Controller


_LIVE = LIVE_STATE_NAMES
INLINE_OUTPUT = 256 * 1024
_RESULT_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"}
#: how long a machine not yet heard from since the controller started may take,
#: from the first connection attempt, to connect and say hello before its jobs
#: are failed (at least three heartbeats)
START_GRACE_S = 10.0


# -- launching --------------------------------------------------------------------
def start_job(ctl: "Controller", action: StartJob, now: float) -> None:
    """Record the start (committed first), then queue the launch."""
    # a task of an array's window gets its row now, as SLURM splits it from the array
    task = ctl.arrays.materialize(action.job_id) or ctl.store.task(action.job_id)
    assert task is not None, action
    # the fleet's id in the key: a run of another fleet on the same machine
    # can never be taken for one of ours
    run_key = f"{task['task_id']}.{task['restart_count']}.{ctl.cluster_id}"
    started = dict(state="RUNNING", reason="None", node=action.node,
                   gpu_ids=list(action.gpu_ids), alloc_cpus=action.cpus,
                   alloc_mem_mb=action.mem_mb, run_key=run_key, start_time=now, end_time=None,
                   exit_code=None, exit_signal=None, collected=0)
    ctl.store.update_task(task["task_id"], **started)
    ctl.store.add_step(run_key, task["task_id"], action.node, now)
    ctl.store.log(task["task_id"], now, "start", f"{action.node} {run_key}")
    # the row as it now reads, without reading it back
    safe_launch(ctl, dict(task, acct_lines=None, **started), now)


def safe_launch(ctl: "Controller", task: dict, now: float) -> None:
    """:func:`launch`, where a job whose record cannot be launched (a stored
    spec no agent would take, or that this code cannot even read) fails with
    the reason instead of taking the controller down: one bad job record
    must never stop the loop (it would again at every restart)."""
    try:
        launch(ctl, task, now)
    except Exception as exc:  # defence in depth: submit refuses such specs
        import traceback

        ctl.log(f"job {task['task_id']}: cannot be launched:\n{traceback.format_exc()}")
        fail_launch(ctl, task, task["run_key"], f"its record cannot be launched: "
                    f"{type(exc).__name__}: {exc}", now)


def fail_launch(ctl: "Controller", task: dict, key: str, error: str, now: float) -> None:
    """The job itself cannot be launched (its spec, environment or script): it
    ends FAILED with reason JobLaunchFailure; no machine is blamed."""
    ctl.log(f"job {task['task_id']}: launch failed: {error}")
    ctl.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    ctl.store.update_task(task["task_id"], state="FAILED", end_time=now, exit_code=1,
                          exit_signal=0, reason="JobLaunchFailure", collected=1)
    ctl.store.log(task["task_id"], now, "end", f"FAILED launch: {error}")
    ctl.emit(JobEnded(task["task_id"], "FAILED", now))
    ctl.forget_fed(task["task_id"])
    ctl.task_finished(task)


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


def output_paths(ctl: "Controller", task: dict, job: dict) -> tuple[str, str]:
    """The submit-host paths SLURM's patterns give for stdout and stderr."""
    spec = job["spec"]
    # an array's record for its tasks not started yet is an array job too
    # (SLURM shows its StdOut with %a as NO_VAL: slurm-A_4294967294.out)
    array = task["array_index"] is not None or task.get("array_pending") is not None
    default = "slurm-%A_%a.out" if array else "slurm-%j.out"
    fields = dict(job_id=task["task_id"],
                  array_job_id=job["job_id"] if array else None,
                  array_task_id=task["array_index"], node=_host_name(ctl, task["node"]),
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


def _host_name(ctl: "Controller", node: Optional[str]) -> str:
    """The machine's own host name, as its agent reports it (SLURM's ``%N``
    is the host's name, not the node's), else the node name."""
    link = ctl.links.get(node) if node else None
    return str((link.facts.get("hostname") if link else None) or node or "")


@functools.lru_cache(maxsize=1)
def _controller_user() -> str:
    """The controller's login name (asked once: getpass reads the environment
    and the password database, on every launch otherwise)."""
    import getpass

    return getpass.getuser()


def _on_this_host(ctl: "Controller", node: str, transport: object) -> bool:
    """Whether a job on ``node`` runs on the controller's host as its user (the
    local transport, or SSH to a loopback address as ourselves): there the
    controller's shims and socket are reachable from inside the job."""
    if type(transport).__name__ == "LocalTransport":
        return True
    import ipaddress

    m = ctl.config.machines[node]
    if m.ssh_user not in (None, _controller_user()):
        return False
    if m.address == "localhost":
        return True
    try:
        return ipaddress.ip_address(m.address).is_loopback
    except ValueError:
        return False  # a host name: not resolved here (no DNS on the launch path)


def launch(ctl: "Controller", task: dict, now: float) -> None:
    job = ctl.store.job(task["job_id"])
    assert job is not None
    spec = job["spec"]
    node = task["node"]
    transport = ctl.transport_for(node)
    stdout, stderr = output_paths(ctl, task, job)
    ctl.store.update_task(task["task_id"], stdout=stdout, stderr=stderr)
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
        cluster=ctl.config.cluster_name, cpus=task["alloc_cpus"], gpu_ids=task["gpu_ids"],
        user=job["user"], uid=job["uid"], array=array, restart_count=task["restart_count"],
        name=task["req"]["name"])
    # the machine's python, for Python-function jobs (fleetslurm's Executor)
    env["FLEETSLURM_PYTHON"] = (getattr(transport, "python", None)
                                or ctl.config.machines[node].python)
    if _on_this_host(ctl, node, transport):
        # SLURM's commands inside the job are fleetslurm's (srun steps, scontrol
        # requeue), talking to this controller: first on PATH with the local
        # transport; after the submitter's PATH over SSH, so shims the submitter
        # put first on it still win (see the README on shims)
        bin_dir, path = str(ctl.paths.home / "bin"), env.get("PATH", "/usr/bin:/bin")
        local = type(transport).__name__ == "LocalTransport"
        env["PATH"] = f"{bin_dir}:{path}" if local else f"{path}:{bin_dir}"
        env["FLEETSLURM_HOME"] = str(ctl.paths.home)
        env["FLEETSLURM_CONTROLLER_HOST"] = "1"
    else:
        # elsewhere a command in the job must not start a controller of its own
        env.pop("FLEETSLURM_CONTROLLER_HOST", None)
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
        # srun outside an allocation streams its stdin to the job (ops_steps.op_stdin)
        "stdin_stream": bool(spec.get("stdin_stream")),
        "open_mode": "append" if (spec.get("open_mode") == "append"
                                  or task["restart_count"] > 0) else "truncate",
        "time_limit_s": None if limit is None else int(limit) * 60,
        "kill_wait_s": ctl.config.kill_wait,
        "signal": spec.get("signal"),
        "mem_limit_mb": mem,
        "umask": spec.get("umask"),  # the submitter's (SLURM_UMASK)
        # small outputs come home inside the `ended` event: no SFTP round trips
        "inline_output": None if transport.shared_fs else INLINE_OUTPUT,
        "uid": job["uid"] if os.getuid() == 0 and job["uid"] != 0 else None,
        "gid": spec.get("gid") if os.getuid() == 0 and job["uid"] != 0 else None,
    }
    from .staging import has_stage, launch_staged

    error = _spec_error(agent_spec)
    if error is not None:
        fail_launch(ctl, task, task["run_key"], error, now)
        return
    if has_stage(job) and not transport.shared_fs:
        launch_staged(ctl, task, job, transport, agent_spec)
        return
    ctl.send(node, {"op": "launch", "key": task["run_key"], "spec": agent_spec})


# -- agent messages -------------------------------------------------------------
def node_message(ctl: "Controller", item: tuple, now: float) -> None:
    kind = item[0]
    if kind == "wake":
        return
    if kind == "staged":
        from .staging import staged

        staged(ctl, item, now)
        return
    if kind == "collected":
        _, node, task_id, run_key, error, kept = item
        if error:
            ctl.log(f"job {task_id}: could not copy its output back from {node}: {error}")
            return  # retried when the agent reports the run again
        finish_collection(ctl, task_id, run_key, node, now, keep=kept)
        return
    name, gen = item[1], item[2]
    link = ctl.links.get(name)
    if link is None or gen != link.generation:
        return  # news from a channel we already dropped
    if kind == "connected":
        ctl.send(name, health.hello_request(ctl, name, now))
        return
    if kind != "agent" or item[3].get("ev") in ("hello", "facts"):
        ctl._nodes_dirty = True  # sinfo shows link state, load and free memory
    if kind in ("connect_failed", "lost"):
        never_up = link.last_heard is None
        link.drop()
        link.failures += 1
        link.error = item[3]
        if kind == "connect_failed" and link.failures == 1:
            ctl.log(f"node {name}: {item[3]}")
        definitive = kind == "connect_failed" and item[4] in ("AuthenticationFailed",
                                                               "HostKeyError", "WorkdirTaken")
        if (never_up or definitive) and kind == "connect_failed" and name not in ctl._node_down:
            # a machine that never answered, or refuses us: DOWN at once (its
            # jobs, if any, are failed only after the heartbeat timeout)
            mark_down(ctl, name, item[3], now, fail_jobs=False)
        elif name in ctl._node_down and link.error:
            ctl._node_down[name] = link.error
        return
    msg = item[3]
    link.last_heard = now
    ev = msg.get("ev")
    if name in ctl._not_responding and ev != "hello":
        health.responding_again(ctl, name)
    if ev == "hello":
        _hello(ctl, name, msg, now)
    elif ev == "facts":
        link.facts.update({k: v for k, v in msg.items() if k not in ("ev", "re")})
    elif ev == "started":
        # no row for an unknown key: the update changes nothing
        ctl.store.update_step(str(msg.get("key")), pid=msg.get("pid"))
    elif ev == "ended":
        _result(ctl, name, msg.get("result") or {}, now, msg.get("output"))
    elif ev == "launch_failed":
        launch_failed(ctl, name, str(msg.get("key")), str(msg.get("error") or ""), now,
                      cause=str(msg.get("cause") or "node"))
    elif ev == "stdin":
        # how much of srun's standard input reached the job (see ops_steps.op_stdin)
        ctl.stdin_acks[str(msg.get("key"))] = (int(msg.get("written") or 0),
                                               bool(msg.get("closed")))
    elif ev == "error":
        ctl.log(f"node {name}: agent error: {msg.get('error')}")


#: launch failures (on machines that were drained for them) after which a
#: job is held rather than requeued again: it is likely the job, not the machines
MAX_LAUNCH_FAILURES = 3
#: SLURM's reason for such a job (WAIT_MAX_REQUEUE)
LAUNCH_HELD = "launch_failed_requeued_held"


def launch_failed(ctl: "Controller", name: str, key: str, error: str, now: float,
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
    step = ctl.store.step(key)
    task = ctl.store.task(step["task_id"]) if step else None
    if task is None or task["run_key"] != key or task["state"] != "RUNNING":
        return
    if cause == "job":
        fail_launch(ctl, task, key, error, now)
        return
    reason = (f"Launch failed on {name}: {error[:300]}; fix the machine (disk space, "
              f"workdir permissions), then: scontrol update NodeName={name} State=RESUME")
    ctl.log(f"job {task['task_id']}: {reason}")
    ctl.store.set_node(name, admin_state="drain", reason=reason, reason_time=now)
    ctl.emit(NodeDrain(name, reason))
    ctl.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    job = ctl.store.job(task["job_id"])
    if job and job["spec"].get("requeue", True):
        failures = int(task["req"].get("launch_failures") or 0) + 1
        hold = failures >= MAX_LAUNCH_FAILURES
        requeue_task(ctl, task, now, f"launch failed on {name}: {error}",
                     state_note="FAILED", hold=hold)
        req = dict(ctl.store.task(task["task_id"])["req"])  # type: ignore[index]
        req["launch_failures"] = failures
        if hold:
            req["held_reason"] = LAUNCH_HELD
            ctl.log(f"job {task['task_id']}: launch failed on {failures} machines: held "
                    f"({LAUNCH_HELD}); see `scontrol show job {task['task_id']}`, then "
                    "`scontrol release`")
        ctl.store.update_task(task["task_id"], req=req)
        return
    ctl.store.update_task(task["task_id"], state="FAILED", end_time=now, exit_code=1,
                          exit_signal=0, reason="JobLaunchFailure")
    ctl.store.log(task["task_id"], now, "end", f"FAILED launch: {error}")
    ctl.emit(JobEnded(task["task_id"], "FAILED", now))
    ctl.forget_fed(task["task_id"])
    ctl.task_finished(task)


def _hello(ctl: "Controller", name: str, msg: dict, now: float) -> None:
    link = ctl.links[name]
    link.status = "up"
    link.failures = 0
    link.error = ""
    link.facts = dict(msg.get("facts") or {})
    ctl.store.set_node(name, facts=link.facts, last_seen=now)
    admin = ctl.store.node(name)
    ctl._awaiting_hello.discard(name)
    silent = name in ctl._not_responding
    ctl._not_responding.discard(name)
    if admin["admin_state"] == "down":
        pass  # an admin's DOWN stands until State=RESUME
    elif name in ctl._node_down or silent or ctl.sched.node_state(name) == "down":
        ctl._node_down.pop(name, None)
        ctl._failed_nodes.discard(name)
        ctl.emit(NodeUp(ctl.node_spec(name, link.facts)))
        if admin["admin_state"] == "drain":
            ctl.emit(NodeDrain(name, admin["reason"]))
        else:
            ctl.emit(NodeResume(name))  # a RESUME given while it was down
    reported = {j["key"]: j for j in msg.get("jobs") or []}
    for task in ctl.store.live_tasks_on(name):
        info = reported.pop(task["run_key"], None)
        if info is None and task["state"] == "COMPLETING":
            finish_collection(ctl, task["task_id"], task["run_key"], name, now)
        elif info is None and task["cancelled_by"] is not None:
            # cancelled before its launch reached the machine: it never ran
            from .ops import finish_cancel

            finish_cancel(ctl, task, task["cancelled_by"], now)
        elif info is not None and info.get("status") != "ended" \
                and task["cancelled_by"] is not None:
            # a cancel that was committed but never reached the agent
            ctl.send(name, {"op": "cancel", "key": task["run_key"], "signal": 15})
        elif info is None:
            # committed as started but the launch never reached the agent: the
            # agent's launch is idempotent per run key, so sending it again is safe
            safe_launch(ctl, task, now)
        elif info.get("status") == "ended" and info.get("result"):
            _result(ctl, name, info["result"], now)
    for key, info in reported.items():
        if info.get("status") == "ended" and info.get("result"):
            _result(ctl, name, info["result"], now)
        else:
            _stray_running(ctl, name, key, now)


def _stray_running(ctl: "Controller", name: str, key: str, now: float) -> None:
    """A run the controller no longer expects on this machine is still going."""
    step = ctl.store.step(key)
    task = ctl.store.task(step["task_id"]) if step else None
    if (task is not None and task["state"] == "NODE_FAIL" and task["run_key"] == key
            and task["node"] == name):
        # it survived the outage and was not requeued: take it back
        job = ctl.store.job(task["job_id"])
        ctl.store.update_task(task["task_id"], state="RUNNING", end_time=None)
        ctl.store.log(task["task_id"], now, "reconciled", f"still running on {name}")
        ctl.emit(JobRestored(ctl.request_of(task, job), name,  # type: ignore[arg-type]
                             tuple(task["gpu_ids"]), task["start_time"] or now))
        ctl.mark_fed(task, job)
        return
    # requeued elsewhere (or unknown): it must not run twice
    ctl.send(name, {"op": "cancel", "key": key, "signal": 9})


def _result(ctl: "Controller", name: str, result: dict, now: float,
            output: Optional[dict] = None) -> None:
    """A run ended on a machine (reported live, or found at the agent's hello).

    With a shared filesystem the job is final at once. Without one it is
    COMPLETING until its output is safe on the submit host (then final), the
    way SLURM's COMPLETING covers a job's epilogue.
    """
    key = str(result.get("key"))
    step = ctl.store.step(key)
    if step is None:
        ctl.send(name, {"op": "forget", "key": key})
        return
    task = ctl.store.task(step["task_id"])
    if task is not None and task["run_key"] != key and health.lost_run_stands(
            ctl, name, task, step, result, now):
        task, step = ctl.store.task(step["task_id"]), ctl.store.step(key)
        assert task is not None and step is not None
    shared = ctl.transport_for(name).shared_fs
    if task is not None and task["run_key"] != key and not shared and \
            step["error"] != health.SUPERSEDED:
        # an earlier run of a requeued job: its output goes home too (SLURM
        # appends every run to the same file), then the agent may forget it
        collect_output(ctl, dict(task, run_key=key, restart_count=1), name, output)
    elif shared or task is None or task["run_key"] != key:
        ctl.send(name, {"op": "forget", "key": key})
    state = str(result.get("state") or "FAILED")
    if step["state"] == "RUNNING" or step["end_time"] is None:
        ctl.store.update_step(
            key, state="NODE_FAIL" if state == "LOST" else state,
            end_time=result.get("end_time") or now,
            exit_code=result.get("exit_code"), exit_signal=result.get("signal"),
            user_cpu=result.get("user_cpu"), system_cpu=result.get("system_cpu"),
            max_rss_kb=result.get("max_rss_kb"), error=result.get("error"))
    if task is None or task["run_key"] != key:
        return  # an earlier run of a requeued job: recorded on its step, not counted again
    if task["state"] == "COMPLETING" or (task["state"] in FINAL_STATE_NAMES
                                          and task["state"] != "NODE_FAIL"):
        if not shared and not task["collected"]:
            collect_output(ctl, task, name)  # a copy that did not finish: again
        return
    reconcile = task["state"] == "NODE_FAIL" and task["node"] == name
    if task["state"] != "RUNNING" and not reconcile:
        return
    if state == "LOST":
        if not reconcile:
            node_fail(ctl, task, now, "the machine lost the job's supervisor")
        return
    final = state if state in _RESULT_STATES else "FAILED"
    if task["cancelled_by"] is not None:
        final = "CANCELLED"
    ctl.store.update_task(task["task_id"], state=final if shared else "COMPLETING",
                          end_time=result.get("end_time") or now,
                          exit_code=result.get("exit_code"), exit_signal=result.get("signal"))
    ctl.store.log(task["task_id"], now, "end", f"{final} {result.get('exit_code')}:"
                  f"{result.get('signal')}")
    if not reconcile:
        ctl.emit(JobEnded(task["task_id"], final, result.get("end_time") or now))
        ctl.forget_fed(task["task_id"])
        ctl.task_finished(task)
    if not shared:
        collect_output(ctl, task, name, output)


def final_state(task: dict, step: Optional[dict]) -> str:
    """The state a COMPLETING task ends in, from its run's record."""
    if task["cancelled_by"] is not None:
        return "CANCELLED"
    state = step["state"] if step else "FAILED"
    return state if state in _RESULT_STATES else "FAILED"


def finish_collection(ctl: "Controller", task_id: int, run_key: str, node: str,
                      now: float, keep: bool = False) -> None:
    """A run's output is home (or, with ``keep``, could not come home: the
    agent moves the run's directory aside instead of deleting it, and no
    longer reports the run): its task may end COMPLETING."""
    task = ctl.store.task(task_id)
    ctl.send(node, {"op": "forget", "key": run_key, "keep": True} if keep
             else {"op": "forget", "key": run_key})
    if task is None:
        return
    if task["run_key"] != run_key:
        return  # an earlier run's output, appended before the current run's
    if task["state"] == "COMPLETING":
        ctl.store.update_task(task_id, collected=1,
                              state=final_state(task, ctl.store.step(run_key)))
    else:
        ctl.store.update_task(task_id, collected=1)


def collect_output(ctl: "Controller", task: dict, node: str,
                   output: Optional[dict] = None) -> None:
    """Without a shared filesystem, bring the job's output home: from the
    `ended` event when it came inline, else copied over the transport in the
    background (after the commit)."""
    transport = ctl.transport_for(node)
    if transport.shared_fs:
        return
    from .collect import copy_back, kept_where, log_kept, write_inline

    fresh = dict(ctl.store.task(task["task_id"]) or task)
    # the run whose output this is: an earlier run of a requeued job is not
    # the task's current one (its files, and the key the agent must forget)
    fresh["run_key"], fresh["restart_count"] = task["run_key"], task["restart_count"]
    job = ctl.store.job(task["job_id"])
    fresh["open_mode"] = job["spec"].get("open_mode") if job else None
    from .staging import has_stage, stage_paths

    fresh["stage_out"] = stage_paths(job, fresh, "out") if job and has_stage(job) else []
    fresh["owner"] = job["uid"] if job else None
    fresh["umask"] = job["spec"].get("umask") if job else None
    if output is not None and not fresh["stage_out"]:  # result files need a copy
        error = write_inline(ctl, fresh, output)
        if error:
            # the submit host refused it; the job finishes all the same, and
            # the machine keeps the run's directory
            log_kept(ctl, fresh["task_id"], error,
                     kept_where(node, JobPaths(transport.workdir, fresh["run_key"])))
        finish_collection(ctl, fresh["task_id"], fresh["run_key"], node, ctl.now,
                          keep=bool(error))
        return
    # (one copy of a run at a time: see copy_back)
    ctl.after_commit(lambda: copy_back(ctl, fresh, node))


# -- failures and requeue ---------------------------------------------------------
def requeue_task(ctl: "Controller", task: dict, now: float, why: str, hold: bool = False,
                 state_note: str = "REQUEUED", signal: int = 9) -> None:
    """Back to PENDING under the same id; a live run gets ``signal`` (SIGTERM:
    SIGKILL follows after KillWait)."""
    if task["state"] == "RUNNING":  # its run so far counts, as in SLURM
        ctl.fairshare.charge_run(ctl, task, now, now)
    if task["state"] in _LIVE and task["run_key"]:
        ctl.send(task["node"], {"op": "cancel", "key": task["run_key"], "signal": signal,
                                "requeue": True})
        step = ctl.store.step(task["run_key"])
        if step and step["end_time"] is None:
            ctl.store.update_step(task["run_key"], state=state_note, end_time=now)
    ctl.store.update_task(task["task_id"], state="PENDING", reason="None", node=None,
                          run_key=None, restart_count=task["restart_count"] + 1,
                          start_time=None, end_time=None, exit_code=None, exit_signal=None,
                          alloc_cpus=None, alloc_mem_mb=None, gpu_ids=None,
                          held=int(hold or task["held"]), cancelled_by=None, collected=0)
    ctl.store.log(task["task_id"], now, "requeue", why)
    if task["task_id"] in ctl._fed and task["state"] == "RUNNING":
        ctl.emit(JobRequeued(task["task_id"]))
        if hold:
            from .scheduler import JobHeld

            ctl.emit(JobHeld(task["task_id"]))
    else:
        # it had ended (or was finishing) as far as the scheduler knows: new again
        fresh = ctl.store.task(task["task_id"])
        job = ctl.store.job(task["job_id"])
        ctl.emit(JobSubmitted(ctl.request_of(fresh, job)))  # type: ignore[arg-type]
        ctl.mark_fed(fresh, job)  # type: ignore[arg-type]


def node_fail(ctl: "Controller", task: dict, now: float, why: str) -> None:
    if task.get("cancelled_by") is not None:
        # cancelled while its machine did not answer: the cancel stands (a
        # requeue would run again what its user cancelled); the run, if it
        # still lives, is named unwanted at the machine's next hello
        from .ops import finish_cancel

        if task["run_key"]:
            ctl.store.update_step(task["run_key"], state="CANCELLED", end_time=now)
        finish_cancel(ctl, task, task["cancelled_by"], now)
        return
    job = ctl.store.job(task["job_id"])
    if job and job["spec"].get("requeue", True):
        if task["run_key"]:
            ctl.store.update_step(task["run_key"], state="NODE_FAIL", end_time=now)
        requeue_task(ctl, task, now, f"NODE_FAIL: {why}", state_note="NODE_FAIL")
        return
    ctl.store.update_task(task["task_id"], state="NODE_FAIL", end_time=now, exit_code=0,
                          exit_signal=0, reason="NodeDown")
    if task["run_key"]:
        ctl.store.update_step(task["run_key"], state="NODE_FAIL", end_time=now)
    ctl.store.log(task["task_id"], now, "end", f"NODE_FAIL {why}")
    ctl.emit(JobEnded(task["task_id"], "NODE_FAIL", now))
    ctl.forget_fed(task["task_id"])
    ctl.task_finished(task)


# -- the clock ----------------------------------------------------------------
def periodic(ctl: "Controller", now: float) -> None:
    hb = ctl.config.heartbeat_interval
    for name, link in ctl.links.items():
        if link.status == "up" and now - getattr(link, "last_ping", 0) >= hb:
            link.last_ping = now  # type: ignore[attr-defined]
            ctl.send(name, {"op": "facts"})
        if link.status == "lost":
            backoff = min(30.0, 0.5 * (2 ** min(link.failures, 6)))
            if ctl.config.machines[name].transport == "local":
                backoff = min(backoff, 1.0)
            if now - link.last_attempt >= backoff:
                link.connect(now)
        if link.last_heard is not None:
            heard, down_after = link.last_heard, ctl.config.node_timeout
        else:
            # Not heard from since this controller started: its SSH handshake
            # and the agent's start can take longer than a short node_timeout
            # on a busy host, and a restart must not requeue (run twice) the
            # jobs of a machine that is merely slow to answer. SLURM's
            # slurmctld likewise gives nodes SlurmdTimeout after it restarts.
            heard = link.first_attempt if link.first_attempt is not None else ctl.started_at
            down_after = max(ctl.config.node_timeout, START_GRACE_S)
        silent = now - heard
        if silent > min(3 * hb, down_after) and name not in ctl._not_responding:
            # three missed heartbeats: no new jobs, its jobs stay (SLURM's
            # NOT_RESPONDING, sinfo's "*")
            health.not_responding(ctl, name, now)
        if silent > down_after and name not in ctl._failed_nodes:
            # silent for node_timeout (SlurmdTimeout): DOWN, and its jobs NODE_FAIL
            mark_down(ctl, name, ctl._node_down.get(name) or link.error or "Not responding",
                      now)


def mark_down(ctl: "Controller", name: str, reason: str, now: float,
              fail_jobs: bool = True) -> None:
    """DOWN in sinfo with the reason; with ``fail_jobs`` its running jobs become
    NODE_FAIL (and are requeued where allowed)."""
    if name not in ctl._node_down:
        ctl._node_down[name] = reason
        ctl.emit(NodeDown(name, reason))
        ctl.links[name].drop()
    if fail_jobs:
        fail_node_jobs(ctl, name, reason, now)


def fail_node_jobs(ctl: "Controller", name: str, reason: str, now: float) -> None:
    ctl._failed_nodes.add(name)
    for task in ctl.store.live_tasks_on(name):
        if task["state"] == "COMPLETING":
            # it ended; only its output copy was pending, and that is now lost
            ctl.store.update_task(task["task_id"],
                                  state=final_state(task, ctl.store.step(task["run_key"])))
            ctl.store.log(task["task_id"], now, "output-lost", f"node {name} down")
            continue
        node_fail(ctl, task, now, f"node {name} down: {reason}")
