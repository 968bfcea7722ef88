"""Timeframes, timezones and interval buckets of the local server (keen-api.md 7.3-7.5)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from keen.server.engine import QueryError
from keen.server.timeframes import (
    format_timestamp,
    interval_buckets,
    parse_iso,
    resolve_timeframe,
)

UTC = timezone.utc
# Friday 2015-07-17 19:15:30 UTC
NOW = datetime(2015, 7, 17, 19, 15, 30, tzinfo=UTC)


def _iso(pair: tuple[datetime, datetime]) -> tuple[str, str]:
    return format_timestamp(pair[0]), format_timestamp(pair[1])


@pytest.mark.parametrize(
    ("timeframe", "start", "end"),
    [
        # this_* runs to the end of the current unit (Keen staff, keen-gem#79)
        ("this_month", "2015-07-01T00:00:00.000Z", "2015-08-01T00:00:00.000Z"),
        ("this_2_days", "2015-07-16T00:00:00.000Z", "2015-07-18T00:00:00.000Z"),
        ("today", "2015-07-17T00:00:00.000Z", "2015-07-18T00:00:00.000Z"),
        ("this_day", "2015-07-17T00:00:00.000Z", "2015-07-18T00:00:00.000Z"),
        ("yesterday", "2015-07-16T00:00:00.000Z", "2015-07-17T00:00:00.000Z"),
        # previous_7_hours at 7:15pm = noon to 7pm
        ("previous_7_hours", "2015-07-17T12:00:00.000Z", "2015-07-17T19:00:00.000Z"),
        # previous_3_days on a Friday = Tuesday 00:00 to Friday 00:00
        ("previous_3_days", "2015-07-14T00:00:00.000Z", "2015-07-17T00:00:00.000Z"),
        ("previous_3_minutes", "2015-07-17T19:12:00.000Z", "2015-07-17T19:15:00.000Z"),
        # weeks start on Sunday: the current week began Sunday 2015-07-12
        ("this_week", "2015-07-12T00:00:00.000Z", "2015-07-19T00:00:00.000Z"),
        ("previous_2_weeks", "2015-06-28T00:00:00.000Z", "2015-07-12T00:00:00.000Z"),
        ("previous_month", "2015-06-01T00:00:00.000Z", "2015-07-01T00:00:00.000Z"),
        ("this_14_months", "2014-06-01T00:00:00.000Z", "2015-08-01T00:00:00.000Z"),
        ("previous_year", "2014-01-01T00:00:00.000Z", "2015-01-01T00:00:00.000Z"),
        ("this_1_hour", "2015-07-17T19:00:00.000Z", "2015-07-17T20:00:00.000Z"),
        ("previous_minute", "2015-07-17T19:14:00.000Z", "2015-07-17T19:15:00.000Z"),
    ],
)
def test_relative_timeframes_follow_the_documented_boundaries(
    timeframe: str, start: str, end: str
) -> None:
    assert _iso(resolve_timeframe(timeframe, None, NOW)) == (start, end)


def test_relative_timeframes_are_computed_in_the_query_timezone() -> None:
    # 19:15 UTC is 12:15 in Los Angeles (PDT, UTC-7): "today" there starts at 07:00 UTC
    expected = ("2015-07-17T07:00:00.000Z", "2015-07-18T07:00:00.000Z")
    assert _iso(resolve_timeframe("today", "US/Pacific", NOW)) == expected
    assert _iso(resolve_timeframe("today", -25200, NOW)) == expected
    assert _iso(resolve_timeframe("today", "-25200", NOW)) == expected


def test_a_day_across_a_dst_change_differs_between_named_zone_and_fixed_offset() -> None:
    # 2015-03-08 is the spring-forward day in US/Pacific (clocks jump 02:00 -> 03:00)
    now = datetime(2015, 3, 9, 20, 0, tzinfo=UTC)  # Monday noon in Los Angeles (PDT)
    named = _iso(resolve_timeframe("yesterday", "US/Pacific", now))
    fixed = _iso(resolve_timeframe("yesterday", -28800, now))
    assert named == ("2015-03-08T08:00:00.000Z", "2015-03-09T07:00:00.000Z")  # 23 hours
    assert fixed == ("2015-03-08T08:00:00.000Z", "2015-03-09T08:00:00.000Z")  # 24 hours


def test_absolute_timeframes_accept_any_offset_and_naive_means_utc() -> None:
    tf = {"start": "2015-07-01T02:00:00+02:00", "end": "2015-07-02T00:00:00"}
    expected = ("2015-07-01T00:00:00.000Z", "2015-07-02T00:00:00.000Z")
    assert _iso(resolve_timeframe(tf, "US/Pacific", NOW)) == expected
    assert _iso(resolve_timeframe(json.dumps(tf), None, NOW)) == expected  # JSON text too


@pytest.mark.parametrize(
    "timeframe",
    [None, "", "this_0_days", "last_7_days", "this_7_fortnights", ["this_7_days", "today"],
     {"start": "2015-07-01T00:00:00Z"}, {"start": "yesterday", "end": "today"},
     {"start": "2015-07-02T00:00:00Z", "end": "2015-07-01T00:00:00Z"}, 7, '{"start": ',
     {"start": "0001-01-01T00:00:00+01:00", "end": "2015-07-01T00:00:00Z"}],
)
def test_bad_or_missing_timeframes_are_a_400_timeframe_definition_error(timeframe: object) -> None:
    with pytest.raises(QueryError) as info:
        resolve_timeframe(timeframe, None, NOW)
    assert (info.value.status, info.value.error_code) == (400, "TimeframeDefinitionError")


@pytest.mark.parametrize("tz", ["Mars/Olympus", True, 999999, "UTC+2"])
def test_bad_timezones_are_refused(tz: object) -> None:
    with pytest.raises(QueryError) as info:
        resolve_timeframe("today", tz, NOW)
    assert (info.value.status, info.value.error_code) == (400, "InvalidTimezoneError")


def test_parse_iso_accepts_the_offsets_clients_send() -> None:
    assert parse_iso("2014-02-12T01:44:25.310Z") == datetime(2014, 2, 12, 1, 44, 25, 310000, UTC)
    assert parse_iso("2014-02-12T01:44:25-0800") == datetime(2014, 2, 12, 9, 44, 25, tzinfo=UTC)
    assert parse_iso("2014-02-12T13:44:25+1200") == datetime(2014, 2, 12, 1, 44, 25, tzinfo=UTC)
    assert parse_iso("2014-02-12") == datetime(2014, 2, 12, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_iso("12/02/2014")


def _buckets(start: str, end: str, interval: str, tz: object = None) -> list[tuple[str, str]]:
    return [
        (format_timestamp(lo), format_timestamp(hi))
        for lo, hi in interval_buckets(parse_iso(start), parse_iso(end), interval, tz)
    ]


def test_weekly_buckets_are_clipped_and_aligned_to_sundays() -> None:
    # keen-api.md 7.5: this_year weekly (2015) starts 01-01 -> 01-04, then Sunday to Sunday
    buckets = _buckets("2015-01-01T00:00:00Z", "2015-01-20T00:00:00Z", "weekly")
    assert buckets == [
        ("2015-01-01T00:00:00.000Z", "2015-01-04T00:00:00.000Z"),
        ("2015-01-04T00:00:00.000Z", "2015-01-11T00:00:00.000Z"),
        ("2015-01-11T00:00:00.000Z", "2015-01-18T00:00:00.000Z"),
        ("2015-01-18T00:00:00.000Z", "2015-01-20T00:00:00.000Z"),
    ]


def test_daily_buckets_in_a_named_zone_follow_dst() -> None:
    buckets = _buckets("2015-03-07T08:00:00Z", "2015-03-10T07:00:00Z", "daily", "US/Pacific")
    assert buckets == [
        ("2015-03-07T08:00:00.000Z", "2015-03-08T08:00:00.000Z"),
        ("2015-03-08T08:00:00.000Z", "2015-03-09T07:00:00.000Z"),  # 23-hour day
        ("2015-03-09T07:00:00.000Z", "2015-03-10T07:00:00.000Z"),
    ]


def test_every_n_units_buckets_start_at_the_unit_floor_of_the_start() -> None:
    buckets = _buckets("2015-01-01T10:30:00Z", "2015-01-02T00:00:00Z", "every_6_hours")
    assert buckets == [
        ("2015-01-01T10:30:00.000Z", "2015-01-01T16:00:00.000Z"),
        ("2015-01-01T16:00:00.000Z", "2015-01-01T22:00:00.000Z"),
        ("2015-01-01T22:00:00.000Z", "2015-01-02T00:00:00.000Z"),
    ]
    monthly = _buckets("2015-01-15T00:00:00Z", "2015-04-01T00:00:00Z", "monthly")
    assert [b[0][:10] for b in monthly] == ["2015-01-15", "2015-02-01", "2015-03-01"]


@pytest.mark.parametrize("interval", ["fortnightly", "every_0_days", "every_x_days", 3])
def test_bad_intervals_are_refused(interval: object) -> None:
    with pytest.raises(QueryError) as info:
        _buckets("2015-01-01T00:00:00Z", "2015-01-02T00:00:00Z", interval)  # type: ignore[arg-type]
    assert (info.value.status, info.value.error_code) == (400, "InvalidIntervalError")


def test_too_many_buckets_are_refused_instead_of_exhausting_memory() -> None:
    with pytest.raises(QueryError):
        _buckets("2000-01-01T00:00:00Z", "2015-01-01T00:00:00Z", "minutely")


@pytest.mark.parametrize("interval", ["yearly", "daily", "every_5_years"])
def test_a_last_bucket_whose_boundary_is_past_year_9999_is_clipped_to_the_timeframe(
    interval: str,
) -> None:
    # The next boundary (10000-01-01 or later) is after the end: the bucket ends at the end.
    assert _buckets("9999-12-31T20:00:00Z", "9999-12-31T23:00:00Z", interval) == [
        ("9999-12-31T20:00:00.000Z", "9999-12-31T23:00:00.000Z")]


def test_buckets_starting_before_year_1_in_the_query_zone_are_a_400_not_a_crash() -> None:
    with pytest.raises(QueryError) as info:
        _buckets("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "daily", -3600)
    assert (info.value.status, info.value.error_code) == (400, "TimeframeDefinitionError")
