"""fleetslurm.slurm.patterns; expectations are the file names slurm-wlm 22.05.8
created for real jobs (job 58 named "myname", user root, host "vm", and so on)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from fleetslurm.slurm.patterns import NO_ARRAY_TASK_ID, expand_pattern

BATCH = dict(job_id=58, user="root", job_name="myname", node="vm.example.org")


@pytest.mark.parametrize("pattern, expected", [
    ("slurm-%j.out", "slurm-58.out"),
    ("%J", "58"),                      # batch step: no ".batch"
    ("%s", "batch"),
    ("%4j", "0058"),
    ("%05j", "00058"),
    ("%0j", "58"),
    ("%1j", "58"),
    ("%12j", "0000000058"),            # width capped at 10
    ("%A", "58"),                      # not an array: the job id
    ("%a", "4294967294"),              # not an array: NO_VAL
    ("%N", "vm"),                      # short host name
    ("%3N", "vm"),                     # width ignored for text
    ("%n", "0"),
    ("%t", "0"),
    ("%2t", "00"),
    ("%u", "root"),
    ("%2u", "root"),
    ("%x", "myname"),
    ("%5s", "batch"),
    ("%%", "%"),
    ("%%j", "%j"),
    ("%%%j", "%58"),
    ("%q", "%q"),                      # unknown letters stay
    ("%b", "%b"),                      # 22.05 does not expand %b
    ("%5q", "5q"),                     # digits without a letter: last digit kept
    ("%123q", "3q"),
    ("%2_", "2_"),
    ("%5%j", "558"),
    ("x%5", "x5"),
    ("x%", "x%"),
    ("%.out", "%.out"),
    ("p_%J_%s_%j_%4j_%A_%a_%N_%n_%t_%u_%x_%%_%q_%5q_%b_%12j_%2_%.out",
     "p_58_batch_58_0058_58_4294967294_vm_0_0_root_myname_%_%q_5q_%b_0000000058_2_%.out"),
    ("s_%%j_%%%j_%.out", "s_%j_%58_%.out"),
])
def test_batch_step(pattern, expected):
    assert expand_pattern(pattern, **BATCH) == expected


@pytest.mark.parametrize("pattern, expected", [
    (r"r\_%j_\\x.out", r"r_%j_\x.out"),   # any backslash: no expansion at all
    ("\\%j", "%j"),
    ("a\\", "a"),
])
def test_backslash_turns_expansion_off(pattern, expected):
    assert expand_pattern(pattern, **BATCH) == expected


def test_array_task():
    # job 59 was `sbatch -a 3`: its only task keeps the master's id
    got = expand_pattern("q_%J_%s_%A_%a_%3a_%j.out", job_id=59, array_job_id=59,
                         array_task_id=3)
    assert got == "q_59_batch_59_3_003_59.out"
    got = expand_pattern("slurm-%A_%a.out", job_id=71, array_job_id=70, array_task_id=1)
    assert got == "slurm-70_1.out"
    assert expand_pattern("%4A-%j", job_id=71, array_job_id=70, array_task_id=1) == "0070-71"


def test_step_of_srun():
    # srun -o "st_%J_%s_%j_%t_%n_%2t_%N.out" inside job 144 on host vm
    got = expand_pattern("st_%J_%s_%j_%t_%n_%2t_%N.out", job_id=144, step_id=0,
                         task_id=0, node="vm")
    assert got == "st_144.0_0_144_0_0_00_vm.out"
    got = expand_pattern("%J-%3s-%t-%n", job_id=7, step_id=12, task_id=3, node_index=1)
    assert got == "7.12-012-3-1"


def test_no_array_constant():
    assert NO_ARRAY_TASK_ID == 4294967294


@given(st.text(alphabet=st.characters(blacklist_characters="%\\"), max_size=40))
def test_text_without_percent_is_unchanged(text):
    assert expand_pattern(text, job_id=1) == text


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=15))
def test_padding(job_id, width):
    got = expand_pattern(f"%{width}j", job_id=job_id)
    assert int(got) == job_id
    assert len(got) == max(len(str(job_id)), min(width, 10))
