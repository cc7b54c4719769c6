"""scontrol show, sbatch -M, and job environment details, through the CLI."""

from __future__ import annotations


def test_scontrol_show_node_partition_config(fleet):
    node = fleet.run("scontrol", "show", "node", "localhost", check=True).stdout
    assert node.startswith("NodeName=localhost ")
    assert "CPUTot=2" in node and "RealMemory=4096" in node
    part = fleet.run("scontrol", "show", "partition", check=True).stdout
    assert part.startswith("PartitionName=debug\n")
    assert "PartitionName=short\n" in part and "MaxTime=00:10:00" in part
    assert "Default=YES" in part
    config = fleet.run("scontrol", "show", "config", check=True).stdout.splitlines()
    assert config[0].startswith("Configuration data as of ")
    # "%-23s = %s" lines, as SLURM prints them
    lines = [line for line in config[1:] if " = " in line]
    assert all(line.index(" = ") == max(23, len(line.split(" = ")[0].rstrip()))
               for line in lines), lines
    items = {k.strip(): v for k, v in (line.split(" = ", 1) for line in lines)}
    assert items["ClusterName"] == "testfleet"
    assert items["MinJobAge"] == "300 sec"
    assert items["MaxArraySize"] == "1001"
    assert items["KillWait"] == "2 sec"
    assert items["AccountingStorageEnforce"] == "associations,limits,qos"
    assert items["EnforcePartLimits"] == "NO"  # SLURM's default, the oracle's
    missing = fleet.run("scontrol", "show", "node", "nosuch")
    # the oracle prints this on stdout, and exits 1
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "Node nosuch not found\n", "")


def test_parsable_with_cluster(fleet):
    proc = fleet.run("sbatch", "--parsable", "-M", "testfleet", "--hold", "--wrap", "true")
    assert proc.returncode == 0, proc.stderr
    job, cluster = proc.stdout.strip().split(";")
    assert cluster == "testfleet" and int(job) > 0
    # without -M: the bare id, never ";cluster"
    assert ";" not in fleet.run("sbatch", "--parsable", "--hold", "--wrap", "true").stdout


def test_requested_resources_reach_the_environment(fleet):
    job = fleet.sbatch("-n", "2", "--mem-per-cpu=100M", "-p", "short", "--wrap",
                       "echo $SLURM_NTASKS $SLURM_NPROCS $SLURM_MEM_PER_CPU "
                       "$SLURM_CPUS_ON_NODE $SLURM_JOB_PARTITION ${SLURM_MEM_PER_NODE:-unset}")
    rec = fleet.wait(job)
    assert rec["state"] == "COMPLETED"
    assert rec["time_limit"] == 10  # the partition's MaxTime when --time is not given
    assert (fleet.work / f"slurm-{job}.out").read_text() == "2 2 100 2 short unset\n"
