"""Requests from SLURM's commands inside jobs on the machines: the agent's
``rpc`` events (``node/agent/injob.py``).

A job's ``scontrol``/``squeue``/``sbatch``/``srun``... on a machine speak
the client protocol to their job's socket; the agent passes each request on
with the key of the run it came from, and nothing else. Who asks is decided
here, from what the controller itself launched: the run ``key`` must be a
run of this controller on that very machine, not yet ended, and the request
is answered as that job's owner (its uid and gid in the store), by the same
function that answers the controller's own socket (``rpc.answer`` over
``Controller.submit_request``): the same checks, the same replies, the same
text the CLI prints. A job may do what its owner may, no more.

No thread waits for an answer: a few threads (:data:`POOL_WORKERS`, one
pool per controller) check each request and answer a query at once; a
change goes to the loop as a client's does (``Controller.start_request``)
and is answered after the commit of the step that carried it out (a
``wait`` from srun or ``sbatch -W`` inside a job holds no thread for its
30 s). The answer is written back on the machine's link, unless that link
was replaced meanwhile (the agent that asked is gone, and its connection
with it).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..node.agent import protocol
from ..rpc import answer

if TYPE_CHECKING:
    from .context import Context

__all__ = ["on_rpc", "POOL_WORKERS"]

#: threads answering in-job requests, per controller: a query (squeue over a
#: long queue) takes a worker for its time, a change only to check it
POOL_WORKERS = 4


def on_rpc(ctx: "Context", node: str, msg: dict) -> None:
    """An ``rpc`` event from ``node``'s agent (in the loop's thread)."""
    cid, key = msg.get("conn"), str(msg.get("key") or "")
    op, args = msg.get("op"), msg.get("args")
    if not isinstance(cid, int):
        ctx.log(f"node {node}: agent sent an rpc event without a connection id: dropped")
        return
    run = ctx.store.step(key) if key else None
    if run is None or run["node"] != node or run["end_time"] is not None:
        ctx.send(node, protocol.rpc_reply(cid, {
            "ok": False, "error": "AccessDenied",
            "message": f"run {key or '?'} is not a job running on {node}: the controller "
                       "answers commands inside a job only while that job runs there"}))
        return
    if not isinstance(op, str) or not isinstance(args, dict):
        ctx.send(node, protocol.rpc_reply(cid, {
            "ok": False, "error": "ControllerError",
            "message": 'malformed request: {"op": NAME, "args": {...}} expected'}))
        return
    task = ctx.store.task(run["task_id"])
    job = ctx.store.job(task["job_id"]) if task is not None else None
    if job is None:  # (a run row without its job: nothing may act for it)
        ctx.send(node, protocol.rpc_reply(cid, {
            "ok": False, "error": "AccessDenied",
            "message": f"run {key} has no job record: refused"}))
        return
    uid = int(job["uid"])
    gid = job["spec"].get("gid")
    link = ctx.links.get(node)
    if link is None:  # (an event from a machine the controller has no link to: no way back)
        return
    _pool(ctx).submit(_answer, ctx, link, link.generation, cid, op, args, uid,
                      -1 if gid is None else int(gid))


def _pool(ctx: "Context") -> Any:
    pool = ctx.injob_pool
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = ctx.injob_pool = ThreadPoolExecutor(POOL_WORKERS, thread_name_prefix="injob")
    return pool


def _answer(ctx: "Context", link: Any, generation: int, cid: int, op: str, args: dict,
            uid: int, gid: int) -> None:
    """In a pool thread: the request started; its answer sent by ``then``."""

    def then(pending: Any) -> None:
        # (in this thread, or in the loop's after its commit: never raises there)
        def result(*_: Any) -> Any:
            if pending.error is not None:
                raise pending.error
            return pending.result

        try:
            # what the socket's server writes with default=str, made plain JSON here
            reply = json.loads(json.dumps(answer(result, op, args, uid, gid), default=str))
            if link.generation == generation:
                link.send_many([protocol.rpc_reply(cid, reply)])
        except Exception as exc:  # the job's command waits in vain; the loop goes on
            ctx.log(f"node {link.name}: cannot answer an in-job request: {exc}")

    ctx.start_request(op, args, uid, gid, then)
