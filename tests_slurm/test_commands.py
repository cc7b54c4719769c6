"""scancel, squeue, sinfo and scontrol on bad or unknown input, and
``scontrol show config``, judged by real SLURM: the same output, messages
and exit codes."""

from __future__ import annotations

import re

import pytest

from .shape import TS
from .sides import Side

UNKNOWN = "999999999"

SAME = [
    ["scancel", UNKNOWN],                        # silent, exit 0 (22.05)
    ["scancel", "-v", UNKNOWN],
    ["squeue", "-j", UNKNOWN],
    ["squeue", "-t", "bogus"],
    ["squeue", "--bogus"],
    ["sinfo", "-p", "nosuch"],
    ["scontrol", "show", "job", UNKNOWN],
    ["scontrol", "show", "node", "nosuch"],
    ["scontrol", "show", "partition", "nosuch"],
    ["scontrol", "hold", UNKNOWN],
    ["scontrol", "release", UNKNOWN],
    ["scontrol", "update", f"JobId={UNKNOWN}", "TimeLimit=5"],
]


def _norm(text: str) -> str:
    # SLURM's "Terminating job N" is a -v chatter line fleetslurm does not
    # print; glibc names the program as it was called (/usr/bin/squeue)
    text = text.replace("/usr/bin/", "")
    return "".join(line for line in text.splitlines(True) if "Terminating job" not in line)


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_same_answer(slurm: Side, fleet: Side, argv):
    want, got = slurm.run(*argv), fleet.run(*argv)
    assert (got.rc, got.out, _norm(got.err)) == (want.rc, want.out, _norm(want.err))


def _config(side: Side) -> tuple[list[str], dict[str, str]]:
    res = side.run("scontrol", "show", "config")
    assert res.rc == 0 and res.err == "", res
    lines = res.out.split("\n")
    assert lines[-1] == ""
    return lines[:-1], {k.strip(): v for k, v in (l.split(" = ", 1) for l in lines if " = " in l)}


#: fleetslurm's own settings, which SLURM does not have
FLEET_ONLY = {"ConfigFile", "FleetslurmHome", "HostKeyPolicy", "SlurmctldHeartbeatInterval"}
#: settings whose value is the fleet's own choice (fleetslurm allocates CPUs
#: where the oracle's slurm.conf asks for cores)
OWN_VALUES = {"SelectTypeParameters"}


def test_show_config(slurm: Side, fleet: Side):
    want_lines, want = _config(slurm)
    got_lines, got = _config(fleet)
    for lines in (want_lines, got_lines):
        assert TS.sub("<TS>", lines[0]) == "Configuration data as of <TS>"
        body = [line for line in lines[1:] if " = " in line]
        # "%-23s = %s", keys in SLURM's (alphabetical) order
        assert all(line.index(" = ") == max(23, len(line.split(" = ")[0].rstrip()))
                   for line in body), body
        assert lines[-2:-1] == [""] and re.fullmatch(r"Slurmctld\(primary\) at \S+ is UP",
                                                     lines[-1]), lines[-3:]
    assert set(got) - set(want) == FLEET_ONLY
    shared = sorted(set(got) & set(want) - OWN_VALUES)
    assert {k: got[k] for k in shared} == {k: want[k] for k in shared}
    assert {"MinJobAge", "MaxArraySize", "KillWait", "ClusterName", "SLURM_VERSION"} <= set(shared)
