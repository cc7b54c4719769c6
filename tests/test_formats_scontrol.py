"""scontrol_fmt against `scontrol show ...` captured from a real 22.05 (the oracle).

Each expected block names the oracle command that printed it; the job
records are the fleetslurm equivalents of those oracle jobs.
"""

import time

from fleetslurm.slurm.scontrol_fmt import show_config, show_job, show_node, show_partition


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


BASE = dict(
    job_id=5, array_job_id=None, array_task_id=None, array_task_str=None, name="x", user="root",
    uid=0, partition="debug", account="", state="PENDING", reason="JobHeldUser",
    submit_time=_epoch("2026-11-21T11:16:07"), eligible_time=None, start_time=None, end_time=None,
    time_limit=None, nodes=[], num_nodes=1, num_tasks=1, cpus=1, cpus_per_task=1, mem_mb=0, gpus=0,
    exit_code=None, exit_signal=None, workdir="/tmp", stdout="/tmp/slurm-5.out",
    stderr="/tmp/slurm-5.out", stdin="/dev/null", command="", comment="", priority=0, nice=0,
    features="", dependency="", restart_count=0, requeue=True, batch_host=None,
    submit_host="localhost", qos="", exclusive=False, alloc_sid=4883,
)


def test_pending_held_job_with_comment():
    # oracle: sbatch --hold --mem=500 -c 2 -J verylongjobname_abcdef --comment 'hello world' --wrap true
    #         scontrol show job 5   (job TRES mem is the request: 500M)
    job = dict(BASE, name="verylongjobname_abcdef", cpus=2, cpus_per_task=2, mem_mb=500,
               comment="hello world")
    assert show_job(job, now=job["submit_time"] + 100) == (
        "JobId=5 JobName=verylongjobname_abcdef\n"
        "   UserId=root(0) GroupId=root(0) MCS_label=N/A\n"
        "   Priority=0 Nice=0 Account=(null) QOS=(null)\n"
        "   JobState=PENDING Reason=JobHeldUser Dependency=(null)\n"
        "   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n"
        "   RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A\n"
        "   SubmitTime=2026-11-21T11:16:07 EligibleTime=Unknown\n"
        "   AccrueTime=Unknown\n"
        "   StartTime=Unknown EndTime=Unknown Deadline=N/A\n"
        "   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-21T11:16:07 Scheduler=Main\n"
        "   Partition=debug AllocNode:Sid=localhost:4883\n"
        "   ReqNodeList=(null) ExcNodeList=(null)\n"
        "   NodeList=\n"
        "   NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=2 ReqB:S:C:T=0:0:*:*\n"
        "   TRES=cpu=2,mem=500M,node=1,billing=2\n"
        "   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*\n"
        "   MinCPUsNode=2 MinMemoryNode=500M MinTmpDiskNode=0\n"
        "   Features=(null) DelayBoot=00:00:00\n"
        "   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)\n"
        "   Command=(null)\n"
        "   WorkDir=/tmp\n"
        "   Comment=hello world \n"
        "   StdErr=/tmp/slurm-5.out\n"
        "   StdIn=/dev/null\n"
        "   StdOut=/tmp/slurm-5.out\n"
        "   Power=\n"
        "   \n"
        "\n")


def test_pending_array_first_line():
    # oracle: sbatch --hold -a 0-9%4 -J arr --wrap true; scontrol show job 4 | head -1
    job = dict(BASE, job_id=4, array_job_id=4, array_task_str="0-9%4", name="arr")
    assert show_job(job, now=0).split("\n")[0] == "JobId=4 ArrayJobId=4 ArrayTaskId=0-9%4 ArrayTaskThrottle=4 JobName=arr"
    task = dict(BASE, job_id=61, array_job_id=59, array_task_id=3, name="arr")
    assert show_job(task, now=0).split("\n")[0] == "JobId=61 ArrayJobId=59 ArrayTaskId=3 JobName=arr"


RUNNING = dict(
    BASE, job_id=232, name="allrun", state="RUNNING", reason="None", cpus=2, cpus_per_task=2,
    mem_mb=2048, comment="hi", time_limit=5, submit_time=_epoch("2026-11-21T11:27:02"),
    eligible_time=_epoch("2026-11-21T11:27:02"), start_time=_epoch("2026-11-21T11:27:03"),
    nodes=["localhost"], batch_host="localhost", priority=4294901641, workdir="/tmp/fmtchk",
    stdout="/tmp/fmtchk/slurm-232.out", stderr="/tmp/fmtchk/slurm-232.out",
)

RUNNING_TEXT = (
    # oracle: sbatch -t 5 --mem=2G -c 2 --comment=hi -J allrun --wrap 'sleep 40'; scontrol show job 232
    "JobId=232 JobName=allrun\n"
    "   UserId=root(0) GroupId=root(0) MCS_label=N/A\n"
    "   Priority=4294901641 Nice=0 Account=(null) QOS=(null)\n"
    "   JobState=RUNNING Reason=None Dependency=(null)\n"
    "   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n"
    "   RunTime=00:00:01 TimeLimit=00:05:00 TimeMin=N/A\n"
    "   SubmitTime=2026-11-21T11:27:02 EligibleTime=2026-11-21T11:27:02\n"
    "   AccrueTime=2026-11-21T11:27:02\n"
    "   StartTime=2026-11-21T11:27:03 EndTime=2026-11-21T11:32:03 Deadline=N/A\n"
    "   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-21T11:27:03 Scheduler=Main\n"
    "   Partition=debug AllocNode:Sid=localhost:4883\n"
    "   ReqNodeList=(null) ExcNodeList=(null)\n"
    "   NodeList=localhost\n"
    "   BatchHost=localhost\n"
    "   NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=2 ReqB:S:C:T=0:0:*:*\n"
    "   TRES=cpu=2,mem=2G,node=1,billing=2\n"
    "   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*\n"
    "   MinCPUsNode=2 MinMemoryNode=2G MinTmpDiskNode=0\n"
    "   Features=(null) DelayBoot=00:00:00\n"
    "   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)\n"
    "   Command=(null)\n"
    "   WorkDir=/tmp/fmtchk\n"
    "   Comment=hi \n"
    "   StdErr=/tmp/fmtchk/slurm-232.out\n"
    "   StdIn=/dev/null\n"
    "   StdOut=/tmp/fmtchk/slurm-232.out\n"
    "   Power=\n"
    "   \n"
    "\n")


def test_running_job():
    assert show_job(RUNNING, now=RUNNING["start_time"] + 1) == RUNNING_TEXT


def test_failed_script_job_one_liner():
    # oracle: sbatch s.sh (exit 3); scontrol -o show job 39
    start = _epoch("2026-11-21T11:17:24")
    job = dict(BASE, job_id=39, name="scripted", state="FAILED", reason="NonZeroExitCode",
               submit_time=_epoch("2026-11-21T11:17:17"), eligible_time=_epoch("2026-11-21T11:17:17"),
               start_time=start, end_time=start, exit_code=3, exit_signal=0, nodes=["localhost"],
               batch_host="localhost", priority=4294901741, command="/tmp/fmtchk/s.sh", alloc_mem_mb=20000,
               workdir="/tmp/fmtchk", stdout="/tmp/fmtchk/slurm-39.out", stderr="/tmp/fmtchk/slurm-39.out")
    assert show_job(job, now=start + 500, one_liner=True) == (
        "JobId=39 JobName=scripted UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901741 "
        "Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) "
        "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:00 TimeLimit=UNLIMITED "
        "TimeMin=N/A SubmitTime=2026-11-21T11:17:17 EligibleTime=2026-11-21T11:17:17 "
        "AccrueTime=2026-11-21T11:17:17 StartTime=2026-11-21T11:17:24 EndTime=2026-11-21T11:17:24 "
        "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-21T11:17:24 "
        "Scheduler=Main Partition=debug AllocNode:Sid=localhost:4883 ReqNodeList=(null) "
        "ExcNodeList=(null) NodeList=localhost BatchHost=localhost NumNodes=1 NumCPUs=1 NumTasks=1 "
        "CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=20000M,node=1,billing=1 Socks/Node=* "
        "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 "
        "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) "
        "Network=(null) Command=/tmp/fmtchk/s.sh WorkDir=/tmp/fmtchk StdErr=/tmp/fmtchk/slurm-39.out "
        "StdIn=/dev/null StdOut=/tmp/fmtchk/slurm-39.out Power= \n")


def test_optional_lines_and_cancelled_job():
    # oracle: sbatch --hold --mail-type=END,FAIL --mail-user=a@b.c -A acct1 --nice=10 --exclusive
    #   -N 1 -n 2 --mem-per-cpu=100 -t 1-2:03:04 -x foo --no-requeue --comment=c -J big;
    #   scontrol show job 40  (selected lines)
    job = dict(BASE, job_id=40, name="big", account="acct1", nice=10, exclusive=True, num_tasks=2,
               cpus=2, mem_per_cpu_mb=100, time_limit=1564, exc_nodes=["foo"], requeue=False,
               comment="c", mail_type="END,FAIL", mail_user="a@b.c", max_nodes=1,
               dependency="afterok:3(unfulfilled)")
    text = show_job(job, now=0)
    for line in ["   Priority=0 Nice=10 Account=acct1 QOS=(null)\n",
                 "   JobState=PENDING Reason=JobHeldUser Dependency=afterok:3(unfulfilled)\n",
                 "   Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n",
                 "   RunTime=00:00:00 TimeLimit=1-02:04:00 TimeMin=N/A\n",
                 "   ReqNodeList=(null) ExcNodeList=foo\n",
                 "   NumNodes=1-1 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:*\n",
                 "   TRES=cpu=2,mem=200M,node=1,billing=2\n",
                 "   MinCPUsNode=1 MinMemoryCPU=100M MinTmpDiskNode=0\n",
                 "   OverSubscribe=NO Contiguous=0 Licenses=(null) Network=(null)\n",
                 "   Power=\n   MailUser=a@b.c MailType=END,FAIL\n   \n\n"]:
        assert line in text
    # oracle: scancel 3 (running, -t 10); scontrol show job 3
    start = _epoch("2026-11-21T11:16:07")
    cancelled = dict(RUNNING, job_id=3, state="CANCELLED", time_limit=10, start_time=start,
                     end_time=_epoch("2026-11-21T11:17:24"), exit_signal=15)
    text = show_job(cancelled, now=start + 9999)
    assert "   JobState=CANCELLED Reason=None Dependency=(null)\n" in text
    assert "ExitCode=0:15\n   RunTime=00:01:17 TimeLimit=00:10:00 TimeMin=N/A\n" in text
    assert "   StartTime=2026-11-21T11:16:07 EndTime=2026-11-21T11:17:24 Deadline=N/A\n" in text


def test_gpu_job_lines():
    # from job_info.c: TresPerNode after Power=, gres/gpu in TRES
    job = dict(RUNNING, gpus=2)
    text = show_job(job, now=RUNNING["start_time"] + 1)
    assert "   TRES=cpu=2,mem=2G,node=1,billing=2,gres/gpu=2\n" in text
    assert "   Power=\n   TresPerNode=gres:gpu:2\n   \n\n" in text


NODE = dict(name="localhost", hostname="localhost", state="idle", reason="", cpus=2, alloc_cpus=0,
            mem_mb=20000, alloc_mem_mb=0, free_mem_mb=23608, cpu_load=0.11, gpus=0, alloc_gpus=0,
            partitions=["debug"], features=[], weight=1, arch="x86_64",
            os="Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0", boot_time=_epoch("2026-11-21T11:11:33"),
            slurmd_start_time=_epoch("2026-11-21T11:15:39"), last_busy_time=_epoch("2026-11-21T11:19:56"),
            version="22.05.8")


def test_show_node_matches_oracle():
    # oracle: scontrol show node
    assert show_node(NODE, now=0) == (
        "NodeName=localhost Arch=x86_64 CoresPerSocket=1 \n"
        "   CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.11\n"
        "   AvailableFeatures=(null)\n"
        "   ActiveFeatures=(null)\n"
        "   Gres=(null)\n"
        "   NodeAddr=localhost NodeHostName=localhost Version=22.05.8\n"
        "   OS=Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0 \n"
        "   RealMemory=20000 AllocMem=0 FreeMem=23608 Sockets=2 Boards=1\n"
        "   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n"
        "   Partitions=debug \n"
        "   BootTime=2026-11-21T11:11:33 SlurmdStartTime=2026-11-21T11:15:39\n"
        "   LastBusyTime=2026-11-21T11:19:56\n"
        "   CfgTRES=cpu=2,mem=20000M,billing=2\n"
        "   AllocTRES=\n"
        "   CapWatts=n/a\n"
        "   CurrentWatts=0 AveWatts=0\n"
        "   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
        "\n")


def test_show_node_states_and_reason():
    # oracle: a 1-CPU 2G job running -> State=MIXED, AllocTRES=cpu=1,mem=2G
    text = show_node(dict(NODE, state="mix", alloc_cpus=1, alloc_mem_mb=2048), now=0)
    assert "   CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=0.11\n" in text
    assert "   State=MIXED ThreadsPerCore=1" in text and "   AllocTRES=cpu=1,mem=2G\n" in text
    # oracle: scontrol update NodeName=localhost State=DRAIN Reason="fmt check by helper"
    drained = dict(NODE, state="drain", reason="fmt check by helper", reason_user="root",
                   reason_time=_epoch("2026-11-21T11:23:01"))
    text = show_node(drained, now=0)
    assert "   State=IDLE+DRAIN ThreadsPerCore=1" in text
    assert text.endswith("ExtSensorsTemp=n/s\n   Reason=fmt check by helper [root@2026-11-21T11:23:01]\n\n")
    lost = dict(NODE, state="down", responding=False, cpu_load=None, free_mem_mb=None, version=None,
                os="", arch="")
    text = show_node(lost, now=0)
    assert text.startswith("NodeName=localhost CoresPerSocket=1 \n   CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=N/A\n")
    assert "   NodeAddr=localhost NodeHostName=localhost \n   RealMemory=20000 AllocMem=0 FreeMem=N/A" in text
    assert "   State=DOWN+NOT_RESPONDING " in text


def test_show_partition_matches_oracle():
    # oracle: scontrol show partition ; scontrol -o show partition
    part = dict(name="debug", default=True, state="up", max_time=None, default_time=None, priority=1,
                nodes=["localhost"])
    assert show_partition(part, nodes=[NODE]) == (
        "PartitionName=debug\n"
        "   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL\n"
        "   AllocNodes=ALL Default=YES QoS=N/A\n"
        "   DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO\n"
        "   MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED\n"
        "   Nodes=localhost\n"
        "   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO\n"
        "   OverTimeLimit=NONE PreemptMode=OFF\n"
        "   State=UP TotalCPUs=2 TotalNodes=1 SelectTypeParameters=NONE\n"
        "   JobDefaults=(null)\n"
        "   DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n"
        "   TRES=cpu=2,mem=20000M,node=1,billing=2\n"
        "\n")
    assert show_partition(part, nodes=[NODE], one_liner=True).endswith(
        "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=2,mem=20000M,node=1,billing=2\n")
    timed = show_partition(dict(part, max_time=1440 * 2 + 30, default_time=60, default=False), nodes=[NODE])
    assert "   DefaultTime=01:00:00 DisableRootJobs" in timed
    assert "MaxTime=2-00:30:00 " in timed and "Default=NO " in timed


def test_show_config_matches_oracle_layout():
    # oracle: scontrol show config (first lines, MinJobAge, last lines)
    text = show_config([("AccountingStorageBackupHost", "(null)"), ("AccountingStorageHost", "localhost"),
                        ("MaxArraySize", "1001"), ("MinJobAge", "300 sec")],
                       now=_epoch("2026-11-21T11:23:24"), footer=["Slurmctld(primary) at vm is UP"])
    assert text == (
        "Configuration data as of 2026-11-21T11:23:24\n"
        "AccountingStorageBackupHost = (null)\n"
        "AccountingStorageHost   = localhost\n"
        "MaxArraySize            = 1001\n"
        "MinJobAge               = 300 sec\n"
        "\n"
        "Slurmctld(primary) at vm is UP\n")
    assert show_config([("A", "b")]) == "A                       = b\n"
