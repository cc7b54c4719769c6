"""``fleetslurm databench batch|analyze|status`` through the real CLI and controller."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _prices(directory: Path, symbols: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for k, sym in enumerate(symbols):
        rows = [f"2024-02-{i + 1:02d},{100 + i * (k + 1) + (i % 3)}" for i in range(25)]
        (directory / f"{sym}.csv").write_text("date,close\n" + "\n".join(rows) + "\n")


def test_batch_wait_and_status(fleet):
    for n in ("one.csv", "two.csv"):
        (fleet.work / n).write_text("a,b\n1,2\n3,4\n")
    p = fleet.run("databench", "batch", str(SCRIPTS / "process_file.py"), "one.csv", "two.csv",
                  "-p", "debug", "--mem", "128M", "-t", "5", "--args", "--columns a",
                  "--wait", "--timeout", "60", check=True)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("Submitted job array ") and lines[0].endswith("(2 tasks)")
    array = lines[0].split()[3]
    assert lines[1:4] == ["JOBID  INPUT", f"{array}_0    one.csv", f"{array}_1    two.csv"]
    # where the outputs are: each task's file, then the directory once
    outs = [fleet.work / f"process_file-{array}_{i}.out" for i in (0, 1)]
    assert [ln.split() for ln in lines[4:7]] == [
        ["JOBID", "STATE", "OUTPUT"], [f"{array}_0", "COMPLETED", str(outs[0])],
        [f"{array}_1", "COMPLETED", str(outs[1])]]
    assert lines[7:] == [f"Outputs are in {fleet.work} ({outs[0].name} ... {outs[1].name})"]
    assert p.stderr == ""  # no progress bar when stderr is not a terminal
    out = json.loads((fleet.work / f"process_file-{array}_1.out").read_text())
    assert out["file"] == "two.csv" and out["columns"] == ["a"]
    st = fleet.run("databench", "status", array, check=True).stdout.splitlines()
    assert st[0].split() == ["JOBID", "NAME", "STATUS", "MACHINE", "START", "END", "EXIT",
                             "STDOUT"]
    assert st[1].split()[:3] == [f"{array}_0", "process_file", "COMPLETED"]
    assert st[2].split()[3] == "localhost" and st[2].split()[6] == "0:0"
    js = json.loads(fleet.run("databench", "status", f"{array}_0", "--json", check=True).stdout)
    assert js["status"] == "COMPLETED" and js["assigned_machine"] == "localhost"
    cluster = fleet.run("databench", "status", check=True).stdout.splitlines()
    assert cluster[0].split() == ["MACHINE", "STATE", "CPUS", "MEM_MB", "FREE_MB", "GPUS",
                                  "LOAD"]
    assert cluster[1].split()[:3] == ["localhost", "idle", "0/2"]
    assert cluster[1].split()[3] == "0/4096"


def test_analyze_with_a_script_and_with_a_loaded_function_file(fleet):
    _prices(fleet.work / "prices", ["AAA", "BBB"])
    p = fleet.run("databench", "analyze", "backtest", "AAA", "BBB", "--script",
                  str(SCRIPTS / "backtest.py"), "--data", "prices", "--args",
                  "--fast 2 --slow 5", "--wait", "--json", check=True)
    # the submission table, then the JSON report
    report = json.loads(p.stdout[p.stdout.index("{"):])
    assert set(report["states"].values()) == {"COMPLETED"}
    results = list(report["results"].values())
    assert [r["symbol"] for r in results] == ["AAA", "BBB"]
    assert all(r["days"] == 25 and r["slow"] == 5 for r in results)
    # --parsable: only the ids
    p = fleet.run("databench", "analyze", "backtest", "AAA", "--script",
                  str(SCRIPTS / "backtest.py"), "--data", "prices", "--parsable", check=True)
    assert p.stdout.strip().count("\n") == 0 and p.stdout.strip().endswith("_0")


def test_errors_are_one_line_without_traceback(fleet):
    p = fleet.run("databench", "analyze", "montecarlo", "AAA", "--script",
                  str(SCRIPTS / "backtest.py"))
    assert p.returncode == 0  # --script names the type: it is known
    p = fleet.run("databench", "analyze", "montecarlo", "AAA")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: unknown analysis type 'montecarlo'; known analysis "
                               "types: backtest, import_prices. ")
    p = fleet.run("databench", "batch", "nope.py", "x.csv")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "data file" in p.stderr and "x.csv does not exist" in p.stderr
    (fleet.work / "x.csv").write_text("a\n1\n")
    p = fleet.run("databench", "batch", "nope.py", "x.csv")
    assert p.returncode == 1 and "processor" in p.stderr and "nope.py does not exist" in p.stderr
    p = fleet.run("databench", "batch", str(SCRIPTS / "process_file.py"), "x.csv", "--mem", "x")
    assert p.returncode == 1 and p.stderr.startswith("error: Invalid memory specification")
    p = fleet.run("databench", "status", "777")
    assert p.returncode == 1 and p.stderr == ("error: DataBench: no such job: 777; check the "
                                              "id (`fleetslurm sacct` lists your jobs)\n")
    (fleet.work / "empty.csv").write_text("")
    p = fleet.run("databench", "batch", str(SCRIPTS / "process_file.py"), "x.csv", "empty.csv",
                  "--wait")
    assert p.returncode == 1
    assert "error: 1 of 2 jobs did not complete" in p.stderr and "_1 FAILED" in p.stderr
    p = fleet.run("databench", "analyze", "x", "AAA", "--load", "missing.py")
    assert p.returncode == 1 and "analysis file" in p.stderr and "does not exist" in p.stderr


def test_analyze_functions_from_a_loaded_file(fleet):
    _prices(fleet.work / "prices", ["AAA", "BBB"])
    (fleet.work / "my_analyses.py").write_text(
        "from fleetslurm.databench import analysis\n\n"
        "@analysis('last')\n"
        "def last_close(symbol, path, *args):\n"
        "    '''The last closing price.'''\n"
        "    with open(path) as f:\n"
        "        return {'symbol': symbol, 'last': float(f.read().split()[-1].split(',')[1]),\n"
        "                'args': list(args)}\n\n"
        "@analysis('count')\n"
        "def count(symbol, path):\n"
        "    return sum(1 for _ in open(path)) - 1\n")
    p = fleet.run("databench", "analyze", "last", "AAA", "BBB", "--load", "my_analyses.py",
                  "--data", "prices", "--args", "x y", "--wait", "--timeout", "120", check=True)
    lines = [ln.split("\t") for ln in p.stdout.splitlines() if "\t" in ln]
    assert [(ln[1], json.loads(ln[2])) for ln in lines] == [
        ("COMPLETED", {"symbol": "AAA", "last": 124.0, "args": ["x", "y"]}),
        ("COMPLETED", {"symbol": "BBB", "last": 148.0, "args": ["x", "y"]})]
    p = fleet.run("databench", "analyze", "nope", "AAA", "--load", "my_analyses.py")
    assert p.returncode == 1 and "known analysis types: backtest, count, import_prices, last" in p.stderr


def test_progress_bar_on_a_terminal(fleet):
    """With stderr on a terminal (a pty here) --wait draws a progress bar there;
    stdout keeps only the report."""
    import os
    import pty
    import subprocess
    import sys

    for n in ("p1.csv", "p2.csv"):
        (fleet.work / n).write_text("a\n1\n")
    master, slave = pty.openpty()
    env = dict(fleet.env, COLUMNS="100")
    proc = subprocess.Popen([sys.executable, "-m", "fleetslurm.cli.main", "databench", "batch",
                             str(SCRIPTS / "process_file.py"), "p1.csv", "p2.csv", "--wait"],
                            stdout=subprocess.PIPE, stderr=slave, cwd=fleet.work, env=env,
                            text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    bar = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, (out, bar)
    assert "jobs" in bar and "2/2" in bar
    report = out.splitlines()[-3:]  # two tasks, then where their outputs are
    assert [ln for ln in report if "COMPLETED" in ln] == report[:2]
    assert report[2].startswith("Outputs are in ")
    assert "2/2" not in out
