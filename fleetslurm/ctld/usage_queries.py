"""The read-only requests over the resource samples (mixed into
:class:`~fleetslurm.ctld.queries.Queries`): a job's runs and their samples
(``sstat``, the dashboard's job chart) and each machine's load history (the
dashboard's fleet sparklines). Answered from the store by the RPC threads."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["UsageQueries", "USAGE_OPS"]

USAGE_OPS = frozenset({"usage", "load_history"})


class UsageQueries:
    """``q_usage`` and ``q_load_history``; the host class gives ``_store``
    and ``_ids`` (see :class:`~fleetslurm.ctld.queries.Queries`)."""

    def _store(self) -> "Store":  # pragma: no cover - the host's
        raise NotImplementedError

    @staticmethod
    def _ids(store: "Store", text: str) -> set[int]:  # pragma: no cover - the host's
        raise NotImplementedError

    def q_usage(self, args: dict, uid: int) -> dict:
        """The tasks ``id`` (``N``, ``N_i``) names: their state, machine, run
        and the run's srun steps, and the samples of the run and of each
        step: all their points with ``full``, else only the latest (what
        sstat shows). ``known`` is False for an id the controller has no
        record of. Another user's job (``denied``) comes without samples: as
        slurmd answers a stat from anyone but the owner, root or SlurmUser
        (the controller's own user) with "Invalid user id"."""
        store = self._store()
        ids = sorted(self._ids(store, str(args.get("id"))))
        tasks = []
        for task_id in ids:
            task = store.task(task_id)
            if task is None:
                continue
            run_key = task["run_key"]
            job = store.job(task["job_id"])
            denied = uid not in (0, os.getuid(), (job or {}).get("uid"))
            out = {"task_id": task_id, "job_id": task["job_id"],
                   "array_index": task["array_index"], "state": task["state"],
                   "node": task["node"], "run_key": run_key, "start_time": task["start_time"],
                   "steps": [], "samples": None, "denied": denied}
            if run_key and denied:
                out["steps"] = [{"step": s["step"], "state": s["state"], "samples": None}
                                for s in store.steps_of(task_id)
                                if s["run_key"].startswith(run_key + ".")]
            elif run_key:
                # this run's srun steps, each with its own samples
                out["steps"] = [{"step": s["step"], "state": s["state"],
                                 "ntasks": s.get("ntasks"),
                                 "samples": self._series(store, s["run_key"], args)}
                                for s in store.steps_of(task_id)
                                if s["run_key"].startswith(run_key + ".")]
                out["samples"] = self._series(store, run_key, args)
            tasks.append(out)
        return {"known": bool(tasks), "tasks": tasks, "now": time.time()}

    @staticmethod
    def _series(store: "Store", run_key: str, args: dict) -> dict:
        samples = store.samples(run_key)
        if not args.get("full"):
            samples["points"] = samples["points"][-1:]
        return samples

    def q_load_history(self, args: dict, uid: int) -> dict:
        """Each machine's load (one point a minute) since ``since`` (default
        an hour ago): ``{node: [[t...], [load1...], [free_mem_mb...]]}``."""
        since = args.get("since")
        if since is None:
            since = time.time() - 3600
        return {"nodes": self._store().load_history(float(since))}
