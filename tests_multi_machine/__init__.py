"""Multi-machine tests: real sshd instances on loopback, one per "machine".

A package, so that its conftest is imported as tests_multi_machine.conftest and
does not replace tests/conftest.py as the module named ``conftest``.
"""
