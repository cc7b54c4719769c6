"""Where a job step's tasks read and write: srun's ``--input``, ``--output``,
``--error`` and ``--label``, as SLURM 22.05 does them (checked on the oracle):

- ``all`` (the default): output of every task goes to srun's own stdout/stderr;
  standard input is broadcast to every task.
- ``none``: output is dropped, input is closed (EOF).
- a task id ``N``: only task N's output is kept (the others' dropped), only
  task N gets srun's standard input.
- anything else is a filename pattern (``%t``, ``%s``, ``%j``, ``%J``, ``%N``,
  ``%n``, ``%u``, ``%x``, ``%A``, ``%a``): one file per distinct name, opened
  once and shared by the tasks that name it, truncated unless
  ``--open-mode=append``. Without ``--error``, stderr goes where ``--output``
  says.
- ``--label``: every line is prefixed with the task's rank (``0: ``, padded to
  the widest rank).
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import IO, Callable, Union

from ..errors import UsageError

PROG = "srun"

#: what a task's stdin/stdout/stderr is given: an fd, DEVNULL, PIPE or None (inherit)
Target = Union[int, None]


def io_mode(value: object, ntasks: int, option: str) -> tuple[str, object]:
    """``("all", None)``, ``("none", None)``, ``("task", N)`` or ``("file", pattern)``."""
    if value is None or value == "" or str(value).lower() == "all":
        return ("all", None)
    text = str(value)
    if text.lower() == "none":
        return ("none", None)
    if text.isdigit():
        rank = int(text)
        if rank >= ntasks:
            raise UsageError(f"{option}={text}: there is no task {rank} in a step of "
                             f"{ntasks} task{'s' if ntasks != 1 else ''} "
                             f"(ranks 0-{ntasks - 1})", prog=PROG)
        return ("task", rank)
    return ("file", text)


class Files:
    """Output files opened once per distinct path (shared by the tasks naming it)."""

    def __init__(self, append: bool, cwd: str) -> None:
        self.append = append
        self.cwd = cwd
        self.fds: dict[str, int] = {}

    def writer(self, path: str) -> int:
        full = os.path.normpath(os.path.join(self.cwd, path))
        if full not in self.fds:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            if not self.append:
                flags |= os.O_TRUNC
            try:
                self.fds[full] = os.open(full, flags, 0o666)
            except OSError as exc:
                raise UsageError(f"error: Could not open output file {full}: "
                                 f"{exc.strerror}", prog=PROG) from None
        return self.fds[full]

    def reader(self, path: str) -> int:
        full = os.path.normpath(os.path.join(self.cwd, path))
        try:
            return os.open(full, os.O_RDONLY)
        except OSError as exc:
            raise UsageError(f"error: Could not open input file {full}: {exc.strerror}",
                             prog=PROG) from None

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def output_target(mode: tuple[str, object], rank: int, files: Files,
                  expand: Callable[[str, int], str], inherit: int) -> Target:
    """The fd a task writes to for one stream (``inherit``: srun's own fd)."""
    kind, arg = mode
    if kind == "all":
        return inherit
    if kind == "none" or (kind == "task" and arg != rank):
        return subprocess.DEVNULL
    if kind == "task":
        return inherit
    return files.writer(expand(str(arg), rank))


def input_target(mode: tuple[str, object], rank: int, ntasks: int, files: Files,
                 expand: Callable[[str, int], str]) -> Target:
    """What a task reads: srun's stdin (None), a pipe the broadcaster feeds
    (PIPE), a file, or nothing (DEVNULL)."""
    kind, arg = mode
    if kind == "none" or (kind == "task" and arg != rank):
        return subprocess.DEVNULL
    if kind == "task" or (kind == "all" and ntasks == 1):
        return None
    if kind == "all":
        return subprocess.PIPE if _stdin_is_live() else subprocess.DEVNULL
    return files.reader(expand(str(arg), rank))


def _stdin_is_live() -> bool:
    """False when srun's stdin is closed or /dev/null: nothing to broadcast."""
    try:
        st = os.fstat(0)
        null = os.stat(os.devnull)
    except OSError:
        return False
    return not (st.st_dev == null.st_dev and st.st_ino == null.st_ino)


def broadcast_stdin(pipes: list[IO[bytes]]) -> threading.Thread:
    """Copy srun's stdin to every task's pipe until EOF (a task that exits
    early just stops receiving). A daemon thread: srun never waits for it."""

    def pump() -> None:
        live = list(pipes)
        try:
            while live:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                for p in list(live):
                    try:
                        p.write(data)
                        p.flush()
                    except (BrokenPipeError, ValueError, OSError):
                        live.remove(p)
        finally:
            for p in pipes:
                try:
                    p.close()
                except OSError:
                    pass

    t = threading.Thread(target=pump, name="srun-stdin", daemon=True)
    t.start()
    return t


def label_relay(src: IO[bytes], dest_fd: int, rank: int, width: int,
                lock: threading.Lock) -> threading.Thread:
    """Copy a task's output to ``dest_fd`` line by line, each prefixed with
    ``"%*d: " % (width, rank)`` as ``srun --label`` does."""
    prefix = f"{rank:>{width}}: ".encode()

    def pump() -> None:
        with src:
            for line in iter(src.readline, b""):
                with lock:
                    _write_all(dest_fd, prefix + line)

    t = threading.Thread(target=pump, name=f"srun-label-{rank}", daemon=True)
    t.start()
    return t


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[n:]
