"""One contract for every transport (huey's StorageTests pattern).

``TransportContract`` is run here against LocalTransport and FakeTransport;
tests_multi_machine/test_ssh_transport.py runs the same class against
SSHTransport and a real sshd. A subclass provides the ``transport`` fixture.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from fleetslurm.errors import (FileMissing, FileUnreadable, NodeUnreachable, TransferCorrupt,
                               TransportError)
from fleetslurm.transport.base import AgentChannel, Transport
from fleetslurm.transport.chunked import CHUNK, part_path
from fleetslurm.transport.fake import FakeTransport
from fleetslurm.transport.local import LocalTransport

HOSTILE = "a'; echo foo \"=0\" b"


class Reader:
    """Reads a channel in a thread so a test can wait with a timeout."""

    def __init__(self, channel: AgentChannel) -> None:
        self.channel = channel
        self.q: "queue.Queue[Any]" = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                msg = self.channel.recv()
                self.q.put(msg)
                if msg is None:
                    return
        except Exception as exc:  # the test decides whether that was expected
            self.q.put(exc)

    def wait(self, pred: Callable[[dict], bool], timeout: float = 20) -> dict:
        """The first message matching ``pred``; fails on end of stream or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching message within {timeout} s") from None
            if msg is None or isinstance(msg, Exception):
                raise AssertionError(f"channel ended while waiting: {msg!r}")
            if pred(msg):
                return msg

    def end(self, timeout: float) -> Optional[Exception]:
        """Wait for the end of stream: None, or the TransportError it raised."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            if msg is None or isinstance(msg, Exception):
                return msg


def hello(channel: AgentChannel) -> tuple[Reader, dict]:
    reader = Reader(channel)
    channel.send({"op": "hello", "id": "h1"})
    return reader, reader.wait(lambda m: m.get("ev") == "hello")


class TransportContract:
    """What every transport must do. ``real_agent``: a real agent runs the jobs."""

    real_agent = True

    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        raise NotImplementedError

    def test_hello_round_trip_returns_facts(self, transport: Transport) -> None:
        channel = transport.start_agent()
        try:
            _, msg = hello(channel)
            facts = msg["facts"]
            for name in ("cpus", "mem_mb", "gpus", "python", "disk_free_mb", "workdir_writable"):
                assert name in facts, name
            assert facts["cpus"] >= 1 and facts["workdir_writable"] is True
            assert facts["workdir"] == transport.workdir
        finally:
            channel.close()

    def test_put_and_get_bytes(self, transport: Transport) -> None:
        channel = transport.start_agent()  # SSH knows its absolute workdir from here on
        channel.close()
        data = bytes(range(256)) * 1000
        path = f"{transport.workdir}/files/sub dir/{HOSTILE}.bin"
        transport.put_bytes(data, path)
        assert transport.get_bytes(path) == data
        assert transport.get_bytes(path, offset=1000) == data[1000:]
        assert transport.get_bytes(path, offset=10, limit=5) == data[10:15]
        assert transport.get_bytes(path, offset=len(data) + 5) == b""
        transport.put_bytes(b"short", path)  # replaced, not overwritten in place
        assert transport.get_bytes(path) == b"short"
        # a file the job never wrote is told apart from one it may not read
        with pytest.raises(FileMissing, match="nothere"):
            transport.get_bytes(f"{transport.workdir}/nothere")

    def test_get_file_in_chunks_resumes_and_verifies(self, transport: Transport,
                                                     tmp_path: Path) -> None:
        import hashlib
        import random

        transport.start_agent().close()
        data = random.Random(7).randbytes(2 * CHUNK + 12345)  # several chunks, a ragged end
        path = f"{transport.workdir}/files/{HOSTILE}.out"
        transport.put_bytes(data, path)
        dest = tmp_path / "home.out"
        done = transport.get_file(path, str(dest))
        assert dest.read_bytes() == data
        assert (done.size, done.offset, done.moved) == (len(data), 0, len(data))
        assert done.sha256 == hashlib.sha256(data).hexdigest()
        # a copy cut short: the next one sends only what is missing
        dest.write_bytes(data[:CHUNK + 7])
        done = transport.get_file(path, str(dest))
        assert dest.read_bytes() == data
        assert (done.offset, done.moved) == (CHUNK + 7, len(data) - CHUNK - 7)
        # what is here does not match the file there: found, and thrown away
        dest.write_bytes(b"X" + data[1:1000])
        with pytest.raises(TransferCorrupt, match="does not match"):
            transport.get_file(path, str(dest))
        assert not dest.exists()
        dest.write_bytes(data + b"more")  # longer than the file there
        with pytest.raises(TransferCorrupt):
            transport.get_file(path, str(dest))
        assert transport.get_file(path, str(dest)).offset == 0 and dest.read_bytes() == data
        empty = f"{transport.workdir}/files/empty"
        transport.put_bytes(b"", empty)
        assert transport.get_file(empty, str(tmp_path / "e")).size == 0
        with pytest.raises(FileMissing, match="nothere"):
            transport.get_file(f"{transport.workdir}/nothere", str(tmp_path / "x"))
        if self.real_agent:  # (the fake has no directories)
            with pytest.raises(FileUnreadable, match="files"):
                transport.get_file(f"{transport.workdir}/files", str(tmp_path / "y"))

    def test_put_file_in_chunks_resumes_and_verifies(self, transport: Transport,
                                                     tmp_path: Path) -> None:
        import io
        import random

        transport.start_agent().close()
        data = random.Random(8).randbytes(2 * CHUNK + 999)
        path = f"{transport.workdir}/in/sub {HOSTILE}/file.bin"
        done = transport.put_file(io.BytesIO(data), path)
        assert transport.get_bytes(path) == data
        assert (done.size, done.offset, done.moved) == (len(data), 0, len(data))
        with pytest.raises(FileMissing):  # renamed into place: no part file left
            transport.get_bytes(part_path(path))
        # a cut copy left a part file: the next one continues it
        transport.put_bytes(data[:CHUNK + 3], part_path(path))
        done = transport.put_file(io.BytesIO(data), path)
        assert transport.get_bytes(path) == data and done.offset == CHUNK + 3
        transport.put_bytes(b"Y" * 10, part_path(path))  # a part that is not this file
        with pytest.raises(TransferCorrupt):
            transport.put_file(io.BytesIO(data), path)
        done = transport.put_file(io.BytesIO(data), path)
        assert done.offset == 0 and transport.get_bytes(path) == data

    def test_launch_echo_ends_completed(self, transport: Transport) -> None:
        channel = transport.start_agent()
        try:
            reader, _ = hello(channel)
            out = f"{transport.workdir}/out {HOSTILE}.txt"
            channel.send({"op": "launch", "id": "l1", "key": "job1",
                          "spec": {"script": "#!/bin/sh\necho hi\n", "stdout": out,
                                   "cwd": transport.workdir}})
            started = reader.wait(lambda m: m.get("ev") in ("started", "launch_failed"))
            assert started["ev"] == "started", started
            ended = reader.wait(lambda m: m.get("ev") == "ended" and m["key"] == "job1")
            assert ended["result"]["state"] == "COMPLETED"
            assert ended["result"]["exit_code"] == 0
            if self.real_agent:
                assert transport.get_bytes(out) == b"hi\n"
        finally:
            channel.close()
        # a new agent finds the finished job (the controller reconciles from this)
        channel = transport.start_agent()
        try:
            _, msg = hello(channel)
            jobs = {j["key"]: j for j in msg["jobs"]}
            assert jobs["job1"]["result"]["state"] == "COMPLETED"
        finally:
            channel.close()


class TestLocalTransport(TransportContract):
    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[Transport]:
        t = LocalTransport("local", tmp_path / "work")
        yield t
        t.close()


class TestFakeTransport(TransportContract):
    real_agent = False

    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        t = FakeTransport("fake", "/fake/work")
        yield t
        t.close()


# -- the fake's own scripting ------------------------------------------------------
def test_fake_records_requests_and_tests_push_events() -> None:
    t = FakeTransport("n1", auto_end=False)
    channel = t.start_agent()
    reader, _ = hello(channel)
    channel.send({"op": "launch", "id": 1, "key": "k", "spec": {"script": "x"}})
    reader.wait(lambda m: m.get("ev") == "started")
    assert [r["op"] for r in t.requests] == ["hello", "launch"]
    t.end("k", "FAILED", exit_code=3)
    ended = reader.wait(lambda m: m.get("ev") == "ended")
    assert ended["result"]["state"] == "FAILED" and ended["result"]["exit_code"] == 3
    t.drop()
    assert reader.end(5) is None
    with pytest.raises(NodeUnreachable, match="n1"):
        channel.send({"op": "status"})


def test_fake_can_be_unreachable() -> None:
    t = FakeTransport("n2", fail=NodeUnreachable("node n2: connection refused", "n2"))
    with pytest.raises(NodeUnreachable, match="refused"):
        t.start_agent()
