"""Spool directories: the files a DataBench job reads, as they were at submission.

Each submission links its processor and input files into a fresh spool
directory; the job reads them from there (in place, or staged to its machine
from there). A job array stages ``<spool>/databench_input_%a``, so task i's
file is also at ``<spool>/databench_input_<i>``. The spool holds hard links
(a snapshot that survives the user deleting or replacing the original after
submitting, as sbatch's copy of a script does; a symbolic link where a hard
link cannot be made, e.g. across filesystems).
Spools live in ``$FLEETSLURM_HOME/databench/`` (0700) and are removed once
every job that stages from them has finished, which the next DataBench
submission checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

__all__ = ["Spool", "sweep"]

_JOBS_FILE = "jobs.json"
#: a spool without jobs.json is a submission that failed half-way
_ORPHAN_AGE_S = 3600.0


class Spool:
    """One spool directory (private to the user)."""

    def __init__(self, root: Path) -> None:
        from ...paths import private_dir

        private_dir(root)
        self.path = Path(tempfile.mkdtemp(prefix="spool-", dir=root))
        self._sources: dict[str, str] = {}  # name -> source

    def _link(self, source: str, target: Path) -> None:
        # the file itself: os.link links a symlink, not what it points to,
        # and a relative symlink moved into the spool points nowhere
        real = os.path.realpath(source)
        try:
            os.link(real, target)
        except OSError:
            os.symlink(real, target)

    def add(self, source: str) -> str:
        """Spool ``source`` under its base name; returns that name. Two
        different files with one base name cannot be told apart in the job's
        directory: UsageError."""
        name = os.path.basename(source)
        target = self.path / name
        if name in self._sources:
            if self._sources[name] != source:
                from ...errors import UsageError

                raise UsageError(f"{source} and {self._sources[name]} have the same file "
                                 f"name {name!r}; a job sees its files by name in one "
                                 "directory: rename one of them", prog="databench")
            return name
        self._sources[name] = source
        self._link(source, target)
        return name

    def add_task_input(self, index: int, source: str, prefix: str) -> str:
        """Spool array task ``index``'s input as ``<prefix><index>`` (staged)
        and ``task_<index>/<name>`` (read in place); returns its name."""
        self._link(source, self.path / f"{prefix}{index}")
        task_dir = self.path / f"task_{index}"
        task_dir.mkdir(mode=0o700)
        name = os.path.basename(source)
        self._link(source, task_dir / name)
        return name

    def record(self, job_ids: Sequence[str]) -> None:
        """Remember which jobs read this spool (so a later sweep knows when to drop it)."""
        tmp = self.path / (_JOBS_FILE + ".tmp")
        tmp.write_text(json.dumps(list(job_ids)))
        os.replace(tmp, self.path / _JOBS_FILE)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def sweep(root: Path, states: Callable[[Iterable[str]], dict[str, str]],
          finished: Callable[[str], bool], now: float | None = None) -> list[Path]:
    """Remove the spools under ``root`` whose jobs have all finished (or are
    no longer known), and orphans older than an hour. Returns what it removed."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time() if now is None else now
    for spool in root.glob("spool-*"):
        jobs_file = spool / _JOBS_FILE
        try:
            ids = json.loads(jobs_file.read_text())
        except FileNotFoundError:
            try:
                old = now - spool.stat().st_mtime > _ORPHAN_AGE_S
            except OSError:
                continue
            if old:
                shutil.rmtree(spool, ignore_errors=True)
                removed.append(spool)
            continue
        except (OSError, ValueError):
            continue
        known = states(ids)
        if all(finished(s) for s in known.values()):
            shutil.rmtree(spool, ignore_errors=True)
            removed.append(spool)
    return removed
