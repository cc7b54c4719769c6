"""The seed's DataBench code blocks, as written, on the template's fleet:
config/fleet_config.json.template with its two machines (node01, gpu01)
placed on loopback sshd machines, without a shared filesystem. The blocks'
partition ``compute`` is the template's; the built-in analyses' price files
reach the machines by staging (see tests/seed_blocks.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import seed_blocks

ROOT = Path(__file__).resolve().parent.parent
#: what the sshd machine decides in a machine's entry; the rest is the template's
ADDRESSING = ("hostname", "ip", "port", "ssh_user", "ssh_key_path", "workdir", "python")


def test_the_seeds_blocks_run_on_the_templates_fleet(sshd_fleet, make_config, ssh_home,
                                                     tmp_path):
    machines = sshd_fleet(2)
    files = make_config(machines)  # its state directory and known_hosts
    template = json.loads((ROOT / "config" / "fleet_config.json.template").read_text())
    assert list(template["machines"]) == ["node01", "gpu01"]
    for name, m in zip(template["machines"], machines):
        entry = m.config_entry()
        template["machines"][name].update({k: entry[k] for k in ADDRESSING})
    template["heartbeat_interval"], template["kill_wait"] = 0.5, 2
    files.path.write_text(json.dumps(template, indent=2))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "FLEETSLURM_"))}
    env.update(files.env)
    work = tmp_path / "submit"
    work.mkdir()

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args], env={
            **env, "PYTHONPATH": str(ROOT)}, cwd=work, capture_output=True, text=True,
            timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        deadline = time.monotonic() + 60
        while cli("sinfo", "-h", "-N", "-o", "%N %t").split() != [
                "gpu01", "idle", "gpu01", "idle", "gpu01", "idle", "node01", "idle",
                "node01", "idle"]:
            assert time.monotonic() < deadline, cli("sinfo", "-N")
            time.sleep(0.3)
        assert cli("sinfo", "-h", "-o", "%P %N") == (
            "debug* gpu01,node01\ncompute gpu01,node01\ngpu gpu01\n")
        seed_blocks.prepare(work)
        out = seed_blocks.run(work, env)
        states = seed_blocks.check(out, work, {"node01", "gpu01"})
        acct = cli("sacct", "-X", "-n", "-P", "-o", "JobID,Partition,NodeList,State").split()
        assert len(acct) == len(states)
        assert {tuple(r.split("|")[1::2]) for r in acct} == {("compute", "COMPLETED")}, acct
        assert {r.split("|")[2] for r in acct} <= {"node01", "gpu01"}, acct
    finally:
        subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                       env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60)
        try:
            os.kill(int((files.home / "controller.pid").read_text().split()[0]),
                    signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
