"""fleetslurm.slurm.hostlist; expected values are what ``scontrol show hostnames``
and ``scontrol show hostlistsorted`` print on slurm-wlm 22.05.8."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from fleetslurm.errors import InvalidValue
from fleetslurm.slurm.hostlist import compress, expand, natural_compare


@pytest.mark.parametrize("text, names", [
    ("", []),
    ("localhost", ["localhost"]),
    ("node[01-03,7],gpu1", ["node01", "node02", "node03", "node7", "gpu1"]),
    ("node[01-3]", ["node01", "node02", "node03"]),    # width from the low bound
    ("node[1-03]", ["node1", "node2", "node3"]),
    ("node[9-11]", ["node9", "node10", "node11"]),
    ("node[098-100]", ["node098", "node099", "node100"]),
    ("node[1-2],,gpu", ["node1", "node2", "gpu"]),
    ("node[1-2] gpu3\tgpu4", ["node1", "node2", "gpu3", "gpu4"]),
    ("a[1,2][3]", ["a13", "a23"]),
    ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]),
    ("a[1-2]b[3-4]c[5-6]",
     ["a1b3c5", "a1b3c6", "a2b3c5", "a2b3c6", "a1b4c5", "a1b4c6", "a2b4c5", "a2b4c6"]),
    ("[1-3]", ["1", "2", "3"]),
    ("x[1-3],x2", ["x1", "x2", "x3", "x2"]),
    ("node1.cluster.org,node2.cluster.org", ["node1.cluster.org", "node2.cluster.org"]),
])
def test_expand(text, names):
    assert expand(text) == names


@pytest.mark.parametrize("text, message", [
    ("node[1-", "Invalid hostlist: node[1- (unclosed '[')"),
    ("node[1-2", "Invalid hostlist: node[1-2 (unclosed '[')"),
    ("node[]", "Invalid hostlist: node[] (invalid range `')"),
    ("node[3-1]", "Invalid hostlist: node[3-1] (invalid range `3-1')"),
    ("node[a-b]", "Invalid hostlist: node[a-b] (invalid range `a-b')"),
    ("node[-1]", "Invalid hostlist: node[-1] (invalid range `-1')"),
    ("node[1-]", "Invalid hostlist: node[1-] (invalid range `1-')"),
    ("node[1-3]x", "Invalid hostlist: node[1-3]x (text after ']')"),
    ("node[1-2].ib", "Invalid hostlist: node[1-2].ib (text after ']')"),
    ("node1]", "Invalid hostlist: node1] (']' without '[')"),
    ("node[[1]]", "Invalid hostlist: node[[1]] (nested '[')"),
    ("node[0-70000]", "Invalid hostlist: node[0-70000] (too many hosts in range `0-70000')"),
])
def test_expand_errors(text, message):
    with pytest.raises(InvalidValue) as info:
        expand(text)
    assert str(info.value) == message


@pytest.mark.parametrize("names, text", [
    ([], ""),
    (["localhost"], "localhost"),
    (["node1"], "node1"),
    (["node3", "node1", "node2"], "node[1-3]"),
    # node7's suffix is narrower than node01's: SLURM sorts it first
    (["node01", "node02", "node03", "node7", "gpu1"], "gpu1,node[7,01-03]"),
    (["node08", "node09", "node10", "node11"], "node[08-11]"),
    (["node11", "node10", "node09", "node08"], "node[08-11]"),
    (["node100", "node99", "node098"], "node[99,098,100]"),
    (["node1", "node01", "node001"], "node[1,01,001]"),
    (["node10", "node9", "node01"], "node[9,01,10]"),
    (["gpu1", "node2", "node1", "a10", "a9", "b"], "a[9-10],b,gpu1,node[1-2]"),
    (["node", "node1", "node0"], "node,node[0-1]"),
    (["node1", "node1", "node2"], "node[1,1-2]"),
    (["n1", "n10", "n2", "n100", "n20"], "n[1-2,10,20,100]"),
    (["node-1", "node-2", "node1"], "node1,node-[1-2]"),
    (["x1", "x2", "x3", "x2"], "x[1-2,2-3]"),
    (["rack1-n01", "rack10-n01", "rack2-n01"], "rack1-n01,rack2-n01,rack10-n01"),
    (["a1b2", "a1b3", "a2b1"], "a1b[2-3],a2b1"),
    (["node1", "node3"], "node[1,3]"),
])
def test_compress(names, text):
    assert compress(names) == text


@pytest.mark.parametrize("bad", ["", "node[1]", "a,b", "a b"])
def test_compress_refuses_names_that_cannot_round_trip(bad):
    with pytest.raises(InvalidValue) as info:
        compress(["ok1", bad])
    assert str(info.value) == f"Invalid host name {bad!r}: it cannot be part of a hostlist"


@pytest.mark.parametrize("a, b, result", [
    ("n2", "n10", -1), ("n10", "n2", 1), ("node", "node-", -1), ("a", "a", 0),
    ("rack2-n", "rack10-n", -1), ("x01", "x1", -1), ("gpu", "node", -1),
])
def test_natural_compare(a, b, result):
    assert natural_compare(a, b) == result


# -- properties ---------------------------------------------------------------

PREFIXES = ["gpu", "node", "cpu", "r1n"]
padded_names = st.sets(
    st.tuples(st.sampled_from(PREFIXES), st.integers(min_value=0, max_value=999)),
    max_size=40,
).map(lambda s: [f"{p}{n:03d}" for p, n in s])


@given(padded_names)
def test_expand_compress_is_sorted(names):
    # same-width suffixes and prefixes that are not prefixes of one another:
    # SLURM's natural order is plain string order here
    assert expand(compress(names)) == sorted(names)


mixed_names = st.lists(
    st.one_of(
        st.builds(lambda p, n: f"{p}{n}", st.sampled_from(PREFIXES + ["n", "a-"]),
                  st.integers(min_value=0, max_value=120)),
        st.builds(lambda p, n: f"{p}{n:02d}", st.sampled_from(PREFIXES),
                  st.integers(min_value=0, max_value=120)),
        st.sampled_from(["localhost", "login", "node"]),
    ),
    max_size=30,
)


@given(mixed_names)
def test_compress_keeps_every_name(names):
    text = compress(names)
    assert sorted(expand(text)) == sorted(names)
    assert compress(expand(text)) == text


@given(mixed_names, st.randoms(use_true_random=False))
def test_compress_ignores_input_order(names, rnd):
    shuffled = list(names)
    rnd.shuffle(shuffled)
    assert compress(shuffled) == compress(names)
