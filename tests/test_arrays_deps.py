"""fleetslurm.slurm.arrays and fleetslurm.slurm.deps.

Array and dependency display strings are what squeue/scontrol of slurm-wlm
22.05.8 printed for held jobs submitted with the same options.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from fleetslurm.errors import InvalidValue
from fleetslurm.slurm.arrays import format_array, parse_array
from fleetslurm.slurm.deps import (
    ALL_TASKS,
    Dependency,
    DepTerm,
    Facts,
    evaluate,
    format_dependency,
    parse_dependency,
    unknown_ids,
)

# -- arrays -------------------------------------------------------------------


@pytest.mark.parametrize("text, indices, throttle", [
    ("0-15", list(range(16)), None),
    ("0,6,16-32", [0, 6] + list(range(16, 33)), None),
    ("0-15:4", [0, 4, 8, 12], None),
    ("1-3,7", [1, 2, 3, 7], None),
    ("0-3%2", [0, 1, 2, 3], 2),
    ("0-15:4%2", [0, 4, 8, 12], 2),
    ("1-3:2,10", [1, 3, 10], None),
    ("7,3,3", [3, 7], None),
    ("1,,2", [1, 2], None),          # SLURM skips empty terms
    (" 1", [1], None),
    ("1000", [1000], None),
    ("0-1000", list(range(1001)), None),
    ("0-3%0", [0, 1, 2, 3], None),   # %0 means no limit
    ("1-3%", [1, 2, 3], None),
    # the throttle is read like SLURM's atoi (sbatch 22.05.8 accepted each of these)
    ("0-3%2x", [0, 1, 2, 3], 2),
    ("0-3%x", [0, 1, 2, 3], None),
    ("0-3%-1", [0, 1, 2, 3], None),
    ("0-3% 2", [0, 1, 2, 3], 2),
    ("0-3%2%3", [0, 1, 2, 3], 2),
    ("1-3,1-3", [1, 2, 3], None),
    ("0-7:3%2", [0, 3, 6], 2),
])
def test_parse_array(text, indices, throttle):
    assert parse_array(text) == (indices, throttle)


@pytest.mark.parametrize("text, why", [
    ("1001", "index 1001 is not below MaxArraySize=1001"),
    ("0-1001", "index 1001 is not below MaxArraySize=1001"),
    ("5-1", "range '5-1' ends before it starts"),
    ("0-15:0", "step in '0-15:0' must be at least 1"),
    ("a", "'a' is not N, A-B or A-B:STEP"),
    ("3:2", "'3:2' is not N, A-B or A-B:STEP"),
    ("-1", "'-1' is not N, A-B or A-B:STEP"),
    ("0-4:-1", "'0-4:-1' is not N, A-B or A-B:STEP"),
    ("1-", "'1-' is not N, A-B or A-B:STEP"),
    ("%2", "no array indices given"),
    ("", "no array indices given"),
])
def test_parse_array_errors(text, why):
    with pytest.raises(InvalidValue) as info:
        parse_array(text)
    assert str(info.value) == f'Invalid job array specification: "{text}" ({why})'


def test_parse_array_max_size():
    assert parse_array("0-9", max_array_size=10) == (list(range(10)), None)
    with pytest.raises(InvalidValue, match="MaxArraySize=10"):
        parse_array("10", max_array_size=10)


@pytest.mark.parametrize("indices, throttle, text", [
    ([0, 4, 8, 12], 2, "0,4,8,12%2"),        # squeue: 34_[0,4,8,12%2]
    ([1, 2, 3, 7, 9, 10], None, "1-3,7,9-10"),  # squeue: 35_[1-3,7,9-10]
    (list(range(10)), 4, "0-9%4"),
    ([5], None, "5"),
    ([3, 1, 2, 2], None, "1-3"),
    ([], None, ""),
])
def test_format_array(indices, throttle, text):
    assert format_array(indices, throttle) == text


@given(st.sets(st.integers(min_value=0, max_value=1000), min_size=1),
       st.one_of(st.none(), st.integers(min_value=1, max_value=50)))
def test_array_round_trip(indices, throttle):
    assert parse_array(format_array(sorted(indices), throttle)) == (sorted(indices), throttle)


# -- dependency parsing -------------------------------------------------------


def test_parse_all_of():
    dep = parse_dependency("afterok:12:13,afterany:14")
    assert dep == Dependency(False, (DepTerm("afterok", 12), DepTerm("afterok", 13),
                                     DepTerm("afterany", 14)))
    assert dep.job_ids == (12, 13, 14)
    assert not dep.singleton


def test_parse_any_of():
    dep = parse_dependency("afterok:12?afternotok:14")
    assert dep.any_of
    assert dep.terms == (DepTerm("afterok", 12), DepTerm("afternotok", 14))


@pytest.mark.parametrize("text, terms", [
    ("after:12+5", (DepTerm("after", 12, None, 5),)),
    ("after:12+5:13", (DepTerm("after", 12, None, 5), DepTerm("after", 13))),
    ("afterok:34_*", (DepTerm("afterok", 34, ALL_TASKS),)),
    ("afterok:34_2", (DepTerm("afterok", 34, 2),)),
    ("aftercorr:40", (DepTerm("aftercorr", 40),)),
    ("AfterOK:12", (DepTerm("afterok", 12),)),
    ("12,13", (DepTerm("afterany", 12), DepTerm("afterany", 13))),  # old format
    ("afterok:12:12,afterok:12", (DepTerm("afterok", 12),)),      # SLURM dedups
    ("singleton", (DepTerm("singleton"),)),
    ("singleton,afterok:3", (DepTerm("singleton"), DepTerm("afterok", 3))),
])
def test_parse_terms(text, terms):
    assert parse_dependency(text).terms == terms


def test_singleton_property():
    assert parse_dependency("singleton,afterok:3").singleton
    assert parse_dependency("singleton").job_ids == ()


VALID = "after, afterany, afterok, afternotok, aftercorr, singleton"


@pytest.mark.parametrize("text, why", [
    ("afterok:12,afterany:13?afterok:14", "it mixes ',' (all of) and '?' (any of): use one separator"),
    ("", "empty dependency"),
    ("afterok", "'afterok' needs job ids (afterok:ID[:ID...])"),
    ("afterok:", "invalid job id ''"),
    ("afterok:x", "invalid job id 'x'"),
    ("afterok:12:", "invalid job id ''"),
    ("afterok:0", "job id 0 does not exist"),
    ("after:12+0", "the delay in '12+0' must be at least 1 minute"),
    ("afterwards:12", f"unknown dependency type 'afterwards' (valid: {VALID})"),
    ("expand:12", f"unknown dependency type 'expand' (valid: {VALID})"),
    ("bogus", f"unknown dependency type 'bogus' (valid: {VALID})"),
    ("singleton:12", "'singleton' takes no job ids"),
])
def test_parse_errors(text, why):
    with pytest.raises(InvalidValue) as info:
        parse_dependency(text)
    assert str(info.value) == f'Job dependency problem: {why} in "{text}"'


# -- evaluation ---------------------------------------------------------------

def lookup_from(table):
    """Facts from {job_id or (job_id, task): (state, start) or Facts}."""
    def lookup(job_id, task=None):
        entry = table.get(job_id if task is None else (job_id, task))
        if isinstance(entry, Facts):
            return entry
        if entry is None or entry[0] is None:
            return None  # nobody knows the job
        return Facts.of_state(*entry)
    return lookup


@pytest.mark.parametrize("kind, state, result", [
    ("afterok", "PENDING", "wait"),
    ("afterok", "RUNNING", "wait"),
    ("afterok", "COMPLETING", "wait"),
    ("afterok", "COMPLETED", "ok"),
    ("afterok", "FAILED", "never"),
    ("afterok", "CANCELLED", "never"),
    ("afterok", "TIMEOUT", "never"),
    ("afternotok", "RUNNING", "wait"),
    ("afternotok", "COMPLETED", "never"),
    ("afternotok", "FAILED", "ok"),
    ("afternotok", "CANCELLED by 1000", "ok"),
    ("afternotok", "TIMEOUT", "ok"),
    ("afternotok", "NODE_FAIL", "ok"),
    ("afternotok", "OUT_OF_MEMORY", "ok"),
    ("afternotok", "PREEMPTED", "ok"),
    ("afternotok", "SPECIAL_EXIT", "ok"),
    ("afterany", "RUNNING", "wait"),
    ("afterany", "REQUEUED", "wait"),
    ("afterany", "COMPLETED", "ok"),
    ("afterany", "FAILED", "ok"),
    ("afterany", "CANCELLED", "ok"),
    ("after", "PENDING", "wait"),
    ("after", "REQUEUED", "wait"),
    ("after", "RUNNING", "ok"),
    ("after", "CANCELLED", "ok"),       # cancelled before starting counts
    ("after", "COMPLETED", "ok"),
    ("afterok", None, "ok"),            # purged job: dependency lifted
])
def test_evaluate_single(kind, state, result):
    dep = parse_dependency(f"{kind}:5")
    assert evaluate(dep, lookup_from({5: (state, 100.0)})) == result


def test_evaluate_after_with_delay():
    dep = parse_dependency("after:5+2")
    lookup = lookup_from({5: ("RUNNING", 1000.0)})
    assert evaluate(dep, lookup, now=1119.0) == "wait"
    assert evaluate(dep, lookup, now=1120.0) == "ok"
    with pytest.raises(TypeError, match="needs now="):
        evaluate(dep, lookup)


def test_evaluate_all_of_and_any_of():
    table = {1: ("COMPLETED", 1.0), 2: ("RUNNING", 2.0), 3: ("FAILED", 3.0)}
    lookup = lookup_from(table)
    assert evaluate(parse_dependency("afterok:1:2"), lookup) == "wait"
    assert evaluate(parse_dependency("afterok:1,afterany:3"), lookup) == "ok"
    assert evaluate(parse_dependency("afterok:2:3"), lookup) == "never"
    assert evaluate(parse_dependency("afterok:3?afterok:1"), lookup) == "ok"
    assert evaluate(parse_dependency("afterok:3?afterok:2"), lookup) == "wait"
    assert evaluate(parse_dependency("afterok:3?afternotok:1"), lookup) == "never"


def test_evaluate_array_terms_and_aftercorr():
    running = Facts(pending=False, finished=False, is_array=True)
    table = {7: running, (7, ALL_TASKS): running, (7, 2): ("COMPLETED", 1.0),
             (7, 3): ("FAILED", 1.0)}
    lookup = lookup_from(table)
    assert evaluate(parse_dependency("afterok:7_2"), lookup) == "ok"
    assert evaluate(parse_dependency("afterok:7_*"), lookup) == "wait"
    assert evaluate(parse_dependency("afterok:7"), lookup) == "wait"
    assert evaluate(parse_dependency("aftercorr:7"), lookup, array_task_id=2) == "ok"
    assert evaluate(parse_dependency("aftercorr:7"), lookup, array_task_id=3) == "never"
    assert evaluate(parse_dependency("aftercorr:7"), lookup) == "wait"


def test_singleton_is_left_to_the_caller():
    assert evaluate(parse_dependency("singleton"), lookup_from({})) == "ok"
    dep = parse_dependency("singleton")
    assert evaluate(dep, lookup_from({}), singleton_blocked=lambda: True) == "wait"
    assert evaluate(dep, lookup_from({}), singleton_blocked=lambda: False) == "ok"


# A whole array, judged over all its tasks (SLURM's test_job_array_pending,
# _completed, _complete): facts as the scheduler gives them.
ARRAY = {
    "some pending": Facts(pending=True, finished=False, is_array=True),
    "all started": Facts(pending=False, finished=False, is_array=True),
    "all ended ok": Facts(pending=False, finished=True, ok=True, is_array=True),
    "one failed": Facts(pending=False, finished=True, ok=False, is_array=True),
}


@pytest.mark.parametrize("kind, facts, result", [
    ("after", "some pending", "wait"), ("after", "all started", "ok"),
    ("afterany", "all started", "wait"), ("afterany", "one failed", "ok"),
    ("afterok", "all started", "wait"), ("afterok", "all ended ok", "ok"),
    ("afterok", "one failed", "never"),
    ("afternotok", "some pending", "wait"), ("afternotok", "all ended ok", "never"),
    ("afternotok", "one failed", "ok"),
])
def test_evaluate_whole_array(kind, facts, result):
    lookup = lookup_from({40: ARRAY[facts], (40, ALL_TASKS): ARRAY[facts]})
    assert evaluate(parse_dependency(f"{kind}:40"), lookup, now=0.0) == result
    assert evaluate(parse_dependency(f"{kind}:40_*"), lookup, now=0.0) == result


def test_after_delay_is_ignored_for_a_whole_array():
    lookup = lookup_from({40: ARRAY["all started"]})
    assert evaluate(parse_dependency("after:40+5"), lookup, now=0.0) == "ok"


def test_unknown_ids():
    dep = parse_dependency("afterok:12:13,afterany:14_2,afterany:12")
    assert unknown_ids(dep, {13}) == [12, 14]
    assert unknown_ids(dep, {12, 13, 14}) == []
    assert unknown_ids(parse_dependency("singleton"), set()) == []


# -- display ------------------------------------------------------------------

def test_format_like_squeue():
    is_array = {34}.__contains__
    dep = parse_dependency("afterok:33:34,afterany:33")
    assert format_dependency(dep, is_array=is_array) == (
        "afterok:33(unfulfilled),afterok:34_*(unfulfilled),afterany:33(unfulfilled)")
    dep = parse_dependency("afterok:33?afternotok:34")
    assert format_dependency(dep, is_array=is_array) == (
        "afterok:33(unfulfilled)?afternotok:34_*(unfulfilled)")
    assert format_dependency(parse_dependency("after:33+5")) == "after:33+5(unfulfilled)"
    assert format_dependency(parse_dependency("singleton")) == "singleton(unfulfilled)"
    assert format_dependency(parse_dependency("afterok:9_4")) == "afterok:9_4(unfulfilled)"
    assert format_dependency(None) == "(null)"


def test_format_with_states_hides_met_terms():
    lookup = lookup_from({1: ("COMPLETED", 1.0), 2: ("RUNNING", 1.0), 3: ("FAILED", 1.0)})
    dep = parse_dependency("afterok:1:2:3")
    assert format_dependency(dep, lookup) == "afterok:2(unfulfilled),afterok:3(failed)"
    assert format_dependency(parse_dependency("afterok:1"), lookup) == "(null)"
    assert format_dependency(parse_dependency("afterok:2?afterok:1"), lookup) == "(null)"


def test_format_whole_array_like_squeue():
    # squeue 22.05.8: afterok:254_*(unfulfilled) while tasks run, (failed) once one failed
    dep = parse_dependency("afterok:254")
    assert format_dependency(dep, lookup_from({254: ARRAY["all started"]})) == \
        "afterok:254_*(unfulfilled)"
    assert format_dependency(dep, lookup_from({254: ARRAY["one failed"]})) == \
        "afterok:254_*(failed)"
    assert format_dependency(dep, lookup_from({254: ARRAY["all ended ok"]})) == "(null)"
