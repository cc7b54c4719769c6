"""SLURMConstructor: the batch scripts it writes (golden files), checked by
fleetslurm's own #SBATCH parser, by bash, and run for real.

Re-record the golden files after an intended change with:
    FLEETSLURM_RECORD_GOLDEN=1 python3 -m pytest tests/test_seeds_constructor.py
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fleetslurm import SLURMConstructor
from fleetslurm.errors import InvalidValue, UsageError
from fleetslurm.slurm.option_env import sbatch_options

GOLDEN = Path(__file__).resolve().parent / "golden" / "seeds"
RECORD = os.environ.get("FLEETSLURM_RECORD_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if RECORD:
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: record it with FLEETSLURM_RECORD_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} differs from its golden file; if the change is intended, re-record with "
        "FLEETSLURM_RECORD_GOLDEN=1 python3 -m pytest tests/test_seeds_constructor.py")


CASES = {
    "basic.sbatch": (dict(), dict(cpus=4, memory="8G", time="2:00:00")),
    "full.sbatch": (dict(partition="gpu", modules=["gcc/12", "cuda/12.2"], conda_env="ml env",
                         setup=["export OMP_NUM_THREADS=4"], slurm_args={"gpus": 1}),
                    dict(cpus=2, memory=2048, time=90, job_name="it's a test",
                         args=["--epochs", "3", "a b"], output="logs/%x-%j.out",
                         constraint="ssd")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_scripts(name):
    ctor_kw, call_kw = CASES[name]
    text = SLURMConstructor(**ctor_kw).create_slurm_script(GOLDEN / "train.py", **call_kw)
    _golden(name, text)
    # what sbatch will read from it
    opts, _, _ = sbatch_options([], text, {})
    assert opts["cpus_per_task"] == str(call_kw["cpus"])
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_golden_shell_script_by_path():
    text = SLURMConstructor().create_slurm_script(GOLDEN / "prep.sh", 1, "100M", "5",
                                                  embed=False, args=["x"])
    _golden("by_path.sbatch", text.replace(str(GOLDEN), "<GOLDEN>"))


def test_options_reach_sbatch_exactly():
    text = SLURMConstructor(**CASES["full.sbatch"][0]).create_slurm_script(
        GOLDEN / "train.py", **CASES["full.sbatch"][1])
    opts, _, _ = sbatch_options([], text, {})
    assert opts == {"job_name": "it's a test", "partition": "gpu", "cpus_per_task": "2",
                    "mem": "2048", "time": "90", "output": "logs/%x-%j.out", "gpus": "1",
                    "constraint": "ssd"}


def test_the_script_runs_here_with_its_arguments(tmp_path):
    text = SLURMConstructor().create_slurm_script(GOLDEN / "train.py", cpus=3,
                                                  args=["a b", "$HOME", "'q'"])
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "3", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "train ['a b', '$HOME', \"'q'\"] cpus 3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["job.sbatch"]  # the embedded copy is gone


def test_a_failing_job_script_fails_the_batch_script(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit(7)\n")
    text = SLURMConstructor().create_slurm_script(bad)
    proc = subprocess.run(["bash", "-c", text], env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 7


def test_a_missing_module_system_fails_with_a_message(tmp_path):
    text = SLURMConstructor(modules=["gcc"]).create_slurm_script(GOLDEN / "train.py")
    proc = subprocess.run(["bash", "-c", text], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    if proc.returncode == 0:
        pytest.skip("this machine has environment modules installed")
    assert "'module' is not available on" in proc.stderr and "modules=" in proc.stderr


def test_bad_input():
    c = SLURMConstructor()
    with pytest.raises(UsageError, match=r"job script .*nope\.py does not exist"):
        c.create_slurm_script("nope.py")
    with pytest.raises(UsageError, match=r"job script .*nope\.py does not exist"):
        c.create_slurm_script("nope.py", embed=False)
    with pytest.raises(InvalidValue, match="cpus: 0 is not a positive"):
        c.create_slurm_script(GOLDEN / "train.py", cpus=0)
    with pytest.raises(InvalidValue, match='Invalid memory specification: "8 GB"'):
        c.create_slurm_script(GOLDEN / "train.py", memory="8 GB")
    with pytest.raises(InvalidValue, match='Invalid time specification: "2h"'):
        c.create_slurm_script(GOLDEN / "train.py", time="2h")
    with pytest.raises(UsageError, match="unknown SLURM option 'gpu'. Valid options are: "):
        c.create_slurm_script(GOLDEN / "train.py", gpu=1)
    with pytest.raises(InvalidValue, match="modules must be a list"):
        SLURMConstructor(modules="gcc").create_slurm_script(GOLDEN / "train.py")


def test_write_slurm_script(tmp_path):
    out = SLURMConstructor().write_slurm_script(tmp_path / "job.sbatch", GOLDEN / "train.py",
                                                cpus=2)
    assert out.read_text().startswith("#!/bin/bash\n#SBATCH --job-name=train\n")
    assert oct(out.stat().st_mode & 0o777) == "0o700"
