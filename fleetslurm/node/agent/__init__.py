"""The node agent: stdlib-only, shipped to each machine as one zip archive
(``fleetslurm.node.artifact``) and run there as
``python3 agent-<hash>.pyz --workdir DIR``.

It speaks the JSON-lines protocol of ``protocol`` with the controller over
one byte stream (an SSH exec channel, or a local pipe) and runs each job
under a supervisor forked from it (``supervisor``). Its modules, lowest
first: ``protocol`` (the messages), ``fsio`` (files), ``host`` (processes
and machine facts), ``owner`` (foreign load and the owner's idle time, for
workstation policies), ``spec`` (launch specs), ``cpus`` (the CPU ids a
job is bound to), ``cgroups`` (its memory and CPU cgroups), ``jobchild`` and
``supervisor`` (one job), ``jobs`` (the book of jobs), ``ops`` (the
requests), ``server`` (the loop and ``main``), ``__main__`` (start-up).

Every module must run under any Python >= 3.8 with only the standard library,
and imports only the standard library and its siblings (relative imports):
it runs on machines without fleetslurm (tests/test_agent_package.py checks).
"""
__all__ = ["AGENT_VERSION", "PROTOCOL_VERSION", "Agent", "Supervisor", "format_exc", "key_error",
           "main", "read_result", "validate_spec"]

#: the names above and their modules, imported when first asked for: importing
#: one module of the package (``fleetslurm.node.facts`` uses ``host``) does not
#: load the rest into the controller
_HOMES = {"AGENT_VERSION": "protocol", "PROTOCOL_VERSION": "protocol", "key_error": "protocol",
          "Agent": "server", "main": "server", "Supervisor": "supervisor",
          "format_exc": "fsio", "read_result": "fsio", "validate_spec": "spec"}


def __getattr__(name: str) -> "object":
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    from importlib import import_module
    return getattr(import_module("." + home, __name__), name)
