"""Read-only requests (squeue, sacct, sinfo, scontrol show), answered by the
RPC threads straight from the store, each thread with its own connection, so a
busy scheduling loop never delays them."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..model import ACTIVE_STATE_NAMES, JobRecord
from ..record_memo import RecordMemo
from ..slurm import SLURM_VERSION
from ..store import Store, decode_task
from ..views import group_pending_arrays, job_record
from .usage_queries import USAGE_OPS, UsageQueries

if TYPE_CHECKING:
    from ..config import FleetConfig
    from ..paths import StatePaths
    from ..transport.base import Transport

__all__ = ["Queries"]

_ACTIVE = ACTIVE_STATE_NAMES
_ACTIVE_CLAUSE = "state IN ('PENDING','RUNNING','COMPLETING','REQUEUED','SUSPENDED')"


class Queries(UsageQueries):
    OPS = frozenset({"batch_script", "ping", "jobs", "acct", "squeue", "show_jobs", "nodes", "config",
                     "history", "read_output", "count", "priorities", "dashboard_stats",
                     "squeue_delta"}) | USAGE_OPS

    def __init__(self, store: Store, config: "FleetConfig", paths: "StatePaths", *,
                 nodes: Callable[[], list[dict]] = lambda: [],
                 transport_for: Optional[Callable[[str], "Transport"]] = None,
                 started_at: float = 0.0, fairshare: Any = None,
                 sched_stats: Callable[[], tuple[float, int]] = lambda: (0.0, 0)) -> None:
        """``store`` is the loop's (each RPC thread opens its own on the same
        file); ``nodes`` gives the loop's latest node records (sinfo's, made
        by the loop: never read the scheduler here); ``transport_for`` a
        machine's transport (a running job's output is read through it);
        ``fairshare`` the priority factors (None: none); ``sched_stats`` the
        last scheduling pass's time and the passes so far."""
        self.store, self.config, self.paths = store, config, paths
        self.nodes, self.transport_for = nodes, transport_for
        self.started_at, self.fairshare, self.sched_stats = started_at, fairshare, sched_stats
        self._local = threading.local()
        #: squeue's records from one call to the next (see record_memo)
        self.memo = RecordMemo()
        #: squeue's last answers to a few questions, with Store.changes() then
        self._squeue_texts: dict[tuple, tuple[int, dict]] = {}
        self._lock = threading.Lock()

    def _store(self) -> Store:
        if self.store.path == ":memory:":
            return self.store
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = Store(self.paths.db)
        return s

    def answer(self, op: str, args: dict, uid: int) -> Any:
        with self._store().snapshot():
            return getattr(self, "q_" + op)(args, uid)

    def q_ping(self, args: dict, uid: int) -> dict:
        return {"pid": __import__("os").getpid(), "started": self.started_at,
                "config": self.config.source, "cluster": self.config.cluster_name,
                "home": str(self.paths.home)}

    def _selection(self, store: Store, args: dict) -> Optional[tuple[list[str], list, list]]:
        """The tasks the filters of :meth:`q_jobs` select: WHERE clauses over the
        tasks table, their parameters, and picks (``A_i`` of an index without a
        task row); None when ids were given and name nothing."""
        where: list[str] = []
        params: list = []
        states = args.get("states")
        if args.get("squeue"):
            if not states:
                where.append(_ACTIVE_CLAUSE)
            else:
                # finished jobs stay visible for MinJobAge, as in SLURM; a
                # COMPLETING one (its output still on its way home) is active
                where.append("(end_time IS NULL OR state='COMPLETING' OR end_time >= ?)")
                params.append(time.time() - self.config.min_job_age)
        if states and states != "all":
            where.append("state IN (%s)" % ",".join("?" * len(states)))
            params.extend(states)
        picks: list = []
        ids = args.get("ids")
        if ids:
            # whole jobs and arrays by job id, tasks by their own: a 100,000-task
            # array is one parameter, not 100,000
            job_ids: set[int] = set()
            task_ids: set[int] = set()
            for text in ids:
                sel = self._select(store, str(text))
                job_ids |= sel.jobs
                task_ids |= sel.tasks
                picks.extend(sel.picks)
            if not job_ids and not task_ids and not picks:
                return None
            where.append("(job_id IN (SELECT value FROM json_each(?)) "
                         "OR task_id IN (SELECT value FROM json_each(?)))")
            params.extend([json.dumps(sorted(job_ids)), json.dumps(sorted(task_ids))])
        if args.get("since") is not None:
            where.append("(end_time IS NULL OR end_time >= ?)")
            params.append(args["since"])
        if args.get("until") is not None:
            # SLURM keeps whole seconds: a job submitted during the second -E
            # names is inside the window
            where.append("submit_time < ?")
            params.append(int(args["until"]) + 1)
        if args.get("records_only"):
            where.append("array_pending IS NOT NULL")
        if args.get("srun_tasks"):
            where.append("task_id IN (SELECT value FROM json_each(?)) AND array_pending IS NULL")
            params.append(json.dumps(args["srun_tasks"]))
        return where, params, picks

    def q_jobs(self, args: dict, uid: int) -> list[JobRecord]:
        """Filters: ids, users, states ("all" or names), names, partitions,
        since/until (epoch; sacct's window), squeue (active or recent).
        An array's tasks that have not started are one record in the store:
        ``group_arrays`` folds its pending tasks into it (squeue's ``A_[...]``),
        ``per_task`` (the default) gives one record per task instead (``squeue
        -r``, the Python API), false leaves it as it is (scontrol, sacct)."""
        store = self._store()
        selected = self._selection(store, args)
        if selected is None:
            return []
        where, params, picks = selected
        want_steps = bool(args.get("steps", True))
        # squeue's records are kept between calls (active jobs, and those ended
        # within MinJobAge); sacct's and scontrol's, over any history, are not
        memo = self.memo if args.get("squeue") and not want_steps else None
        jobs: dict[int, dict]
        if memo is not None and where == [_ACTIVE_CLAUSE] and store.path != ":memory:":
            # squeue's own question (its -u/-p/-n filter below): only the rows
            # written since the memo read them are read (record_memo.tasks_since)
            heads = store.task_heads("t." + _ACTIVE_CLAUSE)
            tasks = memo.tasks_since(store, heads)
            jobs = memo.jobs(store, (), revs={h[2]: h[3] for h in heads})
        else:
            rows = store.task_rows(" AND ".join(where), params)
            tasks = memo.tasks(rows) if memo is not None else [decode_task(r) for r in rows]
            tasks.extend(_picked_rows(picks, where, params, store))
            job_ids = (t["job_id"] for t in tasks)
            jobs = memo.jobs(store, job_ids) if memo is not None else store.jobs_brief(job_ids)
        users = set(args.get("users") or [])
        names = set(args.get("names") or [])
        parts = set(args.get("partitions") or [])
        kept = []
        for t in tasks:
            job = jobs[t["job_id"]]
            if users and job["user"] not in users and str(job["uid"]) not in users:
                continue
            if names and t["req"]["name"] not in names:
                continue
            if parts and t["req"]["partition"] not in parts:
                continue
            kept.append(t)
        cluster = self.config.cluster_name
        out: list[JobRecord]
        if want_steps:
            steps, sruns = store.steps_by_task([t["task_id"] for t in kept])
            out = [job_record(t, jobs[t["job_id"]],
                              ([steps[t["task_id"]]] if t["task_id"] in steps else [])
                              + sruns.get(t["task_id"], []), cluster) for t in kept]
        elif memo is None:
            out = [job_record(t, jobs[t["job_id"]], (), cluster) for t in kept]
        else:
            out = [memo.record(t, jobs[t["job_id"]], cluster) for t in kept]
            if where == [_ACTIVE_CLAUSE] and not picks:
                # every active job was seen: what the memo holds besides has ended
                memo.keep_only((t["task_id"] for t in tasks), jobs)
        if args.get("group_arrays"):
            throttles = {j: jobs[j]["spec"].get("array_throttle") for j in jobs}
            pending = {t["task_id"]: t["array_pending"] for t in kept
                       if t["array_pending"] is not None and t["state"] == "PENDING"
                       and t.get("picked") is None}
            out = group_pending_arrays(out, throttles, pending)
        elif args.get("per_task", True):
            # squeue -r and the Python API: every task of an array on its own, those
            # not started yet as the array's record shows them (A_7 PENDING)
            out = _one_per_index(out)
            # an array's tasks in index order (the last to start has the array's id)
            out.sort(key=lambda r: (r.get("array_job_id") or r["job_id"],
                                    -1 if r.get("array_task_id") is None else r["array_task_id"]))
        return _with_multifactor(out, self.fairshare)

    def q_squeue(self, args: dict, uid: int, keep: bool = True) -> dict:
        """squeue's lines, rendered here (10,000 pending jobs cross the socket as
        text, not as records): the filters of :meth:`q_jobs` plus ``format``,
        ``header``, ``now`` and ``nodelist`` (node names); ``{"text", "count",
        "known"}`` (known: whether the ids, if any, name a job at all)."""
        from ..slurm import squeue_fmt

        store = self._store()
        # the same question about the same rows has the same answer: a queue
        # polled while nothing changes is answered from the last text (when
        # that text cannot change with the clock either)
        # multifactor priorities change with the clock, not with the rows
        changes = (store.changes(), getattr(self.fairshare, "version", 0))
        key = (uid, json.dumps({k: v for k, v in args.items() if k != "now"},
                               sort_keys=True, default=str))
        hit = self._squeue_texts.get(key)
        if hit is not None and hit[0] == changes:
            return hit[1]
        records = self.q_jobs(dict(args, squeue=True, steps=False), uid)
        wanted = set(args.get("nodelist") or [])
        if wanted:
            records = [r for r in records if wanted & set(r.get("nodes") or [])]
        # squeue's default order P,t,-p (squeue_fmt.default_sort_key)
        records.sort(key=self.memo.sort_key)
        # -O text comes as itself and a flag (a request carries no NUL)
        fmt = str(args["format"])
        if args.get("format_long"):
            fmt = squeue_fmt.long_format(fmt)
        text = squeue_fmt.render(fmt, records,
                                 now=float(args.get("now") or time.time()),
                                 header=bool(args.get("header", True)), keeper=self.memo)
        # squeue -j of ids nobody knows is an error; of jobs long finished, not
        known = bool(records) or any(any(self._select(store, str(text)))
                                     for text in args.get("ids") or ())
        result = {"text": text, "count": len(records), "known": known}
        # with a state filter, finished jobs come and go with MinJobAge: by the
        # clock; an in-memory store (tests) has no snapshot, and a request rolled
        # back there can bring the change count back to a value already seen
        if keep and not args.get("states") and store.path != ":memory:" and \
                squeue_fmt.timeless(fmt, records):
            with self._lock:
                if len(self._squeue_texts) >= 8:
                    self._squeue_texts.clear()
                self._squeue_texts[key] = (changes, result)
        return result

    def q_squeue_delta(self, args: dict, uid: int) -> dict:
        """squeue's lines for what changed since a reader's last look (the
        dashboard's Queue view): :meth:`q_squeue`'s arguments plus ``seq``
        and ``version`` and ``epoch`` from the reader's last answer. ``{"seq",
        "version", "epoch", "full", "ids", "text"}``: with ``full`` the whole
        queue's lines, else only those of the jobs ``ids`` (job ids, arrays by
        their own), which replace that reader's lines of those jobs (none:
        gone from the view); no ids, no text: nothing changed. One snapshot
        for both."""
        store = self._store()
        rest = {k: v for k, v in args.items() if k not in ("seq", "version", "epoch")}
        last, ids = store.job_changes(args.get("seq"))
        # multifactor priorities change with the clock, not with the rows; a
        # seq from another controller's run may come from another database
        version, epoch = getattr(self.fairshare, "version", 0), self.started_at
        head = {"seq": last, "version": version, "epoch": epoch}
        if (version, epoch) != (args.get("version"), args.get("epoch")) or ids is None \
                or len(ids) > 500:
            return dict(head, full=True, ids=[], text=self.q_squeue(rest, uid)["text"])
        # a few jobs' lines, asked once: not kept among squeue's answers
        text = self.q_squeue(dict(rest, ids=[str(i) for i in ids]), uid,
                             keep=False)["text"] if ids else ""
        return dict(head, full=False, ids=ids, text=text)

    def q_show_jobs(self, args: dict, uid: int) -> dict:
        """``scontrol show job``'s text, rendered here: the filters of
        :meth:`q_jobs` plus ``now``; ``{"text", "count"}``."""
        from ..slurm import scontrol_fmt

        records = self.q_jobs(dict(args, per_task=False), uid)
        now = float(args.get("now") or time.time())
        # each record ends with its own blank line(s): joined back to back
        text = "".join(scontrol_fmt.show_job(r, now, one_liner=bool(args.get("one_liner")))
                       for r in records)
        return {"text": text, "count": len(records)}

    def q_acct(self, args: dict, uid: int) -> dict:
        """sacct's lines, without the header: the filters of :meth:`q_jobs` plus
        ``fields`` ([name, width, kind] as sacct_fmt parsed them), ``mode``,
        ``allocations_only`` and the client's ``now``. Rendered here, by SQLite
        for the fields :mod:`fleetslurm.acct` knows, so 100,000 jobs cost one
        string per job instead of a record each; ``{"text": ...}``."""
        from .. import acct
        from ..slurm import sacct_fmt

        store = self._store()
        fields = [sacct_fmt.Field(str(n), int(w), str(k)) for n, w, k in args["fields"]]
        mode = str(args.get("mode") or "fixed")
        only = bool(args.get("allocations_only"))
        now = float(args.get("now") or time.time())
        line_sql = acct.plan([(f.name, f.width, f.kind) for f in fields], mode, only)
        selected = self._selection(store, args)
        if selected is None:
            return {"text": ""}
        ids = [str(i).strip() for i in args.get("ids") or ()]
        step_ids = {i for i in ids if "." in i}
        if line_sql is None or step_ids:
            # a field without an SQL form, or -j N.batch / N.0: the general path
            rows = [r for rec in self.q_jobs(dict(args, steps=True, per_task=False), uid)
                    for r in sacct_fmt.rows_for(rec, allocations_only=only, now=now)]
            if step_ids:
                # those steps only (a plain N in the same list: all its rows)
                jobs = {i for i in ids if "." not in i}
                rows = [r for r in rows if r.get("jobid") in step_ids
                        or r.get("jobidraw") in step_ids
                        or str(r.get("jobid", "")).split(".")[0] in jobs
                        or str(r.get("jobidraw", "")).split(".")[0] in jobs]
            return {"text": sacct_fmt.render(fields, rows, mode=mode, header=False)}
        where, params, picks = selected
        srun_tasks = store.tasks_with_srun_steps()
        if srun_tasks:
            # tasks with srun steps (N.0, N.1...) take the general path as well
            where = [*where, "task_id NOT IN (SELECT value FROM json_each(?))"]
            params = [*params, json.dumps(srun_tasks)]
        filters = dict(users=args.get("users") or [], names=args.get("names") or [],
                       partitions=args.get("partitions") or [], now=now,
                       cluster=self.config.cluster_name)
        # array records (a pending or cancelled remainder A_[...]) and picked
        # indices take the general path: few, and their JobID needs the ranges
        special = [(rec["job_id"], sacct_fmt.render(
            fields, sacct_fmt.rows_for(rec, allocations_only=only, now=now), mode=mode,
            header=False))
            for rec in self.q_jobs(dict(args, records_only=True, per_task=False), uid)]
        if srun_tasks:
            special += [(rec["job_id"], sacct_fmt.render(
                fields, sacct_fmt.rows_for(rec, allocations_only=only, now=now), mode=mode,
                header=False))
                for rec in self.q_jobs(dict(args, srun_tasks=srun_tasks, per_task=False), uid)]
        if not special:
            return {"text": store.acct_text(line_sql, where, params, **filters)}
        lines = [(task_id, text + "\n")
                 for task_id, text in store.acct_lines(line_sql, where, params, **filters)]
        return {"text": "".join(text for _, text in sorted(lines + special,
                                                           key=lambda line: line[0]))}

    @staticmethod
    def _select(store: Store, text: str):  # type: ignore[no-untyped-def]
        from ..errors import FleetError
        from ..jobids import Selection, select

        try:
            return select(store, text)
        except FleetError:  # a malformed id matches nothing
            return Selection(set(), set(), [])

    @staticmethod
    def _ids(store: Store, text: str) -> set[int]:
        from ..errors import FleetError
        from ..jobids import resolve

        try:
            return {t["task_id"] for t in resolve(store, text)[0]}
        except FleetError:  # a malformed id matches nothing
            return set()

    def q_nodes(self, args: dict, uid: int) -> dict:
        return {"nodes": list(self.nodes()), "partitions": self.partitions()}

    def partitions(self) -> list[dict]:
        cfg = self.config
        out = []
        for name, p in cfg.partitions.items():
            out.append({"name": name, "default": p.default, "state": p.state.lower(),
                        "max_time": p.max_minutes(), "default_time": p.default_minutes(),
                        "priority": p.priority, "nodes": cfg.partition_nodes(name),
                        "priority_tier": p.tier, "allow_groups": p.allow_groups,
                        "allow_accounts": p.allow_accounts, "allow_qos": p.allow_qos})
        return out

    def q_config(self, args: dict, uid: int) -> list[tuple[str, str]]:
        cfg = self.config
        return [
            ("AccountingStorageEnforce", cfg.accounting_storage_enforce),
            ("ClusterName", cfg.cluster_name),
            ("ConfigFile", cfg.source or "(embedded default)"),
            ("EnforcePartLimits", cfg.enforce_part_limits),
            ("FleetslurmHome", str(self.paths.home)),
            ("HostKeyPolicy", cfg.host_key_policy),
            ("KillWait", f"{cfg.kill_wait} sec"),
            ("MaxArraySize", str(cfg.max_array_size)),
            ("MinJobAge", f"{cfg.min_job_age} sec"),
            *_priority_config(cfg),
            ("SchedulerType", "sched/backfill"),
            ("SelectType", "select/cons_tres"),
            ("SelectTypeParameters", "CR_CPU_MEMORY"),
            ("SlurmctldHeartbeatInterval", f"{cfg.heartbeat_interval:g} sec"),
            ("SLURM_VERSION", SLURM_VERSION),
        ]

    def q_priorities(self, args: dict, uid: int) -> dict:
        """priority/multifactor's last numbers (sprio, sshare): weights, each pending
        job's factors, each association's shares and usage."""
        return self.fairshare.snapshot()

    def q_count(self, args: dict, uid: int) -> dict:
        """How many jobs are in each state (cheap: for pollers and dashboards)."""
        rows = self._store()._x("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        counts = {state: n for state, n in rows}
        counts["active"] = sum(n for st, n in counts.items() if st in _ACTIVE)
        return counts

    def q_dashboard_stats(self, args: dict, uid: int) -> dict:
        """The dashboard's History and /metrics figures, aggregated by SQLite
        (:meth:`Store.dashboard_stats`): ``hours`` back from now."""
        stats = self._store().dashboard_stats(float(args.get("hours") or 24), time.time())
        stats["sched_pass_seconds"], stats["sched_passes"] = self.sched_stats()
        return stats

    def q_history(self, args: dict, uid: int) -> list[dict]:
        return self._store().history(int(args["task_id"]))

    def q_batch_script(self, args: dict, uid: int) -> dict:
        """``scontrol write batch_script``: a job's script, to its owner and
        root only (its environment and script are private: everyone sees the
        job itself in squeue)."""
        from ..errors import AccessDenied, InvalidJobId

        store = self._store()
        ids = self._ids(store, str(args.get("id")))
        if len(ids) != 1:
            raise InvalidJobId("job script retrieval failed: Invalid job id specified")
        task = store.task(ids.pop())
        job = store.job(task["job_id"])  # type: ignore[index]
        if uid not in (0, job["uid"]):  # type: ignore[index]
            raise AccessDenied("job script retrieval failed: Invalid user id")
        if job["spec"].get("srun_job"):  # type: ignore[index]
            raise InvalidJobId("job script retrieval failed: No script for job "
                               f"{task['task_id']}")  # type: ignore[index]
        return {"script": job["script"], "job_id": task["task_id"]}  # type: ignore[index]

    def q_read_output(self, args: dict, uid: int) -> dict:
        """A job's stdout/stderr from ``offset``: from the submit host once it is
        there, from the machine (through its transport) while the job runs."""
        from ..errors import AccessDenied, InvalidJobId
        from ..paths import JobPaths

        store = self._store()
        ids = self._ids(store, str(args.get("id")))
        if len(ids) != 1:
            raise InvalidJobId(f"Invalid job id specified: {args.get('id')}")
        task = store.task(ids.pop())
        job = store.job(task["job_id"])  # type: ignore[index]
        if uid not in (0, job["uid"]):  # type: ignore[index]
            raise AccessDenied("Access/permission denied")
        which = "stderr" if args.get("which") == "stderr" else "stdout"
        offset = int(args.get("offset") or 0)
        finished = task["state"] not in _ACTIVE  # type: ignore[index]
        path = task[which]  # type: ignore[index]
        data = b""
        if task["state"] == "PENDING" or not path:  # type: ignore[index]
            # not started (or cancelled before it ever ran): nothing written yet
            return {"data": "", "data_b64": "", "offset": offset, "finished": finished}
        node = task["node"]  # type: ignore[index]
        transport = (self.transport_for(node) if self.transport_for is not None
                     and node in self.config.machines else None)
        if transport is None or transport.shared_fs or (finished and task["collected"]):  # type: ignore[index]
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(4 * 1024 * 1024)
            except OSError:
                data = b""
        else:
            jp = JobPaths(transport.workdir, task["run_key"])  # type: ignore[index]
            remote = jp.stderr if which == "stderr" and task["stderr"] != task["stdout"] else jp.stdout  # type: ignore[index]
            try:
                data = transport.get_bytes(remote, offset, 4 * 1024 * 1024)
            except Exception:
                data = b""
        if args.get("raw"):
            # bytes as they are (srun relays binary output): base64 in the JSON
            import base64

            return {"data_b64": base64.b64encode(data).decode(), "offset": offset + len(data),
                    "finished": finished}
        return {"data": data.decode(errors="replace"), "offset": offset + len(data),
                "finished": finished}


def _priority_config(cfg: Any) -> list[tuple[str, str]]:
    """scontrol show config's priority lines, as SLURM 22.05's config_info.c
    prints them (only PriorityType under priority/basic)."""
    from ..slurm.units import format_hms, parse_time_limit

    p = cfg.priority
    if p is None or p.PriorityType != "priority/multifactor":
        return [("PriorityType", "priority/basic")]
    return [
        ("PriorityDecayHalfLife", format_hms(60 * (parse_time_limit(p.PriorityDecayHalfLife) or 0))),
        ("PriorityCalcPeriod", format_hms(60 * p.PriorityCalcPeriod)),
        ("PriorityFavorSmall", "Yes" if p.PriorityFavorSmall else "No"),
        ("PriorityFlags", ""),
        ("PriorityMaxAge", format_hms(60 * (parse_time_limit(p.PriorityMaxAge) or 0))),
        ("PriorityUsageResetPeriod", "NONE"),
        ("PriorityType", "priority/multifactor"),
        ("PriorityWeightAge", str(p.PriorityWeightAge)),
        ("PriorityWeightAssoc", "0"),
        ("PriorityWeightFairShare", str(p.PriorityWeightFairshare)),
        ("PriorityWeightJobSize", str(p.PriorityWeightJobSize)),
        ("PriorityWeightPartition", str(p.PriorityWeightPartition)),
        ("PriorityWeightQOS", str(p.PriorityWeightQOS)),
        ("PriorityWeightTRES", "(null)"),
    ]


def _with_multifactor(records: list, fairshare: Any) -> list:
    """Pending jobs' priority as priority/multifactor computed it (copies: the
    memo keeps the records it hands out)."""
    if fairshare is None or not fairshare.enabled:
        return records
    out = []
    for r in records:
        prio = fairshare.priority_of(r["job_id"]) if r.get("state") == "PENDING" else None
        out.append(r if prio is None else dict(r, priority=prio))
    return out


def _picked_rows(picks: list, where: list[str], params: list, store: Store) -> list[dict]:
    """``A_i`` for an index without a task row: the array's record, shown as that
    task (as SLURM's squeue -j A_i shows the pending array's line for it); the
    other filters (states, time window) still apply to the record."""
    clauses = [w for w in where if not w.startswith("(job_id IN")]
    rest = _without_ids(where, params)
    out = []
    for pick in picks:
        record = store.task(pick.record["task_id"])
        if record is None or record["array_pending"] is None:
            continue
        if clauses and not store.tasks(" AND ".join(["task_id=?", *clauses]),
                                       [record["task_id"], *rest]):
            continue
        out.append(dict(record, array_index=pick.index, array_pending=None, picked=True))
    return out


def _without_ids(where: list[str], params: list) -> list:
    """``params`` without those of the clause that selects by job ids."""
    out, i = [], 0
    for clause in where:
        n = clause.count("?")
        if not clause.startswith("(job_id IN"):
            out.extend(params[i:i + n])
        i += n
    return out


def _one_per_index(records: list) -> list:
    """An array's record (its tasks that never started, pending or cancelled) as
    one record per index (``squeue -r``)."""
    from ..slurm.arrays import IndexSet

    out = []
    for r in records:
        text = r.get("array_task_str")
        if not text:
            out.append(r)
            continue
        for i in IndexSet.from_text(text.partition("%")[0]):
            out.append(dict(r, array_task_id=i, array_task_str=None))
    return out
