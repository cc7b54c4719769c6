"""`fleetslurm shims install|uninstall DIR`: SLURM-named executables that run
fleetslurm's commands, found by anything that calls SLURM by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetslurm.shims import COMMANDS, install_shims, is_shim, shadowing_commands, shim_text


def fleetslurm(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args], env=env,
                          cwd=str(cwd), capture_output=True, text=True, timeout=60)


def base_env(path: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = path
    return env


def fake_slurm(directory: Path, name: str = "sbatch") -> Path:
    """An executable that stands for SLURM's own command."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / name
    exe.write_text("#!/bin/sh\necho real slurm\n")
    exe.chmod(0o755)
    return exe


def test_install_writes_every_command_and_runs(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    proc = fleetslurm("shims", "install", str(d), env=base_env(f"{d}:/usr/bin:/bin"),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(d / n) for n in COMMANDS]
    assert set(COMMANDS) >= {"sacctmgr", "sshare", "sbatch", "srun", "scontrol"}
    for name in COMMANDS:
        exe = d / name
        assert os.access(exe, os.X_OK) and is_shim(exe)
        assert exe.read_text().startswith(f"#!{sys.executable} -S\n")
    run = subprocess.run([str(d / "sbatch"), "--version"], capture_output=True, text=True,
                         env=base_env("/usr/bin:/bin"))
    assert run.returncode == 0 and run.stdout.startswith("slurm 22.05"), run
    # idempotent: a second install rewrites nothing and succeeds
    before = {n: (d / n).stat().st_mtime_ns for n in COMMANDS}
    assert fleetslurm("shims", "install", str(d), env=base_env(f"{d}:/usr/bin"),
                      cwd=tmp_path).returncode == 0
    assert {n: (d / n).stat().st_mtime_ns for n in COMMANDS} == before


def test_shims_drive_a_job_through_path(fleet, tmp_path: Path) -> None:
    """Scripts that call `sbatch`/`sacct` by name reach fleetslurm."""
    d = tmp_path / "shimbin"
    install_shims(d)
    env = dict(fleet.env, PATH=f"{d}:{os.environ['PATH']}")
    script = ("set -e; id=$(sbatch --parsable --wrap 'echo via-shim'); "
              "while squeue -h -j $id -o %T | grep -q .; do sleep 0.2; done; "
              "sacct -j $id -X -n -P -o State; cat slurm-$id.out")
    proc = subprocess.run(["bash", "-c", script], env=env, cwd=str(fleet.work),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["COMPLETED", "via-shim"]


def test_install_refuses_a_file_it_did_not_write(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    real = fake_slurm(d, "squeue")
    proc = fleetslurm("shims", "install", str(d), env=base_env("/usr/bin:/bin"), cwd=tmp_path)
    assert proc.returncode == 1
    assert str(real) in proc.stderr and "not written by fleetslurm" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert real.read_text() == "#!/bin/sh\necho real slurm\n"
    assert sorted(p.name for p in d.iterdir()) == ["squeue"]  # nothing half-written


def test_uninstall_removes_only_ours(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    install_shims(d)
    (d / "sshare").unlink()
    real = fake_slurm(d, "sshare")
    other = d / "mytool"
    other.write_text("keep me")
    proc = fleetslurm("shims", "uninstall", str(d), env=base_env("/usr/bin:/bin"),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == [f"removed {d / n}" for n in COMMANDS
                                            if n != "sshare"]
    assert f"left {real}: not written by fleetslurm" in proc.stderr
    assert sorted(p.name for p in d.iterdir()) == ["mytool", "sshare"]
    assert real.read_text().endswith("echo real slurm\n") and other.read_text() == "keep me"
    # uninstalling again is harmless
    assert fleetslurm("shims", "uninstall", str(d), env=base_env("/usr/bin"),
                      cwd=tmp_path).returncode == 0


def test_uninstall_recognises_shims_of_the_previous_format(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    old = d / "sbatch"
    old.write_text(f"#!{sys.executable}\n# fleetslurm shim: runs `fleetslurm sbatch ...`\n"
                   "import sys\n")
    old.chmod(0o755)
    assert is_shim(old)
    install_shims(d)  # replaced in place, not refused
    assert "-S" in old.read_text().splitlines()[0]


def test_warns_when_real_slurm_comes_first_on_path(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    real_dir = tmp_path / "slurm" / "bin"
    fake_slurm(real_dir, "sbatch")
    fake_slurm(real_dir, "squeue")
    proc = fleetslurm("shims", "install", str(d),
                      env=base_env(f"{real_dir}:{d}:/usr/local/bin"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"sbatch, squeue in {real_dir} come before {d} on PATH" in lines[0]
    assert f"export PATH={d}:$PATH" in lines[0]
    # first on PATH: silent
    proc = fleetslurm("shims", "install", str(d),
                      env=base_env(f"{d}:{real_dir}"), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    # not on PATH at all: told how to put it there
    proc = fleetslurm("shims", "install", str(d), env=base_env("/nonexistent"), cwd=tmp_path)
    assert proc.stderr.strip() == f"note: {d} is not on PATH; put it first: export PATH={d}:$PATH"


def test_shadowing_skips_our_own_shims_and_duplicate_directories(tmp_path: Path) -> None:
    ours, target = tmp_path / "ours", tmp_path / "target"
    install_shims(ours)
    real_dir = tmp_path / "real"
    fake_slurm(real_dir, "sacct")
    link = tmp_path / "link"
    link.symlink_to(real_dir)
    on_path, found = shadowing_commands(target, f"{ours}:{real_dir}:{link}:{target}")
    assert on_path and found == {str(real_dir): ["sacct"]}


def test_shim_runs_from_an_interpreter_path_with_spaces(tmp_path: Path) -> None:
    """A shebang cannot hold such a path: the shim starts through sh instead."""
    odd = tmp_path / "my python dir"
    odd.mkdir()
    py = odd / "python3"
    py.symlink_to(sys.executable)
    d = tmp_path / "bin"
    install_shims(d, python=str(py))
    text = (d / "squeue").read_text()
    assert text.startswith("#!/bin/sh\n")
    assert is_shim(d / "squeue")
    proc = subprocess.run([str(d / "squeue"), "--version"], capture_output=True, text=True,
                          env=base_env("/usr/bin:/bin"))
    assert proc.returncode == 0 and proc.stdout.startswith("slurm 22.05"), proc


def test_shim_falls_back_to_site_when_its_paths_are_gone(tmp_path: Path) -> None:
    """A shim whose recorded import paths moved still finds fleetslurm."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "sinfo"
    exe.write_text(shim_text("sinfo", paths=[str(tmp_path / "gone")]))
    exe.chmod(0o755)
    env = base_env("/usr/bin:/bin")
    env.pop("PYTHONPATH", None)  # only site's hooks (the installed package) can find it
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("slurm 22.05"), proc


def test_unknown_command_has_no_shim() -> None:
    from fleetslurm.errors import FleetError

    with pytest.raises(FleetError, match="no shim for 'salloc'"):
        shim_text("salloc")
