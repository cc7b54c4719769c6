"""The Executor's pure parts and its runner: payload format (magic, version),
what cannot be pickled, the payload limit, option checks, and the generated
batch script (golden file, parsed back by sbatch's own rules)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fleetslurm.api.executor import runner
from fleetslurm.api.executor.executor import Executor
from fleetslurm.api.executor.payload import dump_call, read_result, write_call
from fleetslurm.api.executor.script import batch_script
from fleetslurm.errors import RemoteJobError, SerializationError, SubmitError, UsageError

GOLDEN = Path(__file__).parent / "golden" / "executor_array_script.sh"
RUNNER = runner.__file__


def _run_runner(tmp_path: Path, data: bytes, python: list[str] | None = None):
    call, result = tmp_path / "call.pkl", tmp_path / "result.pkl"
    write_call(str(call), data)
    proc = subprocess.run([*(python or [sys.executable]), RUNNER, str(call), str(result)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    return proc, str(result)


def test_a_call_round_trips_through_the_runner(tmp_path):
    offset = 3
    proc, result = _run_runner(tmp_path, dump_call(lambda a, b=0: a * 2 + b + offset,
                                                   (20,), {"b": 1}))
    assert proc.returncode == 0, proc.stderr
    assert read_result(result, "7") == 44
    assert stat.S_IMODE(os.stat(result).st_mode) == 0o600
    with open(result, "rb") as f:
        assert f.read(8) == b"FLSLRSLT"


def test_a_remote_failure_comes_back_as_text(tmp_path):
    def fails(x):
        raise KeyError(f"no {x}")

    proc, result = _run_runner(tmp_path, dump_call(fails, ("key",), {}))
    assert proc.returncode == 1
    assert "KeyError" in proc.stderr  # the job's stderr has the traceback too
    with pytest.raises(RemoteJobError) as err:
        read_result(result, "12")
    e = err.value
    assert (e.job_id, e.remote_type, e.remote_message) == ("12", "KeyError", "'no key'")
    assert "in fails" in e.remote_traceback and 'raise KeyError(f"no {x}")' in e.remote_traceback
    assert str(e).startswith("job 12 failed remotely: KeyError: 'no key'\n--- remote traceback")
    assert "runner.py" not in e.remote_traceback  # the user's frames, not ours
    with open(result, "rb") as f:
        body = f.read()[11:]
    assert body.startswith(b"{")  # JSON text, never a pickled exception


def test_missing_cloudpickle_on_the_node_is_a_clear_job_error(tmp_path):
    # -S: no site-packages, so no cloudpickle: a node's bare python3
    proc, result = _run_runner(tmp_path, dump_call(abs, (-1,), {}), [sys.executable, "-S"])
    assert proc.returncode == 1
    with pytest.raises(RemoteJobError) as err:
        read_result(result, "3")
    assert err.value.remote_type == "ModuleNotFoundError"
    assert "cloudpickle is not installed for" in str(err.value)
    assert "pip install cloudpickle" in str(err.value)


def test_call_file_magic_and_version_are_checked_by_the_runner(tmp_path):
    good = dump_call(abs, (-1,), {})
    wrong_version = good[:8] + (runner.VERSION + 1).to_bytes(2, "big") + good[10:]
    proc, result = _run_runner(tmp_path, wrong_version)
    assert proc.returncode == 1
    with pytest.raises(RemoteJobError, match=f"has payload format version {runner.VERSION + 1}; "
                                             f"this runner reads version {runner.VERSION}"):
        read_result(result, "4")
    proc, result = _run_runner(tmp_path, b"NOTMAGIC" + good[8:])
    with pytest.raises(RemoteJobError, match="is not a fleetslurm call file"):
        read_result(result, "4")


def test_result_file_magic_and_version_are_checked(tmp_path):
    path = tmp_path / "result.pkl"
    runner.write_atomic(str(path), runner.header(runner.RESULT_MAGIC, b"V") + b"x")
    data = path.read_bytes()
    path.write_bytes(data[:8] + b"\x00\x09" + data[10:])
    with pytest.raises(SerializationError, match="job 5: result file .* has format version 9, "
                                                 f"this fleetslurm reads version {runner.VERSION}"):
        read_result(str(path), "5")
    path.write_bytes(b"garbage, not a result at all")
    with pytest.raises(SerializationError, match="is not a fleetslurm result file"):
        read_result(str(path), "5")
    path.write_bytes(b"FLSL")
    with pytest.raises(SerializationError, match="is truncated"):
        read_result(str(path), "5")


def test_unpicklable_parts_are_named():
    lock = threading.Lock()

    def uses(x, flag=None):
        return x

    with pytest.raises(SerializationError, match=r"cannot pickle argument 1 of .*uses \(a lock\)"):
        dump_call(uses, (1, lock), {})
    with pytest.raises(SerializationError, match=r"cannot pickle keyword argument 'flag' of "):
        dump_call(uses, (1,), {"flag": lock})

    def closes_over_lock():
        return lock.locked()

    with pytest.raises(SerializationError, match=r"cannot pickle the function .*closes_over_lock"):
        dump_call(closes_over_lock, (), {})
    with pytest.raises(SubmitError, match="needs a function to run"):
        dump_call(42, (), {})  # type: ignore[arg-type]


def test_payload_limit_message():
    with pytest.raises(SubmitError) as err:
        dump_call(len, (b"x" * 4900,), {}, limit=4096)
    text = str(err.value)
    assert text.startswith("the pickled call of len is 4.9 KB, over the payload limit of 4.0 KB")
    assert "max_payload_bytes" in text and "pass a path to the data" in text


def test_executor_options_are_sbatchs():
    with pytest.raises(UsageError) as err:
        Executor(backend="debug", cpus=2)
    text = str(err.value)
    assert text.startswith("unknown Executor option 'cpus'. Valid options are: ")
    for name in ("cpus_per_task", "partition", "array_parallelism", "conda_env", "setup"):
        assert name in text
    assert "'array'" not in text.split("are: ")[1]
    with pytest.raises(UsageError, match="Invalid --time specification"):
        Executor(backend="debug", time="soon")
    with pytest.raises(UsageError, match="Invalid --mem specification"):
        Executor(backend="debug", mem="lots")
    with pytest.raises(UsageError, match="make arrays with map"):
        Executor(backend="debug", array="0-3")
    with pytest.raises(UsageError, match="valid backends are: fleet, local, debug, slurm"):
        Executor(backend="cloud")
    with pytest.raises(UsageError, match="array_parallelism must be a positive integer"):
        Executor(backend="debug", array_parallelism=0)
    ex = Executor(backend="debug", **{"cpus-per-task": 2}, time=5)
    assert ex.slurm_options == {"cpus_per_task": 2, "time": 5}


def _script(folder: str) -> str:
    return batch_script({"partition": "debug", "cpus_per_task": 2, "mem": "1G",
                         "job_name": "it's mine", "exclusive": True}, folder,
                        array="0-9%2", conda_env="my env", modules=["gcc/12", "cuda"],
                        setup=["export OMP_NUM_THREADS=2"])


def test_generated_script_matches_the_golden_file():
    text = _script("/home/u/.fleetslurm/executor/x y")
    if os.environ.get("FLEETSLURM_RECORD_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    # to re-record: FLEETSLURM_RECORD_GOLDEN=1 python3 -m pytest tests/test_executor_payload.py
    assert text == GOLDEN.read_text()


def test_generated_script_reads_back_with_sbatchs_rules():
    from fleetslurm.slurm.option_env import sbatch_options

    folder = "/tmp/with space/and'quote"
    opts, _, _ = sbatch_options([], _script(folder), {})
    assert opts["job_name"] == "it's mine" and opts["cpus_per_task"] == "2"
    assert opts["array"] == "0-9%2" and opts["exclusive"] is True
    assert opts["output"] == f"{folder}/task_%a.out"
    assert opts["error"] == f"{folder}/task_%a.err"


def test_generated_script_runs_under_bash_with_a_hostile_folder(tmp_path):
    folder = tmp_path / "we$ird `x` \"q\" 'p' }{ \\"
    folder.mkdir()
    (folder / "fleetslurm_runner.py").write_text(
        "import json, sys; print(json.dumps(sys.argv[1:]))\n")
    script = batch_script({}, str(folder), python=sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "FLEETSLURM_STAGE_DIR"}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [f"{folder}/call.pkl", f"{folder}/result.pkl"]


# -- large numpy arrays go by HDF5 (ObjectSerializer) ----------------------------------
np = pytest.importorskip("numpy")


def _h5_call(tmp_path: Path, fn, args, kwargs=None) -> Path:
    from fleetslurm.api.executor import bigdata

    folder = tmp_path / "payload"
    folder.mkdir()
    (folder / bigdata.ZIP_NAME).write_bytes(bigdata.objser_zip())
    bigdata.write_call_h5(str(folder / "call.pkl"), fn, args, kwargs or {}, None)
    return folder


def _blocked_h5py(tmp_path: Path) -> dict:
    """An environment whose python cannot import h5py (as on a node without it)."""
    d = tmp_path / "blocked"
    d.mkdir()
    (d / "h5py.py").write_text("raise ImportError('No module named h5py (not installed here)')\n")
    return dict(os.environ, PYTHONPATH=str(d))


def _run_in(folder: Path, env=None):
    return subprocess.run([sys.executable, RUNNER, str(folder / "call.pkl"),
                           str(folder / "result.pkl")], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=120)


def test_big_arrays_travel_by_hdf5_both_ways(tmp_path):
    from fleetslurm.api.executor import bigdata
    from fleetslurm.api.objser.serializer import ObjectSerializer

    a = np.random.default_rng(1).random(300_000)  # 2.4 MB
    assert bigdata.holds_big_arrays([(a,), {}]) and not bigdata.holds_big_arrays([(a[:10],)])
    folder = _h5_call(tmp_path, lambda x, k=1: {"twice": x * 2 * k, "n": len(x)}, (a,),
                      {"k": 3})
    with open(folder / "call.pkl", "rb") as f:
        assert f.read(11)[-1:] == b"H"
    assert ObjectSerializer(folder / "call.h5").list() == ["/args", "/kwargs"]
    proc = _run_in(folder)  # the runner uses the zip's ObjectSerializer, not fleetslurm's
    assert proc.returncode == 0, proc.stderr
    with open(folder / "result.pkl", "rb") as f:
        assert f.read(11)[-1:] == b"H"
    out = read_result(str(folder / "result.pkl"), "1")
    assert out["n"] == 300_000 and np.array_equal(out["twice"], a * 6)
    assert stat.S_IMODE((folder / "result.h5").stat().st_mode) == 0o600
    # a tampered data file fails its check on load
    (folder / "result.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(SerializationError):
        read_result(str(folder / "result.pkl"), "1")


def test_a_node_without_h5py(tmp_path):
    env = _blocked_h5py(tmp_path)
    # arguments stored by HDF5 cannot be read there: the job's error says what to install
    folder = _h5_call(tmp_path, len, (np.zeros(200_000),))
    proc = _run_in(folder, env)
    assert proc.returncode == 1
    with pytest.raises(RemoteJobError) as err:
        read_result(str(folder / "result.pkl"), "2")
    assert "needs h5py, hdf5plugin and numpy" in str(err.value)
    assert "install them there" in str(err.value)
    # a big result falls back to a plain pickle there
    small = tmp_path / "small"
    small.mkdir()
    write_call(str(small / "call.pkl"), dump_call(np.ones, (300_000,), {}))
    from fleetslurm.api.executor import bigdata

    (small / bigdata.ZIP_NAME).write_bytes(bigdata.objser_zip())
    proc = _run_in(small, env)
    assert proc.returncode == 0, proc.stderr
    assert not (small / "result.h5").exists()
    assert read_result(str(small / "result.pkl"), "3").sum() == 300_000


def test_the_runner_needs_no_fleetslurm():
    """Nodes have no fleetslurm: the runner imports the standard library, and
    cloudpickle (plus, for HDF5 payloads, the ObjectSerializer shipped beside it)."""
    import ast

    # nodes may run an older python3 than this host
    tree = ast.parse(Path(RUNNER).read_text(), feature_version=(3, 6))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in runner.py"
            top.add(node.module.split(".")[0])
    assert top <= set(sys.stdlib_module_names), top


#: the oldest cloudpickle pyproject.toml allows, and the installed (newest) one
OLDEST_CLOUDPICKLE = "2.2.0"

_TRACEBACK_DRILL = r'''
import importlib, linecache, os, subprocess, sys
import cloudpickle
from fleetslurm.api.executor import runner
from fleetslurm.api.executor.payload import dump_call, read_result, write_call
from fleetslurm.errors import RemoteJobError

work = sys.argv[1]
src = os.path.join(work, "labcode.py")
with open(src, "w") as f:
    f.write("def helper(x):\n    raise KeyError('no ' + x)  # the line to see\n\n"
            "def fails(x):\n    return helper(x)\n")
sys.path.insert(0, work)
labcode = importlib.import_module("labcode")
data = dump_call(labcode.fails, ("key",), {})
os.unlink(src)  # the machine does not have the user's file
linecache.clearcache()
call, result = os.path.join(work, "call.pkl"), os.path.join(work, "result.pkl")
write_call(call, data)
proc = subprocess.run([sys.executable, runner.__file__, call, result], cwd="/",
                      capture_output=True, text=True)
try:
    read_result(result, "1")
except RemoteJobError as exc:
    print(cloudpickle.__version__)
    print(exc.remote_traceback)
'''


@pytest.fixture(scope="session")
def oldest_cloudpickle(tmp_path_factory) -> Path:
    """A directory holding the oldest cloudpickle pyproject.toml allows."""
    target = tmp_path_factory.mktemp("cloudpickle-oldest")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), f"cloudpickle=={OLDEST_CLOUDPICKLE}"],
                   check=True, capture_output=True, timeout=300)
    return target


@pytest.mark.parametrize("which", ["installed", "oldest"])
def test_a_remote_traceback_shows_the_callers_file_and_lines(tmp_path, which, request):
    """With any allowed cloudpickle (3.x names pickled code ``<dynamic-code>``),
    a remote traceback names the caller's file and shows its lines, also on a
    machine that does not have that file."""
    env = dict(os.environ)
    if which == "oldest":
        path = request.getfixturevalue("oldest_cloudpickle")
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", _TRACEBACK_DRILL, str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert proc.returncode == 0, proc.stderr
    version, _, tb = proc.stdout.partition("\n")
    if which == "oldest":
        assert version == OLDEST_CLOUDPICKLE
    src = tmp_path / "labcode.py"
    assert f'File "{src}", line 5, in fails\n    return helper(x)' in tb, tb
    assert (f'File "{src}", line 2, in helper\n'
            "    raise KeyError('no ' + x)  # the line to see") in tb, tb
    assert "<dynamic-code>" not in tb

