"""Fake GPUs for the loopback sshd machines: an executable ``nvidia-smi``
put first on the PATH of the machine's agent (through a ``python`` wrapper
in the machine's config entry, the one way a fleet config reaches the
agent's environment). No real GPU answers here; the fake answers the two
queries the agent makes, with figures a test changes by rewriting
``usage.csv``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FakeGpus", "BROKEN_SMI"]

_SMI = r"""#!/bin/sh
here=$(dirname "$0")
case "$1" in
  --query-gpu=index,name,uuid,memory.total) cat "$here/gpus.csv" ;;
  --query-gpu=index,uuid,utilization.gpu,memory.used,memory.total) cat "$here/usage.csv" ;;
  *) echo "fake nvidia-smi: unexpected $*" >&2; exit 2 ;;
esac
"""

#: what nvidia-smi prints on a machine whose driver is gone, and its status
BROKEN_SMI = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
echo "garbage, 1, 2"
exit 1
"""


class FakeGpus:
    """``count`` fake GPUs (15 GiB each) in ``root/bin``; :attr:`python` is
    the wrapper to put in the machine's ``python`` field."""

    def __init__(self, root: Path, count: int = 2, smi: str = _SMI) -> None:
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        smi_path = self.bin / "nvidia-smi"
        smi_path.write_text(smi)
        smi_path.chmod(0o755)
        (self.bin / "gpus.csv").write_text("".join(
            f"{i}, Tesla T4, GPU-fake-{i}, 15360\n" for i in range(count)))
        self.count = count
        self.set({i: (0, 0) for i in range(count)})
        self.python = root / "python3"
        self.python.write_text(f'#!/bin/sh\nPATH="{self.bin}:$PATH"\nexport PATH\n'
                               'exec python3 "$@"\n')
        self.python.chmod(0o755)

    def set(self, figures: dict[int, tuple[int, int]]) -> None:
        """Each GPU's (utilization %, memory used MiB) from now on."""
        tmp = self.bin / "usage.tmp"
        tmp.write_text("".join(f"{i}, GPU-fake-{i}, {u}, {m}, 15360\n"
                               for i, (u, m) in sorted(figures.items())))
        tmp.replace(self.bin / "usage.csv")  # never half a file for the fake to cat
