"""``"become": "sudo"``: a machine reached as a non-root account whose agent,
files and copies run as root through ``sudo -n``.

Two commands run through sudo, both fixed (no argument left to the caller,
so the sudoers rule needs no wildcard):

- the machine's ``sftp-server`` with no argument: the controller's one SFTP
  session, on an exec channel (``paramiko.SFTPClient`` works on any channel);
- ``PYTHON ENTRY``: the configured python (its absolute path) running the
  root-owned entry program ``ENTRY``, which the controller writes through
  that SFTP session. The entry reads one JSON line on its standard input, the
  python arguments to run (the agent archive, a streamed copy's program),
  and execs python with them; everything after that line is the program's
  standard input.

This grants the account what root has: the sftp-server alone writes any file
as root. The rule trades a root login over SSH for a named account whose
root actions go through sudo (logged, revocable in one file), not for less
power; the README's lab section says so.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AuthenticationFailed, FileMissing, TransportError
from ..paths import ROOT_WORKDIR

if TYPE_CHECKING:
    from .ssh_files import SFTPFiles

__all__ = ["ENTRY", "SFTP_SERVERS", "entry_source", "sudoers_text", "sudo_argv",
           "request_line", "open_sftp", "refused", "check", "install_entry", "root_dirs"]

#: ``fail(exc, path, doing)``: the transport's error for a failed file operation
Fail = Callable[[BaseException, str, str], TransportError]

#: the root-owned entry program (in the privileged agents' spool, 0711 root)
ENTRY = f"{ROOT_WORKDIR}/sudo-entry.py"

#: where distributions put OpenSSH's sftp-server (the first one present is used
#: unless the machine's ``sftp_server`` names it)
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server",
                "/usr/lib/sftp-server")

_ENTRY = b'''\
# fleetslurm's entry for a controller reaching this machine through sudo
# (written by the controller; see "A lab" in fleetslurm's README). It reads
# one JSON line, {"argv": [python arguments]}, and runs this python with
# them; the rest of standard input is theirs. Read byte by byte: nothing
# past the line may be taken from the program.
import json, os, sys
line = b""
while not line.endswith(b"\\n"):
    b = os.read(0, 1)
    if not b:
        sys.exit("fleetslurm sudo entry: no request on standard input")
    line += b
argv = json.loads(line.decode())["argv"]
if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
    sys.exit("fleetslurm sudo entry: the request is not a list of arguments")
os.execv(sys.executable, [sys.executable] + argv)
'''


def entry_source() -> bytes:
    """The entry program's text (the controller rewrites it when it differs)."""
    return _ENTRY


def sudoers_text(user: str, python: str, sftp_server: str) -> str:
    """The sudoers lines letting ``user`` run the two fixed commands as root
    without a password (for ``/etc/sudoers.d/fleetslurm``)."""
    return (f"Defaults:{user} !requiretty\n"
            f"{user} ALL=(root) NOPASSWD: {sftp_server} \"\", {python} {ENTRY}\n")


def sudo_argv(python: str) -> list[str]:
    """The command starting a python program as root through the entry."""
    return ["sudo", "-n", python, ENTRY]


def request_line(argv: list[str]) -> bytes:
    """The entry's first line: run python with ``argv``."""
    return json.dumps({"argv": argv}).encode() + b"\n"


def refused(node: str, user: str, python: str, sftp_server: str, what: str,
            stderr: str) -> AuthenticationFailed:
    """The error for a sudo that would not run ``what``: the machine, sudo's
    words and the sudoers lines to add."""
    rule = sudoers_text(user, python, sftp_server).strip().replace("\n", " / ")
    said = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    if said.endswith(("sudo: not found", "sudo: command not found")):
        return AuthenticationFailed(
            f"node {node}: \"become\": \"sudo\" but sudo is not installed there ({said}); "
            f"install it (apt-get install sudo), then add to /etc/sudoers.d/fleetslurm: "
            f"{rule}", node)
    if said.startswith("sudo: ") and said.endswith(": command not found"):
        return AuthenticationFailed(
            f"node {node}: \"become\": \"sudo\" but {what.split()[0]} is not there "
            f"({said}); set \"sftp_server\" or \"python\" for machine {node} in the config "
            "to its absolute path there", node)
    return AuthenticationFailed(
        f"node {node}: \"become\": \"sudo\" but sudo would not run {what} as root for "
        f"{user} without a password ({said}); add to /etc/sudoers.d/fleetslurm there "
        f"(visudo -f /etc/sudoers.d/fleetslurm): {rule}", node)


def open_sftp(node: str, client: Any, user: str, python: str, sftp_server: str,
              timeout: float) -> Any:
    """An SFTP client over ``sudo -n SFTP_SERVER`` on a new exec channel; a
    refused sudo raises :func:`refused`'s error."""
    import paramiko

    chan: "paramiko.Channel" = client.get_transport().open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(shlex.join(["sudo", "-n", sftp_server]))
    try:
        sftp = paramiko.SFTPClient(chan)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        err = b""
        try:
            while True:
                data = chan.recv_stderr(4096)
                if not data:
                    break
                err += data
        except Exception:  # the channel is gone too: say what sudo said so far
            pass
        chan.close()
        raise refused(node, user, python, sftp_server, sftp_server,
                      err.decode("utf-8", "replace") or str(exc)) from exc
    chan.settimeout(None)
    return sftp


def check(node: str, client: Any, run_python: Callable[[Any, "list[str]"], None], user: str,
          python: str, sftp_server: str, timeout: float) -> None:
    """sudo runs the entry as root without a password (``run_python`` starts
    python through it on a channel), or :func:`refused`'s error."""
    chan = client.get_transport().open_session(timeout=timeout)
    try:
        chan.settimeout(timeout)
        run_python(chan, ["-c", "import os; print(os.geteuid())"])
        chan.shutdown_write()
        out = chan.makefile("rb").read()
        err = chan.makefile_stderr("rb").read()
        status = chan.exit_status if chan.status_event.wait(timeout) else -1
    finally:
        chan.close()
    if status != 0 or out.strip() != b"0":
        raise refused(node, user, python, sftp_server, f"{python} {ENTRY}",
                      err.decode("utf-8", "replace") or f"exit {status}, uid {out.strip()!r}")


def install_entry(files: "SFTPFiles", fail: Fail) -> None:
    """The entry program, root's (``files`` is the root SFTP session),
    rewritten when it differs (another fleetslurm version wrote it)."""
    src = entry_source()
    try:
        if files.read(ENTRY) == src:
            return
    except FileMissing:
        pass
    root_dirs(files, ROOT_WORKDIR, fail)
    files.write(ENTRY, src, 0o644)


def root_dirs(files: "SFTPFiles", path: str, fail: Fail) -> None:
    """``path`` and the directories from ROOT_WORKDIR down to it, each made
    0711 where missing (users pass through to their job directories, no one
    lists them); existing ones are left as they are."""
    import paramiko

    d = ROOT_WORKDIR
    for part in [""] + [p for p in path[len(ROOT_WORKDIR):].split("/") if p]:
        d = f"{d}/{part}" if part else d
        try:
            files.sftp.stat(d)
            continue
        except FileNotFoundError:
            pass
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise fail(exc, d, "create") from exc
        try:
            files.sftp.mkdir(d, 0o711)
            files.sftp.chmod(d, 0o711)  # (the umask took some bits)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            try:
                files.sftp.stat(d)  # created meanwhile by another fleet
            except (OSError, EOFError, paramiko.SSHException):
                raise fail(exc, d, "create") from exc
