"""Fleet throughput over SSH, next to the peers a lab would use instead.

Starts four real sshd "machines" on loopback (the multi-machine tests'
fixture: 127.0.0.2-5, each with its own host key, port and workdir; declared
2, 4, 8 and 2 CPUs), then runs the same N trivial jobs with each runner, in
one run:

1. fleetslurm: N jobs submitted over one client connection, timed from the
   first submission to the last COMPLETED; without a shared filesystem (each
   job's output copied home) and with ``shared_fs: true``.
2. One ssh channel per job over an ssh ControlMaster per machine (what a
   sysadmin writes by hand): per machine an ``xargs -P <its CPUs>`` running
   ``ssh -S <control socket> HOST sh -c JOB`` over its share of the jobs.
3. GNU parallel: ``parallel -M --sshlogin`` (ControlMaster, one connection per
   machine reused) with as many slots per machine as fleetslurm gets CPUs.
4. The ceiling of this host: the same N jobs spawned directly by ``xargs -P``
   with the same number of slots -- no SSH, no scheduler, no bookkeeping. No
   runner that starts one process per job can beat it here, since the
   "machines" and the controller all share this host's CPUs.

Every job is ``touch <dir>/<runner>/<i>`` (a file per job, all on this host's
disk since every "machine" is this host), and after each run the files are
counted: a runner that lost jobs is reported as such ("LOST k of N"), never
as a rate. GNU parallel 20221122 (Debian 12) with ``-M`` was seen to drop
most jobs over these sshd and still exit 0.

Where the cgroup v1 ``cpuacct`` controller is writable (root), the script also
reports the CPU time each runner spends per job (every process involved: the
controller, sshd, agents, supervisors, jobs; ssh, sshd, jobs), which other
load on the machine does not change much, unlike jobs/s. For fleetslurm it
also gives the part spent from the first submission to the last end, without
the fixed cost of starting the controller and its agents.

Run: ``python benchmarks/bench_fleet.py [--jobs 1000]`` (needs openssh-server;
GNU parallel when there: ``apt-get install openssh-server parallel``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests_multi_machine.sshd_machines import SshdPool  # noqa: E402


class CpuMeter:
    """CPU time of this process and all its descendants, from a cgroup v1 cpuacct group.

    The benchmark moves itself into a fresh group before it starts the sshd
    machines, so everything they fork is counted too. ``None`` readings when
    the controller is not writable here (not root, cgroup v2 only...).
    """

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.group: "Path | None" = None
        try:
            group = self.ROOT / f"fleetslurm-bench-{os.getpid()}"
            group.mkdir()
            (group / "cgroup.procs").write_text(str(os.getpid()))
            self.group = group
        except OSError:
            pass

    def read(self) -> "float | None":
        """CPU seconds used by the group so far."""
        if self.group is None:
            return None
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        if self.group is None:
            return
        try:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            self.group.rmdir()
        except OSError:
            pass  # a straggler still in it; the empty group is harmless


#: each job: one file named by its index, counted after the run
JOB = 'touch "$0"'


def job_files(out: Path, jobs: int) -> list[str]:
    """The file each of ``jobs`` jobs leaves in ``out``."""
    out.mkdir(parents=True)
    return [str(out / str(i)) for i in range(jobs)]


def count_ran(out: Path) -> int:
    """How many jobs left their file in ``out``."""
    return sum(1 for _ in out.iterdir())


def run_ceiling(files: list[str], slots: int) -> float:
    """The jobs spawned directly with ``slots`` at a time (xargs -P)."""
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P", str(slots), "-n", "1", "/bin/sh", "-c", JOB],
                   input="".join(f"{f}\n" for f in files).encode(), check=True)
    return time.perf_counter() - t0


def ssh_config(machines, key: Path, base: Path) -> Path:
    """An ssh_config naming the machines, checking their host keys."""
    kh = base / "peer_known_hosts"
    kh.write_text("".join(m.known_hosts_line + "\n" for m in machines))
    cfg = base / "ssh_config"
    cfg.write_text("".join(
        f"Host {m.name}\n  HostName {m.address}\n  Port {m.port}\n  User root\n"
        f"  IdentityFile {key}\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n"
        f"  IdentitiesOnly yes\n  BatchMode yes\n" for m in machines))
    return cfg


def shares(machines, files: list[str]) -> dict:
    """Each machine's part of the jobs, in proportion to its CPUs (round robin
    over a list where a machine appears once per CPU)."""
    slots = [m for m in machines for _ in range(m.size["cpus"])]
    out: dict = {m.name: [] for m in machines}
    for i, f in enumerate(files):
        out[slots[i % len(slots)].name].append(f)
    return out


def run_ssh_channels(machines, key: Path, base: Path, files: list[str]) -> float:
    """One ssh channel per job over a ControlMaster per machine; per machine
    an ``xargs -P <CPUs>`` over its share, all machines at once."""
    cfg = ssh_config(machines, key, base)
    masters = []
    try:
        for m in machines:
            sock = base / f"cm-{m.name}"
            subprocess.run(["ssh", "-F", str(cfg), "-o", "ControlMaster=yes", "-o",
                            f"ControlPath={sock}", "-o", "ControlPersist=yes", "-N", "-f",
                            m.name], check=True, stdin=subprocess.DEVNULL)
            masters.append((m, sock))
        parts = shares(machines, files)
        t0 = time.perf_counter()
        procs = []
        for m, sock in masters:
            # xargs appends the file: ssh ... HOST sh -c 'touch "$0"' FILE
            cmd = ["xargs", "-P", str(m.size["cpus"]), "-n", "1", "ssh", "-F", str(cfg),
                   "-o", f"ControlPath={sock}", m.name, "sh", "-c", f"'{JOB}'"]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE))
            procs[-1].stdin.write("".join(f"{f}\n" for f in parts[m.name]).encode())
            procs[-1].stdin.close()
        codes = [p.wait() for p in procs]
        elapsed = time.perf_counter() - t0
        if any(codes):
            print(f"note: ssh channel peer: xargs exit statuses {codes}")
        return elapsed
    finally:
        for m, sock in masters:
            subprocess.run(["ssh", "-F", str(cfg), "-o", f"ControlPath={sock}", "-O", "exit",
                            m.name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def run_fleetslurm(machines, key: Path, base: Path, files: list[str], shared_fs: bool,
                   window: dict) -> float:
    """Seconds from the first submission to the last COMPLETED; ``window["cpu"]``
    gets the CPU seconds spent in that span (the controller's and agents'
    start-up excluded)."""
    home = base / ("home-shared" if shared_fs else "home")
    home.mkdir(mode=0o700)
    cfg = {"cluster_name": "bench", "heartbeat_interval": 5,
           # each fleet its own workdir: one fleet per workdir (a second is refused)
           "machines": {m.name: m.config_entry(shared_fs=shared_fs,
                                               workdir=f"{m.workdir}-{home.name}")
                        for m in machines}}
    path = base / f"fleet_config{'-shared' if shared_fs else ''}.json"
    path.write_text(json.dumps(cfg))
    (home / "known_hosts").write_text("".join(m.known_hosts_line + "\n" for m in machines))
    env = dict(os.environ, FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(path))
    work = base / ("work-shared" if shared_fs else "work")
    work.mkdir()
    exe = [sys.executable, "-m", "fleetslurm.cli.main"]
    subprocess.run(exe + ["controller", "start"], env=env, check=True, cwd=work,
                   stdout=subprocess.DEVNULL)
    try:
        from fleetslurm.paths import StatePaths
        from fleetslurm.rpc import connect

        with connect(StatePaths(home)) as c:
            deadline = time.time() + 30
            while time.time() < deadline:
                nodes = c.call("nodes")["nodes"]
                if all(n["state"] == "idle" for n in nodes):
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"machines not up: {nodes}")
            c0 = window["meter"].read()
            t0 = time.perf_counter()
            for f in files:
                c.call("submit", options={"output": "/dev/null"},
                       script=f"#!/bin/sh\ntouch {shlex.quote(f)}\n",
                       script_args=[], env={"PATH": "/usr/bin:/bin"}, cwd=str(work),
                       submit_host=platform.node(), script_name="touch")
            while c.call("count")["active"]:
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            c1 = window["meter"].read()
            window["cpu"] = None if c0 is None else c1 - c0
            states = {r["state"] for r in c.call("jobs", steps=False)}
            assert states == {"COMPLETED"}, states
        return elapsed
    finally:
        subprocess.run(exe + ["controller", "stop"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: seconds GNU parallel gets beyond 0.2 s per job
PARALLEL_TIMEOUT = 60.0


def run_parallel(machines, key: Path, base: Path, files: list[str],
                 timeout: float = PARALLEL_TIMEOUT) -> float:
    """GNU parallel over the machines, a ControlMaster each (``-M``). Given
    up on after PARALLEL_TIMEOUT (+ 0.2 s per job): seen here to hang."""
    cfg = ssh_config(machines, key, base)
    logins = ",".join(f"{m.size['cpus']}/{m.name}" for m in machines)
    listing = base / "parallel-files"
    # names relative to --wd: given absolute paths, this parallel dropped
    # their leading "/" on the remote side
    listing.write_text("".join(Path(f).name + "\n" for f in files))
    cmd = ["parallel", "-M", "--ssh", f"ssh -F {cfg}", "-S", logins,
           "--wd", str(Path(files[0]).parent), "touch", "::::", str(listing)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PARALLEL_HOME=str(base / "parallel")),
                            start_new_session=True)
    limit = timeout + 0.2 * len(files)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, err = proc.communicate()
        print(f"note: GNU parallel had not ended after {limit:.0f} s: stopped")
    elapsed = time.perf_counter() - t0
    # parallel -M leaves its ssh ControlMaster helpers behind: end its whole session
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        pass
    if proc.returncode:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"note: GNU parallel exit status {proc.returncode}: {tail[0][:200]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--parallel-timeout", type=float, default=PARALLEL_TIMEOUT,
                    help="seconds GNU parallel gets beyond 0.2 s per job")
    opts = ap.parse_args()
    if not Path("/usr/sbin/sshd").exists() or not shutil.which("ssh"):
        print("needs openssh-server and openssh-client: apt-get install openssh-server")
        return 2
    base = Path(tempfile.mkdtemp(prefix="fleetslurm-fleet-bench-"))
    meter = CpuMeter()  # before the sshd machines start, so they are inside it
    (base / "sshd").mkdir()
    pool = SshdPool(base / "sshd")
    lost_any = False
    try:
        machines = pool.get(4)
        sizes = ", ".join(f"{m.name} {m.size['cpus']} CPUs" for m in machines)
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; 4 sshd on loopback ({sizes})")
        n = opts.jobs
        slots = sum(m.size["cpus"] for m in machines)
        window: dict = {"meter": meter}
        key = pool.client_key
        runs = [
            ("fleetslurm (output copied home)", "fs",
             lambda f: run_fleetslurm(machines, key, base, f, False, window)),
            ("fleetslurm (shared_fs: true)", "fs-shared",
             lambda f: run_fleetslurm(machines, key, base, f, True, window)),
            ("ssh channel per job, ControlMaster", "ssh",
             lambda f: run_ssh_channels(machines, key, base, f)),
        ]
        if shutil.which("parallel"):
            runs.append(("GNU parallel -M --sshlogin", "parallel",
                         lambda f: run_parallel(machines, key, base, f, opts.parallel_timeout)))
        else:
            print("GNU parallel: not installed, not run (apt-get install parallel)")
        runs.append((f"ceiling: xargs -P {slots} sh -c", "ceiling",
                     lambda f: run_ceiling(f, slots)))
        rates: dict = {}
        for label, tag, run in runs:
            window["cpu"] = None
            out = base / "ran" / tag
            files = job_files(out, n)
            c0 = meter.read()
            t = run(files)
            c1 = meter.read()
            ran = count_ran(out)
            if ran != n:
                # a runner that lost jobs has no rate: what it did not run cost nothing
                lost_any = True
                print(f"{label:36s} LOST {n - ran} of {n} jobs (ran {ran}) in {t:7.2f} s: "
                      "no rate")
                continue
            rates[tag] = n / t
            cpu = "" if c0 is None else f", CPU {(c1 - c0) / n * 1000:5.2f} ms per job"
            if window["cpu"] is not None:
                # the same without the controller's start and stop (its import,
                # four SSH handshakes and agent start-ups: a fixed cost)
                cpu += f" ({window['cpu'] / n * 1000:.2f} from first submission to last end)"
            print(f"{label:36s} {n} jobs, {ran} ran, in {t:7.2f} s -> {n / t:7.1f} jobs/s, "
                  f"{t / n * 1000:6.2f} ms per job{cpu}", flush=True)
        ceiling = rates.get("ceiling")
        for tag, label in (("fs", "output copied"), ("fs-shared", "shared fs")):
            if tag not in rates:
                continue
            parts = [f"{rates[tag] / ceiling:.2f} of the ceiling" if ceiling else None]
            for peer, name in (("ssh", "ssh channel peer"), ("parallel", "GNU parallel")):
                if peer in rates:
                    parts.append(f"{rates[tag] / rates[peer]:.2f}x the {name}")
            print(f"fleetslurm ({label}): " + ", ".join(p for p in parts if p))
    finally:
        pool.shutdown()
        meter.close()
        shutil.rmtree(base, ignore_errors=True)
    # a lost job in fleetslurm is a defect; in a peer it is the peer's
    return 1 if lost_any and not {"fs", "fs-shared"} <= set(rates) else 0


if __name__ == "__main__":
    sys.exit(main())
