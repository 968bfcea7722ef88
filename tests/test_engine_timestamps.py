"""Timestamps in the local server's answers and filters: one renderer with four-digit years
that the server reads back, and ``in`` on ``keen.timestamp`` meaning ``eq`` against each value.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.server.engine import run_query
from keen.server.engines.base import EventStore as Storage
from keen.server.timeframes import format_timestamp, parse_iso

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)
EVERYTHING = {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59.999Z"}


@pytest.fixture(name="store")
def store_fixture(engine: str) -> Iterator[Storage]:
    """An empty store of each engine (``tests/_engines.py``)."""
    with open_store(engine) as storage:
        yield storage


def query(storage: Storage, analysis: str, **params: Any) -> Any:
    params = {"event_collection": "c", "timeframe": EVERYTHING, **params}
    return run_query(storage, "p", analysis, params, now=NOW)["result"]


# ------------------------------------------------------------------ four-digit years

INSTANTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
                        timezones=st.just(timezone.utc))


@settings(max_examples=200, deadline=None)
@given(instant=INSTANTS)
def test_every_rendered_timestamp_has_a_four_digit_year_and_reads_back(
    instant: datetime,
) -> None:
    text = format_timestamp(instant)
    assert len(text) == 24 and text[4] == "-" and text.endswith("Z"), text
    assert parse_iso(text) == instant.replace(microsecond=instant.microsecond // 1000 * 1000)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00Z", "0999-12-31T23:59:59.999Z",
                                   "9999-12-31T22:30:00Z", "0099-06-15T12:00:00+05:00"])
def test_extractions_intervals_and_groups_show_four_digit_years_the_server_accepts(
    store: Storage, stamp: str,
) -> None:
    store.insert_events("p", "c", [{"keen": {"timestamp": stamp}}], now=NOW)
    shown = format_timestamp(parse_iso(stamp))
    assert [e["keen"]["timestamp"] for e in query(store, "extraction")] == [shown]
    assert query(store, "count", group_by="keen.timestamp") == [
        {"keen.timestamp": shown, "result": 1}]
    start = parse_iso(stamp) - timedelta(hours=1) if stamp[:4] != "0001" else parse_iso(stamp)
    buckets = query(store, "count", interval="hourly", timeframe={
        "start": format_timestamp(start), "end": format_timestamp(start + timedelta(hours=2))})
    assert sum(b["value"] for b in buckets) == 1
    for bucket in buckets:  # each edge is accepted back as a timeframe, and as a filter value
        edges = bucket["timeframe"]
        assert all(len(edge) == 24 for edge in edges.values()), edges
        assert query(store, "count", timeframe=edges) == bucket["value"]
    assert query(store, "count", filters=[
        {"property_name": "keen.timestamp", "operator": "eq", "property_value": shown}]) == 1


def test_yearly_buckets_from_year_1_to_9999_are_all_rendered_with_four_digits(
    store: Storage,
) -> None:
    buckets = query(store, "count", interval="every_1000_years")
    assert [b["timeframe"]["start"][:4] for b in buckets] == [
        "0001", "1001", "2001", "3001", "4001", "5001", "6001", "7001", "8001", "9001"]
    assert buckets[-1]["timeframe"]["end"] == "9999-12-31T23:59:59.999Z"  # clipped, not a 400


# ------------------------------------------------------------------ in on keen.timestamp

OFFSETS = st.sampled_from(["Z", "+00:00", "+01:00", "-0800", "+05:30", "+14:00", "-12:00"])


def spell(instant: datetime, offset: str) -> str:
    """``instant`` written with another UTC offset (the same instant)."""
    if offset == "Z":
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    shift = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    local = (instant + shift).replace(tzinfo=None)
    return local.isoformat(timespec="milliseconds") + offset


STAMPS = st.datetimes(min_value=datetime(2026, 3, 8), max_value=datetime(2026, 3, 9),
                      timezones=st.just(timezone.utc)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.lists(STAMPS, min_size=1, max_size=5), picked=st.data())
def test_in_is_eq_against_each_value_on_timestamps(
    store: Storage, stored: list[datetime], picked: st.DataObject,
) -> None:
    store.delete_events("p", "c", now=NOW)
    store.insert_events("p", "c", [{"keen": {"timestamp": spell(s, "Z")}} for s in stored],
                        now=NOW)
    wanted = picked.draw(st.lists(st.sampled_from(stored) | STAMPS, min_size=1, max_size=3))
    values = [spell(w, picked.draw(OFFSETS)) for w in wanted]
    for name in ("keen.timestamp", "keen.created_at"):
        def count(operator: str, value: Any, name: str = name) -> int:
            return int(query(store, "count", filters=[
                {"property_name": name, "operator": operator, "property_value": value}]))

        each = [count("eq", v) for v in values]
        hits = sum(s in wanted for s in stored) if name == "keen.timestamp" else 0
        assert count("in", values) == hits
        assert count("in", values) <= sum(each) and all(e <= count("in", values) for e in each)
        assert count("in", values[:1]) == each[0]
        assert count("ne", values[0]) == len(stored) - each[0]


def test_in_on_keen_timestamp_compares_instants_like_eq(store: Storage) -> None:
    store.insert_events("p", "c", [{"keen": {"timestamp": "2026-03-08T10:00:00Z"}}], now=NOW)

    def count(operator: str, value: Any) -> int:
        return int(query(store, "count", filters=[
            {"property_name": "keen.timestamp", "operator": operator, "property_value": value}]))

    assert count("eq", "2026-03-08T11:00:00+01:00") == 1
    assert count("in", ["2026-03-08T11:00:00+01:00"]) == 1
    assert count("in", ["2026-03-08T11:00:00+01:00", "not a date", None]) == 1
    assert count("in", ["2026-03-08T10:00:00.001Z"]) == 0
    assert count("ne", "2026-03-08T11:00:00+01:00") == 0


# ------------------------------------------------------------------ every query reading it


def test_every_kind_of_query_reads_the_rendered_timestamp(store: Storage) -> None:
    """The DuckDB engine renders ``keen.timestamp`` only for the statements that read it:
    each path that can (group keys, targets, filters on its text, funnel actors, the ``keen``
    object around it) gets the rendered text."""
    early, late = "2026-03-08T10:00:00.000Z", "2026-03-09T11:30:00.000Z"
    store.insert_events("p", "c", [{"keen": {"timestamp": t}, "n": i}
                                   for i, t in enumerate([early, late, late])], now=NOW)
    assert query(store, "count", group_by="keen.timestamp") == [
        {"keen.timestamp": early, "result": 1}, {"keen.timestamp": late, "result": 2}]
    assert query(store, "median", target_property="n", group_by="keen.timestamp") == [
        {"keen.timestamp": early, "result": 0}, {"keen.timestamp": late, "result": 1}]
    daily = query(store, "count", group_by="keen.timestamp", interval="daily",
                  timeframe={"start": "2026-03-08T00:00:00Z", "end": "2026-03-10T00:00:00Z"})
    assert [b["value"] for b in daily] == [[{"keen.timestamp": early, "result": 1}],
                                           [{"keen.timestamp": late, "result": 2}]]
    assert query(store, "count_unique", target_property="keen.timestamp") == 2
    assert query(store, "select_unique", target_property="keen.timestamp") == [early, late]
    assert query(store, "count", filters=[{"property_name": "keen.timestamp",
                                           "operator": "contains",
                                           "property_value": "T11:30"}]) == 2
    objects = query(store, "count", group_by="keen")  # (each event's own keen.id: 3 groups)
    assert sorted(group["keen"]["timestamp"] for group in objects) == [early, late, late]
    step = {"event_collection": "c", "actor_property": "keen.timestamp",
            "timeframe": EVERYTHING}
    assert run_query(store, "p", "funnel", {"steps": [step]}, now=NOW)["result"] == [2]
