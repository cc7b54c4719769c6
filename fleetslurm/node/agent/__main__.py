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

# Run by the lean interpreter: ``-c _BOOT ARCHIVE FD ARGS...``. FD ("-" for
# none) holds the package's modules compiled by the first interpreter
# ({module: code}, marshalled): compiling leaves megabytes of freed memory
# scattered through the heap that every fork copies, so the lean one only
# unmarshals. The modules' source stays readable from the archive (tracebacks).
_BOOT = """import sys
archive, fd, P = sys.argv[1], sys.argv[2], %r
sys.path.insert(0, archive)
if fd != "-":
    import marshal, os, _frozen_importlib as boot
    with os.fdopen(int(fd), "rb") as f:
        codes = marshal.loads(f.read())
    class Compiled:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            mod = "__init__" if name == P else name[len(P) + 1:] if name.startswith(P + ".") else ""
            if mod not in codes:
                return None
            spec = boot.spec_from_loader(name, cls, origin="%%s/%%s/%%s.py" %% (archive, P, mod),
                                         is_package=mod == "__init__")
            spec.has_location = True
            return spec
        @staticmethod
        def create_module(spec):
            return None
        @staticmethod
        def exec_module(module):
            name = module.__name__
            exec(codes["__init__" if name == P else name[len(P) + 1:]], module.__dict__)
        @staticmethod
        def get_source(name):
            import zipimport
            where = archive if name == P else archive + "/" + P
            return zipimport.zipimporter(where).get_source(name)
    sys.meta_path.insert(0, Compiled)
sys.exit(__import__(P + ".server", fromlist=["main"]).main(sys.argv[3:]))
""" % ARCHIVE_PACKAGE


def _compiled(archive: str) -> int:
    """A file descriptor (inherited across exec) holding the package's modules
    compiled, marshalled; -1 when that cannot be made (then the lean
    interpreter compiles them itself)."""
    try:
        import marshal
        import zipfile

        codes = {}
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith(ARCHIVE_PACKAGE + "/") and name.endswith(".py"):
                    codes[name[len(ARCHIVE_PACKAGE) + 1:-3]] = compile(
                        zf.read(name), "%s/%s" % (archive, name), "exec", dont_inherit=True)
        data = marshal.dumps(codes)
        fd = os.memfd_create("fleetslurm-agent", 0)
    except (AttributeError, OSError, SyntaxError, ValueError, ImportError):
        return -1  # no memfd (not Linux), an unreadable archive: the slower way
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except OSError:
        os.close(fd)
        return -1
    return fd


def _reexec_lean(archive: str, argv: list) -> None:
    """Replace this process by a lean interpreter running the agent from
    ``archive``; returns on failure."""
    if not sys.executable:
        return  # cannot tell which interpreter we are
    fd = _compiled(archive)
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, archive,
                                  str(fd) if fd >= 0 else "-"] + argv)
    except OSError:
        if fd >= 0:
            os.close(fd)
        # run in this interpreter: slower forks, same behaviour


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
