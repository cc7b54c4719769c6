"""Bad input: SLURM-shaped messages on stderr, SLURM's exit codes, no
traceback, nothing written to the store. Expected texts were taken from
SLURM 22.05.8 (the oracle) on the same inputs."""

from __future__ import annotations

import json

import pytest

SUBMIT_FAILURES = [
    (["--time=xx", "--wrap", "true"], "sbatch: error: Invalid --time specification\n", 255),
    (["--mem=abc", "--wrap", "true"], "sbatch: error: Invalid --mem specification\n", 255),
    (["-c", "x", "--wrap", "true"],
     'sbatch: error: Invalid numeric value "x" for --cpus-per-task.\n', 1),
    (["-c", "0", "--wrap", "true"],
     'sbatch: error: Invalid numeric value "0" for --cpus-per-task.\n', 1),
    (["-p", "nosuch", "--wrap", "true"],
     "sbatch: error: invalid partition specified: nosuch\n"
     "sbatch: error: Batch job submission failed: Invalid partition name specified\n", 1),
    (["--mem=900G", "--wrap", "true"],
     "sbatch: error: Memory specification can not be satisfied\n"
     "sbatch: error: Batch job submission failed: Requested node configuration is not "
     "available\n", 1),
    (["-c", "64", "--wrap", "true"],
     "sbatch: error: Batch job submission failed: Requested node configuration is not "
     "available\n", 1),
    (["--gres=gpu:1", "--wrap", "true"],
     "sbatch: error: Invalid generic resource (gres) specification\n", 1),
    (["nosuch.sh"], "sbatch: error: Unable to open file nosuch.sh\n", 1),
    (["--wrap", "true", "extra"],
     "sbatch: error: Script arguments not permitted with --wrap option\n", 1),
    (["--begin=garbage", "--wrap", "true"],
     "Invalid time specification (pos=0): garbage\nsbatch: error: Invalid --begin specification\n",
     255),
    (["--signal=FOO@10", "--wrap", "true"], "sbatch: error: Invalid --signal specification\n",
     255),
    (["--open-mode=x", "--wrap", "true"], "sbatch: error: Invalid --open-mode specification\n",
     255),
    (["--array=x", "--wrap", "true"],
     "sbatch: error: Batch job submission failed: Invalid job array specification\n", 1),
    (["--foo", "--wrap", "true"],
     "sbatch: unrecognized option '--foo'\nTry \"sbatch --help\" for more information\n", 255),
    (["-t"], "sbatch: option requires an argument -- 't'\n"
             "Try \"sbatch --help\" for more information\n", 255),
]


@pytest.mark.parametrize("args,stderr,code", SUBMIT_FAILURES)
def test_sbatch_refusals(fleet, args, stderr, code):
    proc = fleet.run("sbatch", *args)
    assert (proc.returncode, proc.stderr, proc.stdout) == (code, stderr, "")


def test_refusals_write_nothing(fleet):
    for args, _, _ in SUBMIT_FAILURES[:8]:
        assert fleet.run("sbatch", *args).returncode != 0
    # the store holds no job and the next submission gets the first id
    with fleet.client() as c:
        assert c.call("jobs") == []
    assert fleet.run("sbatch", "--hold", "--wrap", "true").stdout == "Submitted batch job 1\n"


def test_script_without_shebang(fleet):
    (fleet.work / "plain.sh").write_text("echo hi\n")
    proc = fleet.run("sbatch", "plain.sh")
    assert proc.returncode == 1
    assert proc.stderr == (
        "sbatch: error: This does not look like a batch script.  The first\n"
        "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
        "sbatch: error: For instance: #!/bin/sh\n")


def test_too_many_gpus(tmp_path):
    from conftest import Fleet, _teardown, local_config

    cfg = local_config()
    cfg["machines"]["localhost"]["gpus"] = 2
    f = Fleet(tmp_path, cfg)
    try:
        proc = f.run("sbatch", "--gpus=3", "--wrap", "true")
        assert proc.returncode == 1
        assert proc.stderr == ("sbatch: error: Batch job submission failed: Requested node "
                               "configuration is not available\n")
        proc = f.run("sbatch", "--gres=gpu:2", "--parsable", "--wrap", "echo $CUDA_VISIBLE_DEVICES")
        job = int(proc.stdout)
        f.wait(job)
        assert (f.work / f"slurm-{job}.out").read_text() == "0,1\n"
    finally:
        _teardown(f)


def test_unknown_job_ids(fleet):
    cases = [
        (["scancel", "99999"], "", 0),  # SLURM 22.05: silent unless -v
        (["scancel", "-v", "99999"],
         "scancel: error: Kill job error on job id 99999: Invalid job id specified\n", 0),
        (["scontrol", "hold", "99999"],
         "Invalid job id specified for job 99999\nslurm_suspend error: Invalid job id "
         "specified\n", 1),
        (["scontrol", "release", "99999"],
         "Invalid job id specified for job 99999\nslurm_suspend error: Invalid job id "
         "specified\n", 1),
        (["scontrol", "requeue", "99999"], "Invalid job id specified for job 99999\n", 1),
        (["scontrol", "update", "JobId=99999", "TimeLimit=5"],
         "Invalid job id specified for job 99999\n", 1),
        (["scontrol", "show", "job", "99999"],
         "slurm_load_jobs error: Invalid job id specified\n", 1),
    ]
    for args, stderr, code in cases:
        proc = fleet.run(*args)
        assert (proc.returncode, proc.stderr) == (code, stderr), args


def test_scontrol_update_errors(fleet):
    job = fleet.sbatch("--hold", "--wrap", "true")
    proc = fleet.run("scontrol", "update", f"JobId={job}", "Foo=bar")
    assert (proc.returncode, proc.stderr) == (
        1, "Update of this parameter is not supported: Foo=bar\nRequest aborted\n")
    proc = fleet.run("scontrol", "update", "NodeName=localhost", "State=DRAIN")
    assert (proc.returncode, proc.stderr) == (
        1, "scontrol: error: You must specify a reason when DOWNING or DRAINING a node. "
           "Request denied\n")


def test_squeue_bad_state(fleet):
    proc = fleet.run("squeue", "-t", "foo")
    assert proc.returncode == 1
    assert proc.stderr.startswith("squeue: error: Invalid job state specified: foo\n"
                                  "squeue: error: Valid job states include: PENDING,RUNNING,")


@pytest.mark.parametrize("config,message", [
    ({"machines": {"m1": {"cpus": "eight"}}},
     'machines.m1.cpus: must be a positive integer, got "eight"'),
    ({"machines": {"m1": {"cpus": 0}}}, "machines.m1.cpus: must be a positive integer, got 0"),
    ({"machines": {"m1": {"cpuz": 4}}}, "machines.m1.cpuz: unknown field; allowed fields are: "),
    ({"machines": {}}, "machines: at least one machine is required"),
    ({"machines": {"m1": {"partitions": ["gpu"]}}},
     "machines.m1.partitions: unknown partition 'gpu'; define it under \"partitions\""),
    ({"machines": {"m1": {}}, "host_key_policy": "yes"},
     'host_key_policy: must be "reject" or "accept-new", got "yes"'),
    ({"machines": {"m1": {}}, "partitions": {"p": {"max_time": "soon"}}},
     'partitions.p.max_time: must be a SLURM time ("60", "1:00:00", "2-0", "UNLIMITED"), '
     'got "soon"'),
])
def test_bad_config_one_line_no_traceback(tmp_path, config, message):
    from conftest import Fleet

    f = Fleet(tmp_path, config)
    proc = f.run("sbatch", "--wrap", "true")
    assert proc.returncode == 1
    path = f.env["FLEETSLURM_CONFIG"]
    assert proc.stderr.startswith(f"sbatch: error: {path}: {message}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (f.home / "state.db").exists()


def test_config_not_json(tmp_path):
    from conftest import Fleet

    f = Fleet(tmp_path, {"machines": {}})
    (tmp_path / "fleet_config.json").write_text('{"machines": {,}}')
    proc = f.run("squeue")
    assert proc.returncode == 1
    assert proc.stderr == (f"squeue: error: {tmp_path}/fleet_config.json: line 1 column 15: "
                           "invalid JSON: Expecting property name enclosed in double quotes\n")


def test_partition_without_machines(tmp_path):
    from conftest import Fleet, _teardown, local_config

    cfg = local_config()
    cfg["partitions"]["empty"] = {"max_time": "60"}
    f = Fleet(tmp_path, cfg)
    try:
        proc = f.run("sbatch", "-p", "empty", "--mem=10M", "--wrap", "true")
        assert (proc.returncode, proc.stderr) == (
            1, "sbatch: error: Batch job submission failed: Requested node configuration is "
               "not available\n")
    finally:
        _teardown(f)
