"""The seed's ``SLURMConstructor``: batch scripts that run a job script with
given resources, written by fleetslurm's one script writer
(:mod:`fleetslurm.api.executor.script`, which also has the pure helpers
DataBench and ``SLURMDriver`` build their scripts with; they are importable
from here as before).

Every script this module writes is a plain SLURM batch script (``#!/bin/bash``,
``#SBATCH`` lines, a body), so it runs unchanged under ``fleetslurm sbatch``,
a real SLURM's ``sbatch`` and :class:`fleetslurm.SLURMDriver`. Every value
that reaches shell text is quoted exactly once (:func:`shlex.quote`).

A job script given to :meth:`SLURMConstructor.create_slurm_script` is
*embedded* in the batch script by default (written to a private temporary
file when the job starts, and run from there), so the job needs no shared
filesystem: the batch script alone travels to the machine. ``embed=False``
refers to the script by its absolute path instead (it must then exist on the
machine).

::

    from fleetslurm import SLURMConstructor

    text = SLURMConstructor(partition="debug").create_slurm_script(
        "train.py", cpus=4, memory="8G", time="2:00:00")
    open("train.sbatch", "w").write(text)       # then: fleetslurm sbatch train.sbatch
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ...errors import InvalidValue, UsageError
from ..executor.script import (check_memory, check_time, compose, embedded_file,
                               private_dir_lines, sbatch_lines, setup_lines)

__all__ = ["SLURMConstructor", "sbatch_lines", "setup_lines", "embedded_file",
           "check_memory", "check_time", "MAX_EMBED_BYTES"]

#: a job script larger than this is not embedded (it would travel with every
#: job and sit in the controller's database): give ``embed=False``
MAX_EMBED_BYTES = 1024 * 1024


def _read_text_script(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"job script {path} does not exist; give the path of an existing "
                         "script", prog="fleetslurm") from None
    except OSError as exc:
        raise UsageError(f"cannot read job script {path}: {exc.strerror}",
                         prog="fleetslurm") from None
    if len(data) > MAX_EMBED_BYTES:
        raise UsageError(f"job script {path} is {len(data)} bytes, over the "
                         f"{MAX_EMBED_BYTES} bytes that are embedded in a batch script; "
                         "give embed=False (the file must then exist on the machines)",
                         prog="fleetslurm")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"job script {path} is not a UTF-8 text file and cannot be "
                         "embedded; give embed=False to run it by its path",
                         prog="fleetslurm") from None


def _interpreter(path: Path, text: Optional[str], python: str) -> list[str]:
    """How to run the job script: Python files with ``python``; an embedded
    file through its ``#!`` line (else bash); a file run by its path as it
    is when it is executable, else with bash."""
    if path.suffix == ".py":
        return shlex.split(python)
    if text is None:
        return [] if os.access(path, os.X_OK) else ["bash"]
    first = text.split("\n", 1)[0]
    if first.startswith("#!"):
        return shlex.split(first[2:].strip())
    return ["bash"]


class SLURMConstructor:
    """Writes SLURM batch scripts that run a job script with given resources.

    ``partition``: the partition (None: the default one). ``python``: the
    interpreter for ``.py`` job scripts (``"python3"``; a conda env's python
    works too). ``conda_env``, ``modules``, ``setup``: what to prepare before
    the job runs (see :func:`setup_lines`). ``slurm_args``: further sbatch
    options by long name (``{"gpus": 1, "constraint": "ssd"}``).
    """

    def __init__(self, partition: Optional[str] = None, *, python: str = "python3",
                 conda_env: Optional[str] = None, modules: Sequence[str] = (),
                 setup: Sequence[str] = (), slurm_args: Optional[Mapping[str, Any]] = None
                 ) -> None:
        self.partition = partition
        self.python = python
        self.conda_env = conda_env
        self.modules = list(modules) if not isinstance(modules, str) else modules
        self.setup = list(setup) if not isinstance(setup, str) else setup
        self.slurm_args = dict(slurm_args or {})

    def create_slurm_script(self, job_script: Union[str, os.PathLike], cpus: int = 1,
                            memory: Union[int, str, None] = None,
                            time: Union[int, str, None] = None, *,
                            job_name: Optional[str] = None, args: Sequence[str] = (),
                            output: Optional[str] = None, embed: bool = True,
                            **slurm_args: Any) -> str:
        """The text of a batch script that runs ``job_script`` with ``cpus``
        CPUs (``--cpus-per-task``), ``memory`` (``--mem``: int MB or ``"4G"``)
        and ``time`` (``--time``: int minutes or ``"1:30:00"``).

        ``job_name`` defaults to the script's file name without suffix;
        ``args`` are the job script's arguments; ``output`` is ``--output``
        (default SLURM's ``slurm-%j.out`` in the submit directory); further
        keyword arguments are sbatch options by long name. ``embed`` (default)
        carries the job script inside the batch script; False runs it by its
        absolute path. Raises UsageError for a missing or unreadable script or
        an unknown option, InvalidValue for a bad size or time.
        """
        path = Path(job_script).expanduser().absolute()
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise InvalidValue(f"cpus: {cpus!r} is not a positive whole number of CPUs")
        if isinstance(args, str):
            raise InvalidValue(f"args must be a list of arguments, not the string {args!r}")
        text: Optional[str] = None
        if embed:
            text = _read_text_script(path)
        elif not path.exists():
            raise UsageError(f"job script {path} does not exist; give the path of an existing "
                             "script", prog="fleetslurm")
        options: dict[str, Any] = {
            "job_name": job_name or path.stem or path.name,
            "partition": self.partition,
            "cpus_per_task": cpus,
            "mem": check_memory(memory),
            "time": check_time(time),
            "output": output,
        }
        options.update(self.slurm_args)
        options.update(slurm_args)
        sbatch = sbatch_lines(options)  # an unknown option is reported first
        comment = (f"# Generated by fleetslurm's SLURMConstructor: runs {path.name}"
                   + (" (embedded below)" if embed else ""))
        lines = setup_lines(self.conda_env, self.modules, self.setup)
        argv_tail = " ".join(shlex.quote(str(a)) for a in args)
        runner = " ".join(shlex.quote(w) for w in _interpreter(path, text, self.python))
        if embed:
            assert text is not None
            lines += private_dir_lines()
            lines += embedded_file("job_script", path.name, text, mode="700")
            target = '"$job_script"'
        else:
            target = shlex.quote(str(path))
        command = " ".join(p for p in (runner, target, argv_tail) if p)
        # not exec: the EXIT trap must remove the embedded copy afterwards
        lines.append(command)
        return compose(sbatch, [comment], lines, exit_on_error=True)

    def write_slurm_script(self, path: Union[str, os.PathLike], job_script: Union[str, os.PathLike],
                           cpus: int = 1, memory: Union[int, str, None] = None,
                           time: Union[int, str, None] = None, **kwargs: Any) -> Path:
        """:meth:`create_slurm_script`, written to ``path`` (mode 0700); returns the path."""
        text = self.create_slurm_script(job_script, cpus, memory, time, **kwargs)
        out = Path(path)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
        return out
