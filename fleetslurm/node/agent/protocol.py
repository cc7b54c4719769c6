"""The controller <-> node agent protocol: every message each way, its fields
and the protocol version. Standard library only, and cheap to import (no
typing, no dataclasses at run time: every module in the agent's heap is copied
by each fork), so both ends can use it: the agent builds its replies with the
constructors below, the controller may import them as
``fleetslurm.node.agent.protocol``.

Transport: JSON lines. One request object per line on the agent's stdin, one
reply or event object per line on its stdout; nothing else is ever written to
stdout (diagnostics go to ``<workdir>/agent.log``). Every request may carry
``id``; its reply carries it back as ``re`` (``null`` for what nobody asked).

Requests (``op``)          -> replies (``ev``)

  hello [unwanted]         -> {ev: hello, version, pid, facts, jobs: [JOBINFO]}
                              then one `ended` per finished, unforgotten job;
                              runs named in `unwanted` (requeued elsewhere) are
                              killed first and end CANCELLED, unless they ended
  facts [measure] [activity_file]
                           -> {ev: facts, **FACTS}               (the heartbeat;
                              measure: foreign load and owner idle time wanted,
                              else null; activity_file: its mtime is the owner's
                              last activity)
  launch key spec          -> {ev: started, key, pid, start_time}
                            | {ev: launch_failed, key, error, [cause: job|user]}
                              (nothing ran; key reusable; cause "job": the spec
                              itself is invalid, "user": the job's user is
                              unknown on this machine, else the machine failed)
                            | {ev: ended, key, result}           (key already ran)
  signal key signal [scope | batch_only]
                           -> {ev: signalled, key, ok, error}
  cancel key [signal=15] [requeue]
                           -> {ev: cancelling, key, ok, error}
  set_limit key time_limit_s
                           -> {ev: limit_set, key, ok, error}    (seconds from the
                              job's start; null = no limit)
  stdin key data eof       -> {ev: stdin, key, written, closed}  (srun's stdin, base64;
                              also unsolicited as the job reads it)
  status                   -> {ev: status, jobs: [JOBINFO]}
  samples                  -> {ev: samples, jobs: {key: {points, peak}}}
                              (each run's resource samples not sent before by
                              this agent: points [t, cpu_s, rss_kb, vsize_kb,
                              nproc], peak [rss_kb, vsize_kb]; see ``sampling``)
  forget key [keep]        -> {ev: forgotten, key, ok, error}    (ended or absent only;
                              keep: moved to <workdir>/kept/<key>, not deleted)
  shutdown                 -> {ev: shutdown}, then exit; jobs keep running
  rpc_reply conn reply     -> (nothing: ``reply`` goes to in-job connection ``conn``)
  anything else            -> {ev: error, error}
  unsolicited              -> {ev: ended, key, result, [output]}, once per job per agent
                            | {ev: rpc, key, conn, op, args}: a request of a
                              SLURM command inside job ``key`` (its socket,
                              see ``injob``), answered by `rpc_reply`

JOBINFO = {key, status: running|ended, pid, result|null}. A launch is
idempotent per key: the job directory is the token, so a key never runs twice.

RESULT = {key, pid, start_time, end_time, state, exit_code, signal, user_cpu,
system_cpu, max_rss_kb, error}; state is COMPLETED, FAILED, CANCELLED,
TIMEOUT, OUT_OF_MEMORY or LOST. ``output`` (on `ended`, when the launch asked
for ``inline_output`` and every file fits) is {stdout, [stderr]} in base64.

FACTS = {hostname, cpus, mem_mb, free_mem_mb, load1, gpus: [GPU], python, os,
arch, started, boot_time, workdir, disk_free_mb, workdir_writable, uid,
foreign_load, owner_idle_s, [gpu_usage]} (``owner``: CPUs busy with work not
fleetslurm's, seconds since the owner's last activity; null: unknown);
GPU = {index, name, uuid, memory_mb}. ``gpu_usage`` = {seq, age,
gpus: [{index, uuid, util, mem_used_mb, mem_total_mb}]}: nvidia-smi's latest
reading (util in percent), ``age`` seconds old, ``seq`` counting readings;
absent when there is none (no GPUs, nvidia-smi failing: see ``gpus``).

SPEC (launch) = {script, argv, env, cwd, stdin, stdin_stream, srun_direct, stdout, stderr,
node, job_id, open_mode: truncate|append, time_limit_s, kill_wait_s,
mem_limit_mb, umask, inline_output, stage, signal: {num, secs_before,
batch_only} | null, uid, gid, cpus, cpu_bind: cores|none, injob, sample_s}; see
``spec.validate_spec`` for defaults (cpus and cpu_bind default to what the
job's env says: SLURM_CPUS_ON_NODE, SLURM_CPU_BIND_TYPE) and ``cpus`` for
the binding.
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # the types, for checkers only (typing stays out of the agent's heap)
    from typing import Any, Dict, List, Optional, TypedDict

    class JobInfo(TypedDict):
        key: str
        status: str  # "running" | "ended"
        pid: Optional[int]
        result: Optional[Dict[str, Any]]

    class Result(TypedDict):
        key: str
        pid: int
        start_time: float
        end_time: float
        state: str
        exit_code: int
        signal: int
        user_cpu: float
        system_cpu: float
        max_rss_kb: int
        error: Optional[str]

__all__ = ["PROTOCOL_VERSION", "AGENT_VERSION", "REQUESTS", "EVENTS", "key_error",
           "hello", "facts", "launch", "signal", "cancel", "set_limit", "stdin", "status",
           "forget", "shutdown", "samples", "ev_samples", "ev_hello", "ev_facts", "ev_started", "ev_launch_failed",
           "ev_ended", "UNSOLICITED", "ev_ack", "ev_stdin", "ev_status", "ev_shutdown", "ev_error",
           "job_info", "result", "rpc_reply", "ev_rpc"]

#: sent in `hello`; a controller may refuse an agent speaking another version
PROTOCOL_VERSION = "1"
AGENT_VERSION = PROTOCOL_VERSION

#: every request: its op -> (required fields, optional fields) besides ``id``
REQUESTS = {
    "hello": ((), ("unwanted",)),
    "facts": ((), ("measure", "activity_file")),
    "launch": (("key", "spec"), ()),
    "signal": (("key", "signal"), ("scope", "batch_only")),
    "cancel": (("key",), ("signal", "requeue")),
    "set_limit": (("key", "time_limit_s"), ()),
    "stdin": (("key",), ("data", "eof")),
    "status": ((), ()),
    "forget": (("key",), ("keep",)),
    "shutdown": ((), ()),
    "rpc_reply": (("conn", "reply"), ()),
    "samples": ((), ()),
}

#: every message the agent writes: its ev -> (fields always there, fields
#: sometimes there) besides ``ev`` and ``re``
EVENTS = {
    "hello": (("version", "pid", "facts", "jobs"), ()),
    "facts": (("hostname", "cpus", "mem_mb", "free_mem_mb", "load1", "gpus", "python", "os",
               "arch", "started", "boot_time", "workdir", "disk_free_mb", "workdir_writable",
               "uid", "foreign_load", "owner_idle_s"), ("gpu_usage",)),
    "started": (("key", "pid", "start_time"), ()),
    "launch_failed": (("key", "error"), ("cause",)),
    "ended": (("key", "result"), ("output",)),
    "signalled": (("key", "ok", "error"), ()),
    "cancelling": (("key", "ok", "error"), ()),
    "limit_set": (("key", "ok", "error"), ()),
    "stdin": (("key", "written", "closed"), ()),
    "status": (("jobs",), ()),
    "forgotten": (("key", "ok", "error"), ()),
    "shutdown": ((), ()),
    "error": (("error",), ()),
    "rpc": (("key", "conn", "op", "args"), ()),
    "samples": (("jobs",), ()),
}

#: the events that answer one request with ``{key, ok, error}``
ACK_EVENTS = ("signalled", "cancelling", "limit_set", "forgotten")

_KEY_RE = re.compile(r"[A-Za-z0-9._-]{1,200}\Z")


def key_error(key: "Any") -> "Optional[str]":
    """Why ``key`` is not a valid job key, or None if it is."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key or key == ".":
        return ("invalid job key %r: use 1-200 characters from [A-Za-z0-9._-], "
                "without '..'" % (key,))
    return None


# -- requests (controller -> agent) -------------------------------------------


def hello(unwanted: "List[str]", rid: "Any" = "hello") -> "Dict[str, Any]":
    """The first request to a new agent; the runs in ``unwanted`` are stopped first."""
    return {"op": "hello", "id": rid, "unwanted": unwanted}


def facts(measure: bool = False, activity_file: "Optional[str]" = None) -> "Dict[str, Any]":
    """The heartbeat; ``measure``: with the workstation facts (a /proc scan)."""
    msg = {"op": "facts"}  # type: Dict[str, Any]
    if measure:
        msg["measure"] = True
        if activity_file:
            msg["activity_file"] = activity_file
    return msg


def launch(key: str, spec: "Dict[str, Any]") -> "Dict[str, Any]":
    return {"op": "launch", "key": key, "spec": spec}


def signal(key: str, signum: int, scope: str) -> "Dict[str, Any]":
    """``scope``: "steps" (srun steps), "batch" (the batch shell) or "full"."""
    return {"op": "signal", "key": key, "signal": signum, "scope": scope}


def cancel(key: str, signum: int = 15, requeue: bool = False) -> "Dict[str, Any]":
    msg = {"op": "cancel", "key": key, "signal": signum}  # type: Dict[str, Any]
    if requeue:
        msg["requeue"] = True
    return msg


def set_limit(key: str, time_limit_s: "Optional[int]") -> "Dict[str, Any]":
    return {"op": "set_limit", "key": key, "time_limit_s": time_limit_s}


def stdin(key: str, data: str, eof: bool) -> "Dict[str, Any]":
    """``data``: base64 of the bytes."""
    return {"op": "stdin", "key": key, "data": data, "eof": eof}


def status() -> "Dict[str, Any]":
    return {"op": "status"}


def forget(key: str, keep: bool = False) -> "Dict[str, Any]":
    return {"op": "forget", "key": key, "keep": True} if keep else {"op": "forget", "key": key}


def shutdown() -> "Dict[str, Any]":
    return {"op": "shutdown"}


def rpc_reply(conn: int, reply: "Dict[str, Any]") -> "Dict[str, Any]":
    """The controller's answer (rpc.py's reply object) to in-job request ``conn``."""
    return {"op": "rpc_reply", "conn": conn, "reply": reply}


def samples() -> "Dict[str, Any]":
    """Ask for the runs' resource samples not sent yet (with the heartbeat)."""
    return {"op": "samples"}


# -- events (agent -> controller) ---------------------------------------------


def job_info(key: str, pid: "Optional[int]", result: "Optional[Dict[str, Any]]") -> "JobInfo":
    return {"key": key, "status": "ended" if result is not None else "running",
            "pid": pid, "result": result}


def result(key: str, pid: int, start_time: float, end_time: float, state: str,
           exit_code: int, signum: int, user_cpu: float, system_cpu: float,
           max_rss_kb: int, error: "Optional[str]") -> "Result":
    return {"key": key, "pid": pid, "start_time": start_time, "end_time": end_time,
            "state": state, "exit_code": exit_code, "signal": signum, "user_cpu": user_cpu,
            "system_cpu": system_cpu, "max_rss_kb": max_rss_kb, "error": error}


def ev_hello(rid: "Any", pid: int, facts: "Dict[str, Any]",
             jobs: "List[JobInfo]") -> "Dict[str, Any]":
    return {"ev": "hello", "re": rid, "version": AGENT_VERSION, "pid": pid,
            "facts": facts, "jobs": jobs}


def ev_facts(rid: "Any", facts: "Dict[str, Any]") -> "Dict[str, Any]":
    reply = {"ev": "facts", "re": rid}  # type: Dict[str, Any]
    reply.update(facts)
    return reply


def ev_started(rid: "Any", key: str, pid: "Optional[int]",
               start_time: "Optional[float]") -> "Dict[str, Any]":
    return {"ev": "started", "re": rid, "key": key, "pid": pid, "start_time": start_time}


def ev_launch_failed(rid: "Any", key: "Any", error: str,
                     cause: "Optional[str]" = None) -> "Dict[str, Any]":
    """``cause`` "job": the spec itself is invalid (fail the job, not the machine);
    "user": the job's user is unknown on this machine (fail the job, and place
    none of that user's jobs here)."""
    if cause is not None:
        return {"ev": "launch_failed", "re": rid, "key": key, "cause": cause, "error": error}
    return {"ev": "launch_failed", "re": rid, "key": key, "error": error}


#: ``rid`` of an event nobody asked for (it has no ``re`` field)
UNSOLICITED = object()


def ev_ended(rid: "Any", key: str, result: "Dict[str, Any]",
             output: "Optional[Dict[str, str]]" = None) -> "Dict[str, Any]":
    """A run's RESULT: the reply to a launch of a key that already ran, or
    (``rid`` UNSOLICITED) sent once per job per agent when it ends."""
    if rid is UNSOLICITED:
        msg = {"ev": "ended", "key": key, "result": result}  # type: Dict[str, Any]
    else:
        msg = {"ev": "ended", "re": rid, "key": key, "result": result}
    if output is not None:
        msg["output"] = output
    return msg


def ev_ack(ev: str, rid: "Any", key: "Any", error: "Optional[str]") -> "Dict[str, Any]":
    """One of ACK_EVENTS: ``ok`` is true exactly when there is no ``error``."""
    return {"ev": ev, "re": rid, "key": key, "ok": error is None, "error": error}


def ev_stdin(rid: "Any", key: "Any", written: int, closed: bool) -> "Dict[str, Any]":
    return {"ev": "stdin", "re": rid, "key": key, "written": written, "closed": closed}


def ev_status(rid: "Any", jobs: "List[JobInfo]") -> "Dict[str, Any]":
    return {"ev": "status", "re": rid, "jobs": jobs}


def ev_samples(rid: "Any", jobs: "Dict[str, Any]") -> "Dict[str, Any]":
    """``jobs``: run key -> {points, peak} (see ``sampling.new_points``)."""
    return {"ev": "samples", "re": rid, "jobs": jobs}


def ev_shutdown(rid: "Any") -> "Dict[str, Any]":
    return {"ev": "shutdown", "re": rid}


def ev_error(rid: "Any", error: str) -> "Dict[str, Any]":
    return {"ev": "error", "re": rid, "error": error}


def ev_rpc(key: str, conn: int, op: str, args: "Dict[str, Any]") -> "Dict[str, Any]":
    """A client request (rpc.py's ``{op, args}``) made inside job ``key``."""
    return {"ev": "rpc", "re": None, "key": key, "conn": conn, "op": op, "args": args}
