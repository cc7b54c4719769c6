"""The buffers under a big copy: a receiving file's hashing thread
(``chunked.ReceivingFile``) and the SSH channel's batched receive buffer
(``ssh_pipe.BatchedPipe``), fed by real threads.
The copies themselves run over a real sshd in tests_multi_machine/test_transfer.py.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

pytest.importorskip("paramiko")

from paramiko.buffered_pipe import PipeTimeout  # noqa: E402

from fleetslurm.transport.ssh_pipe import BatchedPipe  # noqa: E402


def _packets(n: int, size: int) -> list[bytes]:
    return [os.urandom(size) for _ in range(n)]


def test_the_reader_gets_whole_batches_in_order() -> None:
    pipe = BatchedPipe(batch=64 << 10, linger=5.0)
    packets = _packets(40, 4096)
    fed = threading.Event()

    def feed() -> None:
        for p in packets:
            pipe.feed(p)
        fed.set()
        pipe.close()

    reads: list[bytes] = []
    threading.Thread(target=feed, daemon=True).start()
    while True:
        data = pipe.read(1 << 20, timeout=10)
        if not data:
            break
        reads.append(data)
    assert b"".join(reads) == b"".join(packets)
    # woken per batch (16 packets) or at the end, never per packet
    # (the linger is 5 s: no read was cut short by it)
    assert all(len(r) >= 64 << 10 for r in reads[:-1]), [len(r) for r in reads]
    assert len(reads) <= 3
    assert fed.is_set()


def test_a_read_takes_at_most_what_it_asks_and_keeps_the_rest_first() -> None:
    pipe = BatchedPipe(batch=10)
    pipe.feed(b"abcdef")
    pipe.feed(b"ghijkl")
    assert len(pipe) == 12 and pipe.read_ready()
    assert pipe.read(4, timeout=1) == b"abcd"   # a packet split...
    assert pipe.read(5, timeout=1) == b"efghi"  # ...its rest first in line
    assert len(pipe) == 3
    pipe.close()
    assert pipe.read(100, timeout=1) == b"jkl"
    assert pipe.read(100, timeout=1) == b""
    assert not pipe.read_ready()


def test_a_slow_link_still_delivers_what_came_after_the_linger() -> None:
    pipe = BatchedPipe(batch=1 << 20, linger=0.05)
    pipe.feed(b"x" * 100)
    t0 = time.monotonic()
    assert pipe.read(1 << 20, timeout=30) == b"x" * 100
    assert time.monotonic() - t0 < 10  # the linger, not the 30 s stall timeout


def test_nothing_within_the_timeout_raises_pipe_timeout() -> None:
    pipe = BatchedPipe(batch=1 << 20, linger=0.01)
    t0 = time.monotonic()
    with pytest.raises(PipeTimeout):
        pipe.read(100, timeout=0.3)
    assert time.monotonic() - t0 >= 0.3


def test_the_event_tells_whether_bytes_wait() -> None:
    pipe = BatchedPipe(batch=4)
    event = threading.Event()
    pipe.set_event(event)
    assert not event.is_set()
    pipe.feed(b"ab")
    assert event.is_set()
    assert pipe.empty() == b"ab"
    assert not event.is_set()
    pipe.close()
    assert event.is_set()


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "copy-sha256"]


def test_a_big_receiving_file_hashes_in_a_thread_and_still_verifies(tmp_path) -> None:
    """Past HASH_THREAD_AFTER the hash runs in a thread of its own; what it
    finds is the same, a mismatch is still found, and the thread ends."""
    import hashlib

    from fleetslurm.errors import TransferCorrupt
    from fleetslurm.transport.chunked import HASH_THREAD_AFTER, ReceivingFile

    data = os.urandom(HASH_THREAD_AFTER * 2 + 12345)
    sha = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "home.out"
    dest.write_bytes(data[:1000])  # a resumed copy: the prefix is hashed at open
    with ReceivingFile(str(dest)) as home:
        assert home.offset == 1000
        for i in range(1000, len(data), 1 << 20):
            home.write(data[i:i + (1 << 20)])
        assert len(_hash_threads()) == 1
        done = home.finish(len(data), sha, "m1", "out")
    assert not _hash_threads()
    assert (done.sha256, done.offset, dest.read_bytes() == data) == (sha, 1000, True)
    # one flipped byte after the thread took over: found, the file removed
    bad = bytearray(data)
    bad[-5] ^= 0xFF
    with ReceivingFile(str(tmp_path / "bad.out")) as home:
        for i in range(0, len(bad), 1 << 20):
            home.write(bytes(bad[i:i + (1 << 20)]))
        with pytest.raises(TransferCorrupt, match="does not match"):
            home.finish(len(data), sha, "m1", "out")
    assert not (tmp_path / "bad.out").exists() and not _hash_threads()
    # a copy that fails midway (the link lost) stops its thread too
    with pytest.raises(OSError):
        with ReceivingFile(str(tmp_path / "cut.out")) as home:
            for i in range(0, HASH_THREAD_AFTER * 2, 1 << 20):
                home.write(data[i:i + (1 << 20)])
            raise OSError("the link is gone")
    assert not _hash_threads()


def test_a_hashing_thread_that_fails_neither_hangs_the_copy_nor_passes_it(tmp_path) -> None:
    from fleetslurm.transport.chunked import HASH_BEHIND, HASH_THREAD_AFTER, ReceivingFile

    class Broken:
        def update(self, data: bytes) -> None:
            raise MemoryError("no room to hash")

    block = os.urandom(1 << 20)
    with ReceivingFile(str(tmp_path / "out")) as home:
        for _ in range(HASH_THREAD_AFTER >> 20):
            home.write(block)
        home._hash = Broken()  # what the thread hashes from here on fails
        done = threading.Event()

        def more() -> None:
            for _ in range(HASH_BEHIND * 4):  # more than the queue holds
                home.write(block)
            done.set()

        threading.Thread(target=more, daemon=True).start()
        assert done.wait(30), "a write blocked behind the failed hashing thread"
        with pytest.raises(MemoryError, match="no room"):
            home.finish(home.size, "0" * 64, "m1", "out")
    assert not _hash_threads()
