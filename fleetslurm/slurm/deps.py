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
* A whole array (``N`` or ``N_*`` when N is an array's id) is judged over
  every one of its tasks, those not started yet included (SLURM's
  ``test_job_array_pending/completed/complete``): ``after`` once no task is
  pending, ``afterany`` once all have ended, ``afterok`` once all ended
  COMPLETED (never if one did not), ``afternotok`` once all have ended and
  one did not complete.
* A job that SLURM no longer knows (purged) lifts the dependency ("job is
  gone, dependency lifted"); ids nobody ever knew are refused at submission
  instead, see :func:`unknown_ids`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal, Optional

from fleetslurm.errors import InvalidValue

__all__ = [
    "KINDS",
    "ALL_TASKS",
    "DepTerm",
    "Dependency",
    "Facts",
    "parse_dependency",
    "term_status",
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
Status = Literal["ok", "wait", "fail"]


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
        raise _bad(text, "it mixes ',' (all of) and '?' (any of): use one separator")
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


@dataclass(frozen=True)
class Facts:
    """What a dependency needs to know of the job, array task or whole array it names.

    For a whole array (SLURM's ``test_job_array_*``): ``pending`` when any
    task has not started yet (including tasks not created yet), ``finished``
    when every task has ended, ``ok`` when every task ended COMPLETED.
    ``start`` is when a single job started (or ended without starting), for
    ``after:ID+MINUTES``.
    """

    pending: bool
    finished: bool
    ok: bool = False
    special_exit: bool = False
    start: Optional[float] = None
    is_array: bool = False

    @classmethod
    def of_state(cls, state: str, start: Optional[float] = None) -> "Facts":
        """Facts of one job from its SLURM state name (``CANCELLED by 1000`` too)."""
        base = state.split()[0].upper() if state.strip() else ""
        return cls(pending=base in _PENDING, finished=base in _FINISHED,
                   ok=base == "COMPLETED", special_exit=base == "SPECIAL_EXIT", start=start)


#: ``lookup(job_id, task)``: facts of a job (``task`` None: the job, or the
#: whole array when ``job_id`` is an array's id), of one array task (``task``
#: an index) or of a whole array (``task`` ALL_TASKS); None for a job nobody knows
Lookup = Callable[[int, Optional[int]], Optional[Facts]]


def term_status(term: DepTerm, lookup: Lookup, now: Optional[float] = None,
                array_task_id: Optional[int] = None,
                singleton_blocked: Optional[Callable[[], bool]] = None) -> Status:
    """``"ok"``, ``"wait"`` or ``"fail"`` for one term (SLURM's ``_test_job_dependency_common``)."""
    if term.kind == "singleton":
        return "wait" if singleton_blocked is not None and singleton_blocked() else "ok"
    assert term.job_id is not None
    task = term.array_task
    if term.kind == "aftercorr" and array_task_id is not None and task is None:
        task = array_task_id  # task i waits for task i of the other array
    facts = lookup(term.job_id, task)
    if facts is None:
        return "ok"  # job is gone, dependency lifted (test_job_dependency)
    if term.kind == "after":
        if facts.pending:
            return "wait"
        if not term.minutes or facts.is_array:  # SLURM ignores +M for a whole array
            return "ok"
        if now is None:
            raise TypeError("evaluate() needs now= for after:JOB+MINUTES")
        return "ok" if facts.start is not None and now - facts.start >= term.minutes * 60 \
            else "wait"
    if term.kind == "afterany":
        return "ok" if facts.finished else "wait"
    if term.kind == "afternotok":
        if facts.special_exit:
            return "ok"
        if not facts.finished:
            return "wait"
        return "fail" if facts.ok else "ok"
    # afterok, aftercorr
    if not facts.finished:
        return "wait"
    return "ok" if facts.ok else "fail"


def evaluate(dep: Optional[Dependency], lookup: Lookup, now: Optional[float] = None, *,
             array_task_id: Optional[int] = None,
             singleton_blocked: Optional[Callable[[], bool]] = None) -> Result:
    """Decide whether a job's dependency is met: ``"ok"``, ``"wait"`` or ``"never"``.

    ``lookup`` gives the :class:`Facts` of what a term names (None: unknown,
    which lifts the term, as SLURM does for a purged job). ``now`` is needed
    only for ``after:N+M``; ``array_task_id`` is the dependent job's own
    index, for ``aftercorr``; ``singleton_blocked()`` says whether another
    job of the same user and name holds ``singleton`` back (without it,
    singleton counts as met). All-of: never if any term failed, ok when all
    are met. Any-of: ok when one is met, never when all failed (SLURM's
    ``test_job_dependency``).
    """
    if dep is None:
        return "ok"
    statuses = [term_status(t, lookup, now, array_task_id, singleton_blocked) for t in dep.terms]
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


def format_dependency(dep: Optional[Dependency], lookup: Optional[Lookup] = None,
                      now: Optional[float] = None, *,
                      is_array: Optional[Callable[[int], bool]] = None,
                      array_task_id: Optional[int] = None,
                      singleton_blocked: Optional[Callable[[], bool]] = None) -> str:
    """squeue ``%E`` / scontrol ``Dependency=`` text.

    ``afterok:33(unfulfilled),afterok:34_*(unfulfilled)``: one entry per id,
    ``_*`` for a whole array (``is_array(job_id)`` tells, or the lookup's
    facts), ``+M`` for a delay. With ``lookup``, met terms are left out and
    failed ones read ``(failed)``; ``(null)`` when nothing is left (or ``dep``
    is None), as SLURM prints.
    """
    if dep is None:
        return "(null)"
    if lookup is not None and evaluate(dep, lookup, now, array_task_id=array_task_id,
                                       singleton_blocked=singleton_blocked) == "ok":
        return "(null)"
    parts = []
    for term in dep.terms:
        state = "unfulfilled"
        if lookup is not None:
            status = term_status(term, lookup, now, array_task_id, singleton_blocked)
            if status == "ok":
                continue
            state = "failed" if status == "fail" else "unfulfilled"
        if term.kind == "singleton":
            parts.append(f"singleton({state})")
            continue
        assert term.job_id is not None
        whole = term.array_task is None and (
            (is_array is not None and is_array(term.job_id))
            or (lookup is not None and getattr(lookup(term.job_id, None), "is_array", False)))
        if term.array_task == ALL_TASKS or whole:
            target = f"{term.job_id}_*"
        elif term.array_task is not None:
            target = f"{term.job_id}_{term.array_task}"
        else:
            target = str(term.job_id)
        delay = f"+{term.minutes}" if term.minutes else ""
        parts.append(f"{term.kind}:{target}{delay}({state})")
    return ("?" if dep.any_of else ",").join(parts) or "(null)"
