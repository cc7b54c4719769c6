"""The shims end with ``os._exit`` once their output is flushed (no
interpreter teardown): what a caller sees must not change. Exit statuses,
stdout and stderr pass through; output into a closed pipe ends as the
ordinary exit ends it, without a traceback."""

from __future__ import annotations

import subprocess

from fleetslurm.shims import install_shims


def _shims(fleet):
    bin_dir = fleet.root / "bin"
    install_shims(bin_dir)
    return bin_dir


def _run(fleet, argv: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=str(fleet.work), env=fleet.env, capture_output=True,
                          text=True, timeout=60, **kw)


def test_statuses_and_streams_pass_through(fleet):
    bin_dir = _shims(fleet)
    bad = _run(fleet, [str(bin_dir / "sbatch"), "--bogus"])
    assert (bad.returncode, bad.stdout) == (255, "")
    assert bad.stderr == ("sbatch: unrecognized option '--bogus'\n"
                          'Try "sbatch --help" for more information\n')
    job = _run(fleet, [str(bin_dir / "sbatch"), "--parsable", "-H", "--wrap", "true"])
    assert job.returncode == 0 and job.stdout.strip().isdigit(), job
    jid = job.stdout.strip()
    out = _run(fleet, [str(bin_dir / "squeue"), "-h", "-o", "%i %T", "-j", jid])
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{jid} PENDING\n", "")
    gone = _run(fleet, [str(bin_dir / "squeue"), "-j", "999999"])
    assert (gone.returncode, gone.stderr) == (
        1, "slurm_load_jobs error: Invalid job id specified\n")
    srun = _run(fleet, [str(bin_dir / "srun"), "sh", "-c", "echo out; exit 3"])
    assert (srun.returncode, srun.stdout) == (3, "out\n")
    assert srun.stderr == "srun: error: localhost: task 0: Exited with exit code 3\n"
    _run(fleet, [str(bin_dir / "scancel"), jid])


def test_output_into_a_closed_pipe_ends_without_a_traceback(fleet):
    bin_dir = _shims(fleet)
    cmd = f"{bin_dir / 'srun'} seq 1 300000 | head -1; echo status=${{PIPESTATUS[0]}}"
    proc = _run(fleet, ["bash", "-c", cmd])
    assert proc.stdout.splitlines()[0] == "1", proc
    assert "Traceback" not in proc.stderr, proc.stderr
