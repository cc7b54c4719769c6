"""What a handler may touch: the :class:`Context`.

Every function that acts on the controller's state (agent events, client
requests, launches, the task lifecycle, arrays, dependencies, node health)
takes a ``Context`` and nothing else of the controller: the store, the
config, the scheduler state, the current step's time ``now``, and the
step's effects, which all wait for the commit: ``emit`` (a scheduler event),
``send`` (a message to a node's agent), ``after_commit`` (work after the
commit, e.g. a copy in the background) and ``log``. What the controller
knows about its machines beyond the store is the public :class:`NodeBook`.

The loop (:mod:`.loop`) is a Context that also drains the inbox and runs the
scheduler; nothing below it imports it.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import FleetConfig
from .nodelink import NodeLink
from ..paths import StatePaths, fleet_workdir, local_workdir, workdir_owner
from ..scheduler import JobRequest, NodeSpec, SchedulerState
from ..store import Store
from ..transport.base import Transport
from .inbox import Message, Wake
from .jobrequest import job_request, node_policy
from .mail import Mailer

__all__ = ["Context", "NodeBook"]


@dataclass
class NodeBook:
    """What the controller knows of its machines' health beyond the store
    (which keeps only what an admin set: DRAIN/DOWN and their reasons)."""

    #: node -> reason: marked DOWN by the controller, its jobs failed
    down: dict[str, str] = field(default_factory=dict)
    #: machines not heard from since this controller started (down in the
    #: scheduler, but their jobs are not failed before the heartbeat timeout)
    awaiting_hello: set[str] = field(default_factory=set)
    #: machines silent for three heartbeats (or not heard from since the
    #: start): no new jobs there, sinfo's "*" (see health.periodic)
    not_responding: set[str] = field(default_factory=set)
    #: machines whose running jobs were failed for the current outage
    failed: set[str] = field(default_factory=set)
    #: node -> when it last had a job (scontrol's LastBusyTime)
    last_busy: dict[str, float] = field(default_factory=dict)
    #: node -> users unknown there (their jobs are not placed there: see
    #: agent_events._bar_user)
    barred: dict[str, set[str]] = field(default_factory=dict)
    #: set when a node's state may have changed: sinfo must see it at once
    dirty: bool = True
    #: set when only jobs started or ended: sinfo's allocation columns and
    #: node states change, nothing else (a cheaper refresh of the snapshot)
    usage_dirty: bool = False


class Context:
    """The controller's state and the effects a handler may queue."""

    # set by the loop, which builds them with this context (typed Any: they
    # live a layer above and import this module)
    arrays: Any   # arrayfeed.ArrayFeeds: job arrays, which tasks the scheduler sees
    fairshare: Any  # fairshare.FairShare: priority/multifactor
    limits: Any     # limits.Limits: QOS and account limits in force

    def __init__(self, config: FleetConfig, paths: StatePaths, store: Store,
                 transports: Optional[dict[str, Transport]] = None) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        #: this fleet's identity (made at its first start): in its run keys
        #: and its machines' default workdir, so two fleets never touch each
        #: other's jobs
        self.cluster_id, self._own_workdirs = self.store.identity()
        self.inbox: "queue.Queue[Message]" = queue.Queue()
        self.sched = SchedulerState()
        self.links: dict[str, NodeLink] = {}
        self.nodes = NodeBook()
        self._transports = transports or {}
        self._outbox: list[tuple[str, dict]] = []
        self._events: list[Any] = []
        self._after_commit: list[Callable[[], None]] = []
        self.stopping = False
        self.started_at = time.time()
        #: task ids the scheduler knows
        self.fed: set[int] = set()
        #: task id -> its dependency as squeue shows it
        self.dep_shown: dict[int, str] = {}
        #: run key -> (bytes written to the job's stdin, stdin closed), as the
        #: agent reports them (srun's flow control, see requests.steps.op_stdin)
        self.stdin_acks: dict[str, tuple[int, bool]] = {}
        #: run keys whose output is being copied home, each with whether it was
        #: asked for again meanwhile, and the lock over them (collect.copy_back:
        #: one copy of a run at a time)
        self.collecting: dict[str, bool] = {}
        self.collecting_lock = threading.Lock()
        #: agent news that waits for the loop's next step (nodelink.LATER_EVENTS)
        self.later: "collections.deque[Any]" = collections.deque()
        #: output spool directories known to exist (collect._keep_dir): each
        #: job's own directory is made once, its parents once per controller
        self.spool_parents: set[Path] = set()
        #: the thread pool that puts staged files on machines (staging)
        self.stage_pool: Any = None
        #: the few threads that answer commands inside jobs (injob)
        self.injob_pool: Any = None
        self.now = 0.0  # the current step's time
        #: how many times a task left the active states (lifecycle.move): the
        #: loop answers the wait requests (waiters) when it changes
        self.tasks_ended = 0
        #: node records for the query threads (never read the scheduler there)
        self.node_snapshot: list[dict] = []
        #: runs the mail program for --mail-type, off the loop (mail.py)
        self.mailer = Mailer(config.mail_program(), self.log)
        #: whether a job may want TIME_LIMIT* mail (mail.time_limits looks)
        self.time_limit_mail = True

    # -- machines -----------------------------------------------------------------
    def transport_for(self, name: str) -> Transport:
        if name in self._transports:
            return self._transports[name]
        m = self.config.machines[name]
        if m.transport == "local":
            from ..transport.local import LocalTransport

            t: Transport = LocalTransport(name, local_workdir(self.paths, self.cluster_id, name),
                                          log_path=self.paths.home / f"agent-{name}.log")
        else:
            from ..transport.ssh import SSHTransport

            ssh = SSHTransport(name, m.model_copy(update={"workdir": self.machine_workdir(name)}),
                               self.config, self.paths)
            ssh.owner = self.workdir_owner()
            t = ssh
        self._transports[name] = t
        return t

    def machine_workdir(self, name: str) -> str:
        """The agent's workdir on an SSH machine (see paths.fleet_workdir)."""
        return fleet_workdir(self.config.machines[name].workdir, self.cluster_id,
                             self._own_workdirs, name)

    def workdir_owner(self) -> dict:
        """What this fleet writes in each workdir it uses (see paths.workdir_owner)."""
        return workdir_owner(self.cluster_id, self.config.cluster_name, self.paths,
                             self.config.source)

    def node_spec(self, name: str, facts: Optional[dict] = None) -> NodeSpec:
        m = self.config.machines[name]
        facts = facts or {}
        cpus = m.cpus or facts.get("cpus") or 1
        mem = m.mem_mb if m.mem_mb is not None else facts.get("mem_mb") or 0
        ngpu = m.gpu_count
        if ngpu is None:
            ngpu = len(facts.get("gpus") or [])
        return NodeSpec(name=name, cpus=int(cpus), mem_mb=int(mem),
                        gpu_ids=tuple(range(int(ngpu))),
                        partitions=tuple(m.partitions or [self.config.default_partition]),
                        features=frozenset(m.features), weight=m.weight,
                        policy=node_policy(m))

    # -- tasks and the scheduler ------------------------------------------------------
    def request_of(self, task: dict, job: dict) -> JobRequest:
        array = task["array_index"] is not None
        return job_request(task["task_id"], job["user"], task["submit_time"],
                           task["req"], bool(task["held"]),
                           array_index=task["array_index"],
                           array_job_id=task["job_id"] if array else None)

    def mark_fed(self, task: dict, job: Optional[dict] = None) -> None:
        """The scheduler has (again) this task: it was just submitted or restored to it."""
        self.fed.add(task["task_id"])
        self.arrays.note_fed(task, job)

    def forget_fed(self, task_id: int) -> None:
        self.fed.discard(task_id)
        self.arrays.forget(task_id)

    def task_finished(self, task: dict) -> None:
        """A task left the scheduler: its array may hand out the next ones."""
        self.stdin_acks.pop(task.get("run_key") or "", None)
        self.fairshare.task_ended(self, task, self.now)
        self.arrays.task_finished(task)

    def submit_request(self, op: str, args: dict, uid: int, gid: int = -1) -> Any:
        """Answer a client's request as user ``uid`` (the Controller does;
        ``ctld/injob.py`` calls it for commands inside jobs on the machines)."""
        raise NotImplementedError

    def start_request(self, op: str, args: dict, uid: int, gid: int = -1,
                      then: Optional[Callable[[Any], None]] = None) -> Any:
        """:meth:`submit_request` without waiting: ``then(pending)`` once
        answered (``ctld/injob.py``: no thread waits for a command in a job)."""
        raise NotImplementedError

    # -- effects, after the commit ------------------------------------------------------
    def send(self, node: str, msg: dict) -> None:
        """Queue a message for a node agent; sent after the current commit."""
        self._outbox.append((node, msg))

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)

    def emit(self, event: Any) -> None:
        """Queue a scheduler event for this step's scheduling pass."""
        self._events.append(event)
        name = type(event).__name__
        if name.startswith("Node"):
            self.nodes.dirty = True
        elif name in ("JobEnded", "JobRequeued", "JobRestored"):
            self.nodes.usage_dirty = True

    def log(self, text: str) -> None:
        """One line in the controller's log (its stderr)."""
        print(time.strftime("%Y-%m-%dT%H:%M:%S"), text, file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stop serving after the current step."""
        self.stopping = True
        self.inbox.put(Wake())
