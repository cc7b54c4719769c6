"""A task's request as the scheduler sees it (:class:`JobRequest`), built from
its stored row; a malformed stored request fails its own job, never the
scheduler. And a machine's workstation policy as it sees it (:class:`NodePolicy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .. import errors
from ..scheduler import JobRequest, NodePolicy
from ..slurm.assoc import account_of

if TYPE_CHECKING:
    from ..config import MachineConfig


def job_request(task_id: int, user: str, submit_time: float, req: dict, held: bool,
                array_index: Optional[int] = None, array_job_id: Optional[int] = None
                ) -> JobRequest:
    """The scheduler's view of a task, from its stored request (``array_index``
    for a task of array ``array_job_id``, whose id is the task's own row's
    ``job_id``: callers pass it when they have it)."""
    _check_request(task_id, req)
    return JobRequest(
        job_id=task_id, user=user, partition=req["partition"], submit_time=submit_time,
        cpus=req["cpus"], mem_mb=req["mem_mb"], gpus=req["gpus"], time_limit=req["time_limit"],
        nice=req["nice"], nodelist=frozenset(req["nodelist"]), exclude=frozenset(req["exclude"]),
        constraint=req["constraint"], begin_time=req["begin_time"], held=held,
        dependency=req["dependency"], name=req["name"], exclusive=req["exclusive"],
        priority=req.get("priority", 0), array_job_id=array_job_id, array_task_id=array_index,
        # (stored before QOS: the default QOS, the user's account)
        qos=req.get("qos") or "normal", account=req.get("account") or account_of(user))


_REQ_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "partition": (str,), "cpus": (int,), "mem_mb": (int,), "gpus": (int,),
    "time_limit": (int, type(None)), "nice": (int,), "nodelist": (list,),
    "exclude": (list,), "constraint": (str,), "begin_time": (int, float, type(None)),
    "dependency": (str,), "exclusive": (bool, int),
}


def _check_request(task_id: int, req: dict) -> None:
    """A stored request the scheduler can compare and sum: a record from an
    older version or a hand-edited store must fail its own job, not the
    scheduler (which would stop the controller at every start)."""
    for key, types in _REQ_TYPES.items():
        if not isinstance(req.get(key), types) or isinstance(req.get(key), bool) and \
                bool not in types:
            raise errors.StoreError(f"job {task_id}: its stored request is malformed "
                                    f"({key}={req.get(key)!r})")


def node_policy(machine: "MachineConfig") -> Optional[NodePolicy]:
    """A machine's workstation policy as the scheduler takes it (None: no
    ``policy`` and no ``available``: jobs start whatever the machine does)."""
    pol, hours = machine.policy, machine.available
    if pol is None and hours is None:
        return None
    from ..hours import parse_windows

    windows = parse_windows(hours or ())
    if pol is None:  # hours alone: no measurement matters
        return NodePolicy(windows=windows)
    return NodePolicy(
        max_foreign_load=pol.max_foreign_load,
        min_free_mem_mb=None if pol.min_free_mem_gb is None else int(pol.min_free_mem_gb * 1024),
        owner_idle_s=None if pol.owner_idle_minutes is None else pol.owner_idle_minutes * 60.0,
        when_owner_active=pol.when_owner_active, windows=windows)
