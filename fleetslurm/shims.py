"""SLURM-named commands (``sbatch``, ``srun``, ...) as small executables that
run fleetslurm's, so scripts and client libraries that call SLURM by name work
unchanged. Jobs on machines run by the local transport get them first on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["install_shims", "COMMANDS"]

COMMANDS = ("sbatch", "squeue", "sinfo", "scancel", "sacct", "scontrol", "srun")

_TEMPLATE = """#!{python}
# fleetslurm shim: runs `fleetslurm {name} ...`
import sys
from fleetslurm.cli.main import main
sys.argv[0] = {name!r}
sys.exit(main())
"""


def install_shims(directory: "str | Path", python: str = sys.executable) -> list[Path]:
    """Write one executable per SLURM command into ``directory`` (idempotent)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name in COMMANDS:
        path = d / name
        text = _TEMPLATE.format(python=python, name=name)
        if not path.exists() or path.read_text() != text:
            tmp = d / f".{name}.tmp"
            tmp.write_text(text)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        written.append(path)
    return written
