"""group_by answers byte for byte: the items, their order and their JSON text.

The DuckDB engine answers group_by over properties kept in typed columns with groups already
ordered and rendered (``ordered_groups``, written into the answer as JSON text); the SQLite
engine, and DuckDB for other properties, go through the shared dict path. Both must give the
text ``json.dumps`` gives for the answer README's rules describe, computed here by a
brute-force reference that shares no code with the server.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401 (a fixture)
from _server_helpers import Api, api_fixture, each_engine, server_fixture  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.server import engine as engine_module
from keen.server._errors import QueryError
from keen.server._json import encode
from keen.server.engine import run_query
from keen.server.engines.base import EventStore as Storage

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)
THREE_DAYS = {"start": "2026-03-08T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# ------------------------------------------------------------------ the reference


def canon(value: Any) -> Any:
    """The value the answer shows: integral floats (int64 range) as ints, keys sorted."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [canon(item) for item in value]
    if isinstance(value, dict):
        return {key: canon(value[key]) for key in sorted(value)}
    return value


def order_key(value: Any) -> Any:
    """README: null < booleans < numbers < strings (by code point) < lists (element by element)
    < objects (by canonical text); 1 and 1.0 are one value, true is not 1."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, Fraction(value))
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, tuple(order_key(item) for item in value))
    return (5, json.dumps(canon(value), separators=(",", ":"), ensure_ascii=False))


def result_of(analysis: str, events: list[dict[str, Any]], target: str | None) -> Any:
    if analysis == "count":
        return len(events)
    numbers = [Fraction(e[target]) for e in events if isinstance(e.get(target), (int, float))
               and not isinstance(e.get(target), bool)]
    if analysis == "sum":
        total = sum(numbers, Fraction(0))
        return int(total) if total.denominator == 1 else float(total)
    assert analysis == "maximum"
    if not numbers:
        return None
    top = max(numbers)
    return int(top) if top.denominator == 1 else float(top)


def reference(
    events: list[dict[str, Any]], props: list[str], analysis: str = "count",
    target: str | None = None, descending: bool | None = None, limit: int | None = None,
    labels: dict[str, tuple[str, str | None]] | None = None, by: str = "result",
) -> list[dict[str, Any]]:
    """The group list of ``events``: one item per combination of JSON values (null and missing
    alike) with each label's result (``labels``: label -> (analysis, target); a simple
    analysis has the one label ``result``), ascending by value, then by the label ``by`` when
    ``descending`` is given, then cut."""
    labels = labels or {"result": (analysis, target)}
    groups: dict[Any, tuple[tuple[Any, ...], list[dict[str, Any]]]] = {}
    for event in events:
        shown = tuple(canon(event.get(p)) for p in props)
        key = tuple(order_key(v) for v in shown)
        groups.setdefault(key, (shown, []))[1].append(event)
    items = []
    for key in sorted(groups):
        shown, members = groups[key]
        item = dict(zip(props, shown))
        for label, (kind, field) in labels.items():
            item[label] = result_of(kind, members, field)
        items.append(item)
    if descending is not None:
        items.sort(key=lambda item: order_key(item[by]), reverse=descending)
    return items if limit is None else items[:limit]


def text(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------ helpers


@pytest.fixture(name="store")
def store_fixture(engine: str) -> Iterator[Storage]:
    with open_store(engine) as storage:
        yield storage


_names = itertools.count()


def load(storage: Storage, events: list[dict[str, Any]]) -> str:
    """``events`` in a collection of their own (its typed columns start afresh)."""
    collection = f"c{next(_names)}"
    results = storage.insert_events("p", collection, events, now=NOW)
    assert all(r["success"] for r in results), results
    return collection


def answer(storage: Storage, collection: str, analysis: str = "count", **params: Any) -> bytes:
    """The bytes the server sends for a query (``run_query`` as the HTTP layer calls it)."""
    params = {"event_collection": collection, "timeframe": THREE_DAYS, **params}
    return encode(run_query(storage, "p", analysis, params, now=NOW, rendered=True))


DAYS = ["2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"]


def check(storage: Storage, events: list[dict[str, Any]], props: list[str],
          analysis: str = "count", **params: Any) -> None:
    collection = load(storage, events)
    order = params.get("order_by")
    descending = None if order is None else order["direction"] == "DESC"

    def groups(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return reference(chosen, props, analysis, params.get("target_property"), descending,
                         params.get("limit"))

    expected: Any = groups(events)
    if params.get("interval") == "daily":  # THREE_DAYS in UTC days (events at 2026-03-0Xt...)
        expected = [{"timeframe": {"start": f"{day}T00:00:00.000Z",
                                   "end": f"{after}T00:00:00.000Z"},
                     "value": groups([e for e in events
                                      if e["keen"]["timestamp"].startswith(day)])}
                    for day, after in zip(DAYS, DAYS[1:])]
    got = answer(storage, collection, analysis, group_by=props, **params)
    assert got == text({"result": expected})
    # asked again: DuckDB, having seen that the scope has few groups, leaves them to the
    # shared path this time (ordered_groups answers None), which must write the same bytes
    assert answer(storage, collection, analysis, group_by=props, **params) == got
    # the plain answer (run_query without rendered) is the same value
    plain = run_query(storage, "p", analysis, {"event_collection": collection,
                                               "timeframe": THREE_DAYS, "group_by": props,
                                               **params}, now=NOW)
    assert plain == {"result": expected}


# ------------------------------------------------------------------ values

ESCAPED = ['"', "\\", "\n", "\x00", "a\x00", "\x1f", "\x7f", "é", "\U0001f600", "\u2028",
           "a\"b", "tab\there"]
STRINGS = st.sampled_from(["", "a", "a!", "a b", "ab", "1", "true", "%s", "%", "null",
                           *ESCAPED])
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.integers(-3, 3).map(float),  # the same numbers written as floats
    st.sampled_from([0.5, -1.5, -0.0, 1e15, 1e15 + 0.5, 1e20, -1e20, 1e-7, 123456.789]),
)
# only ever scalars: DuckDB keeps such properties in typed columns (its ordered_groups path)
SCALARS = st.one_of(st.booleans(), NUMBERS, STRINGS)
# with null, lists and objects the property is JSON in DuckDB too (the shared dict path)
VALUES = st.recursive(st.one_of(st.none(), SCALARS), lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), inner,
                                                 max_size=2)), max_leaves=4)
SUMMED = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0, True, "x"]))
STAMPS = st.sampled_from(["2026-03-08T01:00:00Z", "2026-03-09T23:59:59.999Z",
                          "2026-03-10T00:00:00Z"])


def events_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    event = st.fixed_dictionaries(
        {"keen": st.fixed_dictionaries({"timestamp": STAMPS})},
        optional={"v": values, "w%d{0}": values, "n": SUMMED})
    return st.lists(event, min_size=1, max_size=14)


ORDERS = st.one_of(st.none(), st.sampled_from(["ASC", "DESC"]))

# ------------------------------------------------------------------ properties


@SETTINGS
@given(events=events_of(SCALARS), two=st.booleans(),
       analysis=st.sampled_from(["count", "sum", "maximum"]), direction=ORDERS,
       limit=st.none() | st.integers(1, 4), daily=st.booleans())
def test_group_by_scalars_is_the_reference_byte_for_byte(
    store: Storage, events: list[dict[str, Any]], two: bool, analysis: str,
    direction: str | None, limit: int | None, daily: bool,
) -> None:
    params: dict[str, Any] = {} if analysis == "count" else {"target_property": "n"}
    if daily:
        params["interval"] = "daily"
    if direction is not None:
        params["order_by"] = {"property_name": "result", "direction": direction}
        if limit is not None:
            params["limit"] = limit
    check(store, events, ["v", "w%d{0}"] if two else ["v"], analysis, **params)


@SETTINGS
@given(events=events_of(VALUES), two=st.booleans())
def test_group_by_any_json_value_is_the_reference_byte_for_byte(
    store: Storage, events: list[dict[str, Any]], two: bool,
) -> None:
    check(store, events, ["v", "w%d{0}"] if two else ["v"])


def test_equal_values_spelled_differently_are_one_group(store: Storage) -> None:
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    events = [{"v": v, "keen": stamp} for v in (1, 1.0, 2, 2.0, 2.5, True, False, "1", 0, 0.0)]
    collection = load(store, events)
    assert answer(store, collection, group_by="v") == text({"result": [
        {"v": False, "result": 1}, {"v": True, "result": 1}, {"v": 0, "result": 2},
        {"v": 1, "result": 2}, {"v": 2, "result": 2}, {"v": 2.5, "result": 1},
        {"v": "1", "result": 1}]})
    objects = [{"o": {"a": 1, "b": 2}, "keen": stamp}, {"o": {"b": 2.0, "a": 1}, "keen": stamp},
               {"keen": stamp}, {"o": None, "keen": stamp}]
    collection = load(store, objects)
    assert answer(store, collection, group_by="o") == text({"result": [
        {"o": None, "result": 2}, {"o": {"a": 1, "b": 2}, "result": 2}]})


def test_strings_needing_escapes_are_written_as_json_writes_them(store: Storage) -> None:
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    strings = [*ESCAPED, "plain", "a!", "a"]
    events = [{"s": s, "keen": stamp} for s in strings] + [{"keen": stamp}]
    collection = load(store, events)
    got = answer(store, collection, group_by="s")
    expected = [{"s": None, "result": 1}] + [{"s": s, "result": 1} for s in sorted(strings)]
    assert got == text({"result": expected})
    assert b'"\\u0000"' in got and b'"\\\\"' in got and "\U0001f600".encode() in got


def test_many_groups_in_several_render_chunks(store: Storage,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "_RENDER_CHUNK", 7)
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    events = [{"u": f"user{i % 250}", "k": i % 3, "keen": stamp} for i in range(500)]
    check(store, events, ["u"])
    check(store, events, ["k", "u"])
    check(store, events, ["u"], order_by={"property_name": "result", "direction": "DESC"},
          limit=100)


def test_interval_and_two_properties(store: Storage) -> None:
    rows = [("b", 1, "2026-03-08T05:00:00Z"), ("a", 2.0, "2026-03-08T06:00:00Z"),
            ("a", 2, "2026-03-08T07:00:00Z"), ("b", 1, "2026-03-10T01:00:00Z")]
    events = [{"v": v, "w": w, "keen": {"timestamp": stamp}} for v, w, stamp in rows]
    collection = load(store, events)
    got = answer(store, collection, group_by=["v", "w"], interval="daily")
    day = [("2026-03-08T00:00:00.000Z", "2026-03-09T00:00:00.000Z"),
           ("2026-03-09T00:00:00.000Z", "2026-03-10T00:00:00.000Z"),
           ("2026-03-10T00:00:00.000Z", "2026-03-11T00:00:00.000Z")]
    values = [[{"v": "a", "w": 2, "result": 2}, {"v": "b", "w": 1, "result": 1}], [],
              [{"v": "b", "w": 1, "result": 1}]]
    assert got == text({"result": [
        {"timeframe": {"start": start, "end": end}, "value": value}
        for (start, end), value in zip(day, values)]})


def test_key_filters_and_metadata(store: Storage) -> None:
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    events = [{"u": f"u{i % 5}", "team": i % 2, "keen": stamp} for i in range(20)]
    collection = load(store, events)
    mine = [{"property_name": "team", "operator": "eq", "property_value": 1}]
    params = {"event_collection": collection, "timeframe": THREE_DAYS, "group_by": "u",
              "include_metadata": True}
    body = run_query(store, "p", "count", params, now=NOW, extra_filters=mine, rendered=True)
    decoded = json.loads(encode(body))
    assert decoded["result"] == reference([e for e in events if e["team"] == 1], ["u"])
    assert decoded["execution_metadata"]["events_scanned"] == 10  # only what the key reads


@pytest.mark.parametrize(("analysis", "extra"), [
    ("count", {}),
    ("sum", {"target_property": "n", "order_by": {"property_name": "result",
                                                 "direction": "DESC"}}),
])
def test_a_deadline_passing_while_groups_are_shaped_is_a_503(
    store: Storage, monkeypatch: pytest.MonkeyPatch, analysis: str, extra: dict[str, Any],
) -> None:
    """The database answers in time; the deadline passes while the 1,200 groups are turned
    into the answer, which stops there (503) instead of finishing late."""
    monkeypatch.setattr(engine_module, "_RENDER_CHUNK", 100)
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    collection = load(store, [{"u": f"u{i}", "n": i, "keen": stamp} for i in range(1200)])
    params = {"event_collection": collection, "timeframe": THREE_DAYS, "group_by": "u", **extra}
    store.query_time_limit = 30.0
    late = [0.0]
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + late[0])
    for primitive in ("aggregate", "ordered_groups", "joined_groups"):
        original = getattr(store, primitive)

        def answered(*args: Any, _original: Any = original) -> Any:
            found = _original(*args)
            if found is not None:  # the database answered (SQLite has no ordered_groups)
                late[0] = 60.0  # and the clock moves past the deadline
            return found

        monkeypatch.setattr(store, primitive, answered)
    with pytest.raises(QueryError) as caught:
        run_query(store, "p", analysis, params, now=NOW, rendered=True)
    assert (caught.value.status, caught.value.error_code) == (503, "QueryTimeoutError")
    assert late[0] == 60.0
    monkeypatch.undo()  # the real clock: the same query is answered
    assert len(run_query(store, "p", analysis, params, now=NOW)["result"]) == 1200


def test_duckdb_answers_groups_of_scalar_properties_in_order_itself() -> None:
    """The byte-for-byte tests above cover DuckDB's ordered_groups only if DuckDB takes it:
    it does for properties that only held strings, numbers and booleans, not for others."""
    pytest.importorskip("duckdb")
    from keen.server._engine_sql import Scope

    with open_store("duckdb") as storage:
        stamp = {"timestamp": "2026-03-09T00:00:00Z"}
        collection = load(storage, [{"s": "b", "j": [1], "keen": stamp},
                                    {"s": 1.5, "j": 2, "keen": stamp},
                                    {"s": True, "keen": stamp}])
        scope = Scope("p", collection, 0, 2**62, None, [], ["s"])
        assert storage.ordered_groups(scope, [("count", None, None)]) == [
            (0, "true", 1), (0, "1.5", 1), (0, '"b"', 1)]
        assert storage.ordered_groups(scope, [("count", None, None), ("sum", "s", None)]) == [
            (0, "true", 1, None), (0, "1.5", 1, 1.5), (0, '"b"', 1, None)]
        scope.group_by = ["j"]
        assert storage.ordered_groups(scope, [("count", None, None)]) is None


def test_duckdb_writes_counted_groups_whole_itself() -> None:
    """The byte-for-byte tests cover DuckDB's joined_groups (counts written whole in SQL)
    only if DuckDB takes it: it does for counts over typed properties, per bucket, and leaves
    other analyses to ordered_groups."""
    pytest.importorskip("duckdb")
    from keen.server._engine_sql import Scope

    count = [("count", None, None)]
    pieces = ['{"s":', ',"n":', ',"x{0}":', "}"]
    with open_store("duckdb") as storage:
        collection = load(storage, [
            {"s": "b", "n": 1, "keen": {"timestamp": "2026-03-09T00:00:00Z"}},
            {"s": 'a"', "n": 1.0, "keen": {"timestamp": "2026-03-09T00:00:00Z"}},
            {"s": "b", "n": 1, "keen": {"timestamp": "2026-03-09T01:00:00Z"}},
            {"s": True, "keen": {"timestamp": "2026-03-11T00:00:00Z"}}])
        scope = Scope("p", collection, 0, 2**62, None, [], ["s", "n"])
        assert storage.joined_groups(scope, count, pieces) == {0: ",".join([
            '{"s":true,"n":null,"x{0}":1}', '{"s":"a\\"","n":1,"x{0}":1}',
            '{"s":"b","n":1,"x{0}":2}'])}
        assert storage.joined_groups(scope, [*count, ("sum", "n", None)],
                                     [*pieces[:-1], ',"y":', "}"]) is None
        day = 86_400 * 10**6
        start = 1_773_014_400 * 10**6  # 2026-03-09T00:00:00Z
        scope.buckets = [(start + i * day, start + (i + 1) * day) for i in range(3)]
        assert storage.joined_groups(scope, count, pieces) == {
            0: '{"s":"a\\"","n":1,"x{0}":1},{"s":"b","n":1,"x{0}":2}',
            2: '{"s":true,"n":null,"x{0}":1}'}


@SETTINGS
@given(events=events_of(SCALARS), daily=st.booleans())
def test_several_counts_are_the_reference_byte_for_byte(
    store: Storage, events: list[dict[str, Any]], daily: bool,
) -> None:
    """A multi_analysis of counts only (labels needing escapes and braces): DuckDB writes its
    items whole (joined_groups), the same text as the shared path."""
    collection = load(store, events)
    labels = {'a"{0}': ("count", None), "é\\": ("count", None)}
    params: dict[str, Any] = {"analyses": {label: {"analysis_type": "count"}
                                           for label in labels},
                              "group_by": ["v", "w%d{0}"]}
    expected: Any = reference(events, ["v", "w%d{0}"], labels=labels)
    if daily:
        params["interval"] = "daily"
        expected = [{"timeframe": {"start": f"{day}T00:00:00.000Z",
                                   "end": f"{after}T00:00:00.000Z"},
                     "value": reference([e for e in events
                                         if e["keen"]["timestamp"].startswith(day)],
                                        ["v", "w%d{0}"], labels=labels)}
                    for day, after in zip(DAYS, DAYS[1:])]
    assert answer(store, collection, "multi_analysis", **params) == text({"result": expected})


def test_duckdb_leaves_a_scope_it_saw_few_groups_in_to_the_shared_path() -> None:
    """The first group_by of a scope is answered by DuckDB in order (it may have 100,000
    groups); once a scope is known to have few, one analysis of it takes the shared path
    (cheaper for so few), several analyses stay one statement, and a scope that grew past
    the bound is answered by DuckDB again: the byte-for-byte checks above see both paths."""
    pytest.importorskip("duckdb")
    from keen.server._engine_sql import Scope
    from keen.server.engines.duckdb import _FEW_GROUPS

    count, both = [("count", None, None)], [("count", None, None), ("sum", "n", None)]
    stamp = {"timestamp": "2026-03-09T00:00:00Z"}
    with open_store("duckdb") as storage:
        collection = load(storage, [{"s": s, "n": 1, "keen": stamp} for s in "ab"])
        scope = Scope("p", collection, 0, 2**62, None, [], ["s"])
        assert storage.ordered_groups(scope, count) == [(0, '"a"', 1), (0, '"b"', 1)]
        assert storage.ordered_groups(scope, count) is None
        assert storage.ordered_groups(scope, both) == [(0, '"a"', 1, 1), (0, '"b"', 1, 1)]
        storage.insert_events("p", collection, [{"s": f"x{i}", "keen": stamp}
                                                for i in range(_FEW_GROUPS)], now=NOW)
        assert storage.aggregate(scope, "count", None, None)  # (the shared path: learns)
        assert len(storage.ordered_groups(scope, count) or []) == _FEW_GROUPS + 2


@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8))
@settings(max_examples=60, deadline=None)
def test_answers_with_rendered_parts_are_the_text_of_their_values(value: Any) -> None:
    """``encode`` writes a JsonText as its text wherever it sits, and everything else as
    json.dumps does, strings that look like its markers (NUL, a colon, digits) included."""
    from keen.server._json import JsonText

    lookalike = "\x00" + "0" * 32 + ":0\x00"
    plain_body = {"result": [value, {"value": value}], "x": lookalike}
    part = text(value).decode()
    rendered = {"result": [JsonText(part), {"value": JsonText(part)}], "x": lookalike}
    assert encode(plain_body) == text(plain_body)
    assert encode(rendered) == text(plain_body)
    assert encode(JsonText(part)) == text(value)


@each_engine
def test_http_answers_are_the_reference_byte_for_byte(api: Api) -> None:
    """Over HTTP: an ad-hoc query's body is the reference's text, and a saved query and a
    scoped read give the reference's groups."""
    events = [{"s": s, "team": i % 2} for i, s in enumerate([*ESCAPED, "a!", "a", "a"])]
    api.write("c", *events, {"team": 1})
    events.append({"team": 1})
    query = {"event_collection": "c", "timeframe": "this_10_years", "group_by": "s"}
    response = api.post("/queries/count", api.server.read_key, body=query)
    assert response.status_code == 200
    assert response.content == text({"result": reference(events, ["s"])})
    saved = api.put("/queries/saved/g", api.server.master_key,
                    body={"query": {"analysis_type": "count", **query}, "refresh_rate": 0})
    assert saved.status_code == 201, saved.text
    result = api.get("/queries/saved/g/result", api.server.read_key)
    assert result.json()["result"] == reference(events, ["s"])
    key = api.create_key(name="team1", permitted=["queries"], options={"queries": {"filters": [
        {"property_name": "team", "operator": "eq", "property_value": 1}]}})
    scoped = api.post("/queries/count", key, body=query)
    assert scoped.content == text({"result": reference(
        [e for e in events if e["team"] == 1], ["s"])})


MULTI = {"sold": ("count", None), "revenue": ("sum", "n"), "top": ("maximum", "n")}


@SETTINGS
@given(events=events_of(SCALARS), by=st.sampled_from(list(MULTI)), direction=ORDERS,
       limit=st.none() | st.integers(1, 4))
def test_multi_analysis_group_by_is_the_reference_byte_for_byte(
    store: Storage, events: list[dict[str, Any]], by: str, direction: str | None,
    limit: int | None,
) -> None:
    collection = load(store, events)
    params: dict[str, Any] = {"analyses": {
        label: {"analysis_type": kind, **({"target_property": target} if target else {})}
        for label, (kind, target) in MULTI.items()}, "group_by": ["v"]}
    descending = None
    if direction is not None:
        params["order_by"] = {"property_name": by, "direction": direction}
        params["limit"] = limit
        descending = direction == "DESC"
    else:
        limit = None  # limit needs order_by
    expected = reference(events, ["v"], descending=descending, limit=limit, labels=MULTI, by=by)
    assert answer(store, collection, "multi_analysis", **params) == text({"result": expected})
