"""Output files judged by real SLURM: the names the patterns give (%j %A %a
%x %u %N %n %s %t %J %% %5j %3a, an unknown %b %q, a backslash, the
defaults slurm-%j.out and slurm-%A_%a.out, -e apart, -D with a relative
path) and what is in them (--open-mode=append keeps what was there, the
default truncates; SLURM's own lines when it ends a job)."""

from __future__ import annotations

from .batch import Snap
from .rules import family
from .shape import norm_time


def _outputs(snap: Snap) -> dict[str, str]:
    out = {}
    for name, data in snap.files.items():
        if name in ("env.sh", "rq.sh") or name.startswith(("env-", "sb/")):
            continue
        text = norm_time(data.decode(errors="replace").replace(snap.work, "<WORK>"))
        out[family(snap.tokens.sub(name))] = family(snap.tokens.sub(text))
    return out


def test_output_file_names(batch):
    s, f = batch.pair()
    assert sorted(_outputs(f)) == sorted(_outputs(s))


def test_output_file_contents(batch):
    s, f = batch.pair()
    want, got = _outputs(s), _outputs(f)
    assert {k: got.get(k) for k in want} == want


def test_open_mode(batch):
    """append keeps the line written before the job; truncate (the default) drops it."""
    for snap in batch.pair():
        assert snap.files["app.out"].startswith(b"old line\n"), snap.side.label
        assert b"old line" not in snap.files["trunc.out"], snap.side.label


def test_array_task_ids_in_names(batch):
    """%A is the array's id and %j each task's own id (squeue's %A)."""
    for snap in batch.pair():
        master = snap.ids["parr"]
        for own, index in snap.tasks["parr"].items():
            name = f"parr-{master}_{index}-{own}-{index:03d}-parrname.out"
            assert name in snap.files, (snap.side.label, name, sorted(snap.files))
