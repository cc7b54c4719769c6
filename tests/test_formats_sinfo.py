"""sinfo_fmt against output captured from a real sinfo 22.05 (the oracle).

The oracle has one node ("localhost", CPUs=2, RealMemory=20000) in one
partition ("debug", default, MaxTime=INFINITE); each expected string names
the oracle command. Multi-node grouping and ordering cannot be shown on a
one-node oracle: those cases follow src/sinfo/{sinfo,sort,print}.c and a
published 23.02 sinfo listing (states sorted drain*, comp, drain, mix, alloc).
"""

import pytest

from fleetslurm.slurm.sinfo_fmt import (DEFAULT_FORMAT, DEFAULT_NODE_FORMAT, format_warnings,
                                        parse_format, render)

DEBUG = dict(name="debug", default=True, state="up", max_time=None, default_time=None,
             priority=1, nodes=["localhost"])
NODE = dict(name="localhost", hostname="localhost", state="idle", reason="", cpus=2,
            alloc_cpus=0, mem_mb=20000, alloc_mem_mb=0, free_mem_mb=23608, cpu_load=0.11,
            gpus=0, alloc_gpus=0, partitions=["debug"], features=[], weight=1)


def test_defaults():
    assert DEFAULT_FORMAT == "%9P %.5a %.10l %.6D %.6t %N"
    assert DEFAULT_NODE_FORMAT == "%N %.6D %.9P %6t"


def test_default_output_matches_oracle():
    # oracle: sinfo
    assert render(None, [DEBUG], [NODE], node_oriented=False) == (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "debug*       up   infinite      1   idle localhost\n")
    # oracle: sinfo -h
    assert render(None, [DEBUG], [NODE], node_oriented=False, header=False) == (
        "debug*       up   infinite      1   idle localhost\n")


def test_node_oriented_default_matches_oracle():
    # oracle: sinfo -N   (note the trailing blanks of the %6t column)
    assert render(None, [DEBUG], [NODE], node_oriented=True) == (
        "NODELIST   NODES PARTITION STATE \n"
        "localhost      1    debug* idle  \n")
    # oracle: sinfo -N -o "%N %t %P"  (a user format is not auto-sized)
    assert render("%N %t %P", [DEBUG], [NODE], node_oriented=True) == (
        "NODELIST STATE PARTITION\nlocalhost idle debug*\n")
    # oracle: sinfo -o "%N %.6D %.9P %6t"
    assert render("%N %.6D %.9P %6t", [DEBUG], [NODE], node_oriented=False) == (
        "NODELIST  NODES PARTITION STATE \nlocalhost      1    debug* idle  \n")


def test_extra_fields_match_oracle():
    # oracle: sinfo -o "%c %m %O %e %G %f %E %C %n %o %z %w"
    assert render("%c %m %O %e %G %f %E %C %n %o %z %w", [DEBUG], [NODE], node_oriented=False) == (
        "CPUS MEMORY CPU_LOAD FREE_MEM GRES AVAIL_FEATURES REASON CPUS(A/I/O/T) HOSTNAMES "
        "NODE_ADDR S:C:T WEIGHT\n"
        "2 20000 0.11 23608 (null) (null) none 0/2/0/2 localhost localhost 2:1:1 1\n")


# oracle: for l in ...; sinfo -o "%$l|%.3$l|"
@pytest.mark.parametrize("letter, header, value, cut3", [
    ("P", "PARTITION", "debug*", "de*"), ("a", "AVAIL", "up", " up"),
    ("l", "TIMELIMIT", "infinite", "inf"), ("D", "NODES", "1", "  1"), ("t", "STATE", "idle", "idl"),
    ("T", "STATE", "idle", "idl"), ("N", "NODELIST", "localhost", "loc"),
    ("c", "CPUS", "2", "  2"), ("m", "MEMORY", "20000", "200"), ("G", "GRES", "(null)", "(nu"),
    ("f", "AVAIL_FEATURES", "(null)", "(nu"), ("E", "REASON", "none", "non"),
    ("C", "CPUS(A/I/O/T)", "0/2/0/2", "0/2"), ("n", "HOSTNAMES", "localhost", "loc"),
    ("o", "NODE_ADDR", "localhost", "loc"), ("z", "S:C:T", "2:1:1", "2:1"), ("w", "WEIGHT", "1", "  1"),
    ("R", "PARTITION", "debug", "deb"), ("A", "NODES(A/I)", "0/1", "0/1"),
    ("b", "ACTIVE_FEATURES", "(null)", "(nu"), ("B", "MAX_CPUS_PER_NODE", "UNLIMITED", "UNL"),
    ("d", "TMP_DISK", "0", "  0"), ("F", "NODES(A/I/O/T)", "0/1/0/1", "0/1"), ("g", "GROUPS", "all", "all"),
    ("h", "OVERSUBSCRIBE", "NO", " NO"), ("H", "TIMESTAMP", "Unknown", "Unk"),
    ("I", "PRIO_JOB_FACTOR", "1", "  1"), ("L", "DEFAULTTIME", "n/a", "n/a"), ("M", "PREEMPT_MODE", "OFF", "OFF"),
    ("p", "PRIO_TIER", "1", "  1"), ("r", "ROOT", "no", " no"), ("s", "JOB_SIZE", "1-infinite", "1-i"),
    ("S", "ALLOCNODES", "all", "all"), ("u", "USER", "Unknown", "Unk"), ("U", "USER", "Unknown", "Unk"),
    ("V", "CLUSTER", "N/A", "N/A"), ("X", "SOCKETS", "2", "  2"), ("Y", "CORES", "1", "  1"),
    ("Z", "THREADS", "1", "  1"), ("O", "CPU_LOAD", "0.11", "0.1"), ("e", "FREE_MEM", "23608", "236"),
])
def test_each_letter_matches_oracle(letter, header, value, cut3):
    out = render(f"%{letter}|%.3{letter}|", [DEBUG], [NODE], node_oriented=False)
    header3 = header if letter in "Nno" else header[:3].rjust(3)
    assert out == f"{header}|{header3}|\n{value}|{cut3}|\n"


@pytest.mark.parametrize("fmt, printed, warning", [
    # oracle: sinfo -o "<fmt>"  (stderr line, rc 0)
    ("%%|%P", "%|PARTITION", "Invalid node format specification: |"),
    ("%5|", "%5|", "Invalid node format specification: |"),
    ("%Q", "%Q", "Invalid node format specification: Q"),
    ("%i", "%i", "Invalid node format specification: i"),
])
def test_invalid_letters(fmt, printed, warning):
    assert format_warnings(parse_format(fmt)) == [warning]
    assert render(fmt, [DEBUG], [NODE], node_oriented=False).splitlines()[0] == printed


def test_literal_text_and_widths():
    # oracle: sinfo -o "x%Py"  and  sinfo -o "%.20P|%20P|%0P"
    assert render("x%Py", [DEBUG], [NODE], node_oriented=False) == "xPARTITIONy\nxdebug*y\n"
    assert render("%.20P|%20P|%0P", [DEBUG], [NODE], node_oriented=False) == (
        "           PARTITION|PARTITION           |PARTITION\n"
        "              debug*|debug*              |debug*\n")


def test_drained_and_mixed_states_match_oracle():
    # oracle: scontrol update NodeName=localhost State=DRAIN Reason="fmt check by helper"; sinfo
    drained = dict(NODE, state="drain", reason="fmt check by helper")
    assert render(None, [DEBUG], [drained], node_oriented=False, header=False) == (
        "debug*       up   infinite      1  drain localhost\n")
    # oracle: sinfo -N -o "%N %t %T %E %C %A %F"
    assert render("%N %t %T %E %C %A %F", [DEBUG], [drained], node_oriented=True, header=False) == (
        "localhost drain drained fmt check by helper 0/0/2/2 0/0 0/0/1/1\n")
    # oracle: a 1-CPU job running; sinfo -o "%C %A %F %O %e"
    mixed = dict(NODE, state="mix", alloc_cpus=1, alloc_mem_mb=2048, cpu_load=0.95, free_mem_mb=23346)
    assert render("%C %A %F %O %e", [DEBUG], [mixed], node_oriented=False, header=False) == (
        "1/1/0/2 1/0 1/0/0/1 0.95 23346\n")
    # oracle: right after State=RESUME the node briefly shows "idle*"
    assert render(None, [DEBUG], [dict(NODE, responding=False)], node_oriented=False, header=False) == (
        "debug*       up   infinite      1  idle* localhost\n")


def _node(name, state, **kw):
    return dict(NODE, name=name, hostname=name, state=state, **kw)


def test_groups_by_state_sorted_like_sinfo():
    nodes = [_node("b-cn1401", "alloc", alloc_cpus=2), _node("b-cn1402", "alloc", alloc_cpus=2),
             _node("b-cn1411", "mix", alloc_cpus=1), _node("b-cn1409", "comp"), _node("b-cn1415", "comp"),
             _node("b-cn1427", "drain"), _node("b-cn1431", "drain", responding=False)]
    parts = [dict(DEBUG, name="batch", default=False, max_time=7 * 1440, nodes=[]),
             dict(DEBUG, name="cpu_sky_long_x", default=False, max_time=7 * 1440,
                  nodes=[n["name"] for n in nodes])]
    assert render(None, parts, nodes, node_oriented=False) == (
        "PARTITION      AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "batch             up 7-00:00:00      0    n/a \n"
        "cpu_sky_long_x    up 7-00:00:00      1 drain* b-cn1431\n"
        "cpu_sky_long_x    up 7-00:00:00      2   comp b-cn[1409,1415]\n"
        "cpu_sky_long_x    up 7-00:00:00      1  drain b-cn1427\n"
        "cpu_sky_long_x    up 7-00:00:00      1    mix b-cn1411\n"
        "cpu_sky_long_x    up 7-00:00:00      2  alloc b-cn[1401-1402]\n")
    # without a state column the nodes of a partition make one line
    assert render("%P %D %N %C", parts[1:], nodes, node_oriented=False, header=False) == (
        "cpu_sky_long_x 7 b-cn[1401-1402,1409,1411,1415,1427,1431] 5/5/4/14\n")


def test_node_oriented_one_line_per_node_and_partition():
    n1, n2 = _node("node2", "idle"), _node("node10", "alloc", alloc_cpus=2)
    parts = [dict(DEBUG, nodes=["node10", "node2"]),
             dict(DEBUG, name="long", default=False, max_time=60, nodes=["node2"])]
    assert render(None, parts, [n1, n2], node_oriented=True) == (
        "NODELIST   NODES PARTITION STATE \n"
        "node2          1    debug* idle  \n"
        "node2          1      long idle  \n"
        "node10         1    debug* alloc \n")
    assert render("%P %l %L", parts[1:], [n1], node_oriented=False, header=False) == "long 1:00:00 n/a\n"


def test_numeric_ranges_in_one_line():
    nodes = [_node("n1", "idle", cpus=4, mem_mb=1000, cpu_load=0.5, free_mem_mb=None),
             _node("n2", "idle", cpus=2048, mem_mb=2000, cpu_load=1.25, free_mem_mb=700)]
    part = dict(DEBUG, nodes=["n1", "n2"])
    assert render("%c|%m|%O|%e|%z", [part], nodes, node_oriented=False, header=False) == (
        "4+|1000+|0.50-1.25|N/A-700|4+:1:1\n")
