"""sbatch judged by real SLURM: what it prints on success, and its message
and exit status for each kind of bad input, given the same command line in
the same kind of directory."""

from __future__ import annotations

import re

import pytest

from .sides import Result, Side


SCRIPTS = {
    "ok.sh": ("#!/bin/sh\ntrue\n", 0o755),
    "noshebang.sh": ("echo no shebang\n", 0o755),
    "empty.sh": ("", 0o755),
    "args.sh": ("#!/bin/sh\n#SBATCH --parsable\ntrue\n", 0o755),
}


@pytest.fixture(scope="module")
def pair(slurm: Side, fleet: Side):
    for side in (slurm, fleet):
        for name, (text, mode) in SCRIPTS.items():
            side.write(f"sb/{name}", text, mode)
    return slurm, fleet


def _sbatch(side: Side, argv: list[str], input: str | None = None) -> Result:
    res = side.run("sbatch", *argv, cwd=side.work / "sb", input=input)
    found = re.search(r"(\d+)", res.out)
    if res.rc == 0 and found:
        # anything that was accepted is held or runs `true`; never leave it queued
        side.submitted.append(int(found.group(1)))
        side.scancel(int(found.group(1)))
    return res


def _norm_err(text: str) -> str:
    return text.replace("/usr/bin/sbatch:", "sbatch:")


# Same command line, same result: (argv, stdin). Each is a bad input SLURM
# 22.05 refuses (message on stderr, nothing on stdout, exit 1 or 255) or a
# good one whose standard output scripts parse.
REFUSED = [
    ["--bogus", "--wrap", "true"],
    ["-t", "abc", "--wrap", "true"],
    ["--time=1:2:3:4", "--wrap", "true"],
    ["--mem=abc", "--wrap", "true"],
    ["--mem-per-cpu=1Q", "--wrap", "true"],
    ["--array=1-x", "--wrap", "true"],
    ["--array=0-5000", "--wrap", "true"],
    ["nosuchfile.sh"],
    ["noshebang.sh"],
    ["empty.sh"],
    ["--wrap", "true", "ok.sh"],
    ["-p", "nosuch", "--wrap", "true"],
    ["--mem=100G", "--wrap", "true"],
    ["--dependency=bogus:1", "--wrap", "true"],
    ["--begin=garbage", "--wrap", "true"],
    ["--open-mode=bad", "--wrap", "true"],
    ["--gres=gpu:1", "--wrap", "true"],
    ["--signal=BAD", "--wrap", "true"],
    ["-n", "0", "--wrap", "true"],
    ["-c", "0", "--wrap", "true"],
    ["--mail-type=BAD", "--wrap", "true"],
    ["--mem-per-cpu=100", "--mem=100", "--wrap", "true"],
    ["-x", "{node}", "--wrap", "true"],
    ["-o"],
]


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a))
def test_refused_like_slurm(pair, oracle, argv):
    slurm, fleet = pair
    argv = [a.format(node=oracle.node) for a in argv]
    want, got = _sbatch(slurm, argv), _sbatch(fleet, argv)
    assert want.rc != 0, f"SLURM accepted {argv}:\n{want}"
    assert (got.rc, got.out, _norm_err(got.err)) == (want.rc, want.out, _norm_err(want.err))


def test_submitted_line(pair):
    slurm, fleet = pair
    for side in pair:
        res = _sbatch(side, ["--hold", "--wrap", "true"])
        assert res.rc == 0 and res.err == ""
        assert re.fullmatch(r"Submitted batch job \d+\n", res.out), res


@pytest.mark.parametrize("argv,stdin", [
    (["--parsable", "--hold", "--wrap", "true"], None),
    (["--hold", "args.sh"], None),                  # --parsable as an #SBATCH line
    (["--parsable", "--hold"], "#!/bin/sh\ntrue\n"),  # the script on standard input
    (["--parsable", "--hold", "/dev/stdin"], "#!/bin/sh\ntrue\n"),
], ids=["parsable", "parsable-in-script", "stdin", "dev-stdin"])
def test_parsable(pair, argv, stdin):
    for side in pair:
        res = _sbatch(side, argv, input=stdin)
        assert res.rc == 0 and res.err == "", res
        assert re.fullmatch(r"\d+\n", res.out), res


def test_clusters_documented(pair, oracle):
    """``-M`` needs slurmdbd on real SLURM (the oracle has none and says so);
    fleetslurm prints ``N;cluster`` as SLURM does with a database."""
    slurm, fleet = pair
    want = _sbatch(slurm, ["--parsable", "-M", oracle.cluster, "--hold", "--wrap", "true"])
    assert want.rc == 1 and "can't be reached now" in want.err
    got = _sbatch(fleet, ["--parsable", "-M", oracle.cluster, "--hold", "--wrap", "true"])
    assert got.rc == 0 and re.fullmatch(rf"\d+;{oracle.cluster}\n", got.out), got


# README "Where fleetslurm differs from SLURM 22.05 (on purpose)": requests no
# machine could ever run are refused at submission, so are node names and time
# limits SLURM 22.05 lets through unchecked.
DELIBERATE = [
    (["-c", "64", "--hold", "--wrap", "true"], "Requested node configuration is not available"),
    (["-N", "2", "--hold", "--wrap", "true"], "Requested node configuration is not available"),
    (["-w", "nonode", "--hold", "--wrap", "true"], "Invalid node name specified"),
    (["--time=-5", "--hold", "--wrap", "true"], "Invalid --time specification"),
    # a dependency on a job nobody ever had: SLURM 22.05 accepts (and ignores) it
    (["--hold", "--dependency=afterok:999999999", "--wrap", "true"], "Job dependency problem"),
]


@pytest.mark.parametrize("argv,message", DELIBERATE, ids=[" ".join(a) for a, _ in DELIBERATE])
def test_refused_on_purpose(pair, argv, message):
    slurm, fleet = pair
    want = _sbatch(slurm, argv)
    assert want.rc == 0, f"SLURM now refuses {argv} too; drop it from the README list:\n{want}"
    got = _sbatch(fleet, argv)
    assert got.rc != 0 and got.out == "" and message in got.err, got




TEST_ONLY = re.compile(r"sbatch: Job \d+ to start at \d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d using (\d+) "
                       r"processors on nodes (\S+) in partition (\S+)\n")


@pytest.mark.parametrize("argv", [
    ["--test-only", "--wrap", "true"],
    ["--test-only", "-n", "2", "-J", "t", "--wrap", "true"],
    ["--test-only", "--parsable", "--hold", "--wrap", "true"],
], ids=lambda a: " ".join(a))
def test_test_only_line(pair, oracle, argv):
    """``--test-only``: one line on stderr, nothing on stdout, exit 0, no job.
    (The oracle's own start times are its business: its queue holds held jobs
    and an unlimited partition, so only the shape is compared.)"""
    lines = {}
    for side in pair:
        res = side.run("sbatch", *argv, cwd=side.work / "sb")
        assert res.rc == 0 and res.out == "", res
        m = TEST_ONLY.fullmatch(_norm_err(res.err))
        assert m, res
        lines[side.label] = m.groups()
    slurm, fleet = pair
    assert lines[slurm.label][0] == lines[fleet.label][0]  # processors
    assert lines[fleet.label][1:] == (oracle.node, oracle.partition)


@pytest.mark.parametrize("argv", [
    ["--test-only", "--mem=99999999", "--wrap", "true"],
    ["--test-only", "-p", "nosuch", "--wrap", "true"],
    ["--test-only", "-c", "3", "--wrap", "true"],
], ids=lambda a: " ".join(a))
def test_test_only_refused_like_slurm(pair, argv):
    slurm, fleet = pair
    want, got = _sbatch(slurm, argv), _sbatch(fleet, argv)
    assert want.rc == 1, want
    assert (got.rc, got.out, _norm_err(got.err)) == (want.rc, want.out, _norm_err(want.err))
