"""The seed's ``SLURMDriver``: submit batch-script files and follow them.

::

    from fleetslurm import SLURMDriver

    driver = SLURMDriver()                              # the fleet (or this machine alone)
    job = driver.submit_job("train.sbatch", conda_env="ml", modules=["cuda/12"],
                            slurm_args={"cpus_per_task": 4, "mem": "8G"})
    driver.check_job_status(job)                        # "PENDING", "RUNNING", "COMPLETED"...
    driver.check_all_job_statuses()                     # {"17": "COMPLETED", ...}

``backend="slurm"`` gives the same calls to a real SLURM's ``sbatch``,
``squeue``/``sacct`` on PATH, so a lab that moves to a cluster keeps its
code. The script is read when it is submitted (as sbatch does) and its text
travels with the job, so it needs no shared filesystem; what it reads must
reach the machine by other means.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ...errors import InvalidJobId, UsageError
from ..executor.script import compose, embedded_file, private_dir_lines, setup_lines

__all__ = ["SLURMDriver", "prepare_script"]

_PROG = "sbatch"
_SHELLS = ("sh", "bash", "dash", "zsh", "ksh")
_NOT_BATCH = ("This does not look like a batch script.  The first line must start with #! "
              "followed by the path to an interpreter.")


def _header_end(lines: list[str]) -> int:
    """Index of the first line after the ``#SBATCH`` block (SLURM reads
    directives up to the first line that is neither blank nor a comment)."""
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            return i
    return len(lines)


def _is_shell(interpreter: list[str]) -> bool:
    if not interpreter:
        return False
    prog = os.path.basename(interpreter[0])
    if prog == "env":
        rest = [w for w in interpreter[1:] if not w.startswith("-")]
        prog = os.path.basename(rest[0]) if rest else ""
    return prog in _SHELLS


def prepare_script(text: str, name: str, *, conda_env: Optional[str] = None,
                   modules: Sequence[str] = (), setup: Sequence[str] = (),
                   python: str = "python3") -> str:
    """The batch script to submit for a script file's ``text``.

    A shell script gets the set-up lines (modules, conda, ``setup``) right
    after its ``#SBATCH`` block. A script for another interpreter (``#!``
    python...) keeps its ``#SBATCH`` lines in a bash wrapper that prepares the
    environment, then runs it (embedded) with its own interpreter; so does a
    ``.py`` file without a ``#!`` line, with ``python``. Anything else
    without ``#!`` is refused with sbatch's message."""
    if not text:
        raise UsageError("Batch script is empty!", prog=_PROG)
    prep = setup_lines(conda_env, modules, setup)
    lines = text.split("\n")
    if text.startswith("#!"):
        interpreter = shlex.split(lines[0][2:].strip())
        if not prep:
            return text
        end = _header_end(lines)
        if _is_shell(interpreter):
            return "\n".join(lines[:end] + ["# set up by fleetslurm's SLURMDriver", *prep]
                             + lines[end:])
        directives = [ln for ln in lines[1:end] if ln.startswith("#SBATCH")]
        runner = " ".join(shlex.quote(w) for w in interpreter)
    elif name.endswith(".py"):
        directives = [ln for ln in lines[:_header_end(["", *lines]) - 1]
                      if ln.startswith("#SBATCH")]
        runner = " ".join(shlex.quote(w) for w in shlex.split(python))
    else:
        raise UsageError(f"{name}: {_NOT_BATCH}", prog=_PROG)
    body = [*prep, *private_dir_lines(),
            *embedded_file("job_script", os.path.basename(name) or "job", text, mode="700"),
            f'{runner} "$job_script" "$@"']
    return compose(directives, [f"# fleetslurm's SLURMDriver: prepares the environment, then "
                                f"runs {name} (embedded below)"], body, exit_on_error=True)


class SLURMDriver:
    """Submits batch-script files and reports their states.

    ``backend``: ``"fleet"`` (fleetslurm's controller; ``config`` names a
    fleet_config.json, default the usual lookup) or ``"slurm"`` (a real
    SLURM's commands on PATH). ``python``: runs ``.py`` files that have no
    ``#!`` line.
    """

    def __init__(self, backend: str = "fleet", *, config: Optional[str] = None,
                 python: str = "python3") -> None:
        if backend not in ("fleet", "slurm"):
            raise UsageError(f"unknown backend {backend!r}; valid backends are: fleet, slurm",
                             prog="fleetslurm")
        self.backend = backend
        self.python = python
        self._client = None
        if backend == "fleet":
            from ..executor.client import FleetClient

            self._client = FleetClient(config)
        #: ids of the jobs submitted through this driver, in order
        self.submitted: list[str] = []

    def submit_job(self, script_path: Union[str, os.PathLike], conda_env: Optional[str] = None,
                   modules: Sequence[str] = (), slurm_args: Optional[Mapping[str, Any]] = None,
                   *, args: Sequence[str] = (), setup: Sequence[str] = ()) -> str:
        """Submit the batch script at ``script_path``; returns its job id
        (``"N"``). ``conda_env``/``modules``/``setup`` prepare the environment
        first; ``slurm_args`` are sbatch options by long name
        (``{"cpus_per_task": 4, "time": "1:00:00"}``) that win over the
        script's ``#SBATCH`` lines; ``args`` are the script's arguments.
        Raises UsageError (missing file, not a batch script, bad option),
        SubmitError (no machine could ever run it)."""
        if isinstance(modules, str) or isinstance(args, str):
            raise UsageError("modules and args are lists (of module names, of arguments), "
                             "not strings", prog="fleetslurm")
        path = Path(script_path).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"Unable to open file {path}: it does not exist; give the path of "
                             "an existing batch script", prog=_PROG) from None
        except OSError as exc:
            raise UsageError(f"Unable to open file {path}: {exc.strerror}", prog=_PROG) from None
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        script = prepare_script(text, path.name, conda_env=conda_env, modules=modules,
                                setup=setup, python=self.python)
        options = dict(slurm_args or {})
        if self._client is not None:
            job = self._client.submit(script, options, [str(a) for a in args], name=path.name)
        else:
            job = _sbatch(script, options, [str(a) for a in args], path.name)
        self.submitted.append(job)
        return job

    # -- states -----------------------------------------------------------------
    def _states(self, ids: list[str]) -> dict[str, str]:
        if self._client is not None:
            return self._client.states(ids)
        found = _squeue_states(sorted({i.split("_")[0] for i in ids}))
        missing = [i for i in ids if i not in found
                   and not any(k.startswith(f"{i}_") for k in found)]
        if missing:  # gone from squeue: the accounting may still know them
            from ..executor.backends.slurm import SlurmBackend

            found.update(SlurmBackend().states(missing))
        return found

    def check_job_status(self, job_id: Union[str, int]) -> str:
        """The job's SLURM state (``PENDING``, ``RUNNING``, ``COMPLETED``,
        ``FAILED``, ``CANCELLED``, ``TIMEOUT``...). For a whole array, the
        most pressing of its tasks' states (RUNNING while any runs, FAILED
        when one failed, COMPLETED when all did). InvalidJobId when unknown."""
        from ..databench.status import overall_state

        text = str(job_id)
        states = self._states([text])
        if not states:
            raise InvalidJobId(f"job {text}: no such job (or it has left the controller's "
                               "memory); `sacct -j` may still know it")
        if text in states:
            return states[text]
        return overall_state([s for k, s in states.items() if k.startswith(f"{text}_")]
                             or list(states.values()))

    def check_all_job_statuses(self) -> dict[str, str]:
        """``{id: state}`` for every job submitted through this driver (an
        array's tasks each under ``A_i``)."""
        if not self.submitted:
            return {}
        states = self._states(list(self.submitted))
        out: dict[str, str] = {}
        for job in self.submitted:
            tasks = sorted(((k, s) for k, s in states.items()
                            if k == job or k.startswith(f"{job}_")),
                           key=lambda kv: int(kv[0].partition("_")[2] or -1))
            out.update(tasks or {job: "UNKNOWN"})
        return out

    def wait(self, job_ids: Optional[Sequence[str]] = None,
             timeout: Optional[float] = None) -> dict[str, str]:
        """Block until the jobs (default: all submitted here) are finished;
        ``{id: final state}``. JobTimeout after ``timeout`` seconds."""
        from ..executor.client import is_finished
        from ..databench.status import wait_for

        ids = [str(i) for i in (job_ids if job_ids is not None else self.submitted)]
        return wait_for(self._states, is_finished, ids, timeout, progress=False) if ids else {}

    def cancel_job(self, job_id: Union[str, int]) -> None:
        """scancel the job (an array id cancels all its tasks)."""
        if self._client is not None:
            self._client.cancel([str(job_id)])
        else:
            from ..executor.backends.slurm import SlurmBackend

            SlurmBackend().cancel([str(job_id)])


def _sbatch(script: str, options: Mapping[str, Any], args: list[str], name: str) -> str:
    """A real SLURM's ``sbatch --parsable`` on the script text (written to a
    private temporary file, which sbatch reads before it returns)."""
    import re
    import subprocess
    import tempfile

    from ...errors import ControllerError, SubmitError
    from ..executor.client import options_argv

    argv = options_argv(options)
    fd, path = tempfile.mkstemp(prefix="fleetslurm-", suffix=f"-{name}")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(script)
        try:
            proc = subprocess.run(["sbatch", "--parsable", *argv, path, *args],
                                  capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise ControllerError("sbatch is not on PATH: backend='slurm' needs SLURM's "
                                  "commands (or use backend='fleet')") from None
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise SubmitError(proc.stderr.strip() or f"sbatch failed (exit {proc.returncode})")
    m = re.match(r"(\d+)", proc.stdout.strip())
    if not m:
        raise SubmitError(f"sbatch printed no job id: {proc.stdout.strip()!r}")
    return m.group(1)


def _squeue_states(masters: list[str]) -> dict[str, str]:
    """What a real SLURM's ``squeue -t all -r`` shows: ``{N or A_i: state}``."""
    import subprocess

    from ...errors import ControllerError

    if not masters:
        return {}
    try:
        proc = subprocess.run(["squeue", "-t", "all", "-h", "-r", "-j", ",".join(masters),
                               "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ControllerError("squeue is not on PATH: backend='slurm' needs SLURM's "
                              "commands (or use backend='fleet')") from None
    except subprocess.TimeoutExpired:
        raise ControllerError("squeue did not answer within 60 s") from None
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():  # an unknown id: exit 1 and nothing here
        jid, _, state = line.partition("|")
        if jid.strip():
            out[jid.strip()] = state.strip()
    return out
