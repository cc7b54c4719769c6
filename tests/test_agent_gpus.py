"""Per-GPU utilization in the agent's heartbeat (``node/agent/gpus.py``),
with a fake ``nvidia-smi`` first on the agent's PATH: a real agent process,
its real background query, its real reaper."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetslurm.node.agent import gpus

#: answers the static query (hello) and the usage query (heartbeats); the
#: usage figures come from a file, so a test can change them
FAKE_SMI = r"""#!/bin/sh
case "$1" in
  --query-gpu=index,name,uuid,memory.total)
    echo '0, Tesla T4, GPU-aaaa, 15360'
    echo '1, Tesla T4, GPU-bbbb, 15360' ;;
  --query-gpu=index,uuid,utilization.gpu,memory.used,memory.total)
    echo "$$" >> "$(dirname "$0")/calls"
    cat "$(dirname "$0")/usage.csv" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

BROKEN_SMI = """#!/bin/sh
echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'
exit 1
"""


def fake_smi(bindir: Path, text: str = FAKE_SMI,
             usage: str = "0, GPU-aaaa, 37, 1200, 15360\n1, GPU-bbbb, 0, 0, 15360\n") -> Path:
    """An executable ``nvidia-smi`` in ``bindir`` (made if needed)."""
    bindir.mkdir(parents=True, exist_ok=True)
    smi = bindir / "nvidia-smi"
    smi.write_text(text)
    smi.chmod(0o755)
    (bindir / "usage.csv").write_text(usage)
    return smi


class _Agent:
    def __init__(self, tmp_path: Path, bindir: Path) -> None:
        env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetslurm.node.agent", "--workdir", str(tmp_path / "w")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.n = 0

    def ask(self, op: str, ev: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.n += 1
        self.proc.stdin.write((json.dumps({"op": op, "id": self.n}) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the agent closed stdout"
            msg = json.loads(line)
            if msg["ev"] == ev and msg.get("re") == self.n:
                return msg

    def usage_within(self, seconds: float) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            facts = self.ask("facts", "facts")
            if "gpu_usage" in facts:
                return facts
            time.sleep(0.1)
        raise AssertionError("no gpu_usage in the heartbeats")

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(10)


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[_Agent] = []

    bindirs: list[Path] = []

    def start(bindir: Path) -> _Agent:
        a = _Agent(tmp_path, bindir)
        started.append(a)
        bindirs.append(bindir)
        return a

    yield start
    for a in started:
        if a.proc.poll() is None:
            a.close()
    for bindir in bindirs:  # a hanging fake's sleep outlives the agent
        calls = bindir / "calls"
        for pid in (calls.read_text().split() if calls.exists() else []):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):
                    os.kill(int(pid), 9)
            except OSError:
                pass


def test_heartbeats_carry_each_gpus_utilization_and_memory(tmp_path: Path, agent) -> None:  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    fake_smi(bindir)
    a = agent(bindir)
    hello = a.ask("hello", "hello")
    assert [g["index"] for g in hello["facts"]["gpus"]] == [0, 1]
    facts = a.usage_within(10)
    usage = facts["gpu_usage"]
    assert usage["gpus"] == [
        {"index": 0, "uuid": "GPU-aaaa", "util": 37, "mem_used_mb": 1200, "mem_total_mb": 15360},
        {"index": 1, "uuid": "GPU-bbbb", "util": 0, "mem_used_mb": 0, "mem_total_mb": 15360}]
    assert 0 <= usage["age"] < 10 and usage["seq"] >= 1
    # a new reading at most every MIN_INTERVAL, however often the controller asks
    (bindir / "usage.csv").write_text("0, GPU-aaaa, 90, 8000, 15360\n1, GPU-bbbb, 5, 10, 15360\n")
    t0, calls0 = time.monotonic(), len((bindir / "calls").read_text().split())
    while time.monotonic() - t0 < 1.0:
        a.ask("facts", "facts")
        time.sleep(0.02)
    calls = len((bindir / "calls").read_text().split()) - calls0
    assert calls <= 1
    deadline = time.monotonic() + 20
    while a.ask("facts", "facts").get("gpu_usage", {}).get("gpus", [{}])[0].get("util") != 90:
        assert time.monotonic() < deadline, "the new reading never came"
        time.sleep(0.1)
    after = a.ask("facts", "facts")["gpu_usage"]
    assert after["seq"] > usage["seq"] and after["gpus"][1]["mem_used_mb"] == 10
    # the query's exit was collected by the agent's reaper: no zombie left
    a.ask("status", "status")
    kids = Path(f"/proc/{a.proc.pid}/task/{a.proc.pid}/children").read_text().split()
    assert all(Path(f"/proc/{k}/stat").read_text().split(") ")[1][0] != "Z" for k in kids)


@pytest.mark.parametrize("smi", [BROKEN_SMI, "#!/bin/sh\necho 'garbage, 1'\n",
                                 "#!/bin/sh\necho '0, GPU-a, [N/A], 3, 10'\n"],
                         ids=["exit-1", "garbage", "not-supported"])
def test_a_broken_nvidia_smi_gives_no_gpu_facts(tmp_path: Path, agent, smi: str) -> None:  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    fake_smi(bindir, smi)
    a = agent(bindir)
    hello = a.ask("hello", "hello")
    assert hello["facts"]["gpus"] == []
    for _ in range(5):
        facts = a.ask("facts", "facts")
        assert "gpu_usage" not in facts and facts["cpus"] >= 1
        time.sleep(0.1)


def test_a_usage_query_that_starts_failing_stops_the_reports(tmp_path: Path, agent) -> None:  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    fake_smi(bindir)
    a = agent(bindir)
    a.ask("hello", "hello")
    a.usage_within(10)
    (bindir / "usage.csv").write_text("Unable to determine the device handle for GPU0: Unknown Error\n")
    deadline = time.monotonic() + 20
    while "gpu_usage" in a.ask("facts", "facts"):
        assert time.monotonic() < deadline, "a failed reading was still reported"
        time.sleep(0.1)


def test_parse_usage() -> None:
    assert gpus.parse_usage("0, GPU-x, 5, 10, 100\n\n") == [
        {"index": 0, "uuid": "GPU-x", "util": 5, "mem_used_mb": 10, "mem_total_mb": 100}]
    assert gpus.parse_usage("") is None
    assert gpus.parse_usage("0, GPU-x, 500, 10, 100") is None
    assert gpus.parse_usage("0, GPU-x, 5, 10, 100\nNo devices were found") is None


HANGING_SMI = FAKE_SMI.replace('    cat "$(dirname "$0")/usage.csv" ;;',
                               '    exec sleep 60 ;;')


def test_a_hanging_query_never_holds_up_the_heartbeats(tmp_path: Path, agent) -> None:  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    fake_smi(bindir, HANGING_SMI)
    a = agent(bindir)
    a.ask("hello", "hello")
    for _ in range(10):
        t0 = time.monotonic()
        facts = a.ask("facts", "facts")
        assert time.monotonic() - t0 < 2.0 and "gpu_usage" not in facts
        time.sleep(0.1)
    # a launch is not held up either
    spec = {"script": "#!/bin/sh\necho hi\n", "stdout": str(tmp_path / "out")}
    assert a.proc.stdin is not None
    a.proc.stdin.write((json.dumps({"op": "launch", "id": 99, "key": "1.0", "spec": spec})
                        + "\n").encode())
    a.proc.stdin.flush()
    t0 = time.monotonic()
    while json.loads(a.proc.stdout.readline())["ev"] != "started":  # type: ignore[union-attr]
        pass
    assert time.monotonic() - t0 < 5.0


def test_a_query_past_its_timeout_is_killed_and_reaped(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In-process: the probe kills its query after TIMEOUT; the exit, reaped
    by whoever waits for children (here the test, in the agent its reaper),
    leaves no reading and frees the probe for the next query."""
    import os

    bindir = tmp_path / "bin"
    fake_smi(bindir, HANGING_SMI)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(gpus, "TIMEOUT", 0.3)
    monkeypatch.setattr(gpus, "MIN_INTERVAL", 0.0)
    probe = gpus.GpuProbe()
    assert probe.report(True) is None and probe.pid is not None and probe.fds()
    pid = probe.pid
    time.sleep(0.5)
    assert probe.report(True) is None  # past TIMEOUT: killed
    got, status = os.waitpid(pid, 0)
    assert got == pid and os.WIFSIGNALED(status)
    assert probe.exited(pid, status) and probe.pid is None and probe.fds() == []
    assert not probe.exited(pid, status)  # not ours any more
    # the next query starts; a good answer becomes the reading
    fake_smi(bindir)
    probe.report(True)
    got, status = os.waitpid(probe.pid, 0)  # type: ignore[arg-type]
    assert probe.exited(got, status)
    usage = probe.report(True)
    assert usage is not None and usage["gpus"][0]["util"] == 37
    os.waitpid(probe.pid, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("tail", ["exit 1", "kill -9 $$"], ids=["exit-1", "killed"])
def test_good_looking_output_from_a_failed_query_is_no_reading(tmp_path: Path, monkeypatch,  # type: ignore[no-untyped-def]
                                                               tail: str) -> None:
    import os

    bindir = tmp_path / "bin"
    fake_smi(bindir, FAKE_SMI.replace('cat "$(dirname "$0")/usage.csv" ;;',
                                      f'cat "$(dirname "$0")/usage.csv"; {tail} ;;'))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    probe = gpus.GpuProbe()
    probe.report(True)
    got, status = os.waitpid(probe.pid, 0)  # type: ignore[arg-type]
    assert probe.exited(got, status)
    assert probe.report(True) is None and probe.seq == 0
