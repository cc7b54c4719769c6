"""The ``slurm`` backend: the same batch script given to a real SLURM's
``sbatch`` on PATH; states from ``sacct``, or, where accounting is disabled
(no slurmdbd), from ``squeue -t all`` and ``scontrol show job`` while the
controller remembers the job (MinJobAge), then from the result file.

A real SLURM cluster shares its filesystem, so nothing is staged: the payload
directory (under ``$FLEETSLURM_HOME``) must be visible to the nodes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Optional

from ....errors import ControllerError, SubmitError
from .base import Backend

if TYPE_CHECKING:
    from .base import JobHandle, JobUsage

__all__ = ["SlurmBackend", "slurm_available", "parse_duration", "parse_rss_kb"]

_TIMEOUT = 60


def slurm_available() -> Optional[str]:
    """None when sbatch and a controller answer here, else why not."""
    if not shutil.which("sbatch"):
        return "sbatch is not on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if proc.returncode != 0:
        return f"no SLURM controller answers: {proc.stderr.strip()}"
    return None


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT)
    except FileNotFoundError:
        raise ControllerError(f"{argv[0]} is not on PATH: the slurm backend needs SLURM's "
                              "commands (or use backend='fleet')") from None
    except subprocess.TimeoutExpired:
        raise ControllerError(f"{what}: {argv[0]} did not answer within {_TIMEOUT} s") from None


def parse_duration(text: str) -> Optional[float]:
    """SLURM's ``[D-]HH:MM:SS[.mmm]`` / ``MM:SS.mmm`` as seconds."""
    text = text.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text)
    if not m:
        return None
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi) * 60 + float(s)


def parse_rss_kb(text: str) -> Optional[int]:
    """sacct's MaxRSS (``1234K``, ``12M``, plain bytes) in KiB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not m:
        return None
    factor = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3}[m.group(2)]
    return int(float(m.group(1)) * factor)


class SlurmBackend(Backend):
    name = "slurm"

    def __init__(self) -> None:
        self.options = {}
        self._accounting: Optional[bool] = None  # learnt from the first sacct

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        path = os.path.join(folder, "job.sh")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        proc = _run(["sbatch", "--parsable", path], "sbatch")
        if proc.returncode != 0:
            raise SubmitError(f"sbatch refused the job: {proc.stderr.strip()}")
        m = re.match(r"(\d+)", proc.stdout.strip())
        if not m:
            raise SubmitError(f"sbatch printed no job id: {proc.stdout.strip()!r}")
        return m.group(1)

    # -- states ---------------------------------------------------------------------
    def _sacct(self, ids: list[str], fields: str, allocations: bool) -> Optional[list[list[str]]]:
        """sacct rows, or None where accounting is disabled."""
        if self._accounting is False:
            return None
        argv = ["sacct", "-P", "-n", "-o", fields, "-j", ",".join(ids)]
        if allocations:
            argv.append("-X")
        proc = _run(argv, "sacct")
        if proc.returncode != 0:
            if "accounting storage is disabled" in proc.stderr.lower() or \
                    "slurmdbd" in proc.stderr.lower():
                self._accounting = False
                return None
            raise ControllerError(f"sacct failed: {proc.stderr.strip()}")
        self._accounting = True
        return [line.split("|") for line in proc.stdout.splitlines() if line]

    def states(self, ids: list[str]) -> dict[str, str]:
        masters = sorted({i.split("_")[0] for i in ids})
        rows = self._sacct(masters, "JobID,State", allocations=True)
        found: dict[str, str] = {}
        for jid, state in rows or []:
            state = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0"
            m = re.fullmatch(r"(\d+)_\[(.+)\]", jid)
            if m:  # the pending part of an array: 12_[3-9%2]
                from ....slurm.arrays import parse_array

                for i in parse_array(m.group(2), 10**9)[0]:
                    found[f"{m.group(1)}_{i}"] = state
            else:
                found[jid] = state
        # accounting lags behind the controller: what sacct does not list yet
        # (or at all, without slurmdbd) comes from squeue
        missing = sorted({i.split("_")[0] for i in ids if i not in found})
        if missing:
            for master in missing:
                proc = _run(["squeue", "-t", "all", "-h", "-r", "-j", master, "-o", "%i|%T"],
                            "squeue")
                if proc.returncode != 0:
                    continue  # aged out of the controller: lost_state reads the result
                for line in proc.stdout.splitlines():
                    jid, _, state = line.partition("|")
                    found[jid.strip()] = state.strip()
        return {i: found[i] for i in ids if i in found}

    def cancel(self, ids: list[str]) -> None:
        proc = _run(["scancel", *ids], "scancel")
        if proc.returncode != 0:
            from ....errors import JobError

            raise JobError(f"scancel failed: {proc.stderr.strip()}")

    # -- accounting -----------------------------------------------------------------
    def usage(self, job: "JobHandle") -> "JobUsage":
        from .base import JobUsage

        rows = self._sacct([job.job_id], "JobID,State,TotalCPU,MaxRSS,Elapsed,NodeList,ExitCode",
                           allocations=False)
        if rows:
            main = next((r for r in rows if r[0] == job.job_id), rows[0])
            rss = [parse_rss_kb(r[3]) for r in rows if r[3]]
            code, _, sig = main[6].partition(":")
            return JobUsage(main[1].split()[0], parse_duration(main[2]),
                            max([r for r in rss if r is not None], default=None),
                            parse_duration(main[4]), main[5] or None,
                            int(code) if code.isdigit() else None,
                            int(sig) if sig.isdigit() else None)
        proc = _run(["scontrol", "-o", "show", "job", job.job_id], "scontrol")
        fields = dict(re.findall(r"(\w+)=(\S*)", proc.stdout)) if proc.returncode == 0 else {}
        state = fields.get("JobState") or self.lost_state(job)
        code, _, sig = (fields.get("ExitCode") or "").partition(":")
        node = fields.get("NodeList") or fields.get("BatchHost")
        return JobUsage(state, None, None, parse_duration(fields.get("RunTime", "")),
                        None if node in (None, "(null)") else node,
                        int(code) if code.isdigit() else None,
                        int(sig) if sig.isdigit() else None)
