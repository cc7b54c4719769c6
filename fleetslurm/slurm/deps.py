"""Job dependencies: ``sbatch -d afterok:12:13,afterany:14``.

Grammar and semantics follow SLURM 22.05's controller
(src/slurmctld/job_scheduler.c: ``_parse_dependency_jobid_new``,
``_test_job_dependency_common``, ``test_job_dependency``,
``_depend_list2str``) and ``man sbatch``:

* ``type:id[:id...]`` terms joined by ``,`` (all must be satisfied) or ``?``
  (any one suffices); mixing ``,`` and ``?`` is an error. A bare ``id`` is the
  old spelling of ``afterany:id``. ``singleton`` takes no ids.
* ids are ``N``, ``N_i`` (one array task) or ``N_*`` (a whole array); ``N+M``
  adds a delay of M minutes (used by ``after``).
* ``after``: the job has started (left PENDING, which includes being
  cancelled) and M minutes have passed since its start; ``afterany``: it
  ended in any state; ``afterok``: it ended COMPLETED; ``afternotok``: it
  ended in any other final state (FAILED, CANCELLED, TIMEOUT, NODE_FAIL,
  OUT_OF_MEMORY, PREEMPTED, BOOT_FAIL, DEADLINE) or is held in SPECIAL_EXIT;
  ``aftercorr``: like afterok, task by task between two arrays.
* A job that SLURM no longer knows (purged) lifts the dependency ("job is
  gone, dependency lifted"); unknown ids are refused at submission instead,
  see :func:`unknown_ids`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

from fleetslurm.errors import InvalidValue

__all__ = [
    "KINDS",
    "ALL_TASKS",
    "DepTerm",
    "Dependency",
    "parse_dependency",
    "evaluate",
    "unknown_ids",
    "format_dependency",
]

KINDS = ("after", "afterany", "afterok", "afternotok", "aftercorr", "singleton")
#: ``array_task`` value for ``N_*`` (the whole array)
ALL_TASKS = -1

_PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                      "RESV_DEL_HOLD", "SPECIAL_EXIT"})
_FINISHED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                       "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"})

Result = Literal["ok", "wait", "never"]
Lookup = Callable[..., "tuple[str | None, float | None]"]


@dataclass(frozen=True)
class DepTerm:
    """One ``kind:job_id`` condition (SLURM keeps one record per id, too)."""

    kind: str
    job_id: int | None = None     # None for singleton
    array_task: int | None = None  # None: the job itself; ALL_TASKS: N_*; else N_i
    minutes: int = 0              # the +M of after:N+M


@dataclass(frozen=True)
class Dependency:
    """A parsed ``--dependency``: terms joined by all-of (``,``) or any-of (``?``)."""

    any_of: bool
    terms: tuple[DepTerm, ...]

    @property
    def singleton(self) -> bool:
        """Whether ``singleton`` is among the terms (the scheduler checks it)."""
        return any(t.kind == "singleton" for t in self.terms)

    @property
    def job_ids(self) -> tuple[int, ...]:
        """The job ids named, each once, in order."""
        return tuple(dict.fromkeys(t.job_id for t in self.terms if t.job_id is not None))


_ID_RE = re.compile(r"([0-9]+)(?:_([0-9]+|\*))?(?:\+([0-9]+))?")


def _bad(text: str, why: str) -> InvalidValue:
    return InvalidValue(f'Job dependency problem: {why} in "{text}"')


def parse_dependency(text: str) -> Dependency:
    """Parse a ``-d/--dependency`` value.

    Raises:
        InvalidValue: ``Job dependency problem: ... in "afterok:x"``; the
            valid kinds are listed when the kind is unknown.
    """
    if not text.strip():
        raise _bad(text, "empty dependency")
    if "," in text and "?" in text:
        raise _bad(text, "',' (all of) and '?' (any of) cannot be mixed")
    any_of = "?" in text
    terms: list[DepTerm] = []
    for tok in text.split("?" if any_of else ","):
        kind, colon, ids = tok.partition(":")
        kind = kind.strip().lower()
        if not colon:
            if kind == "singleton":
                terms.append(DepTerm("singleton"))
                continue
            if re.fullmatch(r"[0-9]+(_([0-9]+|\*))?", kind):
                kind, ids = "afterany", kind  # old format: a bare id
            elif kind in KINDS:
                raise _bad(text, f"{kind!r} needs job ids ({kind}:ID[:ID...])")
            else:
                raise _bad(text, f"unknown dependency type {kind!r} "
                                 f"(valid: {', '.join(KINDS)})")
        elif kind == "singleton":
            raise _bad(text, "'singleton' takes no job ids")
        elif kind not in KINDS:
            raise _bad(text, f"unknown dependency type {kind!r} (valid: {', '.join(KINDS)})")
        for id_text in ids.split(":"):
            match = _ID_RE.fullmatch(id_text.strip())
            if not match:
                raise _bad(text, f"invalid job id {id_text!r}")
            job_id = int(match.group(1))
            if job_id == 0:
                raise _bad(text, "job id 0 does not exist")
            task = match.group(2)
            array_task = None if task is None else ALL_TASKS if task == "*" else int(task)
            minutes = int(match.group(3) or 0)
            if match.group(3) is not None and minutes <= 0:
                raise _bad(text, f"the delay in {id_text!r} must be at least 1 minute")
            term = DepTerm(kind, job_id, array_task, minutes)
            # SLURM keeps one record per (job id, array task, type)
            if not any((t.kind, t.job_id, t.array_task) == (kind, job_id, array_task)
                       for t in terms):
                terms.append(term)
    return Dependency(any_of, tuple(terms))


def _base_state(state: str) -> str:
    # "CANCELLED by 1000" (sacct) -> "CANCELLED"
    return state.split()[0].upper() if state.strip() else ""


def _term_status(term: DepTerm, lookup: Lookup, now: float | None,
                 array_task_id: int | None) -> Literal["ok", "wait", "fail"]:
    if term.kind == "singleton":
        return "ok"  # evaluated by the scheduler, which knows names and users
    assert term.job_id is not None
    if term.array_task is None or term.array_task == ALL_TASKS:
        state, start = lookup(term.job_id)
    else:
        state, start = lookup(term.job_id, term.array_task)
    if term.kind == "aftercorr" and array_task_id is not None:
        corr_state, corr_start = lookup(term.job_id, array_task_id)
        if corr_state is not None:
            state, start = corr_state, corr_start
    if state is None:
        return "ok"  # job is gone, dependency lifted (test_job_dependency)
    base = _base_state(state)
    pending = base in _PENDING
    finished = base in _FINISHED
    if term.kind == "after":
        if pending:
            return "wait"
        if not term.minutes:
            return "ok"
        if now is None:
            raise TypeError("evaluate() needs now= for after:JOB+MINUTES")
        if start is not None and now - start >= term.minutes * 60:
            return "ok"
        return "wait"
    if term.kind == "afterany":
        return "ok" if finished else "wait"
    if term.kind == "afternotok":
        if base == "SPECIAL_EXIT":
            return "ok"
        if not finished:
            return "wait"
        return "fail" if base == "COMPLETED" else "ok"
    # afterok, aftercorr
    if not finished:
        return "wait"
    return "ok" if base == "COMPLETED" else "fail"


def evaluate(dep: Dependency, lookup: Lookup, now: float | None = None, *,
             array_task_id: int | None = None) -> Result:
    """Decide whether a job's dependency is met: ``"ok"``, ``"wait"`` or ``"never"``.

    ``lookup(job_id)`` returns ``(state, start_time)`` for a job (for an array
    job, the state of the array as a whole), ``(None, None)`` for an unknown
    one; ``N_i`` terms call ``lookup(job_id, i)``. ``now`` is needed only for
    ``after:N+M``. ``array_task_id`` is the dependent job's own index, for
    ``aftercorr``. Singleton terms count as met; the caller enforces them.
    All-of: never if any term failed, ok when all are met. Any-of: ok when one
    is met, never when all failed (SLURM's ``test_job_dependency``).
    """
    statuses = [_term_status(t, lookup, now, array_task_id) for t in dep.terms]
    if dep.any_of:
        if "ok" in statuses:
            return "ok"
        return "wait" if "wait" in statuses else "never"
    if "fail" in statuses:
        return "never"
    return "wait" if "wait" in statuses else "ok"


def unknown_ids(dep: Dependency, known: set[int]) -> list[int]:
    """Job ids the dependency names that are not in ``known``, in order.

    SLURM refuses such a submission: ``sbatch: error: Batch job submission
    failed: Job dependency problem``.
    """
    return [job_id for job_id in dep.job_ids if job_id not in known]


def format_dependency(dep: Dependency | None, lookup: Lookup | None = None,
                      now: float | None = None, *,
                      is_array: Callable[[int], bool] | None = None,
                      array_task_id: int | None = None) -> str:
    """squeue ``%E`` / scontrol ``Dependency=`` text.

    ``afterok:33(unfulfilled),afterok:34_*(unfulfilled)``: one entry per id,
    ``_*`` for a whole array (``is_array(job_id)`` tells), ``+M`` for a delay.
    With ``lookup``, met terms are left out and failed ones read ``(failed)``;
    ``(null)`` when nothing is left (or ``dep`` is None), as SLURM prints.
    """
    if dep is None:
        return "(null)"
    if lookup is not None and evaluate(dep, lookup, now, array_task_id=array_task_id) == "ok":
        return "(null)"
    parts = []
    for term in dep.terms:
        state = "unfulfilled"
        if lookup is not None and term.kind != "singleton":
            status = _term_status(term, lookup, now, array_task_id)
            if status == "ok":
                continue
            state = "failed" if status == "fail" else "unfulfilled"
        if term.kind == "singleton":
            parts.append(f"singleton({state})")
            continue
        assert term.job_id is not None
        if term.array_task == ALL_TASKS or (
                term.array_task is None and is_array is not None and is_array(term.job_id)):
            target = f"{term.job_id}_*"
        elif term.array_task is not None:
            target = f"{term.job_id}_{term.array_task}"
        else:
            target = str(term.job_id)
        delay = f"+{term.minutes}" if term.minutes else ""
        parts.append(f"{term.kind}:{target}{delay}({state})")
    return ("?" if dep.any_of else ",").join(parts) or "(null)"
