"""Every config field is checked against its range, and a file that is not a
config (Infinity, NaN, absurd nesting, not UTF-8) is named with the place of
the fault: one line on stderr, exit 1, no traceback, no controller and no
state written."""

from __future__ import annotations

import json

import pytest

M = '"machines": {"m1": {"transport": "local"}}'
DEEP = "[" * 5000 + "]" * 5000


def _machine(**fields) -> str:
    return json.dumps({"machines": {"m1": {"transport": "local", **fields}}})


def _top(**fields) -> str:
    return json.dumps({"machines": {"m1": {"transport": "local"}}, **fields})


CASES = [
    # the controller spun at 92% CPU on a 1 ns heartbeat
    (_top(heartbeat_interval=1e-9),
     "heartbeat_interval: must be a number of seconds from 0.05 to 600, got 1e-09"),
    (_top(heartbeat_interval=0), "heartbeat_interval: must be a number of seconds from 0.05 "
     "to 600, got 0"),
    (_top(heartbeat_interval=3601), "heartbeat_interval: must be a number of seconds from 0.05 "
     "to 600, got 3601"),
    ("{%s, \"heartbeat_interval\": Infinity}" % M,
     "heartbeat_interval: must be a number of seconds from 0.05 to 600, got Infinity"),
    ('{"machines": {"m1": {"transport": "local", "memory_gb": NaN}}}',
     "machines.m1.memory_gb: must be a positive number, got NaN"),
    ('{"machines": {"m1": {"transport": "local", "memory_gb": -Infinity}}}',
     "machines.m1.memory_gb: must be a positive number, got -Infinity"),
    (_machine(memory_gb=1e300),
     "machines.m1.memory_gb: must be a positive number no larger than 1048576, got 1e+300"),
    (_machine(memory_gb=0.0001),
     "machines.m1.memory_gb: must be a positive number of at least 0.001, got 0.0001"),
    (_machine(cpus=10 ** 22), "machines.m1.cpus: must be a positive integer no larger than "
     "65533, got 10000000000000000000000"),
    (_machine(gpus=70000), "machines.m1.gpus: must be a non-negative integer no larger than "
     "65533, got 70000"),
    (_machine(weight=2 ** 32), "machines.m1.weight: must be a non-negative integer no larger "
     "than 4294967294, got 4294967296"),
    (_machine(port=0), "machines.m1.port: must be an integer from 1 to 65535, got 0"),
    (_top(kill_wait=65534), "kill_wait: must be an integer from 0 to 65533 (seconds), "
     "got 65534"),
    (_top(min_job_age=-1), "min_job_age: must be a non-negative integer (seconds), got -1"),
    (_top(min_job_age=2 ** 40), "min_job_age: must be a non-negative integer (seconds) no "
     "larger than 4294967294, got 1099511627776"),
    (_top(max_array_size=4000002), "max_array_size: must be an integer from 1 to 4000001, "
     "got 4000002"),
    (json.dumps({"machines": {"m1": {"transport": "local"}},
                 "partitions": {"p": {"priority": 65534}}}),
     "partitions.p.priority: must be a non-negative integer no larger than 65533, got 65534"),
    # JSON's true is not 1 CPU, nor "22" a port
    (_machine(cpus=True), "machines.m1.cpus: must be a positive integer, got true"),
    (_machine(port="22"), 'machines.m1.port: must be an integer from 1 to 65535, got "22"'),
    (_machine(gpu_available=1), "machines.m1.gpu_available: must be true or false, got 1"),
    # "" as workdir put the agent in the ssh user's home
    (_machine(workdir=""), 'machines.m1.workdir: must be a non-empty path, got ""'),
    (_machine(python=""), 'machines.m1.python: must be a non-empty command ("python3"), got ""'),
    (_machine(ssh_key_path=""), 'machines.m1.ssh_key_path: must be a non-empty path, got ""'),
    (_machine(hostname=""), 'machines.m1.hostname: must be a non-empty host name, got ""'),
    (_machine(ip=""), 'machines.m1.ip: must be a non-empty address, got ""'),
    (_machine(ssh_user=""), 'machines.m1.ssh_user: must be a non-empty user name, got ""'),
    (_top(cluster_name=""), 'cluster_name: must be a non-empty name, got ""'),
    # the JSON parser's RecursionError, in the controller's words, was all one saw
    (DEEP, "line 1 column 33: objects and lists nest deeper than 32 levels; a fleet config "
     "needs 4 (see config/fleet_config.json.template)"),
    ('{"machines": {"m1": {"transport": "local",\n "description": "a [{\\"", "x": %s}}}' % DEEP,
     "line 2 column 61: objects and lists nest deeper than 32 levels"),
]


@pytest.mark.parametrize("text,message", CASES, ids=[m[:40] for _, m in CASES])
def test_bad_config_is_named_with_its_place(tmp_path, text, message):
    from conftest import Fleet, _teardown

    f = Fleet(tmp_path, {})
    path = tmp_path / "fleet_config.json"
    path.write_text(text)
    try:
        proc = f.run("sbatch", "--wrap", "true")
        assert proc.returncode == 1, proc
        assert proc.stderr.startswith(f"sbatch: error: {path}: {message}"), proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stdout == ""
        assert not (f.home / "state.db").exists()
    finally:
        if f.controller_pid():  # a config wrongly accepted started one
            _teardown(f)


def test_latin1_config_names_the_byte(tmp_path):
    """A file saved as Latin-1 gave the decoder's bare complaint."""
    from conftest import Fleet

    f = Fleet(tmp_path, {})
    path = tmp_path / "fleet_config.json"
    path.write_bytes(b'{"machines": {"m1": {"transport": "local",\n'
                     b' "description": "caf\xe9 machine"}}}')
    proc = f.run("squeue")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (f"squeue: error: {path}: line 2 column 21 (byte 63): byte 0xe9 "
                           "is not UTF-8; save the file as UTF-8\n")


def test_limits_accept_their_edges(tmp_path):
    """The bounds themselves are valid (loaded in-process: no controller)."""
    from fleetslurm.config import load_config

    path = tmp_path / "c.json"
    path.write_text(json.dumps({
        "cluster_name": "x", "heartbeat_interval": 0.05, "kill_wait": 65533,
        "min_job_age": 0, "max_array_size": 4000001,
        "partitions": {"p": {"priority": 65533}},
        "machines": {"m1": {"cpus": 65533, "memory_gb": 0.001, "gpus": 0, "weight": 0,
                            "workdir": "w", "description": "caf\u00e9 [{"}}}))
    cfg = load_config(path)
    assert cfg.heartbeat_interval == 0.05 and cfg.machines["m1"].mem_mb == 1
    path.write_text(json.dumps({"heartbeat_interval": 600,
                                "machines": {"m1": {"memory_gb": 1024 ** 2}}}))
    assert load_config(path).heartbeat_interval == 600
