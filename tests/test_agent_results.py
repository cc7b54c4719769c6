"""The supervisors' result lines: a supervisor tells its agent the job's
result on one pipe all supervisors share, once the result is in the job's
directory and before it fsyncs it, so the agent reports the end a disk flush
sooner. A real agent subprocess, real supervisors and jobs (see test_agent)."""
from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any, Dict

from test_agent import AgentClient, agent, alive, spec, workdir  # noqa: F401 (fixtures)


def _results_pipe_writer(agent_pid: int) -> int:
    """An fd for the agent's results pipe, opened through /proc: the write
    end (O_WRONLY) of the last pipe the agent holds both ends of."""
    ends: Dict[str, Dict[int, int]] = {}
    for name in os.listdir(f"/proc/{agent_pid}/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/{agent_pid}/fd/{fd}")
        except OSError:
            continue
        if fd > 2 and target.startswith("pipe:"):
            flags = next(int(line.split()[1], 8) for line in
                         Path(f"/proc/{agent_pid}/fdinfo/{fd}").read_text().splitlines()
                         if line.startswith("flags:"))
            ends.setdefault(target, {})[fd] = flags & os.O_ACCMODE
    both = [fds for fds in ends.values() if sorted(fds.values()) == [os.O_RDONLY, os.O_WRONLY]]
    fds = max(both, key=max)  # made after the wake-up pipe
    write_fd = next(fd for fd, mode in fds.items() if mode == os.O_WRONLY)
    return os.open(f"/proc/{agent_pid}/fd/{write_fd}", os.O_WRONLY)


def _result(key: str, pid: int) -> Dict[str, Any]:
    return {"key": key, "pid": pid, "start_time": 1.0, "end_time": 2.0, "state": "COMPLETED",
            "exit_code": 0, "signal": 0, "user_cpu": 0.0, "system_cpu": 0.0, "max_rss_kb": 0,
            "error": None}


def test_the_end_is_reported_from_the_result_line_of_the_jobs_own_supervisor(
        agent: AgentClient, workdir: Path, tmp_path: Path) -> None:
    started = agent.launch("1.0", spec("#!/bin/sh\nexec sleep 30\n", tmp_path))
    assert started["ev"] == "started"
    sup = json.loads((workdir / "jobs" / "1.0" / "supervisor.json").read_text())["pid"]
    fd = _results_pipe_writer(agent.proc.pid)
    try:
        # a line from another process (not this run's supervisor) and lines
        # that are not results are ignored
        for line in (json.dumps({"sup": sup + 1, "result": _result("1.0", started["pid"])}),
                     "not json", json.dumps({"sup": sup}), json.dumps([1, 2])):
            os.write(fd, line.encode() + b"\n")
        time.sleep(0.3)
        status = agent.request({"op": "status"})
        assert [j["status"] for j in status["jobs"] if j["key"] == "1.0"] == ["running"], status
        # its own supervisor's line: reported at once, in two writes
        line = json.dumps({"sup": sup, "result": _result("1.0", started["pid"])}).encode()
        os.write(fd, line[:20])
        time.sleep(0.05)
        os.write(fd, line[20:] + b"\n")
        assert agent.ended("1.0", timeout=5) == _result("1.0", started["pid"])
    finally:
        os.close(fd)
        os.killpg(started["pid"], signal.SIGKILL)


def test_every_job_ends_once_with_its_file_in_place_and_a_forget_waits_for_its_supervisor(
        agent: AgentClient, workdir: Path, tmp_path: Path) -> None:
    """Ended (from the result line), then forgotten at once, 30 times: each
    job ends once, its result.json is there when `ended` comes, and the
    forget removes the directory after its supervisor is done with it."""
    for i in range(30):
        key = f"{i + 1}.0"
        assert agent.launch(key, spec("#!/bin/sh\nexit 3\n", tmp_path))["ev"] == "started"
        result = agent.ended(key)
        assert result["state"] == "FAILED" and result["exit_code"] == 3
        path = workdir / "jobs" / key / "result.json"
        assert json.loads(path.read_text()) == result
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        ack = agent.request({"op": "forget", "key": key})
        assert ack["error"] is None and not (workdir / "jobs" / key).exists()
    status = agent.request({"op": "status"})
    assert status["jobs"] == []
    assert not [e for e in agent._events if e.get("ev") == "ended"]  # none twice
    log = (workdir / "agent.log").read_text()
    assert "result left" not in log and "cannot" not in log and "still runs" not in log, log


def test_a_supervisor_killed_after_its_result_line_keeps_the_reported_result(
        agent: AgentClient, workdir: Path, tmp_path: Path) -> None:
    """The agent got the result from the line; the supervisor is then killed
    before it exits on its own: the reported result stands (not LOST), and
    result.json holds it."""
    started = agent.launch("1.0", spec("#!/bin/sh\nexec sleep 30\n", tmp_path))
    sup = json.loads((workdir / "jobs" / "1.0" / "supervisor.json").read_text())["pid"]
    fd = _results_pipe_writer(agent.proc.pid)
    try:
        result = _result("1.0", started["pid"])
        os.write(fd, json.dumps({"sup": sup, "result": result}).encode() + b"\n")
        assert agent.ended("1.0", timeout=5) == result
        os.kill(sup, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(sup):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = agent.request({"op": "status"})
        assert [j["result"]["state"] for j in status["jobs"]] == ["COMPLETED"], status
        path = workdir / "jobs" / "1.0" / "result.json"
        assert json.loads(path.read_text()) == result
    finally:
        os.close(fd)
        os.killpg(started["pid"], signal.SIGKILL)
