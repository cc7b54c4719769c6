"""``fleetslurm top``: the machines and the queue in the terminal, redrawn in
place (rich's Live) every ``interval`` seconds; ``q`` or Ctrl-C quits."""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any

from . import data

__all__ = ["run_top", "view"]


def view(fleet: dict, queue: dict, now: float) -> Any:
    """One frame: a table of machines over the first page of squeue's view."""
    from rich.console import Group
    from rich.table import Table

    nodes = Table(title=f"fleetslurm · {time.strftime('%H:%M:%S', time.localtime(now))}",
                  expand=True)
    for col in ("MACHINE", "STATE", "CPUS", "MEMORY", "GPUS", "LOAD", "FREE MEM", "JOBS"):
        nodes.add_column(col)
    for n in fleet["nodes"]:
        nodes.add_row(n["name"], n["state"] + ("" if n.get("responding", True) else "*"),
                      f"{n.get('alloc_cpus', 0)}/{n['cpus']}",
                      f"{n.get('alloc_mem_mb', 0)}/{n['mem_mb']}M",
                      f"{n.get('alloc_gpus', 0)}/{n.get('gpus', 0)}" + "".join(
                          f" {g['index']}:{g['util']}%" for g in n.get("gpu_usage") or []),
                      "?" if n.get("cpu_load") is None else f"{n['cpu_load']:.2f}",
                      "?" if n.get("free_mem_mb") is None else f"{n['free_mem_mb']}M",
                      str(len(fleet["jobs"].get(n["name"], []))))
    jobs = Table(title=f"queue: {queue['count']} jobs", expand=True)
    for col in queue["columns"]:
        jobs.add_column(col)
    for r in queue["rows"][:40]:
        jobs.add_row(*(r[c] for c in queue["columns"]))
    return Group(nodes, jobs)


def run_top(interval: float = 1.0) -> None:
    """Until ``q`` or Ctrl-C. With a terminal on stdin, keys are read one at
    a time (cbreak) and the terminal is restored on the way out."""
    from rich.live import Live

    from ..cli.common import client

    with client():
        pass  # a controller runs (started here if need be)
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = None
    if fd is not None:
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    src = data.Source()  # its views kept from one frame to the next
    try:
        with Live(view(src.fleet(), src.queue(), time.time()), auto_refresh=False,
                  screen=False, transient=False) as live:
            while True:
                if _wait_for_q(fd, interval):
                    return
                live.update(view(src.fleet(), src.queue(), time.time()), refresh=True)
    except KeyboardInterrupt:
        return
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_for_q(fd: "int | None", seconds: float) -> bool:
    """Sleep ``seconds``; True as soon as ``q`` is typed."""
    if fd is None:
        time.sleep(seconds)
        return False
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            ch = os.read(fd, 1)
            if ch in (b"q", b"Q") or not ch:
                return True
