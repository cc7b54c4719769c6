"""What may differ between the two sides, and how it is made comparable.

Two kinds of rule live here:

* normalisation: values that differ by nature (job ids, times, the working
  directory, pids, load figures) become placeholders; everything else is
  compared as printed;
* deliberate differences: what README.md's "Where fleetslurm differs from
  SLURM 22.05 (on purpose)" lists. Each is applied as an exact expectation
  (SLURM's value -> the value fleetslurm must print instead), never as
  "anything goes".
"""

from __future__ import annotations

import re
from typing import Optional

from .batch import Snap
from .shape import DURATION, TS, norm_path

__all__ = ["ARRAYS", "family", "job_value", "squeue_value", "sinfo_value", "node_value",
           "NO_MEM_LABELS", "deliberate_job"]

#: labels of array jobs in the batch
ARRAYS = ("arr", "parr", "h2")

#: jobs that ask for no memory: SLURM gives them the node's whole RealMemory,
#: fleetslurm reserves none (README, "on purpose")
NO_MEM_LABELS = ("plain", "h2", "h4")

_JOB_TIMES = {"SubmitTime", "EligibleTime", "AccrueTime", "StartTime", "EndTime",
              "LastSchedEval", "Deadline", "SuspendTime", "PreemptEligibleTime", "PreemptTime",
              "ResizeTime"}
_NODE_TIMES = {"BootTime", "SlurmdStartTime", "LastBusyTime"}


def family(text: str) -> str:
    """``<arr_3>`` and ``<arr>`` -> ``<arr*>``: SLURM gives the array's own id
    to the task that starts last, fleetslurm to the first (README)."""
    return re.sub(r"<(%s)(_\d+)?>" % "|".join(ARRAYS), r"<\1*>", text)


def _ts(value: str) -> str:
    return TS.sub("<TS>", value)


def job_value(snap: Snap, key: str, value: str) -> str:
    """One ``scontrol show job`` value, normalised."""
    tokens = snap.tokens
    if key in _JOB_TIMES:
        return _ts(value)
    if key == "RunTime":
        return "<dur>"  # pending jobs: see test_states
    if key == "JobId":
        return family(tokens.token(value))
    if key == "ArrayJobId":
        return tokens.token(value)
    if key == "Priority":
        return value if value == "0" else ("<prio>" if value.isdigit() else value)
    if key == "AllocNode:Sid":
        host, _, sid = value.rpartition(":")
        return f"<host>:{'<sid>' if sid.isdigit() and host else sid}"
    if key in ("Command", "WorkDir", "StdOut", "StdErr", "StdIn"):
        return family(norm_path(value, snap.work, tokens))
    if key == "Dependency":
        return tokens.sub(value)
    if key == "Scheduler":
        # which of SLURM's two schedulers started a job is its own business
        return "<sched>" if value in ("Main", "Backfill") else value
    return value


#: what SLURM 22.05's backfill scheduler leaves as the time limit of a job
#: without one that it started (README: fleetslurm keeps UNLIMITED)
BACKFILL_YEAR = "365-00:00:00"


def deliberate_job(label: str, key: str, slurm_value: str, real_memory_mb: int) -> Optional[str]:
    """The value fleetslurm prints on purpose where SLURM prints
    ``slurm_value``, or None when they must agree."""
    if key == "TRES" and label in NO_MEM_LABELS:
        return ",".join(p for p in slurm_value.split(",") if p != f"mem={real_memory_mb}M")
    if key == "TimeLimit" and slurm_value == BACKFILL_YEAR:
        return "UNLIMITED"
    return None


_ID_LETTERS = {"i", "A", "F"}


def squeue_value(snap: Snap, letter: str, value: str, row: dict) -> str:
    """One squeue cell, normalised; ``row`` holds the line's raw cells."""
    tokens = snap.tokens
    if letter in _ID_LETTERS:
        return family(tokens.token(value)) if letter == "A" else tokens.token(value)
    if snap.side.label == "slurm" and letter in ("l", "L") and value == BACKFILL_YEAR:
        return "UNLIMITED"  # deliberate: see BACKFILL_YEAR
    if snap.side.label == "slurm" and letter == "L" and row.get("l") == BACKFILL_YEAR:
        return "UNLIMITED"  # the year less the time used: also BACKFILL_YEAR's doing
    if letter in ("M", "L"):
        # time used and left depend on when each side ran the job; a pending
        # job shows its full limit and 0:00
        pending = (row.get("t") or row.get("T")) in ("PD", "PENDING")
        # SLURM enforces limits late: a timed-out job's time left is negative there
        moving = DURATION.fullmatch(value) or (letter == "L" and value == "INVALID")
        return "<dur>" if not pending and moving else value
    if letter in ("S", "V", "e"):
        return _ts(value)
    if letter in ("Z", "o"):
        return norm_path(value, snap.work, tokens)
    if letter == "p":
        return value if re.fullmatch(r"0\.0+", value) else (
            "<prio>" if re.fullmatch(r"\d\.\d{14}", value) else value)
    if letter == "Q":
        return value if value == "0" else ("<prio>" if value.isdigit() else value)
    if letter == "E":
        return tokens.sub(value)
    return value


def sinfo_value(letter: str, value: str) -> str:
    """One sinfo cell, normalised: the load and free memory vary."""
    if letter == "O" and re.fullmatch(r"\d+\.\d\d(-\d+\.\d\d)?", value):
        return "<load>"
    if letter == "e" and re.fullmatch(r"\d+(-\d+)?", value):
        return "<MB>"
    return value


def node_value(key: str, value: str) -> str:
    """One ``scontrol show node`` value, normalised."""
    if key in _NODE_TIMES:
        return _ts(value)
    if key == "CPULoad" and re.fullmatch(r"\d+\.\d\d", value):
        return "<load>"
    if key == "FreeMem" and value.isdigit():
        return "<MB>"
    return value
