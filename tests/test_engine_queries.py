"""The query engine against hand-computed answers (keen-api.md 7-12, 14.4)."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401 (a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.server.engine import (
    EMAIL_EXTRACTION_RESULT,
    QueryError,
    dataset_results,
    decode_query_params,
    run_query,
)
from keen.server.engines.base import EventStore as Storage

UTC = timezone.utc
NOW = datetime(2015, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday
MARCH = {"start": "2015-03-01T00:00:00Z", "end": "2015-03-10T00:00:00Z"}

PURCHASES = [
    {"price": 10, "item": {"id": 1}, "user": "ann", "keen": {"timestamp": "2015-03-01T00:00:00Z"}},
    {"price": 20, "item": {"id": 2}, "user": "bob",
     "keen": {"timestamp": "2015-03-07T23:59:59.999Z"}},
    {"price": 30, "item": {"id": 1}, "user": "ann", "keen": {"timestamp": "2015-03-08T00:00:00Z"}},
    {"price": 25.5, "item": {"id": 2}, "user": "cid",
     "keen": {"timestamp": "2015-03-09T10:00:00Z"}},
    {"price": "free", "user": None, "keen": {"timestamp": "2015-03-09T11:00:00Z"}},
    {"price": 40, "item": {"id": 1}, "user": "bob", "keen": {"timestamp": "2015-03-10T00:00:00Z"}},
]
# population standard deviation of 10, 20, 30, 25.5
STDDEV = math.sqrt(((10 - 21.375) ** 2 + (20 - 21.375) ** 2 + (30 - 21.375) ** 2
                    + (25.5 - 21.375) ** 2) / 4)


@pytest.fixture(scope="module")
def storage(engine: str) -> Iterator[Storage]:
    with open_store(engine) as store:
        assert all(r["success"] for r in store.insert_events("p", "purchases", PURCHASES, now=NOW))
        yield store


def query(storage: Storage, analysis: str, **params: Any) -> Any:
    params.setdefault("event_collection", "purchases")
    params.setdefault("timeframe", MARCH)
    return run_query(storage, "p", analysis, params, now=NOW)


def result(storage: Storage, analysis: str, **params: Any) -> Any:
    body = query(storage, analysis, **params)
    assert set(body) == {"result"}
    return body["result"]


@pytest.mark.parametrize(
    ("analysis", "extra", "expected"),
    [
        ("count", {}, 5),
        ("count_unique", {"target_property": "user"}, 3),  # null is not a value
        ("count_unique", {"target_property": "item.id"}, 2),
        ("sum", {"target_property": "price"}, 85.5),  # "free" is ignored
        ("minimum", {"target_property": "price"}, 10),
        ("maximum", {"target_property": "price"}, 30),
        ("average", {"target_property": "price"}, 21.375),
        ("median", {"target_property": "price"}, 20),  # nearest rank: lower middle
        ("percentile", {"target_property": "price", "percentile": 75}, 25.5),
        ("percentile", {"target_property": "price", "percentile": 50.01}, 25.5),
        ("percentile", {"target_property": "price", "percentile": 0}, 10),
        ("percentile", {"target_property": "price", "percentile": 100}, 30),
        ("standard_deviation", {"target_property": "price"}, STDDEV),
        ("select_unique", {"target_property": "user"}, ["ann", "bob", "cid"]),
        ("select_unique", {"target_property": "price"}, [10, 20, 25.5, 30, "free"]),
    ],
)
def test_each_analysis(
    storage: Storage, analysis: str, extra: dict[str, Any], expected: Any
) -> None:
    value = result(storage, analysis, **extra)
    assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected
    assert type(value) is type(expected)  # integral results are ints, not 10.0


def test_median_of_two_values_is_the_lower_one(storage: Storage) -> None:
    # keen-gem's live-API suite: median(10, 20) == 10, p100 == 20
    tf = {"start": "2015-03-01T00:00:00Z", "end": "2015-03-08T00:00:00Z"}
    assert result(storage, "median", target_property="price", timeframe=tf) == 10
    assert result(storage, "percentile", target_property="price", percentile=100,
                  timeframe=tf) == 20


@pytest.mark.parametrize(
    ("analysis", "expected"),
    [("count", 0), ("count_unique", 0), ("sum", 0), ("minimum", None), ("maximum", None),
     ("average", None), ("median", None), ("percentile", None), ("standard_deviation", None),
     ("select_unique", [])],
)
def test_results_on_no_events(storage: Storage, analysis: str, expected: Any) -> None:
    tf = {"start": "2015-01-01T00:00:00Z", "end": "2015-02-01T00:00:00Z"}
    params: dict[str, Any] = {"timeframe": tf, "target_property": "price", "percentile": 90}
    assert result(storage, analysis, **params) == expected


def test_timeframe_start_is_inclusive_and_end_exclusive(storage: Storage) -> None:
    before = {"start": "2015-03-07T00:00:00Z", "end": "2015-03-08T00:00:00Z"}
    after = {"start": "2015-03-08T00:00:00Z", "end": "2015-03-09T00:00:00Z"}
    assert result(storage, "select_unique", target_property="price", timeframe=before) == [20]
    assert result(storage, "select_unique", target_property="price", timeframe=after) == [30]
    # this_3_days on Tuesday noon = Sunday 00:00 to Wednesday 00:00: events 3 to 6
    assert result(storage, "count", timeframe="this_3_days") == 4
    assert result(storage, "count", timeframe="previous_3_days") == 4  # Saturday to Tuesday


def test_group_by_uses_dotted_names_and_a_null_group(storage: Storage) -> None:
    assert result(storage, "count", group_by="item.id") == [
        {"item.id": None, "result": 1}, {"item.id": 1, "result": 2}, {"item.id": 2, "result": 2},
    ]
    assert result(storage, "sum", target_property="price", group_by=["item.id"]) == [
        {"item.id": None, "result": 0}, {"item.id": 1, "result": 40},
        {"item.id": 2, "result": 45.5},
    ]
    assert result(storage, "median", target_property="price", group_by="user") == [
        {"user": None, "result": None}, {"user": "ann", "result": 10},
        {"user": "bob", "result": 20}, {"user": "cid", "result": 25.5},
    ]


def test_group_by_several_properties(storage: Storage) -> None:
    assert result(storage, "count", group_by=["user", "item.id"]) == [
        {"user": None, "item.id": None, "result": 1},
        {"user": "ann", "item.id": 1, "result": 2},
        {"user": "bob", "item.id": 2, "result": 1},
        {"user": "cid", "item.id": 2, "result": 1},
    ]


def test_group_values_keep_their_json_types(engine: str) -> None:
    with open_store(engine) as store:
        store.insert_events("p", "c", [{"g": True}, {"g": 1}, {"g": "1"}, {"g": 1.0}, {}],
                            now=NOW)
        body = run_query(store, "p", "count",
                         {"event_collection": "c", "timeframe": "today", "group_by": "g"},
                         now=NOW)
        values = {analysis: run_query(store, "p", analysis, {
            "event_collection": "c", "timeframe": "today", "target_property": "g"}, now=NOW)
            ["result"] for analysis in ("count_unique", "select_unique")}
    assert values == {"count_unique": 3, "select_unique": [True, 1, "1"]}
    assert body["result"] == [
        {"g": None, "result": 1}, {"g": True, "result": 1}, {"g": 1, "result": 2},
        {"g": "1", "result": 1},
    ]


def test_a_list_value_is_one_group_as_a_whole(engine: str) -> None:
    with open_store(engine) as store:
        store.insert_events("p", "c", [{"tags": ["a", "b"]}, {"tags": ["a"]}, {"tags": ["a"]},
                                       {"tags": "a"}], now=NOW)
        body = run_query(store, "p", "count",
                         {"event_collection": "c", "timeframe": "today", "group_by": "tags"},
                         now=NOW)
    # sorted: strings before lists, lists element by element (a prefix first)
    assert body["result"] == [
        {"tags": "a", "result": 1}, {"tags": ["a"], "result": 2},
        {"tags": ["a", "b"], "result": 1},
    ]


def test_objects_compare_as_json_values_whatever_their_key_order(engine: str) -> None:
    """An object property is one value whatever the order of its keys and 1 versus 1.0, in
    group_by, count_unique, select_unique and eq filters; extraction gives the events back
    whole (the DuckDB engine keeps the scalars of objects in typed columns)."""
    events = [{"u": {"id": 1, "n": "x"}, "k": 1}, {"u": {"n": "x", "id": 1.0}, "k": 2},
              {"u": {"id": 2, "n": "x", "deep": {"z": True}}, "k": 3}, {"u": {}, "k": 4},
              {"u": None, "k": 5}, {"k": 6}]
    with open_store(engine) as store:
        store.insert_events("p", "c", events, now=NOW)
        params = {"event_collection": "c", "timeframe": "today"}
        groups = run_query(store, "p", "count", {**params, "group_by": "u"}, now=NOW)
        distinct = run_query(store, "p", "count_unique", {**params, "target_property": "u"},
                             now=NOW)
        values = run_query(store, "p", "select_unique", {**params, "target_property": "u"},
                           now=NOW)
        matched = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "u", "operator": "eq", "property_value": {"n": "x", "id": 1}}]},
            now=NOW)
        nested = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "u.deep", "operator": "eq", "property_value": {"z": True}}]},
            now=NOW)
        present = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "u", "operator": "exists", "property_value": True}]}, now=NOW)
        whole = run_query(store, "p", "extraction", params, now=NOW)["result"]
    assert [event["k"] for event in whole] == [1, 2, 3, 4, 5, 6]
    assert [{k: v for k, v in event.items() if k != "keen"} for event in whole] == events
    assert [type(event["u"]["id"]) for event in whole[:2]] == [int, float]
    # objects sort by their JSON text with sorted keys: '{"d' < '{"i' < '{}'
    assert groups["result"] == [
        {"u": None, "result": 2}, {"u": {"deep": {"z": True}, "id": 2, "n": "x"}, "result": 1},
        {"u": {"id": 1, "n": "x"}, "result": 2}, {"u": {}, "result": 1},
    ]
    assert distinct["result"] == 3
    assert values["result"] == [{"deep": {"z": True}, "id": 2, "n": "x"}, {"id": 1, "n": "x"}, {}]
    assert (matched["result"], nested["result"], present["result"]) == (2, 1, 5)


def test_order_by_and_limit(storage: Storage) -> None:
    rows = result(storage, "count", group_by="user",
                  order_by=[{"property_name": "result", "direction": "DESC"}], limit=2)
    assert rows == [{"user": "ann", "result": 2}, {"user": None, "result": 1}]
    rows = result(storage, "count", group_by="user", order_by="user")
    assert [r["user"] for r in rows] == [None, "ann", "bob", "cid"]
    rows = result(storage, "count", group_by="user",
                  order_by={"property_name": "user", "direction": "DESC"})
    assert [r["user"] for r in rows] == ["cid", "bob", "ann", None]


@pytest.mark.parametrize(
    "extra",
    [
        {"order_by": "result"},  # needs group_by
        {"group_by": "user", "limit": 2},  # needs order_by
        {"group_by": "user", "order_by": "price"},  # not result or a group_by property
        {"group_by": "user", "order_by": {"property_name": "result", "direction": "UP"}},
        {"group_by": "user", "order_by": {"property_name": "result", "extra": 1}},
        {"group_by": "user", "order_by": "result", "limit": 0},
        {"group_by": "user", "order_by": "result", "limit": "2"},
        {"group_by": 7},
    ],
)
def test_bad_order_by_limit_and_group_by_are_400(storage: Storage, extra: dict[str, Any]) -> None:
    with pytest.raises(QueryError) as info:
        query(storage, "count", **extra)
    assert (info.value.status, info.value.error_code) == (400, "InvalidParameterError")


def _interval(tf_start: str, tf_end: str) -> dict[str, str]:
    return {"start": tf_start, "end": tf_end}


def test_interval_buckets_with_empty_ones(storage: Storage) -> None:
    rows = result(storage, "count", interval="daily",
                  timeframe=_interval("2015-03-06T00:00:00Z", "2015-03-10T00:00:00Z"))
    assert rows == [
        {"timeframe": {"start": "2015-03-06T00:00:00.000Z", "end": "2015-03-07T00:00:00.000Z"},
         "value": 0},
        {"timeframe": {"start": "2015-03-07T00:00:00.000Z", "end": "2015-03-08T00:00:00.000Z"},
         "value": 1},
        {"timeframe": {"start": "2015-03-08T00:00:00.000Z", "end": "2015-03-09T00:00:00.000Z"},
         "value": 1},
        {"timeframe": {"start": "2015-03-09T00:00:00.000Z", "end": "2015-03-10T00:00:00.000Z"},
         "value": 2},
    ]
    averages = result(storage, "average", target_property="price", interval="daily",
                      timeframe=_interval("2015-03-06T00:00:00Z", "2015-03-10T00:00:00Z"))
    assert [r["value"] for r in averages] == [None, 20, 30, 25.5]


def test_group_by_with_interval_lists_the_groups_of_each_bucket(storage: Storage) -> None:
    rows = result(storage, "count", interval="daily", group_by="user",
                  timeframe=_interval("2015-03-06T00:00:00Z", "2015-03-10T00:00:00Z"))
    assert [r["value"] for r in rows] == [
        [],
        [{"user": "bob", "result": 1}],
        [{"user": "ann", "result": 1}],
        [{"user": None, "result": 1}, {"user": "cid", "result": 1}],
    ]


def test_weekly_interval_this_month_is_clipped(storage: Storage) -> None:
    rows = result(storage, "count", interval="weekly", timeframe="this_month")
    spans = [(r["timeframe"]["start"][:10], r["timeframe"]["end"][:10], r["value"]) for r in rows]
    assert spans == [
        ("2015-03-01", "2015-03-08", 2), ("2015-03-08", "2015-03-15", 4),
        ("2015-03-15", "2015-03-22", 0), ("2015-03-22", "2015-03-29", 0),
        ("2015-03-29", "2015-04-01", 0),
    ]


def test_a_dst_change_in_a_named_zone_versus_a_numeric_offset(engine: str) -> None:
    # 2015-03-09T07:30Z is 00:30 on March 9 in Los Angeles (PDT, after the switch on March 8)
    # but still 23:30 on March 8 at a fixed UTC-8.
    now = datetime(2015, 3, 9, 20, 0, tzinfo=UTC)
    with open_store(engine) as store:
        store.insert_events("p", "c", [{"keen": {"timestamp": "2015-03-09T07:30:00Z"}}], now=now)

        def run(**params: Any) -> Any:
            return run_query(store, "p", "count", {"event_collection": "c", **params},
                             now=now)["result"]

        tf = {"start": "2015-03-08T08:00:00Z", "end": "2015-03-10T07:00:00Z"}
        named = run(timeframe=tf, interval="daily", timezone="US/Pacific")
        fixed = run(timeframe=tf, interval="daily", timezone=-28800)
        assert [(r["timeframe"]["end"], r["value"]) for r in named] == [
            ("2015-03-09T07:00:00.000Z", 0), ("2015-03-10T07:00:00.000Z", 1)]
        assert [(r["timeframe"]["end"], r["value"]) for r in fixed] == [
            ("2015-03-09T08:00:00.000Z", 1), ("2015-03-10T07:00:00.000Z", 0)]
        assert run(timeframe="yesterday", timezone="US/Pacific") == 0
        assert run(timeframe="yesterday", timezone=-28800) == 1
        assert run(timeframe="today", timezone="US/Pacific") == 1


def test_extraction_returns_whole_events_in_time_order(storage: Storage) -> None:
    events = result(storage, "extraction")
    assert [e["price"] for e in events] == [10, 20, 30, 25.5, "free"]
    assert set(events[0]["keen"]) == {"timestamp", "created_at", "id"}
    latest = result(storage, "extraction", latest=2)
    assert [e["price"] for e in latest] == [25.5, "free"]
    names = result(storage, "extraction", property_names=["item.id", "user"], latest=1)
    assert names == [{"user": None}]
    names = result(storage, "extraction", property_names="price",
                   filters=[{"property_name": "user", "operator": "eq", "property_value": "ann"}])
    assert names == [{"price": 10}, {"price": 30}]


def test_extraction_by_email_answers_like_the_api(storage: Storage) -> None:
    assert result(storage, "extraction", email="me@example.com") == EMAIL_EXTRACTION_RESULT
    with pytest.raises(QueryError):
        query(storage, "extraction", email="me@example.com", timeframe=None)


def test_multi_analysis_result_shapes(storage: Storage) -> None:
    analyses = {"total": {"analysis_type": "sum", "target_property": "price"},
                "n": {"analysis_type": "count"},
                "p90": {"analysis_type": "percentile", "target_property": "price",
                        "percentile": 90}}
    assert result(storage, "multi_analysis", analyses=analyses) == {
        "total": 85.5, "n": 5, "p90": 30}
    assert result(storage, "multi_analysis", analyses=analyses, group_by="item.id") == [
        {"item.id": None, "total": 0, "n": 1, "p90": None},
        {"item.id": 1, "total": 40, "n": 2, "p90": 30},
        {"item.id": 2, "total": 45.5, "n": 2, "p90": 25.5},
    ]
    tf = _interval("2015-03-07T00:00:00Z", "2015-03-09T00:00:00Z")
    rows = result(storage, "multi_analysis", analyses=analyses, interval="daily", timeframe=tf)
    assert [r["value"] for r in rows] == [
        {"total": 20, "n": 1, "p90": 20}, {"total": 30, "n": 1, "p90": 30}]
    rows = result(storage, "multi_analysis", analyses=analyses, interval="daily", timeframe=tf,
                  group_by="user", order_by={"property_name": "n", "direction": "DESC"})
    assert [r["value"] for r in rows] == [
        [{"user": "bob", "total": 20, "n": 1, "p90": 20}],
        [{"user": "ann", "total": 30, "n": 1, "p90": 30}],
    ]


@pytest.mark.parametrize(
    "analyses",
    [None, {}, {"x": {"analysis_type": "funnel"}}, {"x": {"analysis_type": "sum"}},
     {"user": {"analysis_type": "count"}}, {"x": {"analysis_type": ["count"]}}],
)
def test_bad_multi_analysis_is_400(storage: Storage, analyses: Any) -> None:
    with pytest.raises(QueryError) as info:
        query(storage, "multi_analysis", analyses=analyses, group_by="user")
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("analysis", "params", "status", "code"),
    [
        ("count_distinct", {}, 404, "ResourceNotFoundError"),
        ("count", {"event_collection": None}, 400, "MissingParameterError"),
        ("count", {"timeframe": None}, 400, "TimeframeDefinitionError"),
        ("count", {"timeframe": "since_forever"}, 400, "TimeframeDefinitionError"),
        ("sum", {}, 400, "MissingParameterError"),
        ("percentile", {"target_property": "price"}, 400, "MissingParameterError"),
        ("percentile", {"target_property": "price", "percentile": 101}, 400,
         "InvalidParameterError"),
        ("count", {"timezone": "Nowhere/Land"}, 400, "InvalidTimezoneError"),
        ("count", {"interval": "sometimes"}, 400, "InvalidIntervalError"),
        ("extraction", {"group_by": "user"}, 400, "InvalidParameterError"),
        ("extraction", {"interval": "daily"}, 400, "InvalidParameterError"),
        ("extraction", {"latest": -1}, 400, "InvalidParameterError"),
    ],
)
def test_query_errors(
    storage: Storage, analysis: str, params: dict[str, Any], status: int, code: str
) -> None:
    with pytest.raises(QueryError) as info:
        query(storage, analysis, **params)
    assert (info.value.status, info.value.error_code) == (status, code)
    assert info.value.message


def test_extra_filters_from_keys_narrow_every_query(storage: Storage) -> None:
    key_filter = [{"property_name": "user", "operator": "eq", "property_value": "ann"}]
    body = run_query(storage, "p", "count", {"event_collection": "purchases", "timeframe": MARCH},
                     now=NOW, extra_filters=key_filter)
    assert body == {"result": 2}


def test_include_metadata(storage: Storage) -> None:
    body = query(storage, "count", include_metadata=True,
                 filters=[{"property_name": "user", "operator": "eq", "property_value": "ann"}])
    assert body["result"] == 2
    meta = body["execution_metadata"]
    assert meta["events_scanned"] == 5
    assert meta["total_properties_scanned"] == 5 * meta["properties_per_event"]
    assert meta["total_processing_time"] >= 0


def test_decode_query_params_turns_get_strings_into_values() -> None:
    decoded = decode_query_params({
        "event_collection": "purchases",
        "timeframe": "this_7_days",
        "filters": '[{"property_name":"a","operator":"eq","property_value":1}]',
        "group_by": "item.id",
        "order_by": '[{"property_name":"result"}]',
        "percentile": "99.99",
        "latest": "10",
        "timezone": "-28800",
        "include_metadata": "true",
        "property_names": '["a","b"]',
        "target_property": "123",
    })
    assert decoded == {
        "event_collection": "purchases",
        "timeframe": "this_7_days",
        "filters": [{"property_name": "a", "operator": "eq", "property_value": 1}],
        "group_by": "item.id",
        "order_by": [{"property_name": "result"}],
        "percentile": 99.99,
        "latest": 10,
        "timezone": -28800,
        "include_metadata": True,
        "property_names": ["a", "b"],
        "target_property": "123",
    }
    assert decode_query_params({"timeframe": '{"start":"a","end":"b"}', "timezone": "UTC",
                                "group_by": '["a","b"]'}) == {
        "timeframe": {"start": "a", "end": "b"}, "timezone": "UTC", "group_by": ["a", "b"]}
    with pytest.raises(QueryError) as info:
        decode_query_params({"filters": "[{"})
    assert info.value.status == 400


def test_dataset_results_are_the_query_per_index_value(storage: Storage) -> None:
    definition = {
        "index_by": "user",
        "query": {"analysis_type": "count", "event_collection": "purchases",
                  "timeframe": MARCH, "interval": "daily", "group_by": ["item.id"],
                  "timezone": "UTC"},
    }
    body = dataset_results(storage, "p", definition, {"user": "ann"},
                           _interval("2015-03-07T00:00:00Z", "2015-03-12T00:00:00Z"), now=NOW)
    assert body == {"result": [
        {"timeframe": {"start": "2015-03-07T00:00:00.000Z", "end": "2015-03-08T00:00:00.000Z"},
         "value": []},
        {"timeframe": {"start": "2015-03-08T00:00:00.000Z", "end": "2015-03-09T00:00:00.000Z"},
         "value": [{"item.id": 1, "result": 1}]},
        {"timeframe": {"start": "2015-03-09T00:00:00.000Z", "end": "2015-03-10T00:00:00.000Z"},
         "value": []},
    ]}
    whole = dataset_results(storage, "p", definition, "bob", None, now=NOW)["result"]
    assert len(whole) == 9
    assert sum(len(bucket["value"]) for bucket in whole) == 1


# --- aggregations agree with a plain Python computation on generated data ------------------

_EXAMPLES = itertools.count()
_g_values = st.sampled_from([None, "a", "b", 1, True])
_x_values = st.one_of(st.integers(-50, 50), st.floats(-10, 10, allow_nan=False).map(
    lambda v: round(v, 2)), st.sampled_from(["s", None, True]))
_rows = st.lists(st.fixed_dictionaries({}, optional={"g": _g_values, "x": _x_values}),
                 min_size=0, max_size=12)


def _expected(analysis: str, values: list[Any], percentile: float) -> Any:
    numbers = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    present = [v for v in values if v is not None]
    if analysis == "count":
        return len(values)
    if analysis == "sum":
        return sum(numbers)
    if analysis == "count_unique":  # 1 and 1.0 are one value, True is not 1
        return len({(type(v) is bool, v if isinstance(v, (int, float)) else json.dumps(v))
                    for v in present})
    if not numbers:
        return None
    if analysis == "minimum":
        return numbers[0]
    if analysis == "maximum":
        return numbers[-1]
    if analysis == "average":
        return sum(numbers) / len(numbers)
    if analysis == "standard_deviation":
        return statistics.pstdev(numbers)
    rank = math.ceil(percentile / 100 * len(numbers))
    return numbers[max(rank, 1) - 1]


@settings(max_examples=60, deadline=None)
@given(rows=_rows, analysis=st.sampled_from(
    ["count", "sum", "count_unique", "minimum", "maximum", "average", "standard_deviation",
     "median", "percentile"]), percentile=st.sampled_from([0, 10, 33.33, 50, 99.99, 100]),
    scalars_only=st.booleans())
def test_grouped_aggregations_match_python(
    storage: Storage, rows: list[dict[str, Any]], analysis: str, percentile: float,
    scalars_only: bool,
) -> None:
    """``scalars_only`` leaves out nulls: the DuckDB engine then reads the typed columns."""
    if scalars_only:
        rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
    collection = f"gen{next(_EXAMPLES)}"  # one store, a new collection per example
    storage.insert_events("p", collection, rows, now=NOW)
    body = run_query(storage, "p", analysis, {
        "event_collection": collection, "timeframe": "today", "target_property": "x",
        "percentile": percentile, "group_by": "g"}, now=NOW)
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(json.dumps(row.get("g")), []).append(row.get("x"))
    expected = {
        key: _expected(analysis, values, 50 if analysis == "median" else percentile)
        for key, values in groups.items()
    }
    got = {json.dumps(item["g"]): item["result"] for item in body["result"]}
    assert got == pytest.approx(expected)


def test_a_property_that_changes_kind_keeps_every_value(engine: str) -> None:
    """A property first seen as scalars, later as null, a list and an object (the DuckDB
    engine moves it from its typed columns to the JSON body): every query sees every value,
    also after a property delete."""
    with open_store(engine) as store:
        params = {"event_collection": "c", "timeframe": "today"}
        store.insert_events("p", "c", [{"v": "a", "k": 1}, {"v": 2, "k": 2}], now=NOW)
        first = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "v", "operator": "eq", "property_value": "a"}]}, now=NOW)
        store.insert_events("p", "c", [{"v": None, "k": 3}, {"v": [1, "a"], "k": 4},
                                       {"v": {"w": 1}, "k": 5}, {"k": 6}], now=NOW)

        def count(operator: str, value: Any) -> Any:
            return run_query(store, "p", "count", {**params, "filters": [
                {"property_name": "v", "operator": operator, "property_value": value}]},
                now=NOW)["result"]

        answers = {"eq a": count("eq", "a"), "eq 2": count("eq", 2.0), "exists": count(
            "exists", True), "eq null": count("eq", None), "gt 1": count("gt", 1),
            "eq object": count("eq", {"w": 1.0}), "contains a": count("contains", "a")}
        groups = run_query(store, "p", "count", {**params, "group_by": "v"}, now=NOW)["result"]
        unique = run_query(store, "p", "select_unique", {**params, "target_property": "v"},
                           now=NOW)["result"]
        assert store.delete_property("p", "c", "v") == 5
        left = run_query(store, "p", "extraction", params, now=NOW)["result"]
    assert first["result"] == 1
    assert answers == {"eq a": 2, "eq 2": 1, "exists": 5, "eq null": 2, "gt 1": 1,
                       "eq object": 1, "contains a": 2}
    assert groups == [{"v": None, "result": 2}, {"v": 2, "result": 1}, {"v": "a", "result": 1},
                      {"v": [1, "a"], "result": 1}, {"v": {"w": 1}, "result": 1}]
    assert unique == [2, "a", [1, "a"], {"w": 1}]
    assert [sorted(k for k in event if k != "keen") for event in left] == [["k"]] * 6


def test_strings_with_nul_are_whole_strings_and_in_on_timestamps_compares_instants(
    engine: str,
) -> None:
    """Every string operation sees the whole string, NUL characters included; ``in`` on
    keen.timestamp compares instants like ``eq``."""
    with open_store(engine) as store:
        store.insert_events("p", "c", [
            {"s": "a\x00b", "keen": {"timestamp": "2015-03-10T10:00:00Z"}},
            {"s": "a", "keen": {"timestamp": "2015-03-10T11:00:00Z"}},
            {"s": "a\x00c", "keen": {"timestamp": "2015-03-10T11:30:00Z"}},
        ], now=NOW)
        params = {"event_collection": "c", "timeframe": "today"}

        def count(prop: str, operator: str, value: Any) -> Any:
            return run_query(store, "p", "count", {**params, "filters": [
                {"property_name": prop, "operator": operator, "property_value": value}]},
                now=NOW)["result"]

        strings = {op: count("s", op, value) for op, value in [
            ("eq", "a"), ("contains", "\x00b"), ("regex", "c$"), ("lt", "a\x00c"),
            ("in", ["a\x00b", "x"])]}
        groups = run_query(store, "p", "count", {**params, "group_by": "s"}, now=NOW)["result"]
        unique = run_query(store, "p", "count_unique", {**params, "target_property": "s"},
                           now=NOW)["result"]
        stamps = count("keen.timestamp", "in", ["2015-03-10T12:00:00+01:00",
                                                "2015-03-10T06:30:00-05:00"])
    assert strings == {"eq": 1, "contains": 1, "regex": 1, "lt": 2, "in": 1}
    assert groups == [{"s": "a", "result": 1}, {"s": "a\x00b", "result": 1},
                      {"s": "a\x00c", "result": 1}]
    assert unique == 3
    assert stamps == 2


def test_lists_compare_as_json_values_in_groups_filters_and_funnels(engine: str) -> None:
    """``[1, 2]`` equals ``[1.0, 2]``: one group, one distinct value, an ``eq`` match and one
    funnel actor."""
    with open_store(engine) as store:
        store.insert_events("p", "a", [{"v": [1, 2]}, {"v": [1.0, 2]}, {"v": [2, 1]}], now=NOW)
        store.insert_events("p", "b", [{"v": [1.0, 2.0]}], now=NOW)
        params = {"event_collection": "a", "timeframe": "today"}
        groups = run_query(store, "p", "count", {**params, "group_by": "v"}, now=NOW)["result"]
        unique = run_query(store, "p", "count_unique", {**params, "target_property": "v"},
                           now=NOW)["result"]
        matched = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "v", "operator": "eq", "property_value": [1, 2.0]}]},
            now=NOW)["result"]
        funnel = run_query(store, "p", "funnel", {"timeframe": "today", "steps": [
            {"event_collection": "a", "actor_property": "v"},
            {"event_collection": "b", "actor_property": "v", "with_actors": True}]}, now=NOW)
    assert groups == [{"v": [1, 2], "result": 2}, {"v": [2, 1], "result": 1}]
    assert (unique, matched) == (2, 2)
    assert funnel["result"] == [2, 1]
    assert funnel["actors"] == [None, [[1, 2]]]


def test_a_collection_with_many_properties_answers_on_every_one(engine: str) -> None:
    """More properties than the DuckDB engine gives typed columns (64 per collection): the
    others are read from the JSON body, with the same answers."""
    events = [{f"p{n:03d}": n * 10 + row for n in range(80)} for row in range(3)]
    with open_store(engine) as store:
        store.insert_events("p", "wide", events, now=NOW)
        params = {"event_collection": "wide", "timeframe": "today"}
        sums = {n: run_query(store, "p", "sum", {**params, "target_property": f"p{n:03d}"},
                             now=NOW)["result"] for n in (0, 63, 64, 79)}
        matched = run_query(store, "p", "count", {**params, "filters": [
            {"property_name": "p079", "operator": "gt", "property_value": 790}]},
            now=NOW)["result"]
        whole = run_query(store, "p", "extraction", params, now=NOW)["result"]
    assert sums == {n: 3 * n * 10 + 3 for n in (0, 63, 64, 79)}
    assert matched == 2
    assert [{k: v for k, v in event.items() if k != "keen"} for event in whole] == events
