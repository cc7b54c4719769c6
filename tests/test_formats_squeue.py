"""squeue_fmt against output captured from a real squeue 22.05 (the oracle).

Each expected string says which oracle command produced it. Re-record by
running the command on the oracle (/work/oracle/start.sh) for an equivalent
job and pasting the output.
"""

import time

import pytest

from fleetslurm.slurm import squeue_fmt
from fleetslurm.slurm.squeue_fmt import DEFAULT_FORMAT, Item, format_warnings, parse_format, render


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


SUBMIT = _epoch("2026-11-21T11:16:07")

HELD = dict(  # sbatch --hold -J heldjob --wrap true
    job_id=2, array_job_id=None, array_task_id=None, array_task_str=None, name="heldjob",
    user="root", uid=0, partition="debug", account="", state="PENDING", reason="JobHeldUser",
    submit_time=SUBMIT, start_time=None, end_time=None, time_limit=None, nodes=[], num_nodes=1,
    cpus=1, cpus_per_task=1, mem_mb=0, gpus=0, priority=0, nice=0, workdir="/tmp", command="",
    comment="", features="", dependency="", qos="", batch_host=None,
)
LONG = dict(HELD, job_id=5, name="verylongjobname_abcdef", cpus=2, cpus_per_task=2, mem_mb=500,
            comment="hello world")  # sbatch --hold --mem=500 -c 2 -J verylong... --comment 'hello world'
ARRAY = dict(HELD, job_id=4, array_job_id=4, array_task_str="0-9%4", name="arr")  # --hold -a 0-9%4
RUNNER = dict(HELD, job_id=3, name="runner", state="RUNNING", reason="None", time_limit=10,
              start_time=SUBMIT, nodes=["localhost"], batch_host="localhost",
              priority=4294901758)  # sbatch -J runner -t 10 --wrap 'sleep 600'


def test_default_format_constant():
    assert DEFAULT_FORMAT == "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"


def test_default_output_matches_oracle():
    # oracle: squeue   (4 s after job 3 started)
    expected = (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
        "                 5     debug verylong     root PD       0:00      1 (JobHeldUser)\n"
        "         4_[0-9%4]     debug      arr     root PD       0:00      1 (JobHeldUser)\n"
        "                 2     debug  heldjob     root PD       0:00      1 (JobHeldUser)\n"
        "                 3     debug   runner     root  R       0:04      1 localhost\n"
    )
    out = render(DEFAULT_FORMAT, [LONG, ARRAY, HELD, RUNNER], now=SUBMIT + 4)
    assert out == expected


def test_all_letters_pending_job_match_oracle():
    # oracle: squeue -j 2 -o %all   (held job)
    expected = (
        "ACCOUNT|TRES_PER_NODE|MIN_CPUS|MIN_TMP_DISK|END_TIME|FEATURES|GROUP|OVER_SUBSCRIBE|JOBID|"
        "NAME|COMMENT|TIME_LIMIT|MIN_MEMORY|REQ_NODES|COMMAND|PRIORITY|QOS|REASON||ST|USER|"
        "RESERVATION|WCKEY|EXC_NODES|NICE|S:C:T|JOBID|EXEC_HOST|CPUS|NODES|DEPENDENCY|ARRAY_JOB_ID|"
        "GROUP|SOCKETS_PER_NODE|CORES_PER_SOCKET|THREADS_PER_CORE|ARRAY_TASK_ID|TIME_LEFT|TIME|"
        "NODELIST|CONTIGUOUS|PARTITION|PRIORITY|NODELIST(REASON)|START_TIME|STATE|UID|SUBMIT_TIME|"
        "LICENSES|CORE_SPEC|SCHEDNODES|WORK_DIR\n"
        "(null)|N/A|1|0|N/A|(null)|root|OK|2|heldjob|(null)|UNLIMITED|0||(null)|0.00000000000000|"
        "(null)|JobHeldUser||PD|root|(null)|(null)||0|*:*:*|2|n/a|1|1|(null)|2|0|*|*|*|N/A|UNLIMITED|"
        "0:00||0|debug|0|(JobHeldUser)|N/A|PENDING|0|2026-11-21T11:16:07|(null)|N/A|(null)|/tmp\n"
    )
    assert render("%all", [HELD], now=SUBMIT + 60) == expected


def test_all_letters_running_job_match_oracle():
    # oracle: sbatch -t 5 --mem=2G -c 2 --comment=hi -J allrun --wrap 'sleep 40'; squeue -j 232 -o %all
    start = _epoch("2026-11-21T11:27:03")
    job = dict(HELD, job_id=232, name="allrun", state="RUNNING", reason="None", time_limit=5,
               submit_time=_epoch("2026-11-21T11:27:02"), start_time=start, nodes=["localhost"],
               batch_host="localhost", cpus=2, cpus_per_task=2, mem_mb=2048, comment="hi",
               priority=4294901641, workdir="/tmp/fmtchk")
    expected_row = (
        "(null)|N/A|2|0|2026-11-21T11:32:03|(null)|root|OK|232|allrun|hi|5:00|2G||(null)|"
        "0.99998471373692|(null)|None||R|root|(null)|(null)||0|*:*:*|232|localhost|2|1|(null)|232|"
        "0|*|*|*|N/A|4:59|0:01|localhost|0|debug|4294901641|localhost|2026-11-21T11:27:03|RUNNING|"
        "0|2026-11-21T11:27:02|(null)|N/A|(null)|/tmp/fmtchk\n"
    )
    assert render("%all", [job], now=start + 1, header=False) == expected_row


@pytest.mark.parametrize("fmt, header, row_pending, row_running", [
    # oracle: squeue -t all -o "<fmt>"
    ("%0i|%.0i|", "JOBID|JOBID|", "2|2|", "3|3|"),
    ("a%i b", "aJOBID b", "a2 b", "a3 b"),
    ("%5i|", "JOBID|", "2    |", "3    |"),
    ("%Xi", "CORE_SPECi", "N/Ai", "N/Ai"),
    ("%.3R|%3R|", "NODELIST(REASON)|NOD|", "(Jo|(Jo|", "localhost|loc|"),
    ("%.20R|%20N|", "    NODELIST(REASON)|NODELIST            |",
     "       (JobHeldUser)|                    |", "           localhost|localhost           |"),
    ("%.i", "JOBID", "2", "3"),
    ('"%i","%j"', '"JOBID","NAME"', '"2","heldjob"', '"3","runner"'),
    ("%.2j|%.5T|%.5M|%.2L", "NA|STATE| TIME|TI", "he|PENDI| 0:00|UN", "ru|RUNNI| 0:04|9:56"),
    ("%", "", "", ""),
    ("no fields", "no fields", "no fields", "no fields"),
])
def test_format_strings_match_oracle(fmt, header, row_pending, row_running):
    out = render(fmt, [HELD, RUNNER], now=SUBMIT + 4)
    assert out == f"{header}\n{row_pending}\n{row_running}\n"


@pytest.mark.parametrize("fmt, printed, warning", [
    # oracle: squeue -o "<fmt>" prints "squeue: error: <warning>" and rc 0
    ("%%|%i", "%|JOBID", "Invalid job format specification: |"),
    ("%-5i|", "%-5i|", "Invalid job format specification: -"),
    ("%5", "%5", "Invalid job format specification: "),
    ("%.", "%.", "Invalid job format specification: "),
    ("%1.5i", "%1.5i", "Invalid job format specification: ."),
    ("%10%", "%10", "Invalid job format specification: "),
])
def test_invalid_specifications_are_printed_verbatim(fmt, printed, warning):
    items = parse_format(fmt)
    assert format_warnings(items) == [warning]
    assert render(fmt, [], now=0).splitlines()[0] == printed


def test_cut_rules_for_long_values():
    # oracle: squeue -o "%.8i %.9P %.8j"  on 4_[0-9%4] and the long name
    assert render("%.8i|%.5j", [ARRAY, LONG], now=SUBMIT, header=False) == "4_[0-9%4|  arr\n       5|veryl\n"


def test_memory_values_match_oracle():
    # oracle: sbatch --hold --mem=<m>; squeue -o "%m"
    cases = {4000: "4000M", 1500: "1500M", 4096: "4G", 2048: "2G", 1024: "1G", 1: "1M",
             1000000: "1000000M", 3 * 1024 * 1024: "3T", 1025: "1025M", 0: "0"}
    for mb, text in cases.items():
        assert render("%m", [dict(HELD, mem_mb=mb)], now=0, header=False) == text + "\n"
    # --mem-per-cpu=1000 -c 2 shows the per-CPU figure
    assert render("%m", [dict(HELD, mem_per_cpu_mb=1000)], now=0, header=False) == "1000M\n"


def test_finished_jobs_show_reason_only_when_failed_or_timed_out():
    # oracle: squeue -t all -o "%.5i %.10T %.10M %R" for a FAILED (exit 3) and a CANCELLED job
    start = _epoch("2026-11-21T11:17:24")
    failed = dict(RUNNER, job_id=39, state="FAILED", reason="NonZeroExitCode", start_time=start,
                  end_time=start, time_limit=None)
    cancelled = dict(RUNNER, state="CANCELLED", end_time=SUBMIT + 77)
    never_ran = dict(HELD, job_id=23, state="CANCELLED", start_time=start, end_time=start)
    out = render("%.5i %.10T %.10M %.10L %R", [failed, cancelled, never_ran], now=start + 999, header=False)
    assert out == ("   39     FAILED       0:00  UNLIMITED (NonZeroExitCode)\n"
                   "    3  CANCELLED       1:17       8:43 localhost\n"
                   "   23  CANCELLED       0:00  UNLIMITED \n")


def test_array_task_and_times():
    task = dict(RUNNER, job_id=61, array_job_id=59, array_task_id=3, time_limit=2 * 1440 + 1)
    out = render("%i|%A|%F|%K|%l|%S", [task], now=SUBMIT + 3700, header=False)
    assert out == f"59_3|61|59|3|2-00:01:00|{time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(SUBMIT))}\n"
    # running unlimited job: END_TIME NONE; hours in TIME
    out = render("%e|%M", [dict(RUNNER, time_limit=None)], now=SUBMIT + 3700, header=False)
    assert out == "NONE|1:01:40\n"


def test_tres_per_node_from_gpus():
    assert render("%b", [dict(HELD, gpus=2)], now=0, header=False) == "gres:gpu:2\n"
    assert render("%b", [dict(HELD, tres_per_node="gres:gpu:a100:1")], now=0, header=False) == \
        "gres:gpu:a100:1\n"


def test_parse_format_items():
    assert parse_format("x%.5i y") == [Item(None, suffix="x"), Item("i", 5, True, " y")]
    assert squeue_fmt.parse_format("") == []
