"""Filters of the local server (keen-api.md 7.6): every operator, nested and list properties,
null and missing properties; the SQL the engine runs agrees with the Python reference."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401 (a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.server.engine import QueryError, run_query
from keen.server.engines.base import EventStore as Storage
from keen.server.filters import event_matches, normalize_filters

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
TF = "this_7_days"

# name -> event; every event is stored in collection "things"
EVENTS: dict[str, dict[str, Any]] = {
    "str": {"name": "str", "v": "apple pie", "user": {"age": 30, "tags": ["a", "b"]}},
    "num": {"name": "num", "v": 1, "user": {"age": 17}},
    "float": {"name": "float", "v": 1.0},
    "true": {"name": "true", "v": True, "user": {"age": None}},
    "null": {"name": "null", "v": None},
    "missing": {"name": "missing"},
    "list": {"name": "list", "v": ["x", 2, "apple tart"]},
    "numstr": {"name": "numstr", "v": "1"},
    "geo": {"name": "geo", "keen": {"location": {"coordinates": [-122.42, 37.77]}}},
}


@pytest.fixture(scope="module")
def storage(engine: str) -> Iterator[Storage]:
    with open_store(engine) as store:
        results = store.insert_events("p", "things", list(EVENTS.values()), now=NOW)
        assert all(r["success"] for r in results)
        yield store


def _sql_names(storage: Storage, filters: Any) -> set[str]:
    body = run_query(storage, "p", "extraction",
                     {"event_collection": "things", "timeframe": TF, "filters": filters}, now=NOW)
    return {event["name"] for event in body["result"]}


def _py_names(storage: Storage, filters: list[dict[str, Any]]) -> set[str]:
    stored = run_query(storage, "p", "extraction",
                       {"event_collection": "things", "timeframe": TF}, now=NOW)["result"]
    checked = normalize_filters(filters)
    return {event["name"] for event in stored if event_matches(event, checked)}


def f(prop: str, op: str, value: Any) -> dict[str, Any]:
    return {"property_name": prop, "operator": op, "property_value": value}


ALL = set(EVENTS)

CASES = [
    # eq: JSON equality, true is not 1, "1" is not 1, 1 equals 1.0, any list element
    (f("v", "eq", 1), {"num", "float"}),
    (f("v", "eq", True), {"true"}),
    (f("v", "eq", "1"), {"numstr"}),
    (f("v", "eq", "x"), {"list"}),
    (f("v", "eq", 2), {"list", }),
    (f("v", "eq", ["x", 2, "apple tart"]), {"list"}),
    # eq null matches explicit null and missing
    (f("v", "eq", None), {"null", "missing", "geo"}),
    (f("v", "ne", None), ALL - {"null", "missing", "geo"}),
    # ne is "not eq": missing matches ne 1
    (f("v", "ne", 1), ALL - {"num", "float"}),
    (f("v", "ne", "x"), ALL - {"list"}),
    # in: any of the values
    (f("v", "in", [1, "apple pie"]), {"num", "float", "str"}),
    (f("v", "in", [None, True]), {"null", "missing", "geo", "true"}),
    (f("v", "in", [2, "zzz"]), {"list"}),
    # ordering: numbers with numbers, strings with strings; missing/null/bool never match
    (f("v", "gt", 0), {"num", "float", "list"}),
    (f("v", "lte", 1), {"num", "float"}),
    (f("v", "lt", 2), {"num", "float"}),
    (f("v", "gte", "apple"), {"str", "list"}),  # "x" and "apple tart" >= "apple"
    (f("v", "lt", "b"), {"str", "numstr", "list"}),
    # nested properties by dotted path
    (f("user.age", "gte", 18), {"str"}),
    (f("user.age", "eq", None), ALL - {"str", "num"}),
    (f("user.tags", "eq", "b"), {"str"}),
    (f("user.tags", "contains", "a"), {"str"}),
    # exists: presence, even null
    (f("v", "exists", True), {"str", "num", "float", "true", "null", "list", "numstr"}),
    (f("v", "exists", False), {"missing", "geo"}),
    (f("user.age", "exists", True), {"str", "num", "true"}),
    # contains / not_contains: substrings; list elements
    (f("v", "contains", "apple"), {"str", "list"}),
    (f("v", "contains", 2), {"list"}),
    (f("v", "not_contains", "apple"), ALL - {"str", "list"}),
    # regex: Python syntax, unanchored search; list elements too
    (f("v", "regex", "^apple (pie|tart)$"), {"str", "list"}),
    (f("v", "regex", "^\\d$"), {"numstr"}),
    # within: great-circle distance from San Francisco
    (f("keen.location.coordinates", "within",
       {"coordinates": [-122.0, 37.5], "max_distance_miles": 40}), {"geo"}),
    (f("keen.location.coordinates", "within",
       {"coordinates": [2.35, 48.85], "max_distance_miles": 40}), set()),
    # or
    ({"operator": "or", "operands": [f("v", "eq", True), f("name", "eq", "missing")]},
     {"true", "missing"}),
    # timestamps compare as instants whatever the offset
    (f("keen.timestamp", "lt", "2024-03-10T13:00:00+01:00"), set()),
    (f("keen.timestamp", "gte", "2024-03-10T13:00:00+01:00"), ALL),
    (f("keen.created_at", "eq", "2024-03-10T12:00:00Z"), ALL),
]


@pytest.mark.parametrize(("flt", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_each_operator_matches_the_documented_events(
    storage: Storage, flt: dict[str, Any], expected: set[str]
) -> None:
    assert _sql_names(storage, [flt]) == expected
    assert _py_names(storage, [flt]) == expected


def test_filters_are_anded(storage: Storage) -> None:
    filters = [f("v", "exists", True), f("v", "ne", 1), f("name", "ne", "null")]
    assert _sql_names(storage, filters) == {"str", "true", "list", "numstr"}
    assert _sql_names(storage, json.dumps(filters)) == {"str", "true", "list", "numstr"}


def test_property_names_with_quotes_fall_back_to_python(storage: Storage) -> None:
    storage.insert_events("p", "odd", [{'say "hi"': 1}, {'say "hi"': 2}], now=NOW)
    body = run_query(storage, "p", "count", {
        "event_collection": "odd", "timeframe": TF, "filters": [f('say "hi"', "gt", 1)],
        "group_by": 'say "hi"',
    }, now=NOW)
    assert body == {"result": [{'say "hi"': 2, "result": 1}]}


@pytest.mark.parametrize("name", [
    "back\\slash", "tab\there", "line\nbreak", "\x01", "nul\x00", 'say "hi"', "it's", "a$b",
    "br[0]", "x'); DROP TABLE events; --", "\u00e9t\u00e9", "[$]", "]",
])
def test_any_property_name_is_addressed_exactly(engine: str, name: str) -> None:
    """Names JSON escapes (backslash, control characters, quotes) and names with SQL or
    JSON-path syntax in them filter, aggregate, group and delete like any other name."""
    with open_store(engine) as store:
        store.insert_events("p", "odd", [{name: 1}, {name: 2}, {"other": 3}], now=NOW)
        params = {"event_collection": "odd", "timeframe": TF}
        count = run_query(store, "p", "count",
                          {**params, "filters": [f(name, "gt", 1)], "group_by": name}, now=NOW)
        assert count == {"result": [{name: 2, "result": 1}]}
        total = run_query(store, "p", "sum", {**params, "target_property": name}, now=NOW)
        assert total == {"result": 3}
        assert store.delete_property("p", "odd", name) == 2
        assert run_query(store, "p", "count", {
            **params, "filters": [f(name, "exists", True)]}, now=NOW) == {"result": 0}
        assert store.count_events("p", "odd") == 3


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"property_name": "v"}, "InvalidFilterError"),
        ([{"property_name": "v", "operator": "eq"}], "InvalidFilterError"),
        ([f("v", "like", 1)], "InvalidFilterError"),
        ([f("v", "exists", "yes")], "InvalidFilterError"),
        ([f("v", "in", 1)], "InvalidFilterError"),
        ([f("v", "gt", None)], "InvalidFilterError"),
        ([f("v", "regex", "(")], "InvalidFilterError"),
        ([f("v", "within", {"coordinates": [0, 0], "max_distance_miles": 1})],
         "InvalidPropertyNameForGeoFilter"),
        ([{"operator": "or", "operands": "nope"}], "InvalidFilterError"),
        ("[{", "InvalidFilterError"),
        ([f("v", "in", [1, 2**64])], "InvalidFilterError"),
    ],
)
def test_bad_filters_are_400(storage: Storage, filters: Any, code: str) -> None:
    with pytest.raises(QueryError) as info:
        run_query(storage, "p", "count",
                  {"event_collection": "things", "timeframe": TF, "filters": filters}, now=NOW)
    assert (info.value.status, info.value.error_code) == (400, code)


# --- the SQL compilation agrees with the Python reference on generated data ----------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from(["", "a", "ab", "b", "1", "ba"]),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))
_events = st.lists(
    st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(_values, st.fixed_dictionaries(
        {"c": _values})), max_size=2),
    min_size=1, max_size=6,
)
_ops = st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "contains", "not_contains", "in",
                        "exists", "regex"])


@st.composite
def _filters(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(_ops)
    prop = draw(st.sampled_from(["a", "b", "a.c", "b.c"]))
    if op == "exists":
        value: Any = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(_scalars, max_size=3))
    elif op in ("lt", "lte", "gt", "gte"):
        value = draw(st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "1"])))
    elif op == "regex":
        value = draw(st.sampled_from(["^a", "b$", "\\d"]))
    else:
        value = draw(_values)
    return f(prop, op, value)


_EXAMPLES = itertools.count()


def _scalars_only(value: Any) -> Any:
    """``value`` without nulls and lists (objects kept): what the DuckDB engine keeps in typed
    columns."""
    if isinstance(value, dict):
        return {k: _scalars_only(v) for k, v in value.items()
                if v is not None and not isinstance(v, list)}
    return value


@settings(max_examples=150, deadline=None)
@given(events=_events, flt=_filters(), scalars_only=st.booleans())
def test_sql_and_python_evaluators_agree(
    storage: Storage, events: list[dict[str, Any]], flt: dict[str, Any], scalars_only: bool
) -> None:
    if scalars_only:
        events = [_scalars_only(event) for event in events]
    collection = f"gen{next(_EXAMPLES)}"  # one store, a new collection per example
    tagged = [{**event, "i": index} for index, event in enumerate(events)]
    storage.insert_events("p", collection, tagged, now=NOW)
    body = run_query(storage, "p", "extraction",
                     {"event_collection": collection, "timeframe": TF, "filters": [flt]}, now=NOW)
    got = sorted(event["i"] for event in body["result"])
    checked = normalize_filters([flt])
    assert got == [e["i"] for e in tagged if event_matches(e, checked)]


def test_sqlite_without_the_arrow_operator_gives_the_same_answers(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keen.server import filters as filters_module

    def run() -> list[Any]:
        return [
            run_query(storage, "p", analysis, {"event_collection": "things", "timeframe": TF,
                                               "target_property": "v", "group_by": "v"},
                      now=NOW)["result"]
            for analysis in ("count", "select_unique", "count_unique")
        ]

    expected = run()
    assert any(row["v"] == ["x", 2, "apple tart"] for row in expected[0])
    monkeypatch.setattr(filters_module, "_HAS_ARROW", False)
    assert run() == expected
