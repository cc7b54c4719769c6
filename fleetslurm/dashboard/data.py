"""What the dashboard shows, asked of the controller through the ordinary
client (as the user who started the dashboard): plain, synchronous calls the
web app runs in worker threads. One connection per question: the controller
answers queries from its RPC threads, so a slow page never holds the loop."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

from prometheus_client import CollectorRegistry, Histogram

from ..model import ACTIVE_STATE_NAMES
from ..rpc import connect
from . import queueview

__all__ = ["QUEUE_FIELDS", "PAGE_SIZE", "call", "fleet", "queue", "job", "output",
           "history", "action", "ACTIONS", "usage", "Source", "Kept"]

#: squeue letters the Queue page shows (header, letter)
QUEUE_FIELDS = queueview.SHOWN
PAGE_SIZE = 100
#: the buttons the Queue and Job pages offer, and the controller op each calls
ACTIONS = {"cancel": ("cancel", {"verbose": True}), "hold": ("hold", {"user": True}),
           "release": ("release", {}), "requeue": ("requeue", {})}


#: the dashboard's requests to the controller, timed (/metrics shows them)
RPC_REGISTRY = CollectorRegistry(auto_describe=True)
RPC_SECONDS = Histogram("fleetslurm_rpc_seconds",
                        "The dashboard's requests to the controller: connect, ask, answer",
                        ["op"], registry=RPC_REGISTRY,
                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10))


#: squeue's pending reasons in words, as SLURM 22.05's squeue(1) gives them
#: (JOB REASON CODES; JobArrayTaskLimit, which it does not list, in ours); a
#: job's own page has `fleetslurm explain`'s account of it
REASON_WORDS = {
    "BadConstraints": "The job's constraints can not be satisfied.",
    "BeginTime": "The job's earliest start time has not yet been reached.",
    "Cleaning": "The job is being requeued and still cleaning up from its previous "
                "execution.",
    "Dependency": "This job has a dependency on another job that has not been satisfied.",
    "DependencyNeverSatisfied": "This job has a dependency on another job that will never "
                                "be satisfied.",
    "JobArrayTaskLimit": "The job array's limit on tasks running at once (its %N) has been "
                         "reached.",
    "JobHeldAdmin": "The job is held by a system administrator.",
    "JobHeldUser": "The job is held by the user.",
    "JobLaunchFailure": "The job could not be launched. This may be due to a file system "
                        "problem, invalid program name, etc.",
    "NodeDown": "A node required by the job is down.",
    "PartitionDown": "The partition required by this job is in a DOWN state.",
    "PartitionInactive": "The partition required by this job is in an Inactive state and "
                         "not able to start jobs.",
    "PartitionNodeLimit": "The number of nodes required by this job is outside of its "
                          "partition's current limits. Can also indicate that required "
                          "nodes are DOWN or DRAINED.",
    "PartitionTimeLimit": "The job's time limit exceeds its partition's current time limit.",
    "Priority": "One or more higher priority jobs exist for this partition or advanced "
                "reservation.",
    "ReqNodeNotAvail": "Some node specifically required by the job is not currently "
                       "available. The node may currently be in use, reserved for another "
                       "job, in an advanced reservation, DOWN, DRAINED, or not responding.",
    "Resources": "The job is waiting for resources to become available.",
    "WaitingForScheduling": "No reason has been set for this job yet. Waiting for the "
                            "scheduler to determine the appropriate reason.",
}


def call(op: str, **args: Any) -> Any:
    """One request to the controller of this user's state directory."""
    began = time.perf_counter()
    try:
        with connect() as c:
            c.set_timeout(30)
            return c.call(op, **args)
    finally:
        RPC_SECONDS.labels(op).observe(time.perf_counter() - began)


def fleet(kept: "Optional[Kept]" = None) -> dict:
    """Every machine's record (sinfo's fields plus load and free memory) and
    the running jobs on each, by node name. With ``kept`` (a :class:`Source`'s)
    the running jobs are asked again only when a change touched one
    (:func:`_running`), the load history now and then (a point a minute): an
    unchanged fleet costs the controller its node records and one small
    question."""
    kept = kept or Kept()
    nodes = call("nodes")["nodes"]
    on: dict[str, list] = {n["name"]: [] for n in nodes}
    for r in _running(kept.fleet):
        for name in r.get("nodes") or []:
            on.setdefault(name, []).append(
                {"id": _shown(r), "task": r["job_id"], "name": r.get("name", ""),
                 "user": r.get("user", ""), "cpus": r.get("cpus")})
    now = time.time()
    # the controller keeps each machine's load (a point a minute, a day of
    # them): the sparkline shows the last hour, whenever this page started
    kf = kept.fleet
    with kf.lock:
        if now - kf.hist_at >= HISTORY_S:
            kf.hist = call("load_history", since=now - 3600)["nodes"]
            kf.hist_at = now
        hist = kf.hist or {}
    loads: dict[str, list[list]] = {}
    for n in nodes:  # the last hour's points (those kept past it drop out)
        series = hist.get(n["name"]) or [[], []]  # [t...], [load1...], [free memory...]
        hour = [(t, v) for t, v in zip(series[0], series[1]) if t >= now - 3600]
        loads[n["name"]] = [[t for t, _ in hour], [v for _, v in hour]]
    for n in nodes:  # and the figure of the last heartbeat, as the card says
        if n.get("cpu_load") is not None:
            # dated when heard (not now): the card changes with the machine, not the clock
            loads[n["name"]][0].append(round(n.get("last_heartbeat") or now))
            loads[n["name"]][1].append(float(n["cpu_load"]))
    return {"nodes": nodes, "jobs": on, "time": now, "loads": loads}


class _FleetKept:
    """What the Fleet page shows that changes only with the jobs (the running
    ones on each machine) or slowly (the load history), kept between polls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.view = queueview.QueueView()  # where the change log stood when last asked
        self.running: list = []
        self.hist: Optional[dict] = None
        self.hist_at = float("-inf")


#: how often the Fleet page's load history is asked again (the controller
#: keeps a point a minute; the last heartbeat's figure is added each time)
HISTORY_S = 30.0
_RUNNING = ["RUNNING", "COMPLETING"]


def _running(kf: _FleetKept) -> list:
    """The running jobs (one record per task), asked again only when the
    controller's change log names a job that runs now or ran when last asked."""
    with kf.lock:
        q: dict = {"squeue": True, "steps": False, "header": False, "format": "%F",
                   "states": _RUNNING}
        q.update(kf.view.since())
        reply = call("squeue_delta", **q)
        # an array's tasks are logged under the array's own id (%F)
        were = {str(r.get("array_job_id") or r["job_id"]) for r in kf.running}
        if reply["full"] or reply["text"] or were & {str(i) for i in reply["ids"]}:
            kf.running = call("jobs", states=_RUNNING, steps=False, per_task=True)
        # only its seq, version and epoch: the lines are the running jobs'
        kf.view.apply(dict(reply, text="", ids=[], full=False), time.time())
        return kf.running


def _shown(r: dict) -> str:
    if r.get("array_job_id") is not None and r.get("array_task_id") is not None:
        return f"{r['array_job_id']}_{r['array_task_id']}"
    return str(r["job_id"])


def queue(user: str = "", state: str = "", partition: str = "", name: str = "",
          page: int = 1, per: int = PAGE_SIZE, sort: str = "",
          kept: "Optional[Kept]" = None) -> dict:
    """squeue's view (its filters, its order, arrays folded as it folds them),
    one page of it, from this filter's view in ``kept`` (a :class:`Source`'s;
    none: a new one) brought up to date by what changed (:mod:`.queueview`):
    an unchanged queue costs the controller one small question. ``rev``
    changes when the lines do; a running job's row carries ``since`` (when
    its TIME was 0:00), its TIME shown as of ``now``."""
    from ..cli.squeue_cmd import parse_states

    names = [h for h, _ in QUEUE_FIELDS if h != "UID"]
    if sort and sort.lstrip("-") not in names:
        from ..errors import InvalidValue

        raise InvalidValue(f"Invalid sort column: {sort.lstrip('-')}; valid columns are: "
                           + ", ".join(names))
    q: dict = {"squeue": True, "group_arrays": True, "steps": False, "header": False,
               "format": queueview.SEP.join("%" + letter for _, letter in queueview.FIELDS)
               + queueview.END}
    states = parse_states(state) if state else None
    if user:
        q["users"] = _split(user)
    if states:
        q["states"] = states
    if partition:
        q["partitions"] = _split(partition)
    if name:
        q["names"] = _split(name)
    view = (kept or Kept()).view((user, str(states), partition, name))
    with view.lock:
        now = time.time()
        # finished jobs (a state filter may show them) leave with MinJobAge,
        # by the clock, not by a change: such a view is read whole now and then
        aging = states is not None and (states == "all"
                                        or not set(states) <= set(ACTIVE_STATE_NAMES))
        if not (aging and now - view.at >= AGING_VIEW_S):
            q.update(view.since())
        view.apply(call("squeue_delta", now=now, **q), now)
        ordered = view.rows(sort, now)
        rev = view.rev
    per = min(max(1, per), 1000)
    pages = max(1, -(-len(ordered) // per))
    page = min(max(1, page), pages)
    me = str(os.getuid())
    rows = []
    for line in ordered[(page - 1) * per: page * per]:
        row = {k: v for k, v in line.items() if not k.startswith("_")}
        row["TIME"] = queueview.shown_time(line, now)
        # the controller refuses others' jobs; the page does not offer them
        row["mine"] = row["UID"] == me
        reason = row["NODELIST(REASON)"]
        if reason.startswith("(") and reason.endswith(")"):
            row["why"] = REASON_WORDS.get(reason[1:-1], "")
        rows.append(row)
    return {"rows": rows, "count": len(ordered), "page": page, "pages": pages,
            "columns": names, "rev": rev, "now": now}


#: how many Queue views a Source keeps (each page's filters: a tab or two)
MAX_VIEWS = 8
#: how often a view that may show finished jobs is read whole again
AGING_VIEW_S = 2.0


class Kept:
    """What the pages keep between their questions: the Queue views by
    filters (a few; the oldest made goes first) and the Fleet page's."""

    def __init__(self) -> None:
        self._views: dict[tuple, queueview.QueueView] = {}
        self._lock = threading.Lock()
        self.fleet = _FleetKept()

    def view(self, key: tuple) -> queueview.QueueView:
        """The Queue view of these filters (made if need be)."""
        with self._lock:
            view = self._views.get(key)
            if view is None:
                if len(self._views) >= MAX_VIEWS:
                    self._views.pop(next(iter(self._views)))
                view = self._views[key] = queueview.QueueView()
            return view


def _split(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def job(job_id: str) -> Optional[dict]:
    """``scontrol show job``'s fields (as pairs, in its order) and the record's
    steps; None for an id the controller does not know."""
    shown = call("show_jobs", ids=[job_id], now=time.time())
    if not shown["count"]:
        return None
    records = call("jobs", ids=[job_id], steps=True, per_task=False)
    fields: list[tuple[str, str]] = []
    for word in _pairs(shown["text"]):
        fields.append(word)
    rec = records[0] if records else {}
    return {"fields": fields, "record": rec, "steps": rec.get("job_steps") or [],
            "mine": rec.get("uid") == os.getuid(), "count": shown["count"],
            "explain": _explain(job_id), "deps": _dependencies(rec.get("dependency") or "")}


def _dependencies(text: str) -> list[dict]:
    """The jobs this one waits for (squeue's %E, e.g. ``afterok:12(unfulfilled),
    afterany:13_*``), each with its type and its state now."""
    import re

    out = []
    for part in re.split(r"[,?]", text):
        kind, _, rest = part.partition(":")
        if not rest or kind in ("(null)", "singleton"):
            continue
        for word in rest.split(":"):
            m = re.match(r"(\d+)(_[\d*]+)?", word)
            if m:
                out.append({"kind": kind, "id": m.group(1) + (m.group(2) or ""),
                            "job": m.group(1)})
    if out:
        states = {}
        for r in call("jobs", ids=sorted({d["job"] for d in out}), steps=False,
                      per_task=False):
            states.setdefault(str(r.get("array_job_id") or r["job_id"]), set()).add(r["state"])
        for d in out:
            d["state"] = ",".join(sorted(states.get(d["job"], {"gone"})))
    return out


def _explain(job_id: str) -> str:
    """``fleetslurm explain``'s words: why it waits, where it runs, how it ended."""
    from ..errors import FleetError

    try:
        return str(call("explain", id=job_id))
    except FleetError:
        return ""


def _pairs(text: str) -> list[tuple[str, str]]:
    """scontrol's ``Key=Value`` words (a value runs to the next word holding
    '='; Command= and paths may hold spaces)."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(("Command=", "WorkDir=", "StdErr=", "StdIn=", "StdOut=",
                            "Comment=")):
            key, _, value = line.partition("=")
            out.append((key, value))
            continue
        for word in line.split(" "):
            if "=" in word:
                key, _, value = word.partition("=")
                out.append((key, value))
            elif out:
                out[-1] = (out[-1][0], out[-1][1] + " " + word)
    return out


def output(job_id: str, offset: int, which: str = "stdout") -> dict:
    """A job's output from ``offset``: the mechanism of ``fleetslurm tail``."""
    return call("read_output", id=job_id, offset=offset, which=which)


def history(hours: float = 24) -> dict:
    """The History page's aggregates (SQLite's), and each machine's declared
    CPUs: its utilization is its CPU-hours over CPUs x hours."""
    stats = call("dashboard_stats", hours=hours)
    stats["cpus"] = {n["name"]: n["cpus"] for n in call("nodes")["nodes"]}
    return stats


def action(name: str, job_id: str) -> dict:
    """A button: the controller's op, as the CLI calls it; the controller
    decides (it refuses others' jobs as it refuses the CLI). Returns
    ``{"ok": bool, "message": text}``."""
    from ..errors import FleetError

    if name not in ACTIONS:
        return {"ok": False, "message": f"unknown action {name!r}"}
    op, extra = ACTIONS[name]
    try:
        reply = call(op, ids=[str(job_id)], **extra)
    except FleetError as exc:
        return {"ok": False, "message": str(exc)}
    errs = (reply or {}).get("errors") or []
    if errs:
        return {"ok": False, "message": "; ".join(errs)}
    return {"ok": True, "message": f"{name}: job {job_id}"}


def usage(job_id: str) -> dict:
    """The job's CPU and memory over time (its supervisor's samples, as the
    controller keeps them): ``t`` (epoch s), ``cpu`` (CPUs busy: CPU seconds
    per second between two points), ``rss_mb`` (summed PSS), whether it
    runs, and whether it may still bring samples (``live``: the page then
    asks again)."""
    reply = call("usage", id=str(job_id), full=True)
    tasks = reply.get("tasks") or []
    task = tasks[-1] if tasks else {}
    points = (task.get("samples") or {}).get("points") or []
    t = [p[0] for p in points]
    cpu: list = []
    for i, p in enumerate(points):
        t0, c0 = (points[i - 1][0], points[i - 1][1]) if i else (task.get("start_time"), 0.0)
        cpu.append(round((p[1] - c0) / (p[0] - t0), 3) if t0 is not None and p[0] > t0
                   else None)
    return {"t": t, "cpu": cpu, "rss_mb": [round(p[2] / 1024, 1) for p in points],
            "running": task.get("state") == "RUNNING", "state": task.get("state"),
            # another user's job: no samples (as sstat), nothing to wait for
            "denied": bool(task.get("denied")),
            # a pending job's page waits for its first samples
            "live": task.get("state") in ACTIVE_STATE_NAMES and not task.get("denied")}


class Source:
    """The dashboard's questions to the controller (this module's functions),
    with what it keeps between them: one per web app (or ``fleetslurm top``),
    so two never share a view by accident."""

    def __init__(self) -> None:
        self.kept = Kept()

    def fleet(self) -> dict:
        return fleet(self.kept)

    def queue(self, **filters: Any) -> dict:
        return queue(**filters, kept=self.kept)

    #: the requests' timings (/metrics), the process's as :func:`call` keeps them
    RPC_REGISTRY = RPC_REGISTRY
    call = staticmethod(call)
    job = staticmethod(job)
    output = staticmethod(output)
    history = staticmethod(history)
    action = staticmethod(action)
    usage = staticmethod(usage)
