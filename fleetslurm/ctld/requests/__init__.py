"""Client requests that change state, one module per kind, and :data:`OPS`,
the one table from a request's name to the function that answers it.

Each runs inside the loop's transaction under a savepoint (see
``loop.Controller._rpc``), so a refused request leaves nothing behind. A
request function takes ``(ctx, args, uid, now)``: the
:class:`~fleetslurm.ctld.context.Context`, the request's checked arguments
(rpc_models), the caller's uid and the step's time.
"""

from __future__ import annotations

from typing import Any, Callable

from . import assoc, explain, jobs, nodes, qos, steps, submit, update

__all__ = ["OPS"]

OPS: dict[str, Callable[..., Any]] = {
    "submit": submit.op_submit,
    "cancel": jobs.op_cancel,
    "hold": jobs.op_hold,
    "release": jobs.op_release,
    "requeue": jobs.op_requeue,
    "shutdown": jobs.op_shutdown,
    "update_job": update.op_update_job,
    "update_node": nodes.op_update_node,
    "explain": explain.op_explain,
    "step_begin": steps.op_step_begin,
    "step_end": steps.op_step_end,
    "stdin": steps.op_stdin,
    "qos_show": qos.op_qos_show,
    "qos_change": qos.op_qos_change,
    "assoc_show": assoc.op_assoc_show,
    "assoc_change": assoc.op_assoc_change,
}
