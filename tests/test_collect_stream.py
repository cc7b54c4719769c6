"""Output comes home streamed, resumed and verified (in-process, FakeTransport).

A copy cut by a lost link leaves what arrived in a part file in the job's
private output directory; the next copy (at the machine's next hello)
continues after those bytes instead of starting again, and the output is
written to its place only once it is whole. The same over real sshd, with a
200 MiB output, is tests_multi_machine/test_transfer.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_collect_kept import _Fleet

from fleetslurm.transport.chunked import CHUNK


@pytest.fixture
def fleet(tmp_path: Path):
    f = _Fleet(tmp_path)
    yield f
    f.close()


def test_a_cut_copy_continues_after_the_bytes_already_home(fleet, capfd) -> None:
    job = fleet.submit()
    jp = fleet.paths(job)
    data = bytes(range(256)) * (5 * CHUNK // 256) + b"end\n"
    fleet.fake.files[jp.stdout] = data
    fleet.fake.cut_after = 3 * CHUNK + 5  # the link drops mid-copy, once
    key = fleet.ctl.store.task(job)["run_key"]
    fleet.fake.push(fleet.fake._ended(key, "COMPLETED", 0))
    part = fleet.ctl.paths.output_dir(job) / f".{key}.stdout.part"
    fleet.pump(lambda: part.exists() and part.stat().st_size == 3 * CHUNK + 5)
    for _ in range(20):
        fleet.step()
    # still COMPLETING, nothing half-written in place
    assert fleet.ctl.store.task(job)["state"] == "COMPLETING"
    out = fleet.work / f"slurm-{job}.out"
    assert not out.exists()
    fleet.fake.drop()  # the machine says hello again: the copy is made again
    fleet.pump(lambda: fleet.ctl.store.task(job)["state"] == "COMPLETED", timeout=30)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    path, done = fleet.fake.copies[-1]
    assert path == jp.stdout
    assert (done.offset, done.moved, done.size) == (3 * CHUNK + 5, len(data) - 3 * CHUNK - 5,
                                                    len(data))
    assert not part.exists()
    assert (f"job {job}: its stdout copy from m1 resumed at byte {3 * CHUNK + 5} of "
            f"{len(data)}") in capfd.readouterr().err


def test_staged_files_go_both_ways_as_verified_chunked_copies(fleet, tmp_path) -> None:
    src = tmp_path / "input.bin"
    src.write_bytes(b"i" * (CHUNK + 3))
    result = tmp_path / "result.bin"
    job = submit_staged(fleet, str(src), str(result))
    jp = fleet.paths(job)
    puts = [(p, d) for p, d in fleet.fake.copies if p.endswith("/input.bin")]
    assert puts and puts[0][1].size == CHUNK + 3
    assert fleet.fake.files[puts[0][0]] == src.read_bytes()
    fleet.fake.files[f"{jp.stage}/result.bin"] = b"r" * (2 * CHUNK)
    fleet.finish(job)
    assert result.read_bytes() == b"r" * (2 * CHUNK)
    assert (result.stat().st_mode & 0o777) == 0o600


def submit_staged(fleet, src: str, result: str) -> int:
    from stepping import submit

    job = submit(fleet.ctl, fleet.clock[0], {"wrap": "true"}, script="#!/bin/sh\ntrue\n",
                 cwd=str(fleet.work), script_name="wrap", stage={"in": [src], "out": [result]})
    fleet.pump(lambda: any(r.get("op") == "launch" for r in fleet.fake.requests))
    return job


def test_a_copy_asked_for_again_while_under_way_tries_again_when_it_fails(fleet,
                                                                        monkeypatch) -> None:
    """One copy per run at a time: a hello during a copy does not start a
    second one; the first, should it fail, tries once more, since that
    hello will not come again."""
    import threading

    from fleetslurm.errors import NodeUnreachable

    job = fleet.submit()
    jp = fleet.paths(job)
    fleet.fake.files[jp.stdout] = b"out\n"
    real = fleet.fake.get_file
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_then_lost(path, dest):
        calls.append(path)
        if len(calls) == 1:
            started.set()
            release.wait(20)
            raise NodeUnreachable("node m1: connection lost while copying (test)", "m1")
        return real(path, dest)

    monkeypatch.setattr(fleet.fake, "get_file", slow_then_lost)
    import fleetslurm.ctld.collect as collect

    asked = []
    real_copy_back = collect.copy_back

    def counted(*args):
        asked.append(args[1]["run_key"])
        real_copy_back(*args)

    monkeypatch.setattr(collect, "copy_back", counted)
    key = fleet.ctl.store.task(job)["run_key"]
    fleet.fake.push(fleet.fake._ended(key, "COMPLETED", 0))
    fleet.pump(started.is_set)
    fleet.fake.drop()  # the agent's next hello reports the ended run again
    fleet.pump(lambda: len(asked) >= 2)
    assert len(calls) == 1  # not a second copy at once
    release.set()
    fleet.pump(lambda: fleet.ctl.store.task(job)["state"] == "COMPLETED", timeout=30)
    assert (fleet.work / f"slurm-{job}.out").read_bytes() == b"out\n"
    assert len(calls) == 2


def test_no_part_file_is_left_once_the_output_is_home_or_kept(fleet) -> None:
    job = fleet.submit(error="err-%j.txt")  # stderr never written: comes home empty
    fleet.fake.files[fleet.paths(job).stdout] = b"x" * (CHUNK + 1)
    fleet.finish(job)
    assert (fleet.work / f"err-{job}.txt").read_bytes() == b""
    assert not list(fleet.ctl.paths.output_dir(job).glob("*.part"))
    (fleet.work / "afile").write_text("a file, not a directory\n")
    job = fleet.submit(output="afile/out-%j.txt")  # cannot be written here: kept there
    fleet.fake.files[fleet.paths(job).stdout] = b"y" * (CHUNK + 1)
    assert fleet.finish(job)["collected"] == 1
    assert not list(fleet.ctl.paths.output_dir(job).glob("*.part"))


def test_a_short_or_damaged_copy_is_found_by_size_and_hash(tmp_path) -> None:
    """What the receiving end holds against what the sending end counted."""
    import io

    from fleetslurm.errors import TransferCorrupt
    from fleetslurm.transport.chunked import ReceivingFile, send_from

    data = b"z" * (CHUNK + 10)
    digest = hashlib.sha256(data).hexdigest()
    for name, arrived in (("short", data[:-1]), ("damaged", b"Z" + data[1:])):
        dest = tmp_path / name
        with ReceivingFile(str(dest)) as home:
            home.write(arrived)
            with pytest.raises(TransferCorrupt, match=f"{len(arrived)} bytes"):
                home.finish(len(data), digest, "m1", "/there/out")
        assert not dest.exists()  # thrown away: the next copy starts from zero
    with ReceivingFile(str(tmp_path / "whole")) as home:
        size, sha = send_from(io.BytesIO(data), home.offset, home.write)
        assert (home.finish(size, sha, "m1", "/there/out").size, sha) == (len(data), digest)
