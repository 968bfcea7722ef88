"""Interval buckets and relative timeframes follow the calendar of real zones across daylight
saving changes, including days whose midnight does not exist (America/Havana, Asia/Beirut,
America/Santiago, Africa/Cairo) and midnights that happen twice.

The reference is brute force: it walks the timeline in 15-minute steps and marks every instant
where the zone's wall clock enters a new day / week / month / year (or, for hours, a new hour or
a new UTC offset), narrowing each to the microsecond. It shares no code with the server. One
test counts events into those buckets on every engine; the others test the shared timeframe
functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from _engines import engine_fixture, open_store  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.server.engine import run_query
from keen.server.timeframes import (
    format_timestamp,
    interval_buckets,
    parse_iso,
    resolve_timeframe,
)

UTC = timezone.utc
STEP = timedelta(minutes=15)
TINY = timedelta(microseconds=1)


def _unit_key(unit: str, zone: ZoneInfo) -> Callable[[datetime], Any]:
    def key(instant: datetime) -> Any:
        local = instant.astimezone(zone)
        day = local.date()
        if unit == "day":
            return day
        if unit == "week":  # the Sunday starting the week
            return day - timedelta(days=(day.weekday() + 1) % 7)
        if unit == "month":
            return day.year, day.month
        if unit == "year":
            return day.year
        return local.utcoffset(), day, local.hour  # hour
    return key


def reference_edges(lo: datetime, hi: datetime, unit: str, zone: ZoneInfo) -> list[datetime]:
    """Every instant in (lo, hi] where the key of ``unit`` changes."""
    key = _unit_key(unit, zone)
    edges: list[datetime] = []
    here, here_key = lo, key(lo)
    while here < hi:
        there = min(here + STEP, hi)
        there_key = key(there)
        if there_key != here_key:  # first instant with the new key: bisect (here, there]
            a, b = here, there
            while b - a > TINY:
                middle = a + (b - a) / 2
                middle = middle.replace(microsecond=middle.microsecond)
                if key(middle) == here_key:
                    a = middle
                else:
                    b = middle
            edges.append(b)
        here, here_key = there, there_key
    return edges


def reference_buckets(start: datetime, end: datetime, unit: str, every: int,
                      zone: ZoneInfo) -> list[tuple[str, str]]:
    # Boundary 0 is the one at or before start; keep every ``every``-th after it.
    edges = [e for i, e in enumerate(reference_edges(start, end, unit, zone), 1)
             if i % every == 0 and e < end]
    points = [start, *edges, end]
    return [(format_timestamp(a), format_timestamp(b)) for a, b in zip(points, points[1:])]


def server_buckets(start: datetime, end: datetime, interval: str,
                   zone: str) -> list[tuple[str, str]]:
    return [(format_timestamp(a), format_timestamp(b))
            for a, b in interval_buckets(start, end, interval, zone)]


# ------------------------------------------------------------------ the cases


def test_havana_days_after_a_skipped_midnight_start_at_local_midnight() -> None:
    start, end = parse_iso("2026-03-07T05:00:00Z"), parse_iso("2026-03-17T04:00:00Z")
    buckets = server_buckets(start, end, "daily", "America/Havana")
    assert buckets[:3] == [
        ("2026-03-07T05:00:00.000Z", "2026-03-08T05:00:00.000Z"),
        # 2026-03-08 00:00 does not exist: the day starts at 01:00 CDT, 05:00Z, and is 23 h
        ("2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z"),
        ("2026-03-09T04:00:00.000Z", "2026-03-10T04:00:00.000Z"),
    ]
    assert all(lo.endswith("T04:00:00.000Z") for lo, _ in buckets[2:])
    assert buckets == reference_buckets(start, end, "day", 1, ZoneInfo("America/Havana"))


CASES = [
    # zone, interval, start, end: each spans a change at (or around) local midnight
    ("America/Havana", "daily", "2026-03-06T00:00:00Z", "2026-03-12T00:00:00Z"),
    ("America/Havana", "daily", "2026-10-30T00:00:00Z", "2026-11-04T00:00:00Z"),  # set back
    ("America/Havana", "every_2_days", "2026-03-05T00:00:00Z", "2026-03-14T00:00:00Z"),
    ("Asia/Beirut", "weekly", "2026-03-15T00:00:00Z", "2026-04-20T00:00:00Z"),
    ("Asia/Beirut", "weekly", "2026-10-10T00:00:00Z", "2026-11-10T00:00:00Z"),
    ("America/Santiago", "daily", "2026-09-03T00:00:00Z", "2026-09-10T00:00:00Z"),
    ("America/Santiago", "daily", "2026-04-02T00:00:00Z", "2026-04-08T00:00:00Z"),
    ("America/Santiago", "monthly", "2026-07-15T00:00:00Z", "2026-11-15T00:00:00Z"),
    ("Africa/Cairo", "daily", "2026-04-20T00:00:00Z", "2026-05-02T00:00:00Z"),
    ("Africa/Cairo", "daily", "2026-10-26T00:00:00Z", "2026-11-03T00:00:00Z"),
    ("America/Sao_Paulo", "weekly", "2018-10-20T00:00:00Z", "2018-11-30T00:00:00Z"),
    ("America/Asuncion", "monthly", "2023-08-20T00:00:00Z", "2023-11-20T00:00:00Z"),
    ("America/Havana", "hourly", "2026-03-07T20:00:00Z", "2026-03-08T12:00:00Z"),
    ("America/Havana", "every_6_hours", "2026-10-31T20:00:00Z", "2026-11-02T12:00:00Z"),
    ("Europe/London", "yearly", "2019-06-01T00:00:00Z", "2026-06-01T00:00:00Z"),
]


@pytest.mark.parametrize(("zone", "interval", "start", "end"), CASES)
def test_buckets_follow_the_zone_calendar(zone: str, interval: str, start: str,
                                          end: str) -> None:
    unit = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year",
            "hourly": "hour"}.get(interval) or interval.split("_")[2].rstrip("s")
    every = 1 if interval.endswith("ly") else int(interval.split("_")[1])
    lo, hi = parse_iso(start), parse_iso(end)
    assert server_buckets(lo, hi, interval, zone) == reference_buckets(
        lo, hi, unit, every, ZoneInfo(zone))


def _unit_and_every(interval: str) -> tuple[str, int]:
    unit = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year",
            "hourly": "hour"}.get(interval) or interval.split("_")[2].rstrip("s")
    return unit, 1 if interval.endswith("ly") else int(interval.split("_")[1])


@pytest.mark.parametrize(("zone", "interval", "start", "end"), CASES)
def test_every_engine_counts_events_into_the_zone_calendar_buckets(
    engine: str, zone: str, interval: str, start: str, end: str,
) -> None:
    """An event at each bucket's first millisecond and one at its last: every engine puts
    each in its own bucket (the duckdb engine places events by arithmetic, an ASOF join or a
    range join depending on the buckets), as the brute-force calendar says."""
    lo, hi = parse_iso(start), parse_iso(end)
    unit, every = _unit_and_every(interval)
    expected = reference_buckets(lo, hi, unit, every, ZoneInfo(zone))
    stamps = sorted({stamp for first, last in expected for stamp in (
        first, format_timestamp(parse_iso(last) - timedelta(milliseconds=1)))})
    events = [{"keen": {"timestamp": stamp}} for stamp in stamps]
    events += [{"keen": {"timestamp": format_timestamp(lo - timedelta(milliseconds=1))}},
               {"keen": {"timestamp": end}}]  # just outside the timeframe
    with open_store(engine) as store:
        store.insert_events("p", "c", events, now=lo)
        result = run_query(store, "p", "count", {
            "event_collection": "c", "timeframe": {"start": start, "end": end},
            "timezone": zone, "interval": interval}, now=lo)["result"]
    got = [(item["timeframe"]["start"], item["timeframe"]["end"], item["value"])
           for item in result]
    want = [(first, last, sum(first <= stamp < last for stamp in stamps))
            for first, last in expected]
    assert got == want


ZONES = ["America/Havana", "Asia/Beirut", "America/Santiago", "Africa/Cairo",
         "America/Sao_Paulo", "America/Asuncion", "US/Pacific", "Europe/Berlin",
         "Australia/Sydney", "Asia/Tehran", "America/Godthab"]


@cache
def changes(zone: str) -> list[datetime]:
    """Days (UTC midnights) on which ``zone`` changes its UTC offset, 2000-2030."""
    tz = ZoneInfo(zone)
    found, day = [], datetime(2000, 1, 1, tzinfo=UTC)
    offset = day.astimezone(tz).utcoffset()
    while day.year < 2031:
        day += timedelta(days=1)
        now = day.astimezone(tz).utcoffset()
        if now != offset:
            found.append(day - timedelta(days=1))
        offset = now
    return found


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and an instant up to ten days before one of its offset changes."""
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(changes(zone)))
    before = draw(st.integers(0, 10 * 24 * 60))
    return zone, change - timedelta(minutes=before)


@settings(max_examples=60, deadline=None)
@given(where=near_a_change(),
       interval=st.sampled_from(["daily", "weekly", "every_3_days", "hourly", "every_5_hours",
                                 "monthly"]),
       days=st.integers(1, 20))
def test_buckets_match_the_calendar_reference(where: tuple[str, datetime], interval: str,
                                              days: int) -> None:
    zone, lo = where
    hi = lo + (timedelta(hours=20) if "hour" in interval else timedelta(days=days))
    unit = {"daily": "day", "weekly": "week", "hourly": "hour", "monthly": "month"}.get(
        interval) or interval.split("_")[2].rstrip("s")
    every = 1 if interval.endswith("ly") else int(interval.split("_")[1])
    assert server_buckets(lo, hi, interval, zone) == reference_buckets(
        lo, hi, unit, every, ZoneInfo(zone))


@settings(max_examples=60, deadline=None)
@given(where=near_a_change(),
       kind=st.sampled_from(["this", "previous"]),
       count=st.integers(1, 3),
       unit=st.sampled_from(["day", "week", "month", "hour"]))
def test_relative_timeframes_match_the_calendar_reference(
    where: tuple[str, datetime], kind: str, count: int, unit: str,
) -> None:
    zone, moment = where
    span = {"hour": timedelta(hours=count + 3), "day": timedelta(days=count + 2),
            "week": timedelta(weeks=count + 2), "month": timedelta(days=31 * (count + 2))}[unit]
    edges = reference_edges(moment - span, moment + span, unit, ZoneInfo(zone))
    at_or_before = [e for e in edges if e <= moment]
    after = [e for e in edges if e > moment]
    if kind == "this":
        expected = at_or_before[-count], after[0]
    else:
        expected = at_or_before[-count - 1], at_or_before[-1]
    start, end = resolve_timeframe(f"{kind}_{count}_{unit}s", zone, moment)
    assert (format_timestamp(start), format_timestamp(end)) == tuple(
        format_timestamp(e) for e in expected)


def test_today_in_havana_on_the_day_without_midnight() -> None:
    now = parse_iso("2026-03-08T15:00:00Z")
    start, end = resolve_timeframe("today", "America/Havana", now)
    assert (format_timestamp(start), format_timestamp(end)) == (
        "2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z")
    start, end = resolve_timeframe("previous_1_days", "America/Havana",
                                   parse_iso("2026-03-09T15:00:00Z"))
    assert (format_timestamp(start), format_timestamp(end)) == (
        "2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z")


def test_hours_are_fixed_lengths_even_after_a_half_hour_change() -> None:
    # Australia/Lord_Howe moves from +10:30 to +11:00 at 02:00 local on 2026-10-04 (15:30Z).
    buckets = server_buckets(parse_iso("2026-10-03T13:30:00Z"), parse_iso("2026-10-03T17:30:00Z"),
                             "hourly", "Australia/Lord_Howe")
    assert [lo for lo, _ in buckets] == [  # local 00:00, 01:00, 02:30, 03:30
        "2026-10-03T13:30:00.000Z", "2026-10-03T14:30:00.000Z", "2026-10-03T15:30:00.000Z",
        "2026-10-03T16:30:00.000Z"]
