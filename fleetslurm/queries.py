"""Read-only requests (squeue, sacct, sinfo, scontrol show), answered by the
RPC threads straight from the store, each thread with its own connection, so a
busy scheduling loop never delays them."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from .model import ACTIVE_STATE_NAMES, JobRecord
from .store import Store
from .views import group_pending_arrays, job_record

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["Queries"]

_ACTIVE = ACTIVE_STATE_NAMES


class Queries:
    OPS = frozenset({"ping", "jobs", "nodes", "config", "history", "read_output", "count"})

    def __init__(self, ctl: "Controller") -> None:
        self.ctl = ctl
        self._local = threading.local()

    def _store(self) -> Store:
        if self.ctl.store.path == ":memory:":
            return self.ctl.store
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = Store(self.ctl.paths.db)
        return s

    def answer(self, op: str, args: dict, uid: int) -> Any:
        return getattr(self, "q_" + op)(args, uid)

    def q_ping(self, args: dict, uid: int) -> dict:
        return {"pid": __import__("os").getpid(), "started": self.ctl.started_at,
                "config": self.ctl.config.source, "cluster": self.ctl.config.cluster_name,
                "home": str(self.ctl.paths.home)}

    def q_jobs(self, args: dict, uid: int) -> list[JobRecord]:
        """Filters: ids, users, states ("all" or names), names, partitions,
        since/until (epoch; sacct's window), active_or_recent (squeue)."""
        store = self._store()
        where, params = [], []
        states = args.get("states")
        if args.get("squeue"):
            if not states:
                where.append("state IN ('PENDING','RUNNING','COMPLETING','REQUEUED','SUSPENDED')")
            else:
                # finished jobs stay visible for MinJobAge, as in SLURM
                where.append("(end_time IS NULL OR end_time >= ?)")
                params.append(time.time() - self.ctl.config.min_job_age)
        if states and states != "all":
            where.append("state IN (%s)" % ",".join("?" * len(states)))
            params.extend(states)
        ids = args.get("ids")
        task_filter: Optional[set[int]] = None
        if ids:
            task_filter = set()
            for text in ids:
                task_filter |= self._ids(store, str(text))
            if not task_filter:
                return []
            where.append("task_id IN (%s)" % ",".join("?" * len(task_filter)))
            params.extend(sorted(task_filter))
        if args.get("since") is not None:
            where.append("(end_time IS NULL OR end_time >= ?)")
            params.append(args["since"])
        if args.get("until") is not None:
            # SLURM keeps whole seconds: a job submitted during the second -E
            # names is inside the window
            where.append("submit_time < ?")
            params.append(int(args["until"]) + 1)
        tasks = store.tasks(" AND ".join(where), params)
        jobs: dict[int, dict] = {}
        out: list[JobRecord] = []
        users = set(args.get("users") or [])
        names = set(args.get("names") or [])
        parts = set(args.get("partitions") or [])
        for t in tasks:
            job = jobs.get(t["job_id"])
            if job is None:
                job = jobs[t["job_id"]] = store.job(t["job_id"])  # type: ignore[assignment]
            if users and job["user"] not in users and str(job["uid"]) not in users:
                continue
            if names and t["req"]["name"] not in names:
                continue
            if parts and t["req"]["partition"] not in parts:
                continue
            steps = store.steps_of(t["task_id"]) if args.get("steps", True) else []
            out.append(job_record(t, job, steps, self.ctl.config.cluster_name))
        if args.get("group_arrays"):
            throttles = {j: jobs[j]["spec"].get("array_throttle") for j in jobs}
            out = group_pending_arrays(out, throttles)
        return out

    @staticmethod
    def _ids(store: Store, text: str) -> set[int]:
        from .errors import FleetError
        from .ops import find_tasks

        try:
            return {t["task_id"] for t in find_tasks(store, text)}
        except FleetError:  # a malformed id matches nothing
            return set()

    def q_nodes(self, args: dict, uid: int) -> dict:
        return {"nodes": list(self.ctl.node_snapshot), "partitions": self.partitions()}

    def partitions(self) -> list[dict]:
        cfg = self.ctl.config
        out = []
        for name, p in cfg.partitions.items():
            out.append({"name": name, "default": p.default, "state": p.state.lower(),
                        "max_time": p.max_minutes(), "default_time": p.default_minutes(),
                        "priority": p.priority, "nodes": cfg.partition_nodes(name)})
        return out

    def q_config(self, args: dict, uid: int) -> list[tuple[str, str]]:
        cfg = self.ctl.config
        return [
            ("ClusterName", cfg.cluster_name),
            ("ConfigFile", cfg.source or "(embedded default)"),
            ("FleetslurmHome", str(self.ctl.paths.home)),
            ("HostKeyPolicy", cfg.host_key_policy),
            ("KillWait", f"{cfg.kill_wait} sec"),
            ("MaxArraySize", str(cfg.max_array_size)),
            ("MinJobAge", f"{cfg.min_job_age} sec"),
            ("SchedulerType", "sched/backfill"),
            ("SelectType", "select/cons_tres"),
            ("SelectTypeParameters", "CR_CPU_MEMORY"),
            ("SlurmctldHeartbeatInterval", f"{cfg.heartbeat_interval:g} sec"),
            ("SLURM_VERSION", "22.05 (fleetslurm)"),
        ]

    def q_count(self, args: dict, uid: int) -> dict:
        """How many jobs are in each state (cheap: for pollers and dashboards)."""
        rows = self._store()._x("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        counts = {state: n for state, n in rows}
        counts["active"] = sum(n for st, n in counts.items() if st in _ACTIVE)
        return counts

    def q_history(self, args: dict, uid: int) -> list[dict]:
        return self._store().history(int(args["task_id"]))

    def q_read_output(self, args: dict, uid: int) -> dict:
        """A job's stdout/stderr from ``offset``: from the submit host once it is
        there, from the machine (through its transport) while the job runs."""
        from .errors import AccessDenied, InvalidJobId
        from .paths import JobPaths

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
        transport = self.ctl.transport_for(node) if node in self.ctl.config.machines else None
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
