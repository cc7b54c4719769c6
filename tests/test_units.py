"""fleetslurm.slurm.units against values observed on slurm-wlm 22.05.8."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, strategies as st

from fleetslurm.errors import FleetError, InvalidValue
from fleetslurm.slurm.units import (
    format_cpu_time,
    format_datetime,
    format_hms,
    format_limit_hms,
    format_mem,
    format_rss_kb,
    format_squeue_time,
    parse_squeue_time,
    format_time_limit,
    parse_datetime,
    parse_duration_seconds,
    parse_mem,
    parse_time_limit,
)


@pytest.mark.parametrize("text, minutes", [
    ("90", 90),
    ("0:30", 1),          # rounded up to a whole minute
    ("1:01", 2),
    ("1:00", 1),
    ("61", 61),
    ("1:00:00", 60),
    ("1:2:3", 63),        # 1h 2m 3s -> 62.05 min -> 63
    ("2-0", 2880),
    ("2-1", 2940),
    ("1-2:3", 1563),
    ("1-2:3:4", 1564),
    ("5-", 7200),         # SLURM accepts a bare day count with a dash
    ("01:00", 1),
    ("0", None),          # zero means no limit
    ("0:0", None),
    ("-1", None),
    ("UNLIMITED", None),
    ("unlimited", None),
    ("INFINITE", None),
    ("infinite", None),
])
def test_parse_time_limit(text, minutes):
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text, message", [
    ("1:xx", 'Invalid --time specification: "1:xx"'),
    ("1:2:3:4", 'Invalid --time specification: "1:2:3:4"'),
    ("", 'Invalid --time specification: ""'),
    (" 5", 'Invalid --time specification: " 5"'),
    ("1-2-3", 'Invalid --time specification: "1-2-3"'),
    ("1:-2", 'Invalid --time specification: "1:-2"'),
    ("1h", 'Invalid --time specification: "1h"'),
    ("-5", 'Invalid --time specification: "-5" (negative time)'),
])
def test_parse_time_limit_errors(text, message):
    with pytest.raises(InvalidValue) as info:
        parse_time_limit(text)
    assert str(info.value) == message
    assert isinstance(info.value, FleetError) and isinstance(info.value, ValueError)


def test_parse_time_limit_names_the_option():
    with pytest.raises(InvalidValue, match='^Invalid TimeLimit specification: "x"$'):
        parse_time_limit("x", option="TimeLimit")


@pytest.mark.parametrize("text, seconds", [
    ("90", 5400), ("0:30", 30), ("1:00:00", 3600), ("2-0", 172800),
    ("1-0:0:1", 86401), ("0", 0),
])
def test_parse_duration_seconds(text, seconds):
    assert parse_duration_seconds(text) == seconds


def test_parse_duration_seconds_refuses_unlimited():
    with pytest.raises(InvalidValue) as info:
        parse_duration_seconds("UNLIMITED")
    assert str(info.value) == 'Invalid duration specification: "UNLIMITED" (must be a finite time)'


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00"), (5, "0:05"), (83, "1:23"), (754, "12:34"), (3599, "59:59"),
    (3600, "1:00:00"), (3723, "1:02:03"), (86399, "23:59:59"),
    (86400, "1-00:00:00"), (93784, "1-02:03:04"), (10 * 86400, "10-00:00:00"),
    (-5, "0:00"),
])
def test_format_squeue_time(seconds, text):
    assert format_squeue_time(seconds) == text
    if seconds >= 0:
        assert parse_squeue_time(text) == seconds


@pytest.mark.parametrize("minutes, text", [
    (None, "UNLIMITED"), (5, "5:00"), (60, "1:00:00"), (61, "1:01:00"),
    (1440, "1-00:00:00"), (1441, "1-00:01:00"),  # squeue %l as printed by 22.05
])
def test_format_time_limit(minutes, text):
    assert format_time_limit(minutes) == text


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00:00"), (5, "00:00:05"), (3600, "01:00:00"), (86399, "23:59:59"),
    (86400, "1-00:00:00"), (90061, "1-01:01:01"), (-1, "INVALID"),
])
def test_format_hms(seconds, text):
    assert format_hms(seconds) == text


@pytest.mark.parametrize("minutes, text", [
    (None, "UNLIMITED"), (5, "00:05:00"), (60, "01:00:00"), (1441, "1-00:01:00"),
])
def test_format_limit_hms(minutes, text):
    assert format_limit_hms(minutes) == text


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00:00"),
    (5, "00:00:05"),
    (0.012, "00:00.012"),
    (65.3, "01:05.300"),
    (59.9999, "00:59.999"),
    (0.0004, "00:00:00"),      # under a millisecond: no fraction shown
    (3600.5, "01:00:00"),
    (90000.25, "1-01:00:00"),
])
def test_format_cpu_time(seconds, text):
    assert format_cpu_time(seconds) == text


@pytest.mark.parametrize("text, mb", [
    ("4", 4), ("4G", 4096), ("4g", 4096), ("4GB", 4096), ("4gb", 4096),
    ("4M", 4), ("4MB", 4), ("512k", 1), ("512K", 1), ("1024K", 1), ("1025K", 2),
    ("1T", 1048576), ("0", 0), ("+4G", 4096), (" 4G", 4096),
])
def test_parse_mem(text, mb):
    assert parse_mem(text) == mb


def test_parse_mem_default_unit():
    assert parse_mem("2", default_unit="G") == 2048
    assert parse_mem("2M", default_unit="G") == 2


@pytest.mark.parametrize("text", ["1.5G", "-1", "abc", "4X", "", "4GiB", "10P", "4G ", "1.5"])
def test_parse_mem_errors(text):
    with pytest.raises(InvalidValue) as info:
        parse_mem(text)
    assert str(info.value) == (
        f'Invalid --mem specification: "{text}" '
        "(expected a whole number with an optional K, M, G or T suffix)")


def test_parse_mem_names_the_option():
    with pytest.raises(InvalidValue, match=r'^Invalid --mem-per-cpu specification: "x" '):
        parse_mem("x", option="--mem-per-cpu")


@pytest.mark.parametrize("mb, text", [
    (0, "0"), (500, "500M"), (1000, "1000M"), (1024, "1G"), (1536, "1.50G"),
    (2560, "2.50G"), (4096, "4G"), (4097, "4097M"), (2 * 1024 * 1024, "2T"),
])
def test_format_mem(mb, text):
    assert format_mem(mb) == text


@pytest.mark.parametrize("kb, text", [
    (None, ""), (0, "0"), (768, "768K"), (1024, "1M"), (1280, "1280K"),
    (1536, "1.50M"), (1788, "1788K"), (102400, "100M"), (1572864, "1.50G"),
])
def test_format_rss_kb(kb, text):
    assert format_rss_kb(kb) == text


# -- dates --------------------------------------------------------------------

NOW = time.mktime((2026, 11, 21, 10, 30, 0, 0, 0, -1))  # a Saturday, local time


def local(y, mo, d, h=0, mi=0, s=0):
    return time.mktime((y, mo, d, h, mi, s, 0, 0, -1))


@pytest.mark.parametrize("text, future, past", [
    ("now", local(2026, 11, 21, 10, 30), local(2026, 11, 21, 10, 30)),
    ("now+60", local(2026, 11, 21, 10, 31), None),
    ("now+1hour", local(2026, 11, 21, 11, 30), None),
    ("now+2days", local(2026, 11, 23, 10, 30), None),
    ("now-1day", local(2026, 11, 20, 10, 30), None),
    ("today", local(2026, 11, 21), None),
    ("tomorrow", local(2026, 11, 22), None),
    ("midnight", local(2026, 11, 22), local(2026, 11, 21)),
    ("noon", local(2026, 11, 21, 12), None),
    ("teatime", local(2026, 11, 21, 16), None),
    ("10:00", local(2026, 11, 22, 10), local(2026, 11, 21, 10)),  # already past today
    ("11:00", local(2026, 11, 21, 11), None),
    ("11:00:05", local(2026, 11, 21, 11, 0, 5), None),
    ("10:00pm", local(2026, 11, 21, 22), None),
    ("10:00 PM", local(2026, 11, 21, 22), None),
    ("12:00pm", local(2026, 11, 21, 12), None),
    ("12:00am", local(2026, 11, 22, 0), None),
    ("now + 2 minutes", local(2026, 11, 21, 10, 32), None),
    ("2026-11-21 11:15", local(2026, 11, 21, 11, 15), None),
    ("2026-11-21T10:00:00", local(2026, 11, 21, 10), None),
    ("2026-11-21T10:00", local(2026, 11, 21, 10), None),
    ("2026-11-21", local(2026, 11, 21), None),
    ("1121", local(2027, 11, 21), local(2026, 11, 21)),
    ("112227", local(2027, 11, 22), None),
    ("11/22", local(2026, 11, 22), None),
    ("11/20/27", local(2027, 11, 20), None),
    ("11.22", local(2026, 11, 22), None),
    ("12/01-10:00", local(2026, 12, 1, 10), local(2025, 12, 1, 10)),
    ("uts1800000000", 1800000000.0, None),
])
def test_parse_datetime(text, future, past):
    assert parse_datetime(text, NOW) == future
    if past is not None:
        assert parse_datetime(text, NOW, past=True) == past


# positions as SLURM 22.05 prints them (checked with sbatch --begin on the oracle)
@pytest.mark.parametrize("text, message", [
    ("garbage", "Invalid time specification (pos=0): garbage"),
    ("13/01", "Invalid time specification (pos=0): 13/01"),
    ("now+", "Invalid time specification (pos=3): now+"),
    ("now+5parsecs", "Invalid time specification (pos=4): now+5parsecs"),
    ("25:00", "Invalid time specification (pos=0): 25:00"),
    ("10:5", "Invalid time specification (pos=4): 10:5"),
    ("2026-13-01", "Invalid time specification (pos=5): 2026-13-01"),
    ("10:00 xyz", "Invalid time specification (pos=6): 10:00 xyz"),
    ("13pm", "Invalid time specification (pos=0): 13pm"),
    ("13:00pm", "Invalid time specification (pos=5): 13:00pm"),
    ("now 5", "Invalid time specification (pos=4): now 5"),
    ("uts12", "Invalid time specification (pos=0): uts12"),
    ("", "no date or time in ''"),  # SLURM prints nothing; its callers refuse it
])
def test_parse_datetime_errors(text, message):
    with pytest.raises(InvalidValue) as info:
        parse_datetime(text, NOW)
    assert str(info.value) == message


def test_format_datetime():
    assert format_datetime(local(2026, 11, 21, 10, 0, 0)) == "2026-11-21T10:00:00"
    assert format_datetime(None) == "Unknown"
    assert format_datetime(0) == "Unknown"


# -- properties ---------------------------------------------------------------

@given(st.integers(min_value=0, max_value=400 * 86400))
def test_formatted_durations_parse_back(seconds):
    assert parse_duration_seconds(format_hms(seconds)) == seconds
    assert parse_duration_seconds(format_squeue_time(seconds)) == seconds


@given(st.integers(min_value=1, max_value=400 * 1440))
def test_formatted_limits_parse_back(minutes):
    assert parse_time_limit(format_limit_hms(minutes)) == minutes
    assert parse_time_limit(format_time_limit(minutes)) == minutes


@given(st.integers(min_value=1, max_value=10**7))
def test_time_limit_rounds_up(seconds):
    assert parse_time_limit(f"0:{seconds}") == -(-seconds // 60)


@given(st.integers(min_value=0, max_value=2**40))
def test_format_mem_is_exact_or_half(mb):
    text = format_mem(mb)
    if text.endswith(("M", "G", "T", "P")) and "." not in text:
        factor = {"M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}[text[-1]]
        assert int(text[:-1]) * factor == mb
    if "." not in text and text != "0" and text[-1] in "MGT":
        assert parse_mem(text) == mb
