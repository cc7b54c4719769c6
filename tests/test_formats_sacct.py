"""sacct_fmt against a real sacct 22.05.

sacct cannot read the shared oracle (no slurmdbd), so the expectations come
from the real `sacct` binary of the same 22.05 build reading a private
slurmdbd + MariaDB into which job and step rows were written the way
slurmctld records them (pending jobs: NodeList "None assigned"; a cancelled
job: job row ExitCode 0:0, batch step CANCELLED 0:15; a timed-out job:
batch step CANCELLED 0:15). Each expected block names the sacct command.
Field names, order and widths: `sacct --helpformat` and `sacct -o ALL`.
"""

import time

import pytest

from fleetslurm.errors import UsageError
from fleetslurm.slurm.sacct_fmt import DEFAULT_FIELDS, FIELD_NAMES, Field, parse_fields, render, rows_for


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


SUBMIT = _epoch("2026-11-21T10:19:56")
BASE = dict(job_id=101, array_job_id=None, array_task_id=None, array_task_str=None, name="done",
            user="root", uid=0, partition="debug", account="root", state="COMPLETED", reason="None",
            submit_time=SUBMIT, eligible_time=SUBMIT, start_time=None, end_time=None, time_limit=None,
            nodes=["localhost"], num_nodes=1, cpus=1, mem_mb=0, alloc_mem_mb=20000, exit_code=0,
            exit_signal=0, cancelled_by=None, max_rss_kb=None, total_cpu=0.0, batch_host="localhost",
            comment="")


def _job(**kw):
    return dict(BASE, **kw)


DONE = _job(start_time=_epoch("2026-11-21T10:20:06"), end_time=_epoch("2026-11-21T10:21:11"),
            time_limit=60, total_cpu=15.75, max_rss_kb=1234)
FAILS = _job(job_id=102, name="fails", state="FAILED", exit_code=3, start_time=_epoch("2026-11-21T10:20:16"),
             end_time=_epoch("2026-11-21T10:20:17"), max_rss_kb=None)
CANCELLED = _job(job_id=103, name="cancelme", state="CANCELLED", cancelled_by=0, exit_signal=15,
                 start_time=_epoch("2026-11-21T10:20:26"), end_time=_epoch("2026-11-21T10:26:36"))
WAITING = _job(job_id=104, name="waiting", state="PENDING", nodes=[], cpus=2, mem_mb=4096, batch_host=None)
TIMEOUT = _job(job_id=108, name="tmo", state="TIMEOUT", time_limit=1, start_time=_epoch("2026-11-21T10:21:36"),
               end_time=_epoch("2026-11-21T10:22:36"))
OOM = _job(job_id=110, name="oom", state="OUT_OF_MEMORY", exit_signal=125, comment="needs more mem",
           start_time=_epoch("2026-11-21T10:24:56"), end_time=_epoch("2026-11-21T10:25:06"))
CXL_PENDING = _job(job_id=113, name="cxlpend", state="CANCELLED", cancelled_by=1000, nodes=[],
                   batch_host=None, end_time=_epoch("2026-11-21T10:31:36"))
TASK0 = _job(job_id=105, array_job_id=105, array_task_id=0, name="arr",
             start_time=_epoch("2026-11-21T10:20:36"), end_time=_epoch("2026-11-21T10:20:46"), max_rss_kb=None)
REST = _job(job_id=107, array_job_id=105, array_task_str="2-5%2", name="arr", state="PENDING",
            nodes=[], batch_host=None)


def _rows(*jobs, x=False):
    return [row for job in jobs for row in rows_for(job, allocations_only=x)]


def test_default_fields():
    assert DEFAULT_FIELDS == "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"
    assert len(FIELD_NAMES) == 109 and FIELD_NAMES[:3] == ["Account", "AdminComment", "AllocCPUS"]


def test_default_output():
    # sacct -j 101,102,103,104,108,110,113,105
    out = render(parse_fields(DEFAULT_FIELDS), _rows(DONE, FAILS, CANCELLED, WAITING, TIMEOUT, OOM,
                                                       CXL_PENDING, TASK0, REST))
    assert out == (
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode \n"
        "------------ ---------- ---------- ---------- ---------- ---------- -------- \n"
        "101                done      debug       root          1  COMPLETED      0:0 \n"
        "101.batch         batch                  root          1  COMPLETED      0:0 \n"
        "102               fails      debug       root          1     FAILED      3:0 \n"
        "102.batch         batch                  root          1     FAILED      3:0 \n"
        "103            cancelme      debug       root          1 CANCELLED+      0:0 \n"
        "103.batch         batch                  root          1  CANCELLED     0:15 \n"
        "104             waiting      debug       root          2    PENDING      0:0 \n"
        "108                 tmo      debug       root          1    TIMEOUT      0:0 \n"
        "108.batch         batch                  root          1  CANCELLED     0:15 \n"
        "110                 oom      debug       root          1 OUT_OF_ME+    0:125 \n"
        "110.batch         batch                  root          1 OUT_OF_ME+    0:125 \n"
        "113             cxlpend      debug       root          1 CANCELLED+      0:0 \n"
        "105_0               arr      debug       root          1  COMPLETED      0:0 \n"
        "105_0.batch       batch                  root          1  COMPLETED      0:0 \n"
        "105_[2-5%2]         arr      debug       root          1    PENDING      0:0 \n")


def test_parsable2_many_fields():
    # sacct -j 101,105 -P -o jobid,jobidraw,jobname,state,exitcode,nodelist,elapsed,start,end,submit,
    #                       totalcpu,nnodes,ncpus,maxrss,reqmem,reason,user,timelimit
    spec = ("jobid,jobidraw,jobname,state,exitcode,nodelist,elapsed,start,end,submit,totalcpu,nnodes,"
            "ncpus,maxrss,reqmem,reason,user,timelimit")
    out = render(parse_fields(spec), _rows(DONE, TASK0, REST), mode="parsable2")
    assert out == (
        "JobID|JobIDRaw|JobName|State|ExitCode|NodeList|Elapsed|Start|End|Submit|TotalCPU|NNodes|"
        "NCPUS|MaxRSS|ReqMem|Reason|User|Timelimit\n"
        "101|101|done|COMPLETED|0:0|localhost|00:01:05|2026-11-21T10:20:06|2026-11-21T10:21:11|"
        "2026-11-21T10:19:56|00:15.750|1|1||20000M|None|root|01:00:00\n"
        "101.batch|101.batch|batch|COMPLETED|0:0|localhost|00:01:05|2026-11-21T10:20:06|"
        "2026-11-21T10:21:11|2026-11-21T10:20:06|00:15.750|1|1|1234K||||\n"
        "105_0|105|arr|COMPLETED|0:0|localhost|00:00:10|2026-11-21T10:20:36|2026-11-21T10:20:46|"
        "2026-11-21T10:19:56|00:00:00|1|1||20000M|None|root|UNLIMITED\n"
        "105_0.batch|105.batch|batch|COMPLETED|0:0|localhost|00:00:10|2026-11-21T10:20:36|"
        "2026-11-21T10:20:46|2026-11-21T10:20:36|00:00:00|1|1|||||\n"
        "105_[2-5%2]|107|arr|PENDING|0:0|None assigned|00:00:00|Unknown|Unknown|2026-11-21T10:19:56|"
        "00:00:00|1|1||20000M|None|root|UNLIMITED\n")


def test_parsable_trailing_bar_and_noheader():
    # sacct -j 101,104 -p -o jobid,state,maxrss,comment
    out = render(parse_fields("jobid,state,maxrss,comment"), _rows(DONE, WAITING), mode="parsable")
    assert out == "JobID|State|MaxRSS|Comment|\n101|COMPLETED|||\n101.batch|COMPLETED|1234K||\n104|PENDING|||\n"
    # sacct -j 101 -n -X
    assert render(parse_fields(DEFAULT_FIELDS), _rows(DONE, x=True), header=False) == (
        "101                done      debug       root          1  COMPLETED      0:0 \n")


def test_widths_cut_and_alignment():
    # sacct -j 110,104,113 -o jobid%-20,state%-20,exitcode%-4,comment,reqmem,nodelist%5,start%12,
    #                         elapsed%3,ncpus%2,jobname%-20
    spec = "jobid%-20,state%-20,exitcode%-4,comment,reqmem,nodelist%5,start%12,elapsed%3,ncpus%2,jobname%-20"
    out = render(parse_fields(spec), _rows(WAITING, OOM, CXL_PENDING))
    assert out == (
        "JobID                State                Exit        Comment     ReqMem NodeL        Start Ela NC JobName              \n"
        "-------------------- -------------------- ---- -------------- ---------- ----- ------------ --- -- -------------------- \n"
        "104                  PENDING              0:0                         4G None+      Unknown 00:00:00  2 waiting              \n"
        "110                  OUT_OF_MEMORY        0:1+ needs more mem     20000M loca+ 2026-11-21T1 00:00:10  1 oom                  \n"
        "110.batch            OUT_OF_MEMORY        0:1+                           loca+ 2026-11-21T1 00:00:10  1 batch                \n"
        "113                  CANCELLED by 1000    0:0                     20000M None+      Unknown 00:00:00  1 cxlpend              \n")
    # sacct -o jobid%-5,state%-20,start%10,elapsed%3,exitcode%2,alloccpus%1,ncpus%-6,jobname%-3 -j 101
    spec = "jobid%-5,state%-20,start%10,elapsed%3,exitcode%2,alloccpus%1,ncpus%-6,jobname%-3"
    assert render(parse_fields(spec), _rows(DONE)) == (
        "JobID State                     Start Ela Ex A NCPUS  Job \n"
        "----- -------------------- ---------- --- -- - ------ --- \n"
        "101   COMPLETED            2026-11-21 00:01:05 0+ 1 1      do+ \n"
        "101.+ COMPLETED            2026-11-21 00:01:05 0+ 1 1      ba+ \n")


def test_field_parsing_quirks():
    names = lambda spec: [(f.name, f.width) for f in parse_fields(spec)]  # noqa: E731
    # prefix match, first in table order, canonical names
    assert names("jobid,jobn,part%-3,acc%20,alloc,state,exitc,nodel, elap") == [
        ("JobID", -12), ("JobName", 10), ("Partition", -3), ("Account", 20), ("AllocCPUS", 10),
        ("State", 10), ("ExitCode", 8), ("NodeList", 15), ("Elapsed", 10)]
    # sacct -o jobid%5,jobid%20: the width belongs to the field, the last one wins
    assert names("jobid%5,jobid%20") == [("JobID", 20), ("JobID", 20)]
    # sacct -o 'jobid,,state': the list ends at an empty entry
    assert names("jobid,,state") == [("JobID", -12)]
    # "a", "al", "all" and an empty name mean every field
    assert len(parse_fields("a")) == 109 and len(parse_fields("%20")) == 109
    assert parse_fields("ALL%7")[5] == Field("AssocID", 7, "u")
    assert names("jobid%0,state%-0,exitcode%x") == [("JobID", 0), ("State", 0), ("ExitCode", 0)]
    assert parse_fields("") == []


@pytest.mark.parametrize("spec, message", [
    # sacct -o <spec>: "sacct: error: <message>", exit 1
    ("foo", 'Invalid field requested: "foo"'),
    ("jobid ,state", 'Invalid field requested: "jobid "'),
    ("JobID,Foo%12", 'Invalid field requested: "Foo"'),
    ("jobidx", 'Invalid field requested: "jobidx"'),
    # sacct -o allocgres: "sacct: fatal: ..."
    ("allocgres", "AllocGRES has been removed, please use AllocTRES"),
    ("ReqGRES", "ReqGRES has been removed, please use ReqTRES"),
])
def test_field_errors(spec, message):
    with pytest.raises(UsageError) as info:
        parse_fields(spec)
    assert str(info.value) == message and info.value.prog == "sacct"


def test_zero_width_and_empty_field_list():
    # sacct -o jobid%0,state%-0,exitcode%x   (header and dash line are blanks)
    assert render(parse_fields("jobid%0,state%-0,exitcode%x"), []) == "   \n   \n"
    # sacct -o ''
    assert render(parse_fields(""), []) == "\n\n"


def test_running_job_and_cpu_times():
    start = _epoch("2026-11-21T10:23:16")
    running = _job(job_id=109, name="running", state="RUNNING", start_time=start, time_limit=2880)
    rows = rows_for(running, allocations_only=False, now=start + 3407)
    out = render(parse_fields("jobid,elapsed,end,timelimit,state"), rows, mode="parsable2", header=False)
    # sacct -j 109 -P -o jobid,elapsed,end,timelimit,state
    assert out == ("109|00:56:47|Unknown|2-00:00:00|RUNNING\n"
                   "109.batch|00:56:47|Unknown||RUNNING\n")
    # TotalCPU / MaxRSS / ReqMem formatting (sacct print.c _elapsed_time, convert_num_unit exact)
    long_job = _job(total_cpu=30 * 3600 + 10, start_time=start, end_time=start + 90061, max_rss_kb=3 * 1024 ** 2,
                    mem_per_cpu_mb=2000, cpus=44, nodes=["node%03d" % i for i in (1, 2, 3, 12)], num_nodes=4,
                    batch_host="node001")
    out = render(parse_fields("totalcpu,elapsed,maxrss,reqmem,nodelist%-20"), rows_for(long_job, allocations_only=False),
                 mode="parsable2", header=False)
    assert out == "1-06:00:10|1-01:01:01||88000M|node[001-003,012]\n1-06:00:10|1-01:01:01|3G||node001\n"


def test_pending_job_has_no_step_and_extras():
    rows = rows_for(WAITING, allocations_only=False)
    assert len(rows) == 1 and rows[0]["nodelist"] == "None assigned" and rows[0]["reqmem"] == "4G"
    out = render(parse_fields("uid,group,gid,cputime,cputimeraw,elapsedraw,timelimitraw,derivedexitcode"),
                 _rows(DONE), mode="parsable2", header=False)
    # sacct -j 101 -P -o uid,group,gid,cputime,cputimeraw,elapsedraw,timelimitraw,derivedexitcode
    assert out == "0|root|0|00:01:05|65|65|60|0:0\n|||00:01:05|65|65||\n"
