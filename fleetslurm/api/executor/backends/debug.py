"""The ``debug`` backend: each call runs in this process, synchronously, when
it is submitted (pdb-friendly)."""

from __future__ import annotations

import os
from typing import Optional

from .base import HomeBackend, JobHandle, JobUsage

__all__ = ["DebugBackend"]


class DebugBackend(HomeBackend):
    """Runs each call in this process when it is submitted (pdb-friendly); the
    same payload round trip as the others, so what cannot travel fails here too."""

    name = "debug"

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        from .local import next_id

        master = next_id(self.home)
        for i in ([None] if tasks is None else range(tasks)):
            self._run(folder, i)
        return str(master)

    @staticmethod
    def _run(folder: str, index: Optional[int]) -> None:
        import contextlib
        import io
        import json

        from .. import runner
        from ..script import call_name, log_names, result_name

        sub = (lambda n: n) if index is None else (lambda n: n.replace("%a", str(index)))
        array = index is not None
        out, err = io.StringIO(), io.StringIO()
        result = os.path.join(folder, sub(result_name(array)))
        start = _cpu()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runner.main(["runner", os.path.join(folder, sub(call_name(array))), result])
        wall = _cpu()
        names = log_names(array)
        for stream, name in ((out, names[0]), (err, names[1])):
            runner.write_atomic(os.path.join(folder, sub(name)), stream.getvalue().encode())
        import resource

        runner.write_atomic(result + ".usage", json.dumps({
            "cpu": wall[0] - start[0], "elapsed": wall[1] - start[1],
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}).encode())

    def states(self, ids: list[str]) -> dict[str, str]:
        return {}  # everything ran at submit: lost_state reads the result

    def cancel(self, ids: list[str]) -> None:
        pass  # it already ran

    def usage(self, job: "JobHandle") -> "JobUsage":
        import json
        import socket

        try:
            with open(job.paths["result"] + ".usage") as f:
                u = json.load(f)
        except (OSError, ValueError):
            u = {}
        state = self.lost_state(job)
        return JobUsage(state, u.get("cpu"), u.get("max_rss_kb"), u.get("elapsed"),
                        socket.gethostname(), 0 if state == "COMPLETED" else 1)


def _cpu() -> tuple[float, float]:
    import time

    return time.thread_time(), time.monotonic()
