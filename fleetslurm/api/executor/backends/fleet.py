"""The ``fleet`` backend (the default): fleetslurm's controller (the embedded
localhost when there is no config); payloads staged through the transport."""

from __future__ import annotations

import os
from typing import Optional

from .base import Backend, JobHandle, JobUsage

__all__ = ["FleetBackend"]


class FleetBackend(Backend):
    """fleetslurm's controller, through :class:`fleetslurm.api.executor.client.FleetClient`."""

    name = "fleet"

    def __init__(self, config: Optional[str] = None, home: Optional[str] = None) -> None:
        from ..client import FleetClient

        self.client = FleetClient(config, home)
        self.options = {"config": self.client.config, "home": str(self.client.paths.home)}

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        return self.client.submit(script, cwd=os.getcwd(), name=job_name,
                                  stage_in=stage_in, stage_out=stage_out)

    def states(self, ids: list[str]) -> dict[str, str]:
        return self.client.states(ids)

    def pause(self, ids: list[str], delay: float, left: Optional[float]) -> bool:
        # the controller answers when the jobs end (or after `left` seconds)
        return self.client.block(ids, left)

    def lost_state(self, job: "JobHandle") -> str:
        from ....errors import InvalidJobId

        raise InvalidJobId(f"job {job.job_id}: the controller at {self.client.paths.home} "
                           "does not know it (another FLEETSLURM_HOME or config?)")

    def cancel(self, ids: list[str]) -> None:
        self.client.cancel(ids)

    def usage(self, job: "JobHandle") -> "JobUsage":
        rec = self.client.job(job.job_id)
        start, end = rec.get("start_time"), rec.get("end_time")
        return JobUsage(
            state=rec["state"], cpu_time_s=rec.get("total_cpu"),
            max_rss_kb=rec.get("max_rss_kb"),
            elapsed_s=(end - start) if start and end else None,
            node=(rec.get("nodes") or [None])[0], exit_code=rec.get("exit_code"),
            exit_signal=rec.get("exit_signal"))

    def read_output(self, job: "JobHandle", which: str) -> str:
        # from the machine while it runs, from this host once it is home
        chunks, offset = [], 0
        while True:
            text, new = self.client.read_output(job.job_id, which, offset)
            if new == offset:
                return "".join(chunks)
            chunks.append(text)
            offset = new
