"""A task's request as the scheduler sees it (:class:`JobRequest`), built from
its stored row; a malformed stored request fails its own job, never the
scheduler."""

from __future__ import annotations

from typing import Optional

from .. import errors
from ..scheduler import JobRequest
from ..slurm.assoc import account_of


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
