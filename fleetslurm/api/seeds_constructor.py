"""Batch-script generation: the seed's ``SLURMConstructor`` and the pure
helpers DataBench and ``SLURMDriver`` build their scripts with.

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

from ..errors import InvalidValue, UsageError

__all__ = ["SLURMConstructor", "sbatch_lines", "setup_lines", "embedded_file",
           "check_memory", "check_time", "MAX_EMBED_BYTES"]

#: a job script larger than this is not embedded (it would travel with every
#: job and sit in the controller's database): give ``embed=False``
MAX_EMBED_BYTES = 1024 * 1024

_SHELLS = ("sh", "bash", "dash", "zsh", "ksh")

# ``module`` is a shell function that login shells define; a batch script's
# non-login bash gets it from the first init file found (Lmod, then
# Environment Modules).
_MODULE_INIT = (
    "if ! type module >/dev/null 2>&1; then\n"
    "    for f in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh "
    "/usr/share/lmod/lmod/init/bash /usr/share/modules/init/bash; do\n"
    "        if [ -r \"$f\" ]; then . \"$f\"; break; fi\n"
    "    done\n"
    "fi\n"
    "if ! type module >/dev/null 2>&1; then\n"
    "    echo \"fleetslurm: 'module' is not available on $(hostname); install Lmod or "
    "Environment Modules there, or submit without modules=\" >&2\n"
    "    exit 1\n"
    "fi"
)

_CONDA_INIT = (
    "if ! command -v conda >/dev/null 2>&1; then\n"
    "    for f in \"$HOME/miniconda3/etc/profile.d/conda.sh\" "
    "\"$HOME/anaconda3/etc/profile.d/conda.sh\" /opt/conda/etc/profile.d/conda.sh; do\n"
    "        if [ -r \"$f\" ]; then . \"$f\"; break; fi\n"
    "    done\n"
    "fi\n"
    "if ! command -v conda >/dev/null 2>&1; then\n"
    "    echo \"fleetslurm: conda is not installed on $(hostname); install it there, or "
    "submit without conda_env=\" >&2\n"
    "    exit 1\n"
    "fi\n"
    "eval \"$(conda shell.bash hook)\""
)


def check_memory(memory: Union[int, str, None], what: str = "memory") -> Optional[str]:
    """A memory size as ``--mem`` takes it. An int is MB (SLURM's rule for a
    plain number); a string may carry K/M/G/T (``"4G"``). None: no request.
    Raises InvalidValue naming ``what`` and the accepted forms."""
    if memory is None:
        return None
    from ..slurm.units import parse_mem

    text = str(memory).strip()
    if isinstance(memory, bool) or (isinstance(memory, int) and memory < 0):
        raise InvalidValue(f"{what}: {memory!r} is not a memory size; give MB as an int "
                           "or a string such as '512M' or '4G'")
    try:
        parse_mem(text, option=what)
    except InvalidValue as exc:
        raise InvalidValue(f"{exc}; give MB as an int or a string such as '512M' or '4G'") \
            from None
    return text


def check_time(limit: Union[int, str, None], what: str = "time") -> Optional[str]:
    """A time limit as ``--time`` takes it: an int is minutes (SLURM's rule),
    a string is SLURM's grammar (``"30"``, ``"1:00:00"``, ``"2-00:00"``,
    ``"UNLIMITED"``). None: the partition's default. Raises InvalidValue."""
    if limit is None:
        return None
    from ..slurm.units import parse_time_limit

    if isinstance(limit, bool) or (isinstance(limit, int) and limit < 0):
        raise InvalidValue(f"{what}: {limit!r} is not a time limit; give minutes as an int "
                           "or a string such as '30:00' or '2:00:00'")
    text = str(limit).strip()
    try:
        parse_time_limit(text, option=what)
    except InvalidValue as exc:
        raise InvalidValue(f"{exc}; give minutes as an int or a string such as '30:00' "
                           "or '2:00:00'") from None
    return text


def sbatch_lines(options: Mapping[str, Any]) -> list[str]:
    """``#SBATCH`` lines for sbatch options by long name (``cpus_per_task``
    or ``cpus-per-task``). Values are shell-quoted once, as ``#SBATCH`` lines
    are split shell-style. Raises UsageError for an unknown name (listing the
    valid ones) or a flag given a value."""
    from .client import options_argv

    lines = []
    for arg in options_argv(options):
        name, sep, value = arg.partition("=")
        lines.append(f"#SBATCH {name}={shlex.quote(value)}" if sep else f"#SBATCH {name}")
    return lines


def setup_lines(conda_env: Optional[str] = None, modules: Sequence[str] = (),
                setup: Sequence[str] = ()) -> list[str]:
    """Shell lines run before the job: ``module load`` each module, activate a
    conda environment, then the caller's own ``setup`` lines (verbatim: they
    are shell code the caller wrote). A missing ``module``/``conda`` on the
    machine fails the job with a message naming the machine."""
    if isinstance(modules, str):
        raise InvalidValue(f"modules must be a list of module names, not the string "
                           f"{modules!r}; write modules=[{modules!r}]")
    if isinstance(setup, str):
        raise InvalidValue("setup must be a list of shell lines, not one string; "
                           f"write setup=[{setup!r}]")
    lines: list[str] = []
    if modules:
        lines.append(_MODULE_INIT)
        lines.extend(f"module load {shlex.quote(str(m))}" for m in modules)
    if conda_env:
        lines.append(_CONDA_INIT)
        lines.append(f"conda activate {shlex.quote(str(conda_env))}")
    lines.extend(str(s) for s in setup)
    return lines


def _delimiter(text: str, base: str = "FLEETSLURM_EOF") -> str:
    """A heredoc delimiter that is no line of ``text``."""
    lines = set(text.splitlines())
    delim, n = base, 0
    while delim in lines:
        n += 1
        delim = f"{base}_{n}"
    return delim


def embedded_file(var: str, name: str, text: str, mode: str = "600") -> list[str]:
    """Shell lines that write ``text`` to ``$fleetslurm_dir/name`` (a private
    directory made by :func:`_private_dir_lines`) and set ``var`` to its path."""
    if not text.endswith("\n"):
        text += "\n"
    delim = _delimiter(text)
    path = f'"$fleetslurm_dir"/{shlex.quote(name)}'
    return [f"{var}={path}",
            f"cat > \"${var}\" <<'{delim}'\n{text}{delim}",
            f"chmod {mode} \"${var}\""]


def _private_dir_lines() -> list[str]:
    # Under the job's temporary directory, owner-only, removed when the job ends
    return ['fleetslurm_dir=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/fleetslurm-job.XXXXXXXX")',
            "trap 'rm -rf \"$fleetslurm_dir\"' EXIT"]


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
        lines = ["#!/bin/bash", *sbatch_lines(options),
                 f"# Generated by fleetslurm's SLURMConstructor: runs {path.name}"
                 + (" (embedded below)" if embed else ""), "set -e"]
        lines += setup_lines(self.conda_env, self.modules, self.setup)
        argv_tail = " ".join(shlex.quote(str(a)) for a in args)
        runner = " ".join(shlex.quote(w) for w in _interpreter(path, text, self.python))
        if embed:
            assert text is not None
            lines += _private_dir_lines()
            lines += embedded_file("job_script", path.name, text, mode="700")
            target = '"$job_script"'
        else:
            target = shlex.quote(str(path))
        command = " ".join(p for p in (runner, target, argv_tail) if p)
        # not exec: the EXIT trap must remove the embedded copy afterwards
        lines.append(command)
        return "\n".join(lines) + "\n"

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
