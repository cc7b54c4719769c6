"""SLURM command-line parsing (fleetslurm.slurm.options / option_env / option_tables).

Every expectation marked "oracle:" was observed on Debian's slurm-wlm 22.05.8
running as a one-node cluster (/work/oracle/start.sh), on the date these tests
were written; the quoted text is the real command's first stderr line after
``prog: `` and the exit code it gave.
"""

from __future__ import annotations

import pytest

from fleetslurm.errors import UsageError
from fleetslurm.slurm.option_env import (
    ENV_VARS,
    command_options,
    env_options,
    sbatch_options,
)
from fleetslurm.slurm.option_tables import TABLES
from fleetslurm.slurm.options import (
    SACCT,
    SBATCH,
    SCANCEL,
    SINFO,
    SQUEUE,
    SRUN,
    Opt,
    getopt,
    parse_args,
    script_options,
)

POSIX = {"sbatch": True, "srun": True}


def error_of(prog: str, argv: list[str]) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse_args(prog, TABLES[prog], argv, posix_stop=POSIX.get(prog, False))
    assert info.value.prog == prog
    return info.value


# --------------------------------------------------------------------------
# glibc's error texts
# --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prog", "argv", "text"),
    [
        # oracle: `sbatch --foo` -> "unrecognized option '--foo'", exit 255
        ("sbatch", ["--foo"], "unrecognized option '--foo'"),
        # oracle: `sbatch --foo=3` -> the whole word, value included
        ("sbatch", ["--foo=3"], "unrecognized option '--foo=3'"),
        # oracle: `sbatch -Z`, exit 255
        ("sbatch", ["-Z"], "invalid option -- 'Z'"),
        # oracle: `sbatch --time`, exit 255
        ("sbatch", ["--time"], "option '--time' requires an argument"),
        # oracle: `sbatch -t`, exit 255
        ("sbatch", ["-t"], "option requires an argument -- 't'"),
        # oracle: `sbatch --parsable=3`, exit 255
        ("sbatch", ["--parsable=3"], "option '--parsable' doesn't allow an argument"),
        # oracle: `sbatch --pars=3` names the full option
        ("sbatch", ["--pars=3"], "option '--parsable' doesn't allow an argument"),
        # oracle: `sbatch --wra`
        ("sbatch", ["--wra"], "option '--wrap' requires an argument"),
        # oracle: `sbatch --o x`, exit 255
        (
            "sbatch",
            ["--o", "x"],
            "option '--o' is ambiguous; possibilities: '--open-mode' '--output' "
            "'--overcommit' '--oversubscribe'",
        ),
        # oracle: `sbatch --o=x` keeps the value in the quoted word
        (
            "sbatch",
            ["--o=x"],
            "option '--o=x' is ambiguous; possibilities: '--open-mode' '--output' "
            "'--overcommit' '--oversubscribe'",
        ),
        # oracle: `sbatch --nod`
        ("sbatch", ["--nod"], "option '--nod' is ambiguous; possibilities: '--nodefile' "
         "'--nodelist' '--nodes'"),
        # oracle: `sbatch --clu x`: table order, not alphabetical
        ("sbatch", ["--clu", "x"], "option '--clu' is ambiguous; possibilities: "
         "'--cluster-constraint' '--cluster' '--clusters'"),
        # oracle: `sbatch -H=1`: '=' is just another letter after a flag
        ("sbatch", ["-H=1"], "invalid option -- '='"),
        # oracle: `sbatch -vQz`
        ("sbatch", ["-vQz"], "invalid option -- 'z'"),
        # oracle: `srun --bogus` exit 255; `srun -y`; `srun --o x`
        ("srun", ["--bogus"], "unrecognized option '--bogus'"),
        ("srun", ["-y"], "invalid option -- 'y'"),
        ("srun", ["--o", "x"], "option '--o' is ambiguous; possibilities: '--open-mode' "
         "'--output' '--overcommit' '--overlap' '--oversubscribe'"),
        # oracle: `squeue --bogus` exit 1
        ("squeue", ["--bogus"], "unrecognized option '--bogus'"),
        ("squeue", ["-Z"], "invalid option -- 'Z'"),
        ("squeue", ["--format"], "option '--format' requires an argument"),
        ("squeue", ["-o"], "option requires an argument -- 'o'"),
        ("squeue", ["-u"], "option requires an argument -- 'u'"),
        ("squeue", ["--me=1"], "option '--me' doesn't allow an argument"),
        # oracle: aliases of the first match are not listed (sibling = sib)
        ("squeue", ["--s"], "option '--s' is ambiguous; possibilities: '--sib' '--sort' "
         "'--start' '--steps' '--states'"),
        # oracle: but aliases of each other that differ from the first match are
        ("squeue", ["--no"], "option '--no' is ambiguous; possibilities: '--noconvert' "
         "'--node' '--nodes' '--nodelist' '--noheader'"),
        ("squeue", ["--u"], "option '--u' is ambiguous; possibilities: '--usage' '--user' "
         "'--users'"),
        # oracle: `sinfo --bogus`, `sinfo -Z`, `sinfo -o`, `sinfo --o`, `sinfo --s` (exit 1)
        ("sinfo", ["--bogus"], "unrecognized option '--bogus'"),
        ("sinfo", ["-Z"], "invalid option -- 'Z'"),
        ("sinfo", ["-o"], "option requires an argument -- 'o'"),
        ("sinfo", ["--o"], "unrecognized option '--o'"),
        ("sinfo", ["--s"], "option '--s' is ambiguous; possibilities: '--summarize' "
         "'--sort' '--states'"),
        # oracle: `scancel --bogus`, `scancel -s`, `scancel --s`, `scancel --si` (exit 1)
        ("scancel", ["--bogus"], "unrecognized option '--bogus'"),
        ("scancel", ["-s"], "option requires an argument -- 's'"),
        ("scancel", ["--s"], "option '--s' is ambiguous; possibilities: '--sibling' "
         "'--signal' '--state'"),
        ("scancel", ["--si"], "option '--si' is ambiguous; possibilities: '--sibling' "
         "'--signal'"),
        ("scancel", ["--me=x"], "option '--me' doesn't allow an argument"),
        # oracle: `sacct --bogus`, `sacct -Z`, `sacct -o`, `sacct --o`, `sacct --nam` (exit 1)
        ("sacct", ["--bogus"], "unrecognized option '--bogus'"),
        ("sacct", ["-Z"], "invalid option -- 'Z'"),
        ("sacct", ["-o"], "option requires an argument -- 'o'"),
        ("sacct", ["--o"], "unrecognized option '--o'"),
        ("sacct", ["--nam"], "option '--name' requires an argument"),
    ],
)
def test_getopt_error_texts(prog: str, argv: list[str], text: str) -> None:
    err = error_of(prog, argv)
    assert str(err) == text
    # oracle: every command but sacct follows with 'Try "prog --help" for more information'
    assert err.hint is (prog != "sacct")


def test_first_error_wins_in_argument_order() -> None:
    # getopt stops at the first bad word; SLURM exits there
    assert str(error_of("squeue", ["-h", "--bogus", "-Z"])) == "unrecognized option '--bogus'"


# --------------------------------------------------------------------------
# getopt semantics
# --------------------------------------------------------------------------

def sb(*argv: str) -> tuple[dict[str, object], list[str]]:
    return parse_args("sbatch", SBATCH, list(argv), posix_stop=True)


def test_spellings_of_values() -> None:
    assert sb("--time=5")[0] == {"time": "5"}
    assert sb("--time", "5")[0] == {"time": "5"}
    assert sb("-t5")[0] == {"time": "5"}
    assert sb("-t", "5")[0] == {"time": "5"}
    assert sb("-n1", "-N", "2")[0] == {"ntasks": "1", "nodes": "2"}
    assert sb("--time=")[0] == {"time": ""}
    # a required value may itself look like an option
    assert sb("-J", "--foo")[0] == {"job_name": "--foo"}
    # oracle: `#SBATCH -o=x` wrote to /tmp/=x
    assert sb("-o=x")[0] == {"output": "=x"}


def test_bundled_short_flags_and_counts() -> None:
    assert sb("-vvH")[0] == {"verbose": 2, "hold": True}
    assert sb("-vHn3", "-v")[0] == {"verbose": 2, "hold": True, "ntasks": "3"}
    assert sb("--verbose", "--verb", "-v")[0] == {"verbose": 3}


def test_abbreviations_and_exact_match() -> None:
    assert sb("--out=x", "--err", "e", "--job=n")[0] == {"output": "x", "error": "e", "job_name": "n"}
    # exact --mem wins over --mem-bind/--mem-per-cpu/--mem-per-gpu
    assert sb("--mem=1G")[0] == {"mem": "1G"}
    assert sb("--gpus=2")[0] == {"gpus": "2"}
    # squeue --nod: node/nodes/nodelist are one option to glibc (oracle: accepted)
    assert parse_args("squeue", SQUEUE, ["--nod", "n1"], posix_stop=False)[0] == {"nodelist": "n1"}
    # aliases share a dest
    assert sb("--tasks-per-node=2")[0] == {"ntasks_per_node": "2"}
    assert parse_args("sacct", SACCT, ["--fields=a", "-o", "b"], posix_stop=False)[0] == {
        "format": ["a", "b"]
    }


def test_optional_arguments() -> None:
    assert sb("--nice")[0] == {"nice": True}
    assert sb("--nice=5")[0] == {"nice": "5"}
    # an optional value must be attached: the next word is the script (oracle:
    # `sbatch --nice` with no script read standard input)
    assert sb("--nice", "5") == ({"nice": True}, ["5"])
    assert sb("-k")[0] == {"no_kill": True}
    assert sb("-kyes")[0] == {"no_kill": "yes"}
    assert sb("--exclusive")[0] == {"exclusive": True}
    assert parse_args("squeue", SQUEUE, ["-j"], posix_stop=False) == ({"jobs": True}, [])
    assert parse_args("squeue", SQUEUE, ["-j", "5"], posix_stop=False) == ({"jobs": True}, ["5"])
    assert parse_args("squeue", SQUEUE, ["-j5,6"], posix_stop=False) == ({"jobs": "5,6"}, [])


def test_posix_stop_at_script_path() -> None:
    assert sb("-J", "x", "job.sh", "-v", "--foo", "--", "a") == (
        {"job_name": "x"},
        ["job.sh", "-v", "--foo", "--", "a"],
    )
    assert sb("--", "-J") == ({}, ["-J"])
    assert sb("-") == ({}, ["-"])
    assert parse_args("srun", SRUN, ["-n2", "hostname", "-n", "3"], posix_stop=True) == (
        {"ntasks": "2"},
        ["hostname", "-n", "3"],
    )


def test_permuted_positionals() -> None:
    assert parse_args("scancel", SCANCEL, ["12", "-s", "USR1", "13_2", "-b"], posix_stop=False) == (
        {"signal": "USR1", "batch": True},
        ["12", "13_2"],
    )
    assert parse_args("squeue", SQUEUE, ["a", "--", "-h", "b"], posix_stop=False) == (
        {},
        ["a", "-h", "b"],
    )
    assert parse_args("sinfo", SINFO, ["-", "-h"], posix_stop=False) == ({"noheader": True}, ["-"])


def test_lists_and_last_value() -> None:
    assert sb("--mail-type=BEGIN", "--mail-type", "END")[0] == {"mail_type": ["BEGIN", "END"]}
    assert sb("-J", "a", "-J", "b")[0] == {"job_name": "b"}
    opts, _ = parse_args("sacct", SACCT, ["-j", "1", "--jobs=2,3", "-s", "CD"], posix_stop=False)
    assert opts == {"jobs": ["1", "2,3"], "state": ["CD"]}


def test_getopt_keeps_order() -> None:
    pairs, _ = getopt("sbatch", SBATCH, ["--requeue", "--no-requeue", "-J", "x"], posix_stop=True)
    assert [(opt.dest, value) for opt, value in pairs] == [
        ("requeue", None),
        ("no_requeue", None),
        ("job_name", "x"),
    ]


# --------------------------------------------------------------------------
# the tables themselves
# --------------------------------------------------------------------------

def test_table_sizes_match_slurm_22_05() -> None:
    # counts of the struct option arrays dumped from the 22.05 binaries (+ short-only)
    assert [len(t) for t in (SBATCH, SRUN, SQUEUE, SINFO, SCANCEL, SACCT)] == [106, 131, 41, 29, 25, 56]


@pytest.mark.parametrize("prog", sorted(TABLES))
def test_tables_are_well_formed(prog: str) -> None:
    table = TABLES[prog]
    assert all(isinstance(opt, Opt) and opt.dest.isidentifier() for opt in table)
    longs = [opt.long for opt in table if opt.long]
    assert len(set(longs)) == len(longs)
    # aliases (--cluster/--clusters, both -M) share argument kind and dest
    for opt in table:
        if opt.short:
            same = [o for o in table if o.short == opt.short]
            assert {(o.arg, o.dest) for o in same} == {(opt.arg, opt.dest)}


def test_compat_options_present() -> None:
    kinds = {opt.long: opt.arg for opt in SBATCH}
    for name in (
        "job-name output error open-mode time nodes ntasks ntasks-per-node cpus-per-task "
        "cpus-per-gpu mem mem-per-cpu gpus gpus-per-node gpus-per-task gres array dependency "
        "signal chdir export partition account nodelist exclude constraint begin comment wckey "
        "qos reservation mail-type mail-user clusters ntasks-per-gpu wrap"
    ).split():
        assert kinds[name] == "required", name
    for name in "parsable requeue no-requeue hold test-only wait help usage version".split():
        assert kinds[name] == "none", name
    assert kinds["exclusive"] == kinds["nice"] == kinds["get-user-env"] == "optional"
    assert {o.short: o.long for o in SBATCH if o.short}["W"] == "wait"
    assert {o.short: o.arg for o in SRUN if o.short}["W"] == "required"  # srun -W secs


# --------------------------------------------------------------------------
# #SBATCH lines
# --------------------------------------------------------------------------

def so(body: str) -> list[str]:
    return script_options("#!/bin/sh\n" + body)


def test_script_quotes_and_spacing() -> None:
    # oracle: JobName=a b
    assert so('#SBATCH --job-name="a b"\ntrue\n') == ["--job-name=a b"]
    # oracle: JobName=x (whitespace after the magic word, tabs too; none needed)
    assert so("#SBATCH   -J x\n") == ["-J", "x"]
    assert so("#SBATCH\t-J tabbed\n") == ["-J", "tabbed"]
    assert so("#SBATCH-J x\n") == ["-J", "x"]
    # oracle: a"b c"d -> JobName=ab cd
    assert so('#SBATCH --job-name=a"b c"d\n') == ["--job-name=ab cd"]
    # oracle: "a\"b" -> a"b ; 'c\d' -> cd (backslash escapes even in single quotes)
    assert so("#SBATCH --job-name=\"a\\\"b\" --comment='c\\d'\n") == ['--job-name=a"b', "--comment=cd"]
    # oracle: `x\ y` -> the space still splits: "Invalid directive found in batch script: y"
    assert so("#SBATCH --comment=x\\ y\n") == ["--comment=x", "y"]
    # oracle: `#SBATCH --exclusive   ` -> OverSubscribe=NO
    assert so("#SBATCH --exclusive   \n") == ["--exclusive"]


def test_script_comments() -> None:
    # oracle: `#SBATCH -J x # comment` -> JobName=x
    assert so("#SBATCH -J x # comment\n") == ["-J", "x"]
    # oracle: `#SBATCH -J x#y --comment=c` -> JobName=x, no comment: '#' ends the line
    assert so("#SBATCH -J x#y --comment=c\n") == ["-J", "x"]
    # oracle: quoted or escaped '#' is kept: JobName=x#y, JobName=a#b
    assert so('#SBATCH -J "x#y" --comment=c\n') == ["-J", "x#y", "--comment=c"]
    assert so("#SBATCH -J a\\#b\n") == ["-J", "a#b"]
    # oracle: `-J "" --comment=c` -> "option requires an argument -- 'J'": an empty
    # word ends the line
    assert so('#SBATCH -J "" --comment=c\n') == ["-J"]


def test_script_which_lines_count() -> None:
    # oracle: indented, '# SBATCH' and '##SBATCH' lines are skipped and do not end
    # the block (Comment=after was applied; JobName stayed the script name)
    assert so(" #SBATCH -J no\n# SBATCH -J no\n##SBATCH -J no\n#SBATCH --comment=after\ntrue\n") == [
        "--comment=after"
    ]
    # oracle: JobName=before: the first command ends the scan
    assert so("#SBATCH -J before\ntrue\n#SBATCH -J after\n") == ["-J", "before"]
    # oracle: blank, whitespace-only and comment lines do not end it (JobName=late, Comment=ok)
    assert so("#comment\n\n#SBATCH --comment=ok\n  \t\n#SBATCH -J late\necho hi\n#SBATCH -J no\n") == [
        "--comment=ok",
        "-J",
        "late",
    ]
    # oracle: a second '#!' line is a comment (JobName=after2); '#SBATCH' inside the
    # shebang line is not a directive
    assert so("#!/bin/bash\n#SBATCH -J after2\n") == ["-J", "after2"]
    assert script_options("#!/bin/sh #SBATCH -J x\ntrue\n") == []
    # oracle: an empty '#SBATCH' line is fine (JobName=afterempty)
    assert so("#SBATCH\n#SBATCH -J afterempty\n") == ["-J", "afterempty"]
    # oracle: `#SBATCHX -J x` -> "Invalid directive found in batch script: X"
    assert so("#SBATCHX -J x\n") == ["X", "-J", "x"]
    # oracle: `-J` on one line takes its value from the next (JobName=splitname)
    assert so("#SBATCH -J\n#SBATCH splitname\n") == ["-J", "splitname"]


def test_script_old_magic_word() -> None:
    # oracle: JobName=slurmword, plus this message on stderr (submission succeeds)
    warnings: list[str] = []
    assert script_options("#!/bin/sh\n#SLURM -J slurmword\n#SLURM -v\n", warnings=warnings) == [
        "-J",
        "slurmword",
        "-v",
    ]
    assert warnings == [
        "error: Change from #SLURM to #SBATCH in your script and verify the options are valid in sbatch"
    ]


def test_script_unmatched_quote() -> None:
    # oracle: `sbatch: fatal: try_Q4EkvT.sh: line 2: Unmatched `"` in [--job-name="a b]`, exit 1
    with pytest.raises(UsageError) as info:
        script_options('#!/bin/sh\n#SBATCH --job-name="a b\ntrue\n', filename="job.sh")
    assert str(info.value) == 'fatal: job.sh: line 2: Unmatched `"` in [--job-name="a b]'
    assert info.value.prog == "sbatch" and not info.value.hint
    # oracle: the bracket holds the rest of the line from the end of the last word
    with pytest.raises(UsageError) as info:
        script_options("#!/bin/sh\n#SBATCH   -J x   --comment='a b   \n")
    assert str(info.value) == "fatal: stdin: line 2: Unmatched `'` in [   --comment='a b   ]"


# --------------------------------------------------------------------------
# sbatch: all three sources
# --------------------------------------------------------------------------

SCRIPT = "#!/bin/sh\n#SBATCH -J fromscript --comment=s\n#SBATCH --requeue\ntrue\n"


def test_sbatch_precedence() -> None:
    # oracle: script -J fromscript, SBATCH_JOB_NAME=envname -> JobName=envname
    opts, pos, raw = sbatch_options(["job.sh", "a1"], SCRIPT, {"SBATCH_JOB_NAME": "envname"})
    assert opts["job_name"] == "envname" and opts["comment"] == "s"
    assert pos == ["job.sh", "a1"]
    assert raw == ["-J", "fromscript", "--comment=s", "--requeue"]
    # oracle: `-J cmd` on the command line over both -> JobName=cmd, Comment=s
    opts, _, _ = sbatch_options(["-J", "cmd", "job.sh"], SCRIPT, {"SBATCH_JOB_NAME": "envname"})
    assert opts["job_name"] == "cmd" and opts["comment"] == "s"
    # oracle: --parsable may be a #SBATCH line (stdout was the bare id)
    assert sbatch_options([], "#!/bin/sh\n#SBATCH --parsable\n", {})[0] == {"parsable": True}


def test_sbatch_mail_type_accumulates() -> None:
    # oracle: two #SBATCH --mail-type lines -> MailType=BEGIN,END; script BEGIN plus
    # command-line FAIL -> MailType=BEGIN,FAIL
    script = "#!/bin/sh\n#SBATCH --mail-type=BEGIN\n#SBATCH --mail-type=END\n"
    assert sbatch_options([], script, {})[0] == {"mail_type": ["BEGIN", "END"]}
    script = "#!/bin/sh\n#SBATCH --mail-type=BEGIN\n"
    assert sbatch_options(["--mail-type=FAIL"], script, {})[0] == {"mail_type": ["BEGIN", "FAIL"]}


def test_sbatch_last_of_a_group_wins() -> None:
    # oracle: script --no-requeue + cli --requeue -> Requeue=1; the reverse -> 0;
    # `#SBATCH --requeue --no-requeue` -> 0
    assert sbatch_options(["--requeue"], "#!/bin/sh\n#SBATCH --no-requeue\n", {})[0] == {"requeue": True}
    assert sbatch_options(["--no-requeue"], SCRIPT, {})[0]["no_requeue"] is True
    assert "requeue" not in sbatch_options(["--no-requeue"], SCRIPT, {})[0]
    assert sbatch_options([], "#!/bin/sh\n#SBATCH --requeue --no-requeue\n", {})[0] == {
        "no_requeue": True
    }
    # oracle: script --exclusive + cli --oversubscribe -> OverSubscribe=YES, reverse -> NO
    opts = sbatch_options(["--oversubscribe"], "#!/bin/sh\n#SBATCH --exclusive\n", {})[0]
    assert opts == {"oversubscribe": True}
    # oracle: SBATCH_REQUEUE=1 SBATCH_NO_REQUEUE=1 -> Requeue=1 (read later)
    env = {"SBATCH_REQUEUE": "1", "SBATCH_NO_REQUEUE": "1"}
    assert sbatch_options([], "#!/bin/sh\n", env)[0] == {"requeue": True}


def test_sbatch_memory_options() -> None:
    # oracle: script --mem-per-cpu=100 + cli --mem=200 (and the reverse, and both in
    # the script) -> "sbatch: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are
    # mutually exclusive.", exit 1
    with pytest.raises(UsageError) as info:
        sbatch_options(["--mem=200"], "#!/bin/sh\n#SBATCH --mem-per-cpu=100\n", {})
    assert str(info.value) == "fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive."
    # oracle: SBATCH_MEM_PER_CPU=100 + cli --mem=200 -> MinMemoryNode=200M;
    # script --mem=100 + SBATCH_MEM_PER_CPU=50 -> MinMemoryNode=100M
    assert sbatch_options(["--mem=200"], "#!/bin/sh\n", {"SBATCH_MEM_PER_CPU": "100"})[0] == {
        "mem": "200"
    }
    assert sbatch_options([], "#!/bin/sh\n#SBATCH --mem=100\n", {"SBATCH_MEM_PER_CPU": "50"})[0] == {
        "mem": "100"
    }
    # oracle: SBATCH_MEM_PER_CPU=100 SBATCH_MEM_PER_NODE=300 -> this fatal, exit 1
    with pytest.raises(UsageError) as info:
        sbatch_options([], "#!/bin/sh\n", {"SBATCH_MEM_PER_CPU": "1", "SBATCH_MEM_PER_NODE": "3"})
    assert str(info.value) == (
        "fatal: SLURM_MEM_PER_CPU, SLURM_MEM_PER_GPU, and SLURM_MEM_PER_NODE are mutually exclusive."
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        # oracle: `#SBATCH -J x foo --comment=c` -> "sbatch: error: Invalid directive
        # found in batch script: foo", exit 255
        ("#SBATCH -J x foo --comment=c\n", "error: Invalid directive found in batch script: foo"),
        # oracle: `#SBATCH -- -J x` -> "... batch script: -J"
        ("#SBATCH -- -J x\n", "error: Invalid directive found in batch script: -J"),
        # oracle: the same glibc texts as on the command line (+ Try line, exit 255)
        ("#SBATCH --bogus\n", "unrecognized option '--bogus'"),
        ("#SBATCH -Z\n", "invalid option -- 'Z'"),
        ("#SBATCH --time\n", "option '--time' requires an argument"),
        ("#SBATCH --o x\n", "option '--o' is ambiguous; possibilities: '--open-mode' '--output' "
         "'--overcommit' '--oversubscribe'"),
    ],
)
def test_sbatch_bad_script_lines(body: str, text: str) -> None:
    with pytest.raises(UsageError) as info:
        sbatch_options(["job.sh"], "#!/bin/sh\n" + body, {})
    assert str(info.value) == text and info.value.prog == "sbatch"
    assert info.value.hint is text.startswith(("unrecognized", "invalid", "option"))


def test_sbatch_command_line_checked_before_script() -> None:
    with pytest.raises(UsageError, match="unrecognized option '--foo'"):
        sbatch_options(["--foo", "job.sh"], "#!/bin/sh\n#SBATCH --bogus\n", {})


def test_sbatch_hetjob_refused() -> None:
    # oracle: `#SBATCH hetjob` between two blocks made a 2-component job; not supported
    with pytest.raises(UsageError, match="heterogeneous jobs"):
        sbatch_options([], "#!/bin/sh\n#SBATCH -J a\n#SBATCH hetjob\n#SBATCH -J b\n", {})


# --------------------------------------------------------------------------
# input environment variables
# --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "on"),
    # oracle: SBATCH_NO_REQUEUE=<value> -> Requeue=0 (on) or 1 (ignored)
    [("", True), ("1", True), ("2", True), ("-1", True), ("+1", True), (" 1", True), ("\t3", True),
     ("yes", True), ("YES", True), ("Yes", True), ("0", False), ("00", False), (" 0", False),
     ("no", False), ("NO", False), ("false", False), ("true", False), ("on", False), ("y", False),
     ("n", False), ("off", False), ("foo", False), ("1abc", False), ("0x", False),
     ("yes please", False)],
)
def test_sbatch_flag_variables(value: str, on: bool) -> None:
    assert env_options("sbatch", {"SBATCH_NO_REQUEUE": value}) == ({"no_requeue": True} if on else {})


def test_sbatch_variables() -> None:
    env = {
        "SBATCH_PARTITION": "p",
        "SBATCH_TIMELIMIT": "5",  # oracle: TimeLimit=00:05:00
        "SBATCH_JOB_NAME": "",  # oracle: JobName= (empty)
        "SBATCH_EXCLUSIVE": "",  # oracle: OverSubscribe=NO (bare --exclusive)
        "SBATCH_EXPORT": "NONE",
        "SBATCH_DEBUG": "1",  # oracle: printed sbatch's option dump (-v)
        "SBATCH_CLUSTERS": "a",
        "SLURM_CLUSTERS": "b",  # read after SBATCH_CLUSTERS
        "SBATCH_MEM_PER_NODE": "1G",
        "SBATCH_GPUS": "2",
        "UNRELATED": "x",
    }
    assert env_options("sbatch", env) == {
        "partition": "p",
        "time": "5",
        "job_name": "",
        "exclusive": True,
        "export": "NONE",
        "verbose": 1,
        "clusters": "b",
        "mem": "1G",
        "gpus": "2",
    }
    # oracle: SBATCH_EXCLUSIVE=user -> OverSubscribe=USER; =0 -> "Invalid --exclusive specification"
    assert env_options("sbatch", {"SBATCH_EXCLUSIVE": "user"}) == {"exclusive": "user"}


def test_env_tables_name_real_options() -> None:
    for prog, pairs in ENV_VARS.items():
        dests = {opt.dest for opt in TABLES[prog]}
        assert {dest for _, dest in pairs} <= dests, prog


def test_scancel_variables() -> None:
    # oracle: SCANCEL_BATCH=true|T accepted, =F/false silent, =1/yes ->
    # "scancel: error: Unrecognized SCANCEL_BATCH value: 1" and the job is still signalled
    warnings: list[str] = []
    env = {"SCANCEL_BATCH": "1", "SCANCEL_FULL": "T", "SCANCEL_HURRY": "false", "SCANCEL_VERBOSE": "TRUE",
           "SCANCEL_NAME": "j"}
    assert env_options("scancel", env, warnings=warnings) == {"full": True, "verbose": 1, "name": "j"}
    assert warnings == ["error: Unrecognized SCANCEL_BATCH value: 1"]


def test_query_command_variables() -> None:
    # squeue tests getenv("SQUEUE_ALL") != NULL: any value turns it on
    assert env_options("squeue", {"SQUEUE_ALL": "0", "SQUEUE_USERS": "bob", "SQUEUE_FORMAT": "%i"}) == {
        "all": True,
        "user": "bob",
        "format": "%i",
    }
    assert env_options("sinfo", {"SINFO_FORMAT": "%P", "SINFO_PARTITION": "debug"}) == {
        "partition": "debug",
        "format": "%P",
    }
    assert env_options("sacct", {"SACCT_FORMAT": "JobID,State"}) == {"format": ["JobID,State"]}


def test_command_options_precedence() -> None:
    env = {"SQUEUE_USERS": "bob", "SQUEUE_FORMAT": "%j", "SQUEUE_FORMAT2": "name", "SQUEUE_ALL": "1"}
    assert command_options("squeue", [], env) == ({"all": True, "format": "%j", "user": "bob"}, [])
    # --me and -u set one field; --hide undoes SQUEUE_ALL; -l/-o/-O/-s/--start drop SQUEUE_FORMAT*
    assert command_options("squeue", ["--me", "--hide", "-l"], env) == (
        {"me": True, "hide": True, "long": True},
        [],
    )
    assert command_options("squeue", ["-u", "al", "5"], env)[0]["user"] == "al"
    assert command_options("sinfo", ["-o", "%N"], {"SINFO_FORMAT": "%P"}) == ({"format": "%N"}, [])
    assert command_options("sacct", ["-b"], {"SACCT_FORMAT": "x"}) == ({"brief": True}, [])
    assert command_options("sacct", ["-o", "a"], {"SACCT_FORMAT": "x"}) == ({"format": ["a"]}, [])
    env = {"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "j"}
    assert command_options("srun", ["-n2", "hostname", "-v"], env) == (
        {"job_name": "j", "ntasks": "2"},
        ["hostname", "-v"],
    )
    assert command_options("srun", ["true"], {"SLURM_NTASKS": "4"})[0] == {"ntasks": "4"}
    with pytest.raises(UsageError, match="unrecognized option '--bogus'"):
        command_options("scancel", ["--bogus"], {})
