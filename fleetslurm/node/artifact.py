"""The node agent as shipped: one reproducible zip archive (a zipapp) built
in memory from the sources of ``fleetslurm/node/agent/``, uploaded to each
machine by its hash as ``agent-<sha256[:12]>.pyz`` and run there as
``python3 agent-<hash>.pyz --workdir DIR``.

The archive also carries SLURM's client commands (``CLIENT_MODULES``: the
same ``fleetslurm.cli`` front ends, option tables and output formats the
submit host runs, all standard library) under their own package name
``fleetslurm``: a job's ``srun``/``scontrol``/``squeue``... on any machine
are the agent's shims (``agent/injob.py``), which import them from here and
talk to the controller through the agent (see the README, "Inside a job").

Reproducible: the entries are sorted, stored (not compressed: no zlib version
can change the bytes) and carry fixed timestamps and modes, so the same
sources give the same bytes and so the same name on every controller.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import zipfile
from pathlib import Path

__all__ = ["AGENT_DIR", "AGENT_FILE_RE", "ARCHIVE_PACKAGE", "CLIENT_MODULES", "PACKAGE_ROOT",
           "agent_archive", "agent_file_name"]

#: the agent package's sources
AGENT_DIR = Path(__file__).resolve().parent / "agent"
#: the ``fleetslurm`` package's directory
PACKAGE_ROOT = AGENT_DIR.parent.parent
#: what a job's SLURM commands need, relative to PACKAGE_ROOT (``slurm/``:
#: every module); all standard library (tests/test_injob.py imports each one
#: from the archive alone). Admin commands (typer), the config (pydantic)
#: and the API are not carried: a job's commands reach them only through the
#: controller.
CLIENT_MODULES = (
    "__init__.py", "errors.py", "paths.py", "rpc.py", "umask.py", "jobids.py", "jobwait.py",
    "model.py", "shims.py", "views.py",
    "cli/__init__.py", "cli/main.py", "cli/common.py", "cli/fast.py", "cli/sbatch_cmd.py",
    "cli/squeue_cmd.py", "cli/sinfo_cmd.py", "cli/scancel_cmd.py", "cli/sacct_cmd.py",
    "cli/scontrol_cmd.py", "cli/srun_cmd.py", "cli/srun_io.py", "cli/srun_record.py",
    "cli/srun_step.py", "cli/sshare_cmd.py", "cli/sprio_cmd.py", "cli/sstat_cmd.py", "slurm/*.py",
)
#: the package's name inside the archive (the archive's __main__.py imports it)
ARCHIVE_PACKAGE = "fleetslurm_agent"
#: the agent files a workdir may hold, this version's and older ones (``.py``:
#: before the agent was a package) to be removed
AGENT_FILE_RE = re.compile(r"agent-[0-9a-f]{12}\.pyz?\Z")
#: zip's earliest date: no build time leaks into the bytes
_EPOCH = (1980, 1, 1, 0, 0, 0)


def client_files(package_root: Path = PACKAGE_ROOT) -> dict[str, bytes]:
    """``{archive name: bytes}`` of CLIENT_MODULES under ``package_root``."""
    out: dict[str, bytes] = {}
    for pattern in CLIENT_MODULES:
        matches = sorted(package_root.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"{package_root / pattern}: a client module the agent "
                                    "archive carries is missing")
        for p in matches:
            out["fleetslurm/" + p.relative_to(package_root).as_posix()] = p.read_bytes()
    return out


def build_archive(source_dir: Path = AGENT_DIR, package_root: Path = PACKAGE_ROOT) -> bytes:
    """The zipapp of the package in ``source_dir``: its ``*.py`` files under
    ARCHIVE_PACKAGE, its ``__main__.py`` again at the root, and the client
    modules of ``package_root`` under ``fleetslurm/``."""
    sources = {p.name: p.read_bytes() for p in source_dir.glob("*.py")}
    entries = {f"{ARCHIVE_PACKAGE}/{name}": data for name, data in sources.items()}
    entries["__main__.py"] = sources["__main__.py"]
    entries.update(client_files(package_root))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # unix, so the mode below is what unzip shows
            info.external_attr = 0o100644 << 16
            zf.writestr(info, entries[name])
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def agent_archive() -> bytes:
    """The agent archive of this process's sources (built once per process)."""
    return build_archive()


def agent_file_name(data: bytes) -> str:
    """The file name ``data`` (an agent archive) has on a machine."""
    return f"agent-{hashlib.sha256(data).hexdigest()[:12]}.pyz"
