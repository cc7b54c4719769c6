"""fleetslurm.slurm.arrays.IndexSet: an array's indices as ranges, checked
against a plain Python set under random operations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from fleetslurm.slurm.arrays import IndexSet, format_array, parse_array_set


def test_a_huge_range_costs_one_range():
    s, throttle = parse_array_set("0-999999", max_array_size=10**6)
    assert (len(s), throttle, s.ranges) == (10**6, None, ((0, 999999, 1),))
    assert (s.first(), s.last(), s.step()) == (0, 999999, 1)
    assert 123456 in s and 10**6 not in s and -1 not in s
    assert s.format(4) == "0-999999%4"


def test_step_and_text_round_trip():
    s, _ = parse_array_set("0-15:4")
    assert (list(s), s.step(), s.to_text(), s.format()) == ([0, 4, 8, 12], 4, "0-12:4", "0,4,8,12")
    assert IndexSet.from_text(s.to_text()) == s
    assert parse_array_set("0,2,4")[0].step() == 2   # one progression, however it was typed
    assert parse_array_set("1-3:2,10")[0].step() == 1
    assert parse_array_set("5")[0].step() == 1


def test_pop_first_discard_add():
    s = IndexSet.from_text("1-5,9")
    assert [s.pop_first(), s.pop_first()] == [1, 2]
    assert s.discard(4) and not s.discard(4)
    assert list(s) == [3, 5, 9] and len(s) == 3
    s.add(4)
    s.add(4)
    assert (list(s), s.format()) == ([3, 4, 5, 9], "3-5,9")
    while s:
        s.pop_first()
    assert len(s) == 0 and s.format() == ""
    with pytest.raises(IndexError):
        s.first()


def test_format_merges_neighbouring_runs():
    assert format_array(IndexSet.from_text("1-3,4-6:2")) == "1-4,6"
    assert format_array([7, 3, 3, 1, 2]) == "1-3,7"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20), st.integers(1, 5)), min_size=1,
                max_size=5),
       st.lists(st.tuples(st.sampled_from(["pop", "discard", "add"]), st.integers(0, 90)),
                max_size=30))
def test_behaves_like_a_set(terms, ops):
    text = ",".join(f"{lo}-{lo + span}:{step}" for lo, span, step in terms)
    s, _ = parse_array_set(text, max_array_size=10**6)
    model = {i for lo, span, step in terms for i in range(lo, lo + span + 1, step)}
    assert list(s) == sorted(model) and len(s) == len(model)
    for op, value in ops:
        if op == "pop" and model:
            assert s.pop_first() == min(model)
            model.discard(min(model))
        elif op == "discard":
            assert s.discard(value) == (value in model)
            model.discard(value)
        elif op == "add":
            s.add(value)
            model.add(value)
        assert list(s) == sorted(model) and len(s) == len(model)
        assert all(i in s for i in model) and all(i not in s for i in range(95) if i not in model)
        assert IndexSet.from_text(s.to_text()) == s
        assert format_array(s) == format_array(sorted(model))
        if model:
            ordered = sorted(model)
            steps = {b - a for a, b in zip(ordered, ordered[1:])}
            assert s.step() == (steps.pop() if len(steps) == 1 else 1)
