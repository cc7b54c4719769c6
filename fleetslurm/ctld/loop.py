"""The controller (fleetslurm's slurmctld).

One long-lived process per fleet. Its loop body is :meth:`Controller.step`:
read client requests and agent messages from the inbox, feed the pure
scheduler, commit every resulting change to the store, and only then act on it
(launch, cancel, reply). A restart rebuilds everything from the store and the
agents' supervisor records, so a ``kill -9`` loses nothing.

Queries (squeue, sacct, sinfo, scontrol show) are answered straight from the
store by the RPC threads; changes go through ``step``.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from typing import Any, Callable, Optional

from .. import errors
from ..config import FleetConfig
from ..model import LIVE_STATE_NAMES as _LIVE
from .nodelink import Held, NodeLink
from ..paths import StatePaths, private_dir
from ..scheduler import (EvictJob, JobRestored, JobSubmitted, NodeDown, NodeDrain, NodeUp,
                         PartitionSet, PartitionSpec, ResumeJob, StartJob, SuspendJob)
from ..slurm import SLURM_VERSION
from ..store import Store
from ..transport.base import Transport
from ..views import user_name
from . import agent_events, gpustats, suspend
from .arrayfeed import ArrayFeeds
from .context import Context
from .dependencies import announce, kill_invalid, update_shown
from .fairshare import FairShare
from .health import periodic
from .mail import invalid_dependency, time_limits
from .inbox import Message, Pending, Request
from .launch import start_job
from .limits import Limits
from .lifecycle import end_task, node_fail
from .queries import Queries
from .requests import OPS
from .waiters import Waiters

__all__ = ["Controller"]


class Controller(Context):
    """The loop: a :class:`Context` that drains the inbox, runs the scheduler,
    commits, then acts (sends, background work, replies)."""

    def __init__(self, config: FleetConfig, paths: StatePaths, store: Optional[Store] = None,
                 transports: Optional[dict[str, Transport]] = None) -> None:
        if store is None:
            private_dir(paths.home)
        super().__init__(config, paths, store or Store(paths.db, cache_jobs=True), transports)
        self.fairshare = FairShare(config)  # priority/multifactor (off without a priority section)
        self.limits = Limits(config, self.store)  # QOS and account limits
        self.fairshare.qos_priorities = self.limits.priorities()
        self.fairshare.book = self.limits.assocs  # shares and the tree (sacctmgr)
        self.arrays = ArrayFeeds(self)       # job arrays: which tasks the scheduler sees
        self.queries = Queries(self.store, config, paths, nodes=lambda: self.node_snapshot,
                               transport_for=self.transport_for, started_at=self.started_at,
                               fairshare=self.fairshare,
                               sched_stats=lambda: (self.sched_pass_seconds, self.sched_passes))
        self._replies: list[Pending] = []
        #: messages that may wait to ride along a machine's next write (nodelink.Held)
        self._held = Held()
        #: wait requests, answered when their jobs end (see waiters)
        self.waiters = Waiters()
        self._ended_seen = 0
        self._reasons: dict[int, str] = {}
        self._admin: dict[str, dict] = {}
        self._admin_seen: Optional[int] = None  # store.nodes_changed when _admin was read
        self._admin_at = float("-inf")
        self._reasons_at = float("-inf")
        self._pass_at = float("-inf")
        self._mail_at = float("-inf")  # the last look for --mail-type=TIME_LIMIT* mail
        #: machine -> (its workstation policy's reason, since when): sinfo -R's TIMESTAMP
        self._busy_since: dict[str, tuple[str, float]] = {}
        #: the last scheduling pass's wall time and the passes so far (/metrics)
        self.sched_pass_seconds, self.sched_passes = 0.0, 0
        self._snapshot_at = float("-inf")
        self._acct_at = float("-inf")

    # -- start-up --------------------------------------------------------------
    def start(self, now: float) -> None:
        """Rebuild the scheduler from the store and start connecting to machines."""
        from ..shims import install_shims

        install_shims(self.paths.home / "bin")
        events: list[Any] = []
        for pname, p in self.config.partitions.items():
            events.append(PartitionSet(PartitionSpec(
                name=pname, priority=p.tier, max_time=p.max_minutes(), default=p.default,
                up=p.state.upper() == "UP", placement=p.placement)))
        events.append(self.limits.event())
        active = self.store.active_tasks()
        # Running jobs are facts, not requests: a machine is first sized to hold
        # every job recorded on it (its config may have shrunk since), then set
        # to its configured size (the scheduler keeps jobs on a shrunk node).
        for name in self.config.machines:
            spec = self.node_spec(name)
            mine = [t for t in active if t["node"] == name and t["state"] in ("RUNNING", "SUSPENDED")]
            if mine:
                need_gpus = max([g + 1 for t in mine for g in t["gpu_ids"]], default=0)
                spec = dataclasses.replace(
                    spec, cpus=max(spec.cpus, sum(t["alloc_cpus"] or 1 for t in mine)),
                    mem_mb=max(spec.mem_mb, sum(t["alloc_mem_mb"] or 0 for t in mine)),
                    gpu_ids=tuple(range(max(len(spec.gpu_ids), need_gpus))))
            events.append(NodeUp(spec))
        jobs_cache: dict[int, dict] = {}
        orphans: list[dict] = []
        dependencies: set[str] = set()
        broken: list[tuple[dict, str]] = []
        for task in sorted(active, key=lambda t: t["array_pending"] is None):  # records first
            job = jobs_cache.get(task["job_id"]) or self.store.job(task["job_id"])
            jobs_cache[task["job_id"]] = job  # type: ignore[assignment]
            try:
                req = self.request_of(task, job)  # type: ignore[arg-type]
            except errors.StoreError as exc:
                broken.append((task, str(exc)))  # failed below: the others still run
                continue
            if task["state"] == "COMPLETING":
                continue  # ended; only its output copy is pending (redone at hello)
            if task["state"] in _LIVE and task["node"] in self.config.machines:
                events.append(JobRestored(req, task["node"], tuple(task["gpu_ids"]),
                                          task["start_time"] or now,
                                          suspended_at=task["suspend_time"]
                                          if task["state"] == "SUSPENDED" else None,
                                          suspended_s=float(task["suspended_s"] or 0.0)))
                self.mark_fed(task, job)  # type: ignore[arg-type]
            elif task["state"] in _LIVE:
                orphans.append(task)  # its machine is no longer in the config
            elif task["state"] == "PENDING":
                dependencies.add(task["req"].get("dependency") or "")
                if task["array_pending"] is not None:
                    self.arrays.restore_record(task, job)  # type: ignore[arg-type]
                elif task["array_index"] is not None:
                    self.arrays.restore_pending(task, job)  # type: ignore[arg-type]
                else:
                    events.append(JobSubmitted(req))
                    self.fed.add(task["task_id"])
        # arrays hand out their tasks and the jobs pending dependencies name are
        # told to the scheduler (in the first step, before its first pass with
        # machines up); it would take a job it never saw for one long gone
        self.now = now
        with self.store.transaction():
            self.arrays.finish_restore()
            announce(self, dependencies)
        for name in self.config.machines:
            events.append(NodeUp(self.node_spec(name)))
            # nothing runs on a machine until its agent has said hello
            events.append(NodeDown(name, "Not responding"))
            self.nodes.awaiting_hello.add(name)
            self.nodes.not_responding.add(name)
        # applied now, so requests in the first step already see partitions and
        # nodes; every machine is still down, so nothing can start yet
        leftover = self.sched.handle(events, now)
        assert not leftover, leftover
        if broken:
            with self.store.transaction():
                for task, why in broken:
                    self.log(f"{why}: failed")
                    end_task(self, task, "FAILED", now, f"FAILED: {why}", exit_code=1,
                             reason="JobLaunchFailure", tell_scheduler=False)
        if orphans:
            with self.store.transaction():
                for task in orphans:
                    node_fail(self, task, now,
                                             f"machine {task['node']} left the config")
        for name in self.config.machines:
            link = NodeLink(name, self.transport_for(name), self.inbox, self.later)
            self.links[name] = link
            admin = self.store.node(name)
            if admin["admin_state"] in ("drain",):
                self._events.append(NodeDrain(name, admin["reason"]))
            link.connect(now, synchronous=self.config.machines[name].transport == "local")
        # listed from the first request on (sinfo: unk until each says hello),
        # not an empty list until the first step publishes one
        self._admin = {n: self.store.node(n) for n in self.config.machines}
        self._snapshot_nodes(now)

    # -- the loop ----------------------------------------------------------------
    def submit_request(self, op: str, args: dict, uid: int, gid: int = -1) -> Any:
        """Called from RPC threads: queries are answered here, changes by ``step``
        (see :meth:`start_request`); waits for the answer."""
        pending = self.start_request(op, args, uid, gid)
        if not pending.event.wait(timeout=120):
            raise errors.ControllerError("the controller is too busy to answer; try again")
        if pending.error is not None:
            raise pending.error
        return pending.result

    def start_request(self, op: str, args: dict, uid: int, gid: int = -1,
                      then: Optional[Callable[[Pending], None]] = None) -> Pending:
        """A request, without waiting for its answer: ``then(pending)`` is
        called once it has one (at once, in this thread, for a query or a
        refused request; in the loop after the commit for a change). Every
        request's fields are checked first (rpc_models): a malformed one is
        refused here and never reaches the loop or the store. Who asks is
        ``uid`` and ``gid``, the kernel's word (SO_PEERCRED), never the request's."""
        from ..rpc_models import check_args, own_identity

        pending = Pending(op, args, uid, then)
        try:
            pending.args = args = check_args(op, args)
            if op == "submit":
                pending.args = own_identity(args, uid, gid)
            if op in self.queries.OPS:
                pending.result = self.queries.answer(op, pending.args, uid)
                pending.done()
                return pending
        except errors.FleetError as exc:
            pending.error = exc
            pending.done()
            return pending
        except Exception as exc:  # a bug: the caller still gets its answer
            pending.error = errors.internal_error(exc)
            pending.done()
            return pending
        self.inbox.put(Request(pending))
        return pending

    def step(self, now: float, first: Optional[Message] = None) -> None:
        """One round: drain the inbox, schedule, commit, then act."""
        self.now = now
        items: list[Message] = [first] if first is not None else []
        try:
            while True:
                items.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        if self.later:
            # news the links held for a step (nodelink.LATER_EVENTS), first:
            # each was put there before what its link posted after it
            early = []
            while self.later:
                early.append(self.later.popleft())
            items = early + items
        with self.store.transaction():
            for item in items:
                if isinstance(item, Request):
                    self._rpc(item.pending, now)
                else:
                    self._event(item, now)
            periodic(self, now)
            if self.time_limit_mail and now - self._mail_at >= 1.0:
                self._mail_at = now
                time_limits(self, now)
            events, self._events = self._events, []
            events += self.fairshare.events_for_step(self, events, now)
            actions = []
            full = now - self._pass_at >= 0.5
            if events or full:
                # a full pass twice a second; in between, a pass for new
                # events only when something can start (scheduler handle)
                if full:
                    self._pass_at = now
                began = time.perf_counter()
                actions = self.sched.handle(events, now, full=full)
                self.sched_pass_seconds = time.perf_counter() - began
                self.sched_passes += 1
            for action in actions:
                if isinstance(action, StartJob):
                    start_job(self, action, now)
                    self.nodes.usage_dirty = True
                elif isinstance(action, (SuspendJob, ResumeJob, EvictJob)):
                    suspend.carry_out(self, action, now)
            # reasons are for people (squeue): a few times a second is enough,
            # and computing them for a long queue is not free
            if now - self._reasons_at >= 0.25:
                self._reasons_at = now
                self._update_reasons()
            if now - self._acct_at >= 1.0:
                # finished jobs' lines in sacct's default format, a batch at a time
                self._acct_at = now
                self.store.keep_acct_lines()
            if self.nodes.dirty or now - self._snapshot_at >= 1.0:
                self._snapshot_at = now
                self.nodes.dirty = False
                # node rows (DRAIN/DOWN and their reasons) are read again only
                # after they changed, or once a second: a job's start or end
                # alone makes the snapshot dirty, without touching them
                changed = getattr(self.store, "nodes_changed", None)
                if changed is None or changed != self._admin_seen or \
                        now - self._admin_at >= 1.0:
                    self._admin_seen, self._admin_at = changed, now
                    self._admin = {n: self.store.node(n) for n in self.config.machines}
                self._snapshot_nodes(now)
            elif self.nodes.usage_dirty:
                self._snapshot_usage(now)
            self.nodes.usage_dirty = False
        # committed: now act on it; one write per machine (over SSH, one packet)
        outbox, self._outbox = self._outbox, []
        per_node: dict[str, list[dict]] = {}
        for node, msg in outbox:
            per_node.setdefault(node, []).append(msg)
        self._held.ride_along(per_node, now)
        for node, msgs in per_node.items():
            link = self.links.get(node)
            if link is not None:
                link.send_many(msgs)  # on failure: reconciled at the agent's next hello
        after, self._after_commit = self._after_commit, []
        for fn in after:
            fn()
        if len(self.waiters):
            ended, self._ended_seen = self.tasks_ended != self._ended_seen, self.tasks_ended
            self._replies.extend(self.waiters.due(self.store, now, ended))
        replies, self._replies = self._replies, []
        for p in replies:
            p.done()

    def _marks(self) -> tuple[int, int, int]:
        return len(self._events), len(self._outbox), len(self._after_commit)

    def _undo(self, marks: tuple[int, int, int], savepoint: str) -> None:
        """Roll back to ``savepoint`` and drop the effects queued since ``marks``."""
        self.store._x(f"ROLLBACK TO {savepoint}")
        self.store._x(f"RELEASE {savepoint}")
        self.store.forget_cached()
        del self._events[marks[0]:]
        del self._outbox[marks[1]:]
        del self._after_commit[marks[2]:]

    def _event(self, item: Message, now: float) -> None:
        """One message that is not a request, under its own savepoint. A bug in
        its handling (an IllegalTransition, say) is logged with the message and
        undone, and the loop goes on: raising would end the controller, and
        since an agent tells the same news again after a restart, end the next
        one too, stopping every job's progress for one message."""
        marks = self._marks()
        self.store._x("SAVEPOINT msg")
        try:
            agent_events.handle(self, item, now)
        except Exception:
            import traceback

            self._undo(marks, "msg")
            self.nodes.dirty = True
            self.log(f"internal error: {item!r} was dropped, nothing it changed is kept:\n"
                     + traceback.format_exc().rstrip())
        else:
            self.store._x("RELEASE msg")

    def _rpc(self, pending: Pending, now: float) -> None:
        if pending.op == "wait":
            self.waiters.add(pending, now)  # answered after the commit (waiters)
            return
        self._replies.append(pending)
        fn = OPS.get(pending.op)
        if fn is None:
            pending.error = errors.ControllerError(f"unknown request {pending.op!r}")
            return
        marks = self._marks()
        try:
            # a savepoint per request: a refused request leaves nothing behind,
            # neither in the store nor in the effects it queued
            self.store._x("SAVEPOINT req")
            pending.result = fn(self, pending.args, pending.uid, now)
            self.store._x("RELEASE req")
        except errors.FleetError as exc:
            self._undo(marks, "req")
            pending.error = exc
        except Exception as exc:
            pending.error = errors.internal_error(exc)
            self._undo(marks, "req")

    def _update_reasons(self) -> None:
        reasons = self.sched.pending_reasons()
        # an array's record shows the reason of the tasks it hands out
        reasons.update(self.arrays.record_reasons(reasons))
        changed = {t: r for t, r in reasons.items() if self._reasons.get(t) != r}
        for task_id, reason in changed.items():
            self.store.update_task(task_id, reason=reason)
        never = [t for t, r in changed.items() if r == "DependencyNeverSatisfied"]
        if never:  # --mail-type=INVALID_DEPEND
            invalid_dependency(self, never)
        self._reasons = reasons
        update_shown(self)
        if "DependencyNeverSatisfied" in changed.values():
            kill_invalid(self, changed, self.now)

    def _snapshot_nodes(self, now: float) -> None:
        """Publish node records for the query threads (never read the scheduler there)."""
        out = []
        for name, m in self.config.machines.items():
            spec = self.node_spec(name, self.links[name].facts if name in self.links else None)
            link = self.links.get(name)
            facts = link.facts if link else {}
            admin = self._admin.get(name, {})
            reason = self.nodes.down.get(name) or admin.get("reason", "")
            # who set a reason and when (sinfo -R): the controller's own user
            # sets every reason a fleet has (its scontrol update, its drains)
            set_at = admin.get("reason_time") if reason and reason == admin.get("reason") \
                else None
            busy = self._busy_reason(name, now)
            if busy is not None and not reason:
                # its workstation policy keeps new jobs off: the state stays
                # what its jobs make it (SLURM has none for this), the reason shows
                reason, set_at = busy
            out.append({
                "name": name, "hostname": m.address, "reason": reason,
                "reason_time": set_at, "reason_user": user_name(os.getuid()) if reason else None,
                "reason_uid": os.getuid() if reason else None,
                **self._usage_fields(name, facts, now),
                "cpus": spec.cpus, "mem_mb": spec.mem_mb,
                "free_mem_mb": facts.get("free_mem_mb"),
                "cpu_load": facts.get("load1"), "gpus": len(spec.gpu_ids),
                "partitions": list(spec.partitions),
                "features": sorted(spec.features), "weight": spec.weight,
                "detected_cpus": facts.get("cpus"), "detected_mem_mb": facts.get("mem_mb"),
                "detected_gpus": len(facts["gpus"]) if facts.get("gpus") is not None else None,
                "gpu_usage": gpustats.node_gpus(facts),
                "arch": facts.get("arch", ""), "os": facts.get("os", ""),
                "boot_time": facts.get("boot_time"),
                "version": SLURM_VERSION if facts else "",
                "slurmd_start_time": facts.get("started"),
                "last_heartbeat": link.last_heard if link else None,
                "link": link.status if link else "lost", "error": link.error if link else "",
                "description": m.description, "busy": busy is not None,
            })
        self.node_snapshot = out

    def _busy_reason(self, name: str, now: float) -> Optional[tuple[str, float]]:
        """The scheduler's workstation reason for a machine (``Owner active``...)
        and since when it has held, or None."""
        reason = self.sched.node_busy(name)
        if reason is None:
            self._busy_since.pop(name, None)
            return None
        kept = self._busy_since.get(name)
        if kept is None or kept[0] != reason:
            kept = self._busy_since[name] = (reason, now)
        return kept

    def _snapshot_usage(self, now: float) -> None:
        """Refresh what a job's start or end changes in the node records (state,
        allocations, LastBusyTime); the rest of each record stands. New dicts:
        query threads may be reading the old ones."""
        out = []
        for rec in self.node_snapshot:
            name = rec["name"]
            if name not in self.config.machines:
                out.append(rec)
                continue
            link = self.links.get(name)
            out.append(dict(rec, **self._usage_fields(name, link.facts if link else {}, now)))
        self.node_snapshot = out

    def _usage_fields(self, name: str, facts: dict, now: float) -> dict:
        """The fields of a node record that a job's start or end changes."""
        cpus, mem, gpus = self.sched.node_usage(name)
        state = self.sched.node_state(name)
        link = self.links.get(name)
        silent = name in self.nodes.not_responding
        if silent and state == "down" and name not in self.nodes.down:
            if name in self.nodes.awaiting_hello:
                # not heard from since the start, not given up on: UNKNOWN, as
                # SLURM shows a node that has not registered since slurmctld
                # started (sinfo "unk", no "*"; checked against SLURM 22.05)
                state, silent = "unk", False
            else:
                # not responding, not yet DOWN: what it was doing, with sinfo's "*"
                state = self._state_by_usage(name, cpus)
        return {"state": state, "alloc_cpus": cpus, "alloc_mem_mb": mem,
                "alloc_gpus": len(gpus), "last_busy_time": self._busy_at(name, cpus, facts, now),
                "responding": not silent and (link is None or link.status == "up"
                                              or name not in self.nodes.down)}

    def _state_by_usage(self, name: str, alloc_cpus: int) -> str:
        """sinfo's state of a machine that is not responding but not DOWN."""
        admin = self._admin.get(name) or {}
        if admin.get("admin_state") == "drain":
            return "drng" if alloc_cpus else "drain"
        if not alloc_cpus:
            return "idle"
        return "alloc" if alloc_cpus >= self.node_spec(name).cpus else "mix"

    def _busy_at(self, name: str, alloc_cpus: int, facts: dict, now: float) -> Optional[float]:
        """scontrol's LastBusyTime: the last time the machine had a job
        (while it has one: now), else since its agent started."""
        if alloc_cpus:
            self.nodes.last_busy[name] = now
        return self.nodes.last_busy.get(name, facts.get("started"))

    # -- serving ------------------------------------------------------------------
    def serve(self, stop: Optional[threading.Event] = None) -> None:
        """Loop over ``step`` until stopped (SIGTERM or ``controller stop``)."""
        tick = min(1.0, self.config.heartbeat_interval / 2)
        while not self.stopping and not (stop and stop.is_set()):
            wait = tick
            deadline = self.waiters.next_deadline()
            if deadline is not None:  # a wait request's time is up then
                wait = max(0.0, min(tick, deadline - time.time()))
            due = self._held.next_due()
            if due is not None:  # held messages go out then at the latest
                wait = max(0.0, min(wait, due - time.time()))
            try:
                item: Optional[Message] = self.inbox.get(timeout=wait)
            except queue.Empty:
                item = None
            self.step(time.time(), item)
        for node, msgs in self._held.drain().items():  # held forgets go before the end
            link = self.links.get(node)
            if link is not None:
                link.send_many(msgs)
        self._refuse_waiting()

    def _refuse_waiting(self) -> None:
        """Requests that reached the inbox after the last round get an error,
        not a wait until their caller's timeout: nobody serves the inbox now.
        So do the wait requests the loop holds."""
        for pending in self.waiters.refuse_all(errors.ControllerLost(
                "the controller stopped while you waited for jobs; run the command "
                "again (it starts one)")):
            pending.done()
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Request):
                item.pending.error = errors.ControllerLost(
                    "the controller stopped before it answered; run the command again "
                    "(it starts one)")
                item.pending.done()

    def close(self) -> None:
        if self.injob_pool is not None:
            self.injob_pool.shutdown(wait=False, cancel_futures=True)
        for link in self.links.values():
            link.close()
        self.store.close()
