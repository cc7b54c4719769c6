"""SLURM job dependencies: the small subset the scheduler needs, parsed and evaluated.

Grammar (``sbatch --dependency``)::

    dependency := term ("," term)*        all of them must be satisfied
                | term ("?" term)*        any one of them is enough
    term       := KIND ":" ID ["+" MIN] (":" ID ["+" MIN])*  |  "singleton"  |  ID
    KIND       := after | afterany | afterok | afternotok

A bare ``ID`` means ``afterany:ID`` (SLURM's default type). ``,`` and ``?``
may not be mixed. A term with several ids is several terms joined the same
way as the whole string.

A dependency on a job the scheduler has never seen (or has forgotten) counts
as satisfied whatever its kind, as SLURM's ``test_job_dependency`` does when a
job has been purged ("job is gone, dependency lifted").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from fleetslurm.errors import InvalidValue

__all__ = [
    "SATISFIED",
    "WAITING",
    "NEVER",
    "KINDS",
    "DepTerm",
    "Dependency",
    "JobFacts",
    "parse_dependency",
    "term_status",
    "evaluate",
]

SATISFIED = "satisfied"
WAITING = "waiting"
NEVER = "never"

KINDS = ("after", "afterany", "afterok", "afternotok", "singleton")


@dataclass(frozen=True)
class DepTerm:
    """One condition: ``kind`` on ``job_id`` (None for singleton); ``delay_min`` for ``after:ID+MIN``."""

    kind: str
    job_id: Optional[int] = None
    delay_min: int = 0

    def __str__(self) -> str:
        if self.kind == "singleton":
            return "singleton"
        delay = f"+{self.delay_min}" if self.delay_min else ""
        return f"{self.kind}:{self.job_id}{delay}"


@dataclass(frozen=True)
class Dependency:
    """Parsed dependency: all ``terms`` must hold, or any one if ``any_of``."""

    terms: tuple[DepTerm, ...]
    any_of: bool = False

    def __str__(self) -> str:
        return ("?" if self.any_of else ",").join(str(t) for t in self.terms)


#: what the scheduler knows of a job: (phase, final state or "", first start time, end time);
#: phase is "PENDING", "RUNNING" or "ENDED"
JobFacts = tuple[str, str, Optional[float], Optional[float]]


def _job_id(text: str, whole: str) -> int:
    if not text.isdigit():
        raise InvalidValue(f"invalid job id {text!r} in dependency {whole!r}: expected a number")
    return int(text)


def parse_dependency(text: str) -> Optional[Dependency]:
    """Parse SLURM's dependency string; ``None`` for an empty one. Raises :class:`InvalidValue`."""
    whole = text
    text = text.strip()
    if not text:
        return None
    if "," in text and "?" in text:
        raise InvalidValue(f"dependency {whole!r} mixes ',' and '?': use one separator")
    any_of = "?" in text
    terms: list[DepTerm] = []
    for part in text.split("?" if any_of else ","):
        part = part.strip()
        if not part:
            raise InvalidValue(f"empty term in dependency {whole!r}")
        if part == "singleton":
            terms.append(DepTerm("singleton"))
            continue
        if part.isdigit():
            terms.append(DepTerm("afterany", int(part)))
            continue
        kind, sep, rest = part.partition(":")
        if kind not in KINDS or kind == "singleton" or not sep or not rest:
            raise InvalidValue(
                f"invalid dependency {part!r} in {whole!r}: use after, afterany, afterok or "
                "afternotok followed by :JOBID, or singleton"
            )
        for item in rest.split(":"):
            jid, plus, delay = item.partition("+")
            if plus and (kind != "after" or not delay.isdigit()):
                raise InvalidValue(f"invalid delay {item!r} in dependency {whole!r}: only after:ID+MINUTES")
            terms.append(DepTerm(kind, _job_id(jid, whole), int(delay) if plus else 0))
    return Dependency(tuple(terms), any_of)


def term_status(
    term: DepTerm,
    lookup: Callable[[int], Optional[JobFacts]],
    singleton_blocker: Callable[[], Optional[int]],
    now: float,
) -> str:
    """SATISFIED, WAITING or NEVER for one term.

    ``lookup(job_id)`` gives the facts of a known job or None; ``singleton_blocker()``
    gives the id of a job that blocks this one's singleton condition, or None.
    """
    if term.kind == "singleton":
        return WAITING if singleton_blocker() is not None else SATISFIED
    assert term.job_id is not None
    facts = lookup(term.job_id)
    if facts is None:
        return SATISFIED  # never seen or purged: SLURM lifts the dependency
    phase, final, started, ended = facts
    kind = term.kind
    if kind == "after":
        if phase == "PENDING" and started is None:
            return WAITING
        ref = started if started is not None else ended
        if term.delay_min and ref is not None and ref + term.delay_min * 60 > now:
            return WAITING
        return SATISFIED
    if phase != "ENDED":
        return WAITING
    if kind == "afterany":
        return SATISFIED
    ok = final == "COMPLETED"
    if kind == "afterok":
        return SATISFIED if ok else NEVER
    return NEVER if ok else SATISFIED  # afternotok


def evaluate(
    dep: Optional[Dependency],
    lookup: Callable[[int], Optional[JobFacts]],
    singleton_blocker: Callable[[], Optional[int]],
    now: float,
) -> str:
    """SATISFIED, WAITING or NEVER for a whole dependency (None: no dependency)."""
    if dep is None:
        return SATISFIED
    statuses = [term_status(t, lookup, singleton_blocker, now) for t in dep.terms]
    if dep.any_of:
        if SATISFIED in statuses:
            return SATISFIED
        return WAITING if WAITING in statuses else NEVER
    if NEVER in statuses:
        return NEVER
    return WAITING if WAITING in statuses else SATISFIED
