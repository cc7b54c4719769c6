"""Every SLURM 22.05 option of sbatch, srun, squeue, sinfo, scancel, sacct and
scontrol is implemented, accepted with a reason, or refused: the table in
fleetslurm.slurm.option_support, walked option by option.

Refusal comes before any controller is reached, so the walk runs each
command's front end in this process (fleetslurm.cli.main.main, which is what
the installed commands run); a few run as real subprocesses too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetslurm.cli.main import main as cli_main
from fleetslurm.errors import UsageError
from fleetslurm.slurm.option_env import ENV_VARS, command_options, sbatch_options
from fleetslurm.slurm.option_support import (
    SUPPORT,
    markdown,
    option_name,
    refuse_unsupported,
    support_of,
)
from fleetslurm.slurm.option_tables import TABLES, Opt

REPO = Path(__file__).resolve().parent.parent
PROGS = sorted(TABLES)


def _argv(opt: Opt) -> list[str]:
    """The option given as its long name (with a value when it takes one)."""
    name = option_name(opt)
    if opt.arg == "required":
        return [name, "1"] if opt.long is None else [f"{name}=1"]
    return [name]


def _cases(status: str) -> list[tuple[str, Opt]]:
    return [(prog, opt) for prog in PROGS for opt in TABLES[prog]
            if support_of(prog, opt).status == status]


def _ids(cases: list[tuple[str, Opt]]) -> list[str]:
    return [f"{prog} {option_name(opt)}" for prog, opt in cases]


REFUSED = _cases("no")
ACCEPTED = _cases("yes") + _cases("moot")


@pytest.mark.parametrize("prog", PROGS)
def test_every_option_has_one_line(prog: str) -> None:
    keys = [opt.long or f"-{opt.short}" for opt in TABLES[prog]]
    assert sorted(SUPPORT[prog]) == sorted(keys)
    # aliases (one dest) share their fate; an accepted-but-moot option says why
    fate: dict[str, set[str]] = {}
    for opt in TABLES[prog]:
        line = support_of(prog, opt)
        fate.setdefault(opt.dest, set()).add(line.status)
        if line.status == "moot":
            assert len(line.note) > 20, (prog, opt)
    assert all(len(s) == 1 for s in fate.values()), fate


@pytest.mark.parametrize("prog,opt", REFUSED, ids=_ids(REFUSED))
def test_refused_option_exits_1_with_the_message(prog: str, opt: Opt, capsys,
                                                  monkeypatch, no_slurm_env) -> None:
    # positionals each command would otherwise want (a script, a program)
    tail = {"sbatch": ["--wrap", "true"], "srun": ["true"], "scontrol": ["show", "job"]}
    code = cli_main([prog, *_argv(opt), *tail.get(prog, [])])
    out, err = capsys.readouterr()
    assert code == 1, (code, err)
    assert err.startswith(f"{prog}: error: fleetslurm does not support {option_name(opt)}; "), err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


@pytest.mark.parametrize("prog,opt", ACCEPTED, ids=_ids(ACCEPTED))
def test_accepted_option_parses(prog: str, opt: Opt) -> None:
    argv = _argv(opt)
    if prog == "sbatch":
        opts = sbatch_options(argv, "#!/bin/sh\ntrue\n", {})[0]
    elif prog == "scontrol":
        from fleetslurm.slurm.options import parse_args

        opts = parse_args(prog, TABLES[prog], argv, posix_stop=False)[0]
    else:
        opts = command_options(prog, [*argv, "true"] if prog == "srun" else argv, {})[0]
    assert opt.dest in opts
    refuse_unsupported(prog, opts)  # raises for a refused one


def _env_value(prog: str, opt: Opt) -> str:
    if opt.arg == "required":
        return "1"
    if opt.arg == "optional":
        return ""
    return {"sbatch": "yes", "srun": "yes", "scancel": "true"}.get(prog, "1")


def _by_dest(prog: str, dest: str) -> Opt:
    return next(o for o in TABLES[prog] if o.dest == dest)


ENV_REFUSED = [(prog, var, _by_dest(prog, dest))
               for prog, pairs in sorted(ENV_VARS.items()) for var, dest in pairs
               if support_of(prog, _by_dest(prog, dest)).status == "no"]

@pytest.mark.parametrize("prog,var,opt", ENV_REFUSED,
                         ids=[f"{p} {v}" for p, v, _ in ENV_REFUSED])
def test_refused_option_from_the_environment_names_the_variable(
        prog: str, var: str, opt: Opt, capsys, monkeypatch, no_slurm_env) -> None:
    monkeypatch.setenv(var, _env_value(prog, opt))
    tail = {"sbatch": ["--wrap", "true"], "srun": ["true"]}
    code = cli_main([prog, *tail.get(prog, [])])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"{prog}: error: fleetslurm does not support {option_name(opt)} "
                          f"(set by {var} in the environment); "), err


def test_refused_in_a_batch_script(tmp_path: Path, capsys, no_slurm_env) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --network=x\ntrue\n")
    assert cli_main(["sbatch", str(script)]) == 1
    assert capsys.readouterr().err.startswith(
        "sbatch: error: fleetslurm does not support --network; leave it out")


def test_short_spelling_and_values() -> None:
    # -B is --extra-node-info: the message names the long option
    with pytest.raises(UsageError, match=r"^fleetslurm does not support --extra-node-info;"):
        refuse_unsupported("sbatch", sbatch_options(["-B", "1"], "#!/bin/sh\n", {})[0])
    # --exclusive is implemented bare only
    refuse_unsupported("sbatch", sbatch_options(["--exclusive"], "#!/bin/sh\n", {})[0])
    with pytest.raises(UsageError, match=r"^fleetslurm does not support --exclusive=user;"):
        refuse_unsupported("sbatch", sbatch_options(["--exclusive=user"], "#!/bin/sh\n", {})[0])
    # the refused option's advice, where it has one
    with pytest.raises(UsageError, match=r"--pty; run the command without a terminal"):
        refuse_unsupported("srun", command_options("srun", ["--pty", "bash"], {})[0])


@pytest.mark.parametrize("argv", [
    ["srun", "--test-only", "true"],
    ["squeue", "--sort=i"],
    ["scontrol", "-d", "show", "job"],
    ["sacct", "-b"],
])
def test_refusal_as_a_command(tmp_path: Path, argv: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "FLEETSLURM_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *argv], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"{argv[0]}: error: fleetslurm does not support --"), proc
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").glob("*.sock"))


def test_docs_table_is_generated_from_the_code() -> None:
    text = (REPO / "docs" / "OPTIONS.md").read_text()
    assert text == markdown(), ("docs/OPTIONS.md is stale; regenerate it with "
                                "python -m fleetslurm.slurm.option_support > docs/OPTIONS.md")


def test_sbatch_clusters_takes_only_this_fleets_name(fleet) -> None:
    proc = fleet.run("sbatch", "--parsable", "-M", "other", "--hold", "--wrap", "true")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("sbatch: error: No cluster 'other' known by database.\n"
                                  "sbatch: error: 'other' can't be reached now"), proc.stderr
    assert fleet.run("squeue", "-h", "-t", "all", check=True).stdout == ""  # nothing submitted
    ours = fleet.run("scontrol", "show", "config", check=True).stdout
    name = next(line.split("=", 1)[1].strip() for line in ours.splitlines()
                if line.startswith("ClusterName"))
    proc = fleet.run("sbatch", "--parsable", "-M", name, "--hold", "--wrap", "true", check=True)
    assert proc.stdout.endswith(f";{name}\n")


def test_json_text_is_slurms(fleet) -> None:
    """squeue/sinfo --json: SLURM 22.05's v0.0.38 shape and text (checked
    against the real one in tests_slurm/test_json.py); filters are ignored
    there, as 22.05 does."""
    from fleetslurm.slurm.json_fmt import dumps

    assert dumps({"a": [], "b": {"c": "x/y", "d": None, "e": 1.0}}) == (
        '{\n  "a": [\n  ],\n  "b": {\n    "c": "x\\/y",\n    "d": null,\n    "e": 1.0\n  }\n}')
    job = fleet.sbatch("--hold", "--wrap", "true")
    text = fleet.run("squeue", "--json", "-u", "nobody", check=True).stdout
    data = json.loads(text)
    assert list(data) == ["meta", "errors", "jobs"] and not text.endswith("\n")
    (rec,) = data["jobs"]
    assert rec["job_id"] == job and rec["job_state"] == "PENDING"
    assert rec["state_reason"] == "JobHeldUser" and len(rec) == 110
    nodes = json.loads(fleet.run("sinfo", "--json", check=True).stdout)["nodes"]
    assert [n["name"] for n in nodes] == ["localhost"] and len(nodes[0]) == 45


def test_the_controller_refuses_them_too() -> None:
    """Submissions that do not come through sbatch's front end (the Python
    API, another client) meet the same table where the job is built."""
    from fleetslurm.slurm.jobspec import build_spec

    kw = dict(script="#!/bin/sh\ntrue\n", script_args=[], env={}, cwd="/tmp", submit_host="h",
              now=0.0)
    with pytest.raises(UsageError, match=r"^fleetslurm does not support --mem-per-gpu;"):
        build_spec({"mem_per_gpu": "1G"}, **kw)
    assert build_spec({"wckey": "x", "qos": "normal"}, **kw)["qos"] == "normal"


@pytest.mark.parametrize("argv,refused", [
    (["--mem=1G", "true"], "--mem"),
    (["-t", "5", "true"], "--time"),
    (["-D", "/tmp", "true"], "--chdir"),
    (["-p", "other", "true"], "--partition"),
    (["-N", "2", "true"], "--nodes"),
    (["-n", "2", "-N", "1", "-p", "debug", "-l", "-o", "x", "-J", "s", "true"], None),
])
def test_a_step_takes_only_step_options(argv, refused, capsys, monkeypatch,
                                        no_slurm_env) -> None:
    """srun inside a job: the job's options are the job's; given to a step
    they would be ignored, so they are refused (the job's own -N 1 and
    partition excepted)."""
    from fleetslurm.cli import srun_step

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "debug")
    ran = []
    monkeypatch.setattr(srun_step, "run_step", lambda *a, **k: ran.append(a) or 0)
    code = cli_main(["srun", *argv])
    err = capsys.readouterr().err
    if refused is None:
        assert code == 0 and len(ran) == 1 and err == "", err
    else:
        assert code == 1 and not ran
        assert err.startswith(f"srun: error: fleetslurm does not support {refused} for a job "
                              "step (srun inside a job); give it to the job itself"), err


def test_gpus_per_task_counts_per_task() -> None:
    """--gpus-per-task is per task: SLURM gives the job that many times -n."""
    from fleetslurm.slurm.jobspec import build_spec

    kw = dict(script="#!/bin/sh\ntrue\n", script_args=[], env={}, cwd="/tmp", submit_host="h",
              now=0.0)
    assert build_spec({"gpus_per_task": "2", "ntasks": "3"}, **kw)["gpus"] == 6
    assert build_spec({"gpus_per_task": "gpu:1"}, **kw)["gpus"] == 1
    assert build_spec({"gpus": "2", "gpus_per_task": "1", "ntasks": "1"}, **kw)["gpus"] == 2


@pytest.mark.parametrize("argv", [["sacct", "--help"], ["sacct", "-U"], ["scontrol", "-h"],
                                  ["sinfo", "--usage"], ["scancel", "--help"],
                                  ["srun", "--usage"]])
def test_help_prints_a_usage(argv, capsys) -> None:
    assert cli_main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"Usage: {argv[0]} ") and err == ""
