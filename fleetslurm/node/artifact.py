"""The node agent as shipped: one reproducible zip archive (a zipapp) built
in memory from the sources of ``fleetslurm/node/agent/``, uploaded to each
machine by its hash as ``agent-<sha256[:12]>.pyz`` and run there as
``python3 agent-<hash>.pyz --workdir DIR``.

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

__all__ = ["AGENT_DIR", "AGENT_FILE_RE", "ARCHIVE_PACKAGE", "agent_archive", "agent_file_name"]

#: the agent package's sources
AGENT_DIR = Path(__file__).resolve().parent / "agent"
#: the package's name inside the archive (the archive's __main__.py imports it)
ARCHIVE_PACKAGE = "fleetslurm_agent"
#: the agent files a workdir may hold, this version's and older ones (``.py``:
#: before the agent was a package) to be removed
AGENT_FILE_RE = re.compile(r"agent-[0-9a-f]{12}\.pyz?\Z")
#: zip's earliest date: no build time leaks into the bytes
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_archive(source_dir: Path = AGENT_DIR) -> bytes:
    """The zipapp of the package in ``source_dir``: its ``*.py`` files under
    ARCHIVE_PACKAGE, and its ``__main__.py`` again at the root."""
    sources = {p.name: p.read_bytes() for p in source_dir.glob("*.py")}
    entries = {f"{ARCHIVE_PACKAGE}/{name}": data for name, data in sources.items()}
    entries["__main__.py"] = sources["__main__.py"]
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
