"""Which config a running controller uses, and whether a command's lookup
would find another one.

A controller reads its config once, at start. A user who then writes
``config/fleet_config.json`` (or edits the one in force) would otherwise meet
a controller that silently keeps the old machines. The controller records
the file it loaded (its path and the SHA-256 of its bytes) in its state
directory; each command compares that record with what its own config
lookup finds, without a request to the controller.
"""

from __future__ import annotations

import json
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Optional

from .paths import StatePaths

__all__ = ["identity", "record", "in_force", "mismatch", "describe", "TEMPLATE"]

#: the config template ``fleetslurm config init`` writes (two example machines)
TEMPLATE = Path(__file__).resolve().parent / "fleet_config.json.template"


def identity(path: Optional[Path]) -> dict:
    """``{"path", "sha256"}`` of a config file (``None``s for the embedded
    default; ``sha256`` None when the file cannot be read)."""
    if path is None:
        return {"path": None, "sha256": None}
    import hashlib  # here: most commands run with the embedded default

    try:
        digest: Optional[str] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"path": str(path), "sha256": digest}


def record(paths: StatePaths, ident: dict) -> None:
    """Write the controller's record (0600, whole or not at all)."""
    from .paths import write_private

    write_private(str(paths.config_copy), json.dumps(ident).encode())


def in_force(paths: StatePaths) -> Optional[dict]:
    """The running controller's record, if there is one."""
    try:
        data = json.loads(paths.config_copy.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(path: Optional[str]) -> str:
    return path or "the embedded default (this machine alone)"


def mismatch(paths: StatePaths, found: Optional[Path]) -> Optional[str]:
    """One line saying that the running controller's config is not the file
    this command's lookup finds (or that file changed since the controller
    read it), with the fix; None when they agree or the lookup finds none
    (a command run from another directory still uses the running one)."""
    if found is None:
        return None
    running = in_force(paths)
    if running is None:
        return None
    mine = identity(found)
    if running.get("path") == mine["path"]:
        if running.get("sha256") == mine["sha256"]:
            return None
        return (f"warning: {found} changed since the controller read it; the controller "
                "still runs with the old one: `scontrol reconfigure` loads it")
    return (f"warning: the controller runs with {describe(running.get('path'))}, not with "
            f"{found}, which this command's config lookup finds: `scontrol reconfigure` "
            "loads it")
