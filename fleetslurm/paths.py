"""Where fleetslurm keeps things: one place names every file.

The state directory is ``$FLEETSLURM_HOME`` (default ``~/.fleetslurm``), private
to its owner (0700).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["find_config", "home_dir", "StatePaths", "state_paths", "JobPaths", "private_dir",
           "take_next", "DEFAULT_WORKDIR", "fleet_workdir"]

#: a machine's default agent workdir; each fleet gets its own directory in it
#: (``<it>/<cluster id>``), so controllers sharing an ssh user never meet
DEFAULT_WORKDIR = "~/.fleetslurm-node"

# sun_path is 108 bytes on Linux; leave room for the terminating NUL.
_MAX_SOCKET_PATH = 100


def home_dir(environ: "os._Environ[str] | dict[str, str] | None" = None) -> Path:
    """The state directory: ``$FLEETSLURM_HOME`` or ``~/.fleetslurm``."""
    env = os.environ if environ is None else environ
    value = env.get("FLEETSLURM_HOME")
    if value:
        return Path(value).expanduser().absolute()
    return Path("~/.fleetslurm").expanduser()


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class StatePaths:
    """Files of one controller's state directory."""

    __slots__ = ("home",)

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatePaths) and other.home == self.home

    def __repr__(self) -> str:
        return f"StatePaths({str(self.home)!r})"

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def pid_file(self) -> Path:
        return self.home / "controller.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "controller.log"

    @property
    def config_copy(self) -> Path:
        """The config path the running controller was started with."""
        return self.home / "controller.config"

    @property
    def socket(self) -> Path:
        path = self.home / "ctl.sock"
        if len(os.fsencode(str(path))) <= _MAX_SOCKET_PATH:
            return path
        # A deep FLEETSLURM_HOME would overflow sun_path: use a short private
        # directory keyed by the home path instead.
        import hashlib

        digest = hashlib.sha1(os.fsencode(str(self.home))).hexdigest()[:16]
        return Path("/tmp") / f"fleetslurm-{os.getuid()}-{digest}" / "ctl.sock"

    @property
    def output_root(self) -> Path:
        return self.home / "output"

    def output_dir(self, job_id: int) -> Path:
        """``FLEETSLURM_HOME/output/<jobid>/`` keeps each job's stdout.txt/stderr.txt."""
        return self.output_root / str(job_id)

    def node_workdir(self, node: str) -> Path:
        """Agent work directory for a machine run by the local transport."""
        return self.home / "node" / node

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"


def state_paths(environ: "dict[str, str] | None" = None) -> StatePaths:
    return StatePaths(home_dir(environ))


def fleet_workdir(configured: str, cluster_id: str, own: bool) -> str:
    """The agent's workdir on an SSH machine: the one configured; the default
    one has a directory per fleet (``own``: see Store.identity)."""
    if configured.rstrip("/") == DEFAULT_WORKDIR and own:
        return f"{DEFAULT_WORKDIR}/{cluster_id}"
    return configured


def workdir_owner(cluster_id: str, cluster_name: str, paths: "StatePaths",
                  config: Optional[str]) -> dict:
    """What a fleet writes in each workdir it uses, and another fleet shows
    when it finds that workdir taken."""
    import socket

    return {"cluster_id": cluster_id, "cluster_name": cluster_name,
            "controller": f"{socket.gethostname()}:{paths.home}",
            "config": config or "(embedded default)"}


class JobPaths:
    """Files of one job run inside an agent's work directory (node side)."""

    __slots__ = ("workdir", "key")

    def __init__(self, workdir: str, key: str) -> None:
        self.workdir = workdir
        self.key = key

    @property
    def dir(self) -> str:
        return f"{self.workdir}/jobs/{self.key}"

    @property
    def script(self) -> str:
        return f"{self.dir}/script"

    @property
    def result(self) -> str:
        return f"{self.dir}/result.json"

    @property
    def stdout(self) -> str:
        """Where a job without a shared filesystem writes its stdout on the node."""
        return f"{self.dir}/stdout.txt"

    @property
    def stderr(self) -> str:
        return f"{self.dir}/stderr.txt"

    @property
    def kept(self) -> str:
        """Where the agent moves a run whose output could not be copied home
        (``forget`` with ``keep``): out of the runs it reports, not deleted."""
        return f"{self.workdir}/kept/{self.key}"

    @property
    def stage(self) -> str:
        """Files staged in for the job and results it leaves to be copied home
        (``$FLEETSLURM_STAGE_DIR`` inside the job)."""
        return f"{self.dir}/stage"

    @property
    def incoming(self) -> str:
        """Where staged files wait before the launch; the agent moves this
        directory to :attr:`stage` as it starts the job."""
        return f"{self.workdir}/stage/{self.key}"


def find_config(explicit: Optional[str] = None, environ: Optional[dict[str, str]] = None,
                cwd: Optional[Path] = None) -> Optional[Path]:
    """The config file to use, or None for the embedded default."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env.get("FLEETSLURM_CONFIG"):
        return Path(env["FLEETSLURM_CONFIG"]).expanduser().absolute()
    local = (cwd or Path.cwd()) / "config" / "fleet_config.json"
    if local.is_file():
        return local.absolute()
    home = home_dir(env) / "fleet_config.json"  # type: ignore[arg-type]
    if home.is_file():
        return home
    return None


def take_next(path: str, first: int) -> int:
    """Return the number kept in the counter file ``path`` (``first`` when the
    file is new or unreadable) and store the next one, under an exclusive lock
    so concurrent processes never take the same number."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 64).decode().strip()
        n = int(text) if text.isdigit() else first
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(n + 1).encode())
        return n
    finally:
        os.close(fd)
