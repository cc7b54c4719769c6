"""Output patterns with ``..``: fleetslurm creates missing output directories
(SLURM_COMPAT.md, "Filename patterns"), so it must create every directory the
kernel walks through, in order, and the output must land where the path
points, as real SLURM puts it when those directories exist."""

from __future__ import annotations

from fleetslurm.node.agent import Supervisor


def test_dirs_needed_follow_the_path_as_written():
    assert Supervisor.dirs_needed("/w/out/wrap/../../5") == ("/w", "/w/out", "/w/out/wrap")
    assert Supervisor.dirs_needed("/w/./a//b/../c.err") == ("/w", "/w/./a", "/w/./a//b")
    assert Supervisor.dirs_needed("/top") == ()
    assert Supervisor.dirs_needed("rel/x") == ("rel",)


def test_dotdot_output_lands_where_the_path_points(fleet):
    job = fleet.sbatch("-o", "out/%x/../../%j", "-e", "err/./a/../b/../%j.err", "-J", "dd",
                       "--wrap", "echo to-out; echo to-err >&2")
    rec = fleet.wait(job)
    assert (rec["state"], rec["exit_code"]) == ("COMPLETED", 0), rec
    assert (fleet.work / str(job)).read_text() == "to-out\n"
    assert (fleet.work / "err" / f"{job}.err").read_text() == "to-err\n"
    # the directories the path walks through exist, as they must for the
    # kernel to resolve it; nothing else was written inside them
    assert (fleet.work / "out" / "dd").is_dir() and not any((fleet.work / "out" / "dd").iterdir())
    assert sorted(p.name for p in (fleet.work / "err").iterdir()) == sorted(["a", "b", f"{job}.err"])


def test_dotdot_through_a_symlink_resolves_as_the_kernel_does(fleet, tmp_path):
    """``link/..`` is the parent of the link's target, not the link's own
    directory: the directories are created through the path as written."""
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    (fleet.work / "link").symlink_to(elsewhere)
    job = fleet.sbatch("-o", "link/new/../../%j.out", "--wrap", "echo via-link")
    assert fleet.wait(job)["state"] == "COMPLETED"
    assert (tmp_path / "elsewhere" / f"{job}.out").read_text() == "via-link\n"
    assert (elsewhere / "new").is_dir()
    assert not (fleet.work / f"{job}.out").exists()
