"""``scontrol update NodeName=... State=DRAIN|DOWN|RESUME``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ... import errors
from ...errors import AccessDenied, UsageError
from ...scheduler import NodeDrain, NodeResume
from ...slurm.hostlist import expand
from ..agent_events import clear_barred
from ..health import mark_down

if TYPE_CHECKING:
    from ..context import Context


def op_update_node(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    if uid not in (0, os.getuid()):
        raise AccessDenied("Access/permission denied")
    names = expand(str(args.get("nodes") or ""))
    unknown = [n for n in names if n not in ctx.config.machines]
    if unknown or not names:
        raise errors.JobError("Invalid node name specified")
    state = str(args.get("state") or "").upper()
    reason = str(args.get("reason") or "")
    if state in ("DRAIN", "DOWN") and not reason:
        raise UsageError("You must specify a reason when DOWNING or DRAINING a node. "
                         "Request denied", prog="scontrol")
    for name in names:
        if state == "DRAIN":
            ctx.store.set_node(name, admin_state="drain", reason=reason, reason_time=now)
            ctx.emit(NodeDrain(name, reason))
        elif state == "DOWN":
            ctx.store.set_node(name, admin_state="down", reason=reason, reason_time=now)
            mark_down(ctx, name, reason, now)
        elif state in ("RESUME", "IDLE", "UNDRAIN"):
            was = ctx.store.node(name)["admin_state"]
            ctx.store.set_node(name, admin_state="resume", reason="", reason_time=None)
            clear_barred(ctx, name)  # the admin says it is fixed: its users too
            if was == "down":
                # back when its agent answers again
                link = ctx.links[name]
                link.last_heard = None
                link.connect(now)
            elif name not in ctx.nodes.down and name not in ctx.nodes.not_responding:
                ctx.emit(NodeResume(name))  # (a silent one resumes when it answers)
        elif state:
            raise UsageError("Invalid node state specified", prog="scontrol")
    return {}

