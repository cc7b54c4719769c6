"""The receive buffer of a copy's channel (``Channel.in_buffer``).

sshd sends a program's output in packets of 32 KiB (it reads its pipe 32 KiB
at a time), 32,768 per GiB. paramiko's own buffer copies each one into an
``array`` (growing it by realloc) and wakes the reader for each, and every
read that takes less than all of it moves what is left to the array's
front: per GiB, CPU seconds on a host whose two cores also run sshd and the
sending program. This one keeps the packets as they came (a list of the
``bytes`` paramiko made anyway) and wakes the reader once ``batch`` bytes
are there, the stream has ended, or ``linger`` has passed with some bytes
waiting (a slow link still delivers them, and a stall is still timed).
What it holds is bounded by the channel's window, as paramiko's is.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

__all__ = ["BatchedPipe"]


class BatchedPipe(BufferedPipe):
    """A ``BufferedPipe`` that hands its reader many packets at once.

    ``read(n)`` returns up to ``n`` bytes, joined from whole packets (a
    packet that does not fit is split, its rest kept first in line).
    """

    def __init__(self, batch: int, linger: float = 0.01) -> None:
        super().__init__()
        self._batch = batch
        self._linger = linger
        self._parts: list[bytes] = []
        self._held = 0
        # paramiko's __init__ made these; only our list is used
        self._buffer = None  # type: ignore[assignment]

    def set_event(self, event: threading.Event) -> None:
        with self._lock:
            self._event = event
            if self._closed or self._held:
                event.set()
            else:
                event.clear()

    def feed(self, data: Any) -> None:
        data = bytes(data)
        with self._lock:
            if not data:
                return
            self._parts.append(data)
            self._held += len(data)
            if self._event is not None:
                self._event.set()
            if self._held >= self._batch:
                self._cv.notify_all()

    def read_ready(self) -> bool:
        with self._lock:
            return self._held > 0

    def read(self, nbytes: int, timeout: Optional[float] = None) -> bytes:
        """Up to ``nbytes`` bytes, waiting (up to ``timeout``) for a batch;
        b"" once the stream has ended. Raises PipeTimeout when nothing came
        in ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._held < self._batch and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if self._held:
                        break
                    raise PipeTimeout()
                # a batch not yet full is taken after the linger: the link is slow
                wait = self._linger if left is None else min(self._linger, left)
                if not self._cv.wait(wait) and self._held:
                    break
            return self._take(nbytes)

    def _take(self, nbytes: int) -> bytes:
        parts, size = self._parts, 0
        n = 0
        while n < len(parts) and size + len(parts[n]) <= nbytes:
            size += len(parts[n])
            n += 1
        out = parts[:n]
        if n < len(parts) and size < nbytes:
            head = parts[n]
            cut = nbytes - size
            out.append(head[:cut])
            parts[n] = head[cut:]
            size = nbytes
        del parts[:n]
        self._held -= size
        if not self._held and self._event is not None and not self._closed:
            self._event.clear()
        return out[0] if len(out) == 1 else b"".join(out)

    def empty(self) -> bytes:
        with self._lock:
            return self._take(self._held)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cv.notify_all()
            if self._event is not None:
                self._event.set()

    def __len__(self) -> int:
        with self._lock:
            return self._held
