"""Start the node agent: ``python3 agent-<hash>.pyz --workdir DIR``.

The controller ships this package to a machine as one zip archive (see
``fleetslurm.node.agent_artifact``), whose root ``__main__.py`` is a copy of
this file and whose package is named ``fleetslurm_agent``. Run from the
archive, it re-executes itself once, in an isolated interpreter without site
(-I -S: no user site, no .pth files, no PYTHON* variables), that imports the
package from the archive and serves: what ``site`` and the start-up leave in
the heap would be copied by every fork. ``python -m fleetslurm.node.agent``
(in the source tree) serves at once.

Only ``os`` and ``sys`` are imported here: nothing else of this process
survives the exec.
"""
import os
import sys

#: the agent package's name inside the archive
ARCHIVE_PACKAGE = "fleetslurm_agent"

_BOOT = ("import sys\n"
         "sys.path.insert(0, sys.argv[1])\n"
         "from %s.server import main\n"
         "sys.exit(main(sys.argv[2:]))\n" % ARCHIVE_PACKAGE)


def _reexec_lean(archive: str, argv: list) -> None:
    """Replace this process by a lean interpreter running the agent from
    ``archive``; returns on failure."""
    if not sys.executable:
        return  # cannot tell which interpreter we are
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, archive] + argv)
    except OSError:
        pass  # run in this interpreter: slower forks, same behaviour


def _main() -> int:
    if __package__:  # python -m fleetslurm.node.agent
        from .server import main
        return main()
    # the archive's root __main__.py: sys.path[0] is the archive
    archive = os.path.abspath(sys.path[0])
    _reexec_lean(archive, sys.argv[1:])
    import importlib
    return importlib.import_module(ARCHIVE_PACKAGE + ".server").main()


if __name__ == "__main__":
    sys.exit(_main())
