"""FakeTransport: an in-process test double (httpx's MockTransport in spirit).

Its agent is scripted: it records every request, answers ``hello``/``facts``/
``status``/``signal``/``cancel``/``forget``/``shutdown`` as the real agent
does, and turns a ``launch`` into ``started`` (and, unless ``auto_end`` is
off, an ``ended`` COMPLETED). A test pushes any other event with ``push()`` or
``end()``, and cuts the link with ``drop()``. Files live in a dict; chunked
copies are recorded in ``copies``, and ``cut_after`` drops the link in the
middle of the next one.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import time
from typing import BinaryIO, Callable, Optional

from ..errors import (FileMissing, FileUnreadable, NodeUnreachable, TransferCorrupt,
                      TransportError)
from ..node.agent import protocol as P
from .base import AgentChannel, Transport
from .chunked import ReceivingFile, Transferred, part_path, send_from

__all__ = ["FakeTransport", "FakeChannel"]

_EOF = None


class FakeChannel(AgentChannel):
    """One conversation with the fake agent."""

    def __init__(self, transport: "FakeTransport") -> None:
        self.node = transport.node
        self._t = transport
        self._out: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self.closed = False

    def push(self, event: dict) -> None:
        """Make the agent write ``event`` (e.g. ``{"ev": "ended", ...}``)."""
        self._out.put(json.dumps(event).encode() + b"\n")

    def send_line(self, line: bytes) -> None:
        if self.closed:
            raise NodeUnreachable(f"node {self.node}: the agent is gone (link dropped)", self.node)
        # NodeLink.send_many writes several requests in one call, one per line
        for part in line.splitlines():
            if not part.strip():
                continue
            req = json.loads(part)
            self._t.requests.append(req)
            for event in self._t.answer(req):
                self.push(event)

    def recv_line(self) -> Optional[bytes]:
        if self.closed and self._out.empty():
            return None
        return self._out.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out.put(_EOF)


class FakeTransport(Transport):
    """A machine that exists only in memory.

    ``fail`` (a TransportError) makes ``start_agent`` raise it, as an
    unreachable machine would. ``auto_end`` makes each launch end COMPLETED at
    once; set it False and call ``end()`` to decide when.
    """

    def __init__(self, node: str = "fake", workdir: str = "/fake/work", *,
                 facts: Optional[dict] = None, shared_fs: bool = False,
                 auto_end: bool = True, fail: Optional[TransportError] = None) -> None:
        self.node = node
        self.workdir = workdir
        self.shared_fs = shared_fs
        self.auto_end = auto_end
        self.fail = fail
        self.facts = {"hostname": node, "cpus": 4, "mem_mb": 8192, "free_mem_mb": 8000,
                      "load1": 0.0, "gpus": [], "python": "3.11.0", "os": "Linux fake",
                      "arch": "x86_64", "boot_time": 0.0, "workdir": workdir,
                      "disk_free_mb": 100_000, "workdir_writable": True, "uid": 1000,
                      "foreign_load": None, "owner_idle_s": None,
                      **(facts or {})}
        #: jobs trap SIGTERM: a cancel ends nothing until ``end`` (KillWait's window)
        self.traps_term = False
        self.files: dict[str, bytes] = {}
        #: path -> why reading it fails (a file that is there but unreadable)
        self.unreadable: dict[str, str] = {}
        self.requests: list[dict] = []
        #: key -> the last result pushed (or None while running)
        self.jobs: dict[str, Optional[dict]] = {}
        self.channel: Optional[FakeChannel] = None
        self.starts = 0
        #: the link drops after this many bytes of the next chunked copy (once)
        self.cut_after: Optional[int] = None
        #: every chunked copy: (path there, Transferred)
        self.copies: list[tuple[str, Transferred]] = []
        self._lock = threading.Lock()

    # -- scripting -----------------------------------------------------------------
    def answer(self, req: dict) -> list[dict]:
        """The fake agent's replies to one request."""
        op, rid, key = req.get("op"), req.get("id"), req.get("key")
        if op == "hello":
            return [P.ev_hello(rid, 1, self.facts, self._jobinfo())]
        if op == "facts":
            return [P.ev_facts(rid, self.facts)]
        if op == "status":
            return [P.ev_status(rid, self._jobinfo())]
        if op == "launch":
            if key in self.jobs and self.jobs[key] is not None:
                return [P.ev_ended(rid, key, self.jobs[key])]
            self.jobs[key] = None
            out = [P.ev_started(rid, key, 4242, time.time())]
            if self.auto_end:
                out.append(self._ended(key, "COMPLETED", 0))
            return out
        if op in ("signal", "cancel"):
            ev = "signalled" if op == "signal" else "cancelling"
            if key not in self.jobs or self.jobs[key] is not None:
                return [P.ev_ack(ev, rid, key, f"no running job {key} on this node")]
            out = [P.ev_ack(ev, rid, key, None)]
            if op == "cancel" and not self.traps_term:
                out.append(self._ended(key, "CANCELLED", 0, req.get("signal", 15)))
            return out
        if op == "forget":
            self.jobs.pop(key, None)
            return [P.ev_ack("forgotten", rid, key, None)]
        if op == "shutdown":
            return [P.ev_shutdown(rid)]
        if op == "rpc_reply":  # an answer for a command inside a job: nothing to say
            return []
        if op == "samples":
            return [P.ev_samples(rid, {})]
        return [P.ev_error(rid, f"unknown op {op!r}")]

    def _jobinfo(self) -> list[dict]:
        return [P.job_info(k, 4242, r) for k, r in self.jobs.items()]

    def _ended(self, key: str, state: str, exit_code: int, signal: int = 0) -> dict:
        now = time.time()
        result = P.result(key, 4242, now, now, state, exit_code, signal, 0.0, 0.0, 0, None)
        self.jobs[key] = result
        return P.ev_ended(P.UNSOLICITED, key, result)

    def push(self, event: dict) -> None:
        """Have the current agent write ``event``."""
        if self.channel is None:
            raise RuntimeError("no agent started")
        self.channel.push(event)

    def end(self, key: str, state: str = "COMPLETED", exit_code: int = 0) -> None:
        """Finish a launched job: the agent reports ``ended``."""
        self.push(self._ended(key, state, exit_code))

    def drop(self) -> None:
        """Cut the link: the reader sees end of stream, sends fail."""
        if self.channel is not None:
            self.channel.close()

    # -- the Transport interface ---------------------------------------------------
    def start_agent(self) -> AgentChannel:
        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.starts += 1
            self.channel = FakeChannel(self)
            return self.channel

    def put_bytes(self, data: bytes, path: str, mode: int = 0o600) -> None:
        self.files[path] = bytes(data)

    def get_bytes(self, path: str, offset: int = 0, limit: Optional[int] = None) -> bytes:
        if path in self.unreadable:
            raise FileUnreadable(f"node {self.node}: cannot read {path}: "
                                 f"{self.unreadable[path]}", self.node)
        try:
            data = self.files[path]
        except KeyError:
            raise FileMissing(f"node {self.node}: cannot read {path}: "
                              "No such file or directory", self.node) from None
        return data[offset:] if limit is None else data[offset:offset + limit]

    def _sink(self, write: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """``write`` behind the ``cut_after`` fault: the link drops mid-copy."""
        def sink(chunk: bytes) -> None:
            if self.cut_after is not None:
                if len(chunk) >= self.cut_after:
                    write(chunk[:self.cut_after])
                    self.cut_after = None
                    raise NodeUnreachable(f"node {self.node}: connection lost while copying "
                                          "(link dropped)", self.node)
                self.cut_after -= len(chunk)
            write(chunk)
        return sink

    def get_file(self, path: str, dest: str) -> Transferred:
        data = self.get_bytes(path)
        with ReceivingFile(dest) as home:
            size, sha = send_from(io.BytesIO(data), home.offset, self._sink(home.write))
            done = home.finish(size, sha, self.node, path)
        self.copies.append((path, done))
        return done

    def put_file(self, src: BinaryIO, path: str, mode: int = 0o600) -> Transferred:
        part = part_path(path)
        held = bytearray(self.files.get(part, b""))
        offset = len(held)

        def write(chunk: bytes) -> None:
            held.extend(chunk)
            self.files[part] = bytes(held)

        size, sha = send_from(src, offset, self._sink(write))
        if len(held) != size or hashlib.sha256(held).hexdigest() != sha:
            del self.files[part]
            raise TransferCorrupt(f"node {self.node}: the copy of {path} there does not "
                                  "match the file here", self.node)
        self.files[path] = self.files.pop(part)
        done = Transferred(size=size, sha256=sha, offset=offset, moved=size - offset)
        self.copies.append((path, done))
        return done

    def close(self) -> None:
        self.drop()
