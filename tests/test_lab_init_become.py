"""``fleetslurm lab init`` names the machines reached through sudo and how to
get their exact sudoers lines (``nodes check`` prints them)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from fleetslurm import lab
from fleetslurm.paths import LabPaths


def test_lab_init_names_the_machines_that_need_the_sudoers_lines() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab init needs root")
    root = Path(tempfile.mkdtemp(prefix="fsl-lab-"))
    try:
        cfg = root / "cfg.json"
        cfg.write_text(json.dumps({"machines": {
            "a1": {"hostname": "a1", "ssh_user": "fleetslurm", "become": "sudo"},
            "b1": {"hostname": "b1", "ssh_user": "root"},
            "c1": {"hostname": "c1", "ssh_user": "fleetslurm", "become": "sudo"}}}))
        said: list[str] = []
        lab.init(str(cfg), service_user="root", say=said.append, where=LabPaths(root))
        text = "\n".join(said)
        assert ('     a1, c1 ("become": "sudo"): each needs the sudoers lines of README\'s '
                '"Reaching the machines through sudo";') in text, text
        assert (f"fleetslurm nodes check --config {root}/etc/fleetslurm/fleet_config.json   "
                "prints them, exact, for a machine that lacks them") in text, text
    finally:
        shutil.rmtree(root)
