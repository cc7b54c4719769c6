"""Which config is in force: a command whose lookup finds another file than
the running controller's (or a changed one) says so; ``scontrol
reconfigure`` loads it and keeps running jobs; ``config init`` writes the
template where every command finds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import Fleet, _teardown
from fleetslurm.config import load_config


@pytest.fixture
def bare(tmp_path):
    """A fleet on the embedded default (no config anywhere)."""
    f = Fleet(tmp_path, None)
    yield f
    _teardown(f)


def _write(fleet: Fleet, cfg: dict) -> str:
    path = fleet.work / "config" / "fleet_config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(cfg))
    return str(path)


def _big(cpus: int = 8) -> dict:
    return {"kill_wait": 2, "heartbeat_interval": 1.0,
            "machines": {"localhost": {"transport": "local", "cpus": cpus, "memory_gb": 16}}}


def test_a_new_config_is_named_until_reconfigure_loads_it(bare):
    first = bare.sbatch("-o", "/dev/null", "--wrap", "sleep 4")  # starts the default
    path = _write(bare, _big())
    proc = bare.run("sbatch", "-c", "4", "--mem=8G", "--wrap", "true")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "fleetslurm: warning: the controller runs with the embedded default (this machine "
        f"alone), not with {path}, which this command's config lookup finds: `scontrol "
        "reconfigure` loads it",
        "sbatch: error: Batch job submission failed: Requested node configuration is not "
        "available"]
    pid = bare.controller_pid()
    proc = bare.run("scontrol", "reconfigure")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert bare.controller_pid() != pid
    job = bare.sbatch("-c", "4", "--mem=8G", "-o", "/dev/null", "--wrap", "nproc")
    proc = bare.run("squeue")
    assert proc.stderr == ""  # nothing to say now
    assert bare.wait(job)["state"] == "COMPLETED"
    # the job that ran across the reconfigure finished once, as itself
    rec = bare.wait(first)
    assert rec["state"] == "COMPLETED"
    with bare.client() as c:
        starts = [h for h in c.call("history", task_id=first) if h["event"] == "start"]
    assert len(starts) == 1


def test_an_edited_config_is_named_as_changed(tmp_path):
    f = Fleet(tmp_path, None)
    try:
        path = _write(f, _big(4))
        assert f.run("sinfo", check=True).stderr == ""
        _write(f, _big(6))
        assert f.run("sinfo", check=True).stderr == (
            f"fleetslurm: warning: {path} changed since the controller read it; the controller "
            "still runs with the old one: `scontrol reconfigure` loads it\n")
        f.run("scontrol", "reconfigure", check=True)
        out = f.run("sinfo", "-h", "-o", "%c", check=True)
        assert (out.stdout, out.stderr) == ("6\n", "")
        # run from a directory without a config: the running one, nothing said
        other = tmp_path / "elsewhere"
        other.mkdir()
        assert f.run("sinfo", "-h", "-o", "%c", cwd=other, check=True).stderr == ""
    finally:
        _teardown(f)


def test_reconfigure_changes_nothing_for_a_bad_or_unsafe_config(bare):
    job = bare.sbatch("-o", "/dev/null", "--wrap", "sleep 30")
    bare.wait(job, states={"RUNNING"})
    pid = bare.controller_pid()
    path = bare.work / "config" / "fleet_config.json"
    path.parent.mkdir()
    path.write_text("{")
    proc = bare.run("scontrol", "reconfigure")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("scontrol: error: config/fleet_config.json: line 1 column 2")
    _write(bare, {"machines": {"elsewhere": {"transport": "local"}}})
    proc = bare.run("scontrol", "reconfigure")
    assert (proc.returncode, proc.stderr) == (
        1, f"scontrol: error: {path} has no machine localhost, where job(s) {job} still run: "
           "wait for them (drain the machine: scontrol update NodeName=... State=DRAIN) or "
           "keep it in the config\n")
    assert bare.controller_pid() == pid
    assert bare.record(job)["state"] == "RUNNING"
    bare.run("scancel", str(job), check=True)


def test_config_init_writes_the_template_where_commands_find_it(bare):
    proc = bare.run("config", "init")
    target = bare.home / "fleet_config.json"
    assert (proc.returncode, proc.stdout) == (0, f"{target}\n")
    cfg = load_config(target)
    assert set(cfg.machines) == {"node01", "gpu01"}
    again = bare.run("config", "init")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert load_config(target).machines.keys() == cfg.machines.keys()  # untouched
    # the lookup finds it from any directory
    proc = bare.run("config", "show", cwd=bare.root)
    assert proc.stdout.splitlines()[0] == f"lookup finds: {target}"


def test_a_command_that_starts_the_controller_says_which_config_at_a_terminal(bare):
    env = dict(bare.env)
    cmd = f"{sys.executable} -m fleetslurm.cli.main sinfo -h >/dev/null"
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                          text=True, env=env, cwd=bare.work, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert ("fleetslurm: started a controller with the embedded default (this machine alone) "
            f"(state in {bare.home})") in proc.stdout
    # and not to a pipe: scripts read SLURM's own lines only
    assert bare.run("controller", "stop", check=True)
    assert bare.run("sinfo", "-h").stderr == ""
    assert os.path.exists(bare.home / "controller.config")
