"""Where fleetslurm keeps things: one place names every file.

The state directory is ``$FLEETSLURM_HOME`` (default ``~/.fleetslurm``), private
to its owner (0700). The control socket lives in it, or, when that path would
not fit in sun_path, in ``/tmp/fleetslurm-<uid>-<hash>/``: a name anyone can
guess, so the controller creates that directory 0700 in one step and refuses
one that is not its own, and clients check the owner of the directory, of the
socket and of the process listening before sending a byte.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import BinaryIO, Optional

from .errors import ConfigError, StoreError

__all__ = ["find_config", "home_dir", "StatePaths", "state_paths", "JobPaths", "private_dir",
           "check_socket", "take_next", "DEFAULT_WORKDIR", "ROOT_WORKDIR", "fleet_workdir",
           "local_workdir", "LabPaths",
           "lab_paths", "public_dir"]

#: a machine's default agent workdir; each fleet gets its own directory in it
#: (``<it>/<cluster id>``), so controllers sharing an ssh user never meet
DEFAULT_WORKDIR = "~/.fleetslurm-node"
#: where a privileged agent's default workdir goes instead (root's, or through
#: sudo): outside every home, as slurmd's SlurmdSpoolDir is, and made 0711 by
#: root, so a job's user passes through to its job directory and nothing above
#: it is opened by hand (``<it>/<cluster id>/<machine>``)
ROOT_WORKDIR = "/var/lib/fleetslurm-node"

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
    """Create ``path`` (and parents) as a directory only its owner can use
    (0700), or take the existing one if it is the caller's own; StoreError
    when it belongs to another user (who could read or replace what is put in
    it: the state, the control socket) or cannot be made."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)  # created private: no moment of a wider mode
        except FileExistsError:
            pass
        st = _own_dir(path)
        if st.st_mode & 0o777 != 0o700:
            os.chmod(path, 0o700)
    except PermissionError as exc:
        _refuse_unreachable(path, exc)
    except OSError as exc:
        raise StoreError(f"cannot create the directory {path}: {exc.strerror}; "
                         f"{_HOME_FIX}") from None
    return path


#: the way out of a state directory that cannot be used
_HOME_FIX = ("set FLEETSLURM_HOME to a directory of your own (or unset it to use "
             "~/.fleetslurm)")


def _user(uid: int) -> str:
    """``name, uid N`` for messages."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _own_dir(path: Path, owners: "tuple[int, ...] | None" = None) -> os.stat_result:
    """stat of ``path``, a directory owned by the caller (or by one of
    ``owners``); a symlink is followed only when it is the caller's own too
    (one in /tmp can be anyone's). StoreError otherwise."""
    owners = owners or (os.geteuid(),)
    link = os.lstat(path)
    st = os.stat(path) if stat.S_ISLNK(link.st_mode) else link
    for what in (link, st):
        if what.st_uid not in owners:
            raise StoreError(
                f"{path} belongs to another user ({_user(what.st_uid)}), not to you "
                f"({_user(os.geteuid())}): fleetslurm keeps its state and its control "
                f"socket only in a directory of your own; {_fix_for(path)}")
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is not a directory; {_fix_for(path)}")
    return st


def _fix_for(path: Path) -> str:
    if path.name.startswith("fleetslurm-") and path.parent == Path("/tmp"):
        longest = _MAX_SOCKET_PATH - len("/ctl.sock")
        return (f"remove it (`rm -rf {path}` as root) or use a FLEETSLURM_HOME of at most "
                f"{longest} bytes, so that the socket lives inside it")
    return _HOME_FIX


def _refuse_unreachable(path: Path, exc: OSError) -> "None":
    """StoreError for a directory the caller may not use: it belongs to
    someone else, or a directory on the way to it cannot be entered."""
    try:
        _own_dir(path)  # StoreError naming the owner when it is someone else's
    except (PermissionError, FileNotFoundError):
        pass
    for step in reversed((path, *path.parents)):
        if not os.path.lexists(step):
            break  # its parent could be entered: the parent is what refused
        if not os.access(step, os.X_OK):
            st = os.stat(step)
            why = f"(owner {_user(st.st_uid)}, mode {st.st_mode & 0o777:o})"
            raise StoreError(f"cannot use {path}: you cannot enter {step} {why}; "
                             f"{_HOME_FIX}") from None
    raise StoreError(f"cannot use {path}: {exc.strerror} ({exc.filename}); "
                     f"{_HOME_FIX}") from None


def check_socket(path: Path, owners: "tuple[int, ...] | None" = None) -> None:
    """Before connecting to the control socket ``path``: its directory and the
    socket itself must be the caller's (or root's; for the lab's socket: the
    lab's service account's or root's, ``owners``), and no one else may write
    to the directory, so no other user can have put a listener there. A
    missing socket is fine (connect then fails as "no controller"). StoreError
    otherwise: not a ControllerError, which would send the caller on to start
    a controller of its own."""
    owners = owners or (os.geteuid(), 0)
    try:
        dst = _own_dir(path.parent, owners)
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except PermissionError:
        return  # connect() says "Permission denied" with the path
    if dst.st_mode & 0o022:
        raise StoreError(
            f"{path.parent} can be written by others (mode {dst.st_mode & 0o777:o}): anyone "
            f"could have put a listener at {path}; `chmod 700 {path.parent}`, or {_HOME_FIX}")
    if not stat.S_ISSOCK(st.st_mode):
        raise StoreError(f"{path} is not a socket; remove it, or {_HOME_FIX}")
    if st.st_uid not in owners:
        raise StoreError(
            f"{path} belongs to another user ({_user(st.st_uid)}), not to you "
            f"({_user(os.geteuid())}): refusing to talk to it; remove it, or {_HOME_FIX}")


def public_dir(path: Path) -> Path:
    """The lab's socket directory: created (with parents) 0755, owned by the
    caller; StoreError when it exists and belongs to someone else (but root),
    or when others may write to it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        st = _own_dir(path, (os.geteuid(), 0))
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 != 0o755:
            os.chmod(path, 0o755)
        elif st.st_mode & 0o022 and st.st_uid != os.geteuid():
            raise StoreError(f"{path} can be written by others (mode "
                             f"{st.st_mode & 0o777:o}): `chmod 755 {path}` as root")
    except PermissionError as exc:
        raise StoreError(f"cannot create the lab's socket directory {path}: {exc.strerror}; "
                         "run `fleetslurm lab init` as root first") from None
    return path


def lab_root(environ: "dict[str, str] | None" = None) -> Path:
    """Where the lab's files live: ``/``, or ``$FLEETSLURM_LAB_ROOT`` (tests,
    and a lab installed under a prefix)."""
    env = os.environ if environ is None else environ
    return Path(env.get("FLEETSLURM_LAB_ROOT") or "/").absolute()


class LabPaths:
    """A lab's files: ``etc/fleetslurm/`` (the config, ``lab.json`` naming
    the service account), ``var/lib/fleetslurm/`` (the state, the service
    account's only, 0700) and ``run/fleetslurm/ctl.sock`` (every local user
    may connect), under :func:`lab_root`."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "fleetslurm"

    @property
    def config(self) -> Path:
        return self.etc / "fleet_config.json"

    @property
    def lab_file(self) -> Path:
        return self.etc / "lab.json"

    @property
    def state_home(self) -> Path:
        return self.root / "var" / "lib" / "fleetslurm"

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / "fleetslurm"

    @property
    def socket(self) -> Path:
        return self.run_dir / "ctl.sock"

    @property
    def unit_file(self) -> Path:
        return self.root / "etc" / "systemd" / "system" / "fleetslurm.service"

    def configured(self) -> bool:
        """Whether a lab is set up here (its config is installed)."""
        try:
            return self.config.is_file()
        except OSError:
            return False

    def service_user(self) -> str:
        """The account the lab's controller runs as (``lab.json``; ``fleetslurm``)."""
        import json

        try:
            return str(json.loads(self.lab_file.read_text()).get("service_user") or "fleetslurm")
        except (OSError, ValueError, AttributeError):
            return "fleetslurm"

    def listener_uids(self) -> "tuple[int, ...]":
        """Who may own the lab's socket and listen on it: the service account, root."""
        import pwd

        try:
            return (pwd.getpwnam(self.service_user()).pw_uid, 0)
        except KeyError:
            return (0,)

    def state(self) -> "StatePaths":
        """The controller's state directory, with the socket in run/."""
        return StatePaths(self.state_home, socket=self.socket)


def lab_paths(environ: "dict[str, str] | None" = None) -> LabPaths:
    return LabPaths(lab_root(environ))


class StatePaths:
    """Files of one controller's state directory."""

    __slots__ = ("home", "_socket")

    def __init__(self, home: Path, socket: "Path | None" = None) -> None:
        self.home = Path(home)
        #: a lab's socket lives elsewhere (run/fleetslurm/), every user may connect
        self._socket = Path(socket) if socket is not None else None

    @property
    def public(self) -> bool:
        """Whether this is a lab's state: its socket is open to every local user."""
        return self._socket is not None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StatePaths) and other.home == self.home
                and other._socket == self._socket)

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
        if self._socket is not None:
            return self._socket
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

    def output_dir(self, job_id: int, owner: "int | None" = None) -> Path:
        """``FLEETSLURM_HOME/output/<jobid>/`` keeps each job's stdout.txt/stderr.txt;
        a job of another user than the controller's (a lab's) under that
        user's own spool, ``output/u<uid>/<jobid>/``."""
        if owner is not None and owner != os.getuid():
            return self.output_root / f"u{owner}" / str(job_id)
        return self.output_root / str(job_id)

    def node_workdir(self, node: str) -> Path:
        """Agent work directory for a machine run by the local transport."""
        return self.home / "node" / node

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"


def state_paths(environ: "dict[str, str] | None" = None) -> StatePaths:
    return StatePaths(home_dir(environ))


def fleet_workdir(configured: str, cluster_id: str, own: bool, machine: str) -> str:
    """The agent's workdir on an SSH machine: the one configured; the default
    one has a directory per fleet (``own``: see Store.identity) and, in it,
    one per machine: home directories shared between machines (NFS) must
    not give two machines' agents the same workdir."""
    if configured.rstrip("/") == DEFAULT_WORKDIR and own:
        return f"{DEFAULT_WORKDIR}/{cluster_id}/{machine}"
    return configured


def local_workdir(paths: "StatePaths", cluster_id: str, machine: str) -> Path:
    """The agent's workdir on a local machine: ``FLEETSLURM_HOME/node/<machine>``;
    for a lab run by root (a privileged agent) the lab's node spool beside its
    state, ``/var/lib/fleetslurm-node/<cluster id>/<machine>``, made 0711 here
    (users pass through to their job directories; the 0700 state directory is
    never opened for them), unless the old one exists (it may have runs)."""
    old = paths.node_workdir(machine)
    if not (paths.public and os.geteuid() == 0) or old.exists():
        return old
    spool = paths.home.parent / "fleetslurm-node"
    path = spool / cluster_id / machine
    for d in (spool, spool / cluster_id, path):
        try:
            os.mkdir(d, 0o711)
            os.chmod(d, 0o711)  # (the umask took some bits)
        except FileExistsError:
            pass
        except OSError:
            return old  # (a read-only /var/lib): where it was before, which works
    return path


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
    if _is_file(local):
        return local.absolute()
    home = home_dir(env) / "fleet_config.json"  # type: ignore[arg-type]
    try:
        if home.is_file():
            return home
    except PermissionError as exc:
        _refuse_unreachable(home.parent, exc)
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except PermissionError:
        raise ConfigError(f"{path}: cannot read: Permission denied; make its directory "
                          "readable or name another config with --config") from None


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


def write_private(path: str, data: "bytes | BinaryIO", owner: "int | None" = None) -> None:
    """Write ``data`` (bytes, or an open file read in chunks) to ``path`` as a
    0600 file (temporary file, then rename), created and renamed as ``owner``
    when the controller runs as root for another user (see asowner)."""
    from .transport.chunked import CHUNK

    from .asowner import as_owner

    directory = os.path.dirname(path) or "."
    tmp = f"{path}.{os.getpid()}.tmp"

    def opener() -> int:
        # as the owner when the controller is root for another user: a
        # directory that user may not write fails, never written as root
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)

    fd = as_owner(owner, opener)
    assert fd is not None
    try:
        chunks = [data] if isinstance(data, bytes) else iter(lambda: data.read(CHUNK), b"")
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    as_owner(owner, lambda: os.replace(tmp, path))

