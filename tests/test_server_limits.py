"""The documented limits of the local server (README "Limits of the local server"): bad or
oversized input gets a 4xx with an error_code naming the problem, never a 500, and the valid
events of a batch are kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _engines import ENGINE_PARAMS, engine_fixture, open_store  # noqa: F401
from _server_helpers import NOW, Api, api_fixture, each_engine, error_of, server_fixture  # noqa: F401

from keen.server import LocalKeenServer, limits
from keen.server._errors import QueryError
from keen.server._regex_guard import regex_problem
from keen.server.limits import (
    MAX_FILTERS,
    MAX_FUNNEL_STEPS,
    MAX_GROUP_BY,
    MAX_IN_VALUES,
    MAX_NESTING,
    MAX_OR_NESTING,
)

LONE = "\ud800"
QUERY = {"event_collection": "c", "timeframe": "this_10_years"}
# A slow query: 40 of these events, each of whose regex searches (one the guard accepts) takes
# about 0.25 s, would take 10 s; a limit of 0.5 s stops it.
SLOW_EVENTS = [{"s": "a" * 9998 + "!"}] * 40
SLOW_REGEX = {"property_name": "s", "operator": "regex", "property_value": "a+$"}
QUICK_REGEX = {"property_name": "s", "operator": "regex", "property_value": "^a"}


def nested_object(levels: int) -> dict[str, Any]:
    """An event whose objects nest ``levels`` deep (the event itself is level 1)."""
    event: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        event = {"a": event}
    return event


def nested_list(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def eq(name: str, value: Any) -> dict[str, Any]:
    return {"property_name": name, "operator": "eq", "property_value": value}


def query(api: Api, analysis: str, **params: Any) -> Any:
    return api.post(f"/queries/{analysis}", api.server.read_key, body={**QUERY, **params})


# --------------------------------------------------------------------------- events

@each_engine
def test_a_lone_surrogate_refuses_only_its_own_event_of_a_batch(api: Api) -> None:
    raw = json.dumps({"c": [{"n": 1}, {"s": LONE}, {LONE: 1}, {"n": 2}]})  # \ud800 escapes
    response = api.post("/events", api.server.write_key, data=raw)
    assert response.status_code == 200, response.text
    items = response.json()["c"]
    assert [item["success"] for item in items] == [True, False, False, True]
    assert items[1]["error"]["name"] == "InvalidPropertyValueError"
    assert "surrogate" in items[1]["error"]["description"]
    assert items[2]["error"]["name"] == "InvalidPropertyNameError"
    assert api.count("c") == 2


@each_engine
def test_a_lone_surrogate_in_a_single_event_is_a_400(api: Api) -> None:
    response = api.post("/events/c", api.server.write_key, data=json.dumps({"s": [LONE]}))
    assert error_of(response) == (400, "InvalidPropertyValueError")


@each_engine
def test_nesting_up_to_the_limit_is_stored_and_one_more_level_is_refused(api: Api) -> None:
    deepest = nested_object(MAX_NESTING)
    too_deep = nested_object(MAX_NESTING + 1)
    deep_list = {"l": nested_list(MAX_NESTING - 1)}  # the event, then MAX_NESTING - 1 lists
    response = api.post("/events", api.server.write_key,
                        body={"c": [deepest, too_deep, deep_list, {"l": nested_list(MAX_NESTING)}]})
    items = response.json()["c"]
    assert [item["success"] for item in items] == [True, False, True, False], items
    assert items[1]["error"]["name"] == "InvalidPropertyValueError"
    assert f"more than {MAX_NESTING} levels" in items[1]["error"]["description"]
    response = api.post("/events/c", api.server.write_key,
                        data=json.dumps(nested_object(500)))
    assert error_of(response) == (400, "InvalidPropertyValueError")


@each_engine
def test_the_deepest_storable_list_works_in_every_analysis(api: Api) -> None:
    api.write("c", {"l": nested_list(MAX_NESTING - 1), "u": "x"})
    for analysis in ("count", "count_unique", "select_unique"):
        params: dict[str, Any] = {"group_by": "l"}
        if analysis != "count":
            params["target_property"] = "l"
        response = query(api, analysis, **params)
        assert response.status_code == 200, (analysis, response.text)
    response = api.post("/queries/funnel", api.server.read_key, body={
        "timeframe": "this_10_years",
        "steps": [{"event_collection": "c", "actor_property": "l", "with_actors": True}]})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [1]


# --------------------------------------------------------------------------- queries

def or_nested(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    flt = leaf
    for _ in range(levels):
        flt = {"operator": "or", "operands": [flt]}
    return flt


BAD_QUERIES: list[tuple[str, dict[str, Any], str]] = [
    ("surrogate collection", {"event_collection": LONE}, "InvalidParameterError"),
    ("surrogate filter value", {"filters": [eq("a", LONE)]}, "InvalidParameterError"),
    ("surrogate filter name", {"filters": [eq(LONE, 1)]}, "InvalidParameterError"),
    ("surrogate group_by", {"group_by": [LONE]}, "InvalidParameterError"),
    ("surrogate timezone", {"timezone": LONE}, "InvalidParameterError"),
    ("1,000 filters", {"filters": [eq("a", 1)] * 1000}, "InvalidFilterError"),
    ("or nested 70 deep", {"filters": [or_nested(70, eq("a", 1))]}, "InvalidParameterError"),
    ("or nested past the limit", {"filters": [or_nested(MAX_OR_NESTING + 1, eq("a", 1))]},
     "InvalidFilterError"),
    ("125,000 in values", {"filters": [{"property_name": "a", "operator": "in",
                                        "property_value": list(range(125_000))}]},
     "InvalidFilterError"),
    ("2,000 group_by", {"group_by": [f"p{i}" for i in range(2000)]}, "InvalidParameterError"),
    ("400-digit timezone", {"timezone": "1" * 400}, "InvalidTimezoneError"),
    ("5,000-digit this_N_days", {"timeframe": f"this_{'1' * 5000}_days"},
     "TimeframeDefinitionError"),
    ("5,000-digit every_N_minutes", {"interval": f"every_{'1' * 5000}_minutes"},
     "InvalidIntervalError"),
    ("huge regex repeat", {"filters": [{"property_name": "a", "operator": "regex",
                                        "property_value": "a{99999999999}"}]},
     "InvalidFilterError"),
    ("deep filter value", {"filters": [eq("a", nested_list(MAX_NESTING + 5))]},
     "InvalidParameterError"),
]


@each_engine
@pytest.mark.parametrize(("params", "code"), [(p, c) for _, p, c in BAD_QUERIES],
                         ids=[name for name, _, _ in BAD_QUERIES])
def test_oversized_or_unstorable_query_input_is_a_400(
    api: Api, params: dict[str, Any], code: str,
) -> None:
    api.write("c", {"a": 1})
    response = query(api, "count", **params)
    assert error_of(response) == (400, code)


def test_surrogate_target_property_is_a_400(api: Api) -> None:
    response = query(api, "sum", target_property=LONE)
    assert error_of(response) == (400, "InvalidParameterError")


def test_surrogate_in_a_get_query_string_is_a_400(api: Api) -> None:
    response = api.get("/queries/count", api.server.read_key, params={
        **QUERY, "filters": json.dumps([eq("a", LONE)])})
    assert error_of(response) == (400, "InvalidParameterError")


@each_engine
def test_the_largest_allowed_query_runs(api: Api) -> None:
    """Every limit at once stays inside what SQLite can compile."""
    api.write("c", {"a": 1, **{f"p{i}": i for i in range(MAX_GROUP_BY)}})
    leaf = {"operator": "or", "operands": [
        {"property_name": "a", "operator": "in",
         "property_value": [str(v) for v in range(MAX_IN_VALUES)]},
        {"property_name": "a", "operator": "regex", "property_value": "^x"},
        {"property_name": "a", "operator": "contains", "property_value": "q"},
        eq("a", 1)]}
    deep = or_nested(MAX_OR_NESTING - 1, leaf)
    used = MAX_OR_NESTING - 1 + 5
    filters = [deep] + [{"property_name": "a", "operator": "ne", "property_value": n}
                        for n in range(2, 2 + MAX_FILTERS - used)]
    response = query(api, "count", filters=filters,
                     group_by=[f"p{i}" for i in range(MAX_GROUP_BY)])
    assert response.status_code == 200, response.text
    assert response.json()["result"][0]["result"] == 1
    one_more = query(api, "count", filters=[*filters, eq("a", 1)])
    assert error_of(one_more) == (400, "InvalidFilterError")


@each_engine
def test_property_names_and_order_by_are_bounded(api: Api) -> None:
    api.write("c", {"n": 1})
    response = query(api, "extraction", property_names=[f"p{i}" for i in range(1001)])
    assert error_of(response) == (400, "InvalidParameterError")
    assert query(api, "extraction", property_names=["n"] * 1000).status_code == 200
    response = query(api, "count", group_by="n", order_by=["result"] * 100_000)
    assert error_of(response) == (400, "InvalidParameterError")


def test_funnel_steps_are_bounded(api: Api) -> None:
    step = {"event_collection": "c", "actor_property": "a"}
    response = api.post("/queries/funnel", api.server.read_key, body={
        "timeframe": "this_10_years", "steps": [step] * (MAX_FUNNEL_STEPS + 1)})
    assert error_of(response) == (400, "InvalidParameterError")
    assert str(MAX_FUNNEL_STEPS) in response.json()["message"]


@each_engine
def test_delete_with_too_many_filters_is_a_400(api: Api) -> None:
    with pytest.raises(QueryError) as caught:
        api.server.storage.delete_events(api.server.project_id, "c", now=NOW,
                                         filters=[eq("a", 1)] * 1000)
    assert (caught.value.status, caught.value.error_code) == (400, "InvalidFilterError")
    response = api.delete("/events/c", api.server.master_key,
                          params={"filters": json.dumps([eq(LONE, 1)])})
    assert error_of(response) == (400, "InvalidFilterError")


@each_engine
def test_a_saved_query_holding_a_lone_surrogate_is_a_400(api: Api) -> None:
    response = api.put("/queries/saved/s", api.server.master_key, data=json.dumps(
        {"query": {"analysis_type": "count", **QUERY}, "metadata": {"x": LONE}}))
    assert response.status_code == 400, response.text
    assert error_of(response)[1]


# --------------------------------------------------------------------------- units

def test_check_json_walks_any_depth_without_recursion() -> None:
    with pytest.raises(QueryError) as caught:
        limits.check_json(nested_list(200_000), "v")
    assert caught.value.status == 400
    limits.check_json(nested_list(MAX_NESTING - 1), "v")


@pytest.mark.parametrize("pattern", [
    r"\d+-\d+", r"^user_\d+@\w+\.com$", "colou?r", r"https?://", r"-?\d+", r"(ab)+",
    r"\bfoo\b", r"^(?:\d{3}-)+$", "(a|b)+", "foo|bar", "^[^@]+@[^@]+$", r"(?i)hello.*world",
    r"\s*,\s*", "e$", "",
])
def test_everyday_regexes_are_accepted(pattern: str) -> None:
    assert regex_problem(pattern) is None


@pytest.mark.parametrize("pattern", [
    "^(a+)+$", "(a*)*", ".*.*x", "a*a*", r"\w+\d+", "(a|ab)*c", "(a?){5}", r"(a)\1",
    "(?P<x>a)(?P=x)", "a{99999999999}", "a{1001}", "a" * 1001, "(x+x+)+y", r"(\w+\s?)+$",
    "a*b?a*", "(", r"\d+.\d+", "(?i:a+)A+", "(?i)[a-z]+[A-Z]+",
])
def test_runaway_or_invalid_regexes_are_refused(pattern: str) -> None:
    assert regex_problem(pattern) is not None


# --------------------------------------------------------------------------- batches

def realistic_event(i: int) -> dict[str, Any]:
    return {"user": {"id": f"u-{i % 5000}", "plan": ["free", "pro"][i % 2], "age": 20 + i % 50},
            "page": f"/docs/{i % 300}", "referrer": "https://example.com/", "n": i,
            "tags": ["a", "b"], "ok": i % 3 == 0, "price": i * 0.25, "country": "FR",
            "session": f"s-{i:08d}", "screen": {"w": 1280, "h": 800}}


def handle_batch(server: Any, body: bytes) -> tuple[Any, int]:
    """Answer one batch in-process; ``(response, peak Python bytes allocated meanwhile)``."""
    import tracemalloc

    from keen.server.app import KeenApp
    from keen.server.resources._base import Request

    app = KeenApp(server.storage, server.projects, lambda: NOW, server.faults)
    def request(data: bytes) -> Request:
        return Request("POST", f"/3.0/projects/{server.project_id}/events",
                       headers={"authorization": server.write_key}, body=data)

    assert app.handle(request(b'{"warm_up": [{}]}')).status == 200  # lazy imports, caches
    tracemalloc.start()
    try:
        response = app.handle(request(body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return response, peak


REALISTIC = [realistic_event(i) for i in range(3000)]


@pytest.mark.parametrize(("events", "bound", "server"), [
    # Realistic events: allocations stay within a few times the body, whatever the engine.
    *[pytest.param(REALISTIC, 4, engine.values[0], marks=engine.marks,
                   id=f"realistic-{engine.values[0]}") for engine in ENGINE_PARAMS],
    # Empty events: the answer alone ({"success":true} each) is 5.7 times the body
    # (it was 223 times before events were parsed and stored one at a time); shared code.
    pytest.param([{}] * 30_000, 25, "sqlite", id="empty-sqlite"),
], indirect=["server"])
def test_memory_of_a_batch_is_a_small_multiple_of_its_size(
    server: Any, events: list[dict[str, Any]], bound: int,
) -> None:
    body = json.dumps({"c": events}).encode()
    response, peak = handle_batch(server, body)
    assert response.status == 200
    assert server.storage.count_events(server.project_id, "c") == len(events)
    assert peak < bound * len(body) + 1_000_000, (peak, len(body))  # + fixed costs


@each_engine
@pytest.mark.parametrize(("raw", "detail"), [
    (b'{"a": [{"n": 1}], "b": [{"n": 2}', "JSON"),
    (b'{"a": [{"n": 1}], "a": [{"n": 2}]}', "twice"),
    (b'{"a": [{"n": 1}]} []', "extra data"),
    (b'{"a": {"n": 1}}', "list"),
    (b'[{"n": 1}]', "object"),
    (b'{"a": [{"n": 1}' + b'[' * 100_000 + b"]" * 100_000 + b"]}", "JSON"),
])
def test_a_malformed_batch_is_refused_whole(api: Api, raw: bytes, detail: str) -> None:
    response = api.post("/events", api.server.write_key, data=raw)
    assert error_of(response) == (400, "InvalidBatchError")
    assert detail in response.json()["message"]
    assert api.server.storage.count_events(api.server.project_id) == 0


# --------------------------------------------------------------------------- time limit

TIMED_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("count", {"filters": [{"property_name": "n", "operator": "gte", "property_value": 0}]}),
    ("count", {"group_by": "n", "interval": "daily"}),
    ("select_unique", {"target_property": "n"}),
    ("median", {"target_property": "n"}),
    ("extraction", {}),
    ("funnel", {"steps": [{"event_collection": "c", "actor_property": "n"}] * 2}),
    ("count", {"include_metadata": True}),
]


@each_engine
@pytest.mark.parametrize(("analysis", "params"), TIMED_QUERIES,
                         ids=[f"{a}-{'-'.join(p)}" for a, p in TIMED_QUERIES])
def test_a_query_past_the_time_limit_is_a_503_and_the_server_goes_on(
    api: Api, analysis: str, params: dict[str, Any],
) -> None:
    api.write("c", *[{"n": i} for i in range(3000)])
    storage = api.server.storage
    assert storage.query_time_limit == limits.QUERY_TIME_LIMIT
    storage.query_time_limit = 1e-9  # already past when SQLite first checks
    try:
        response = query(api, analysis, **params)
        assert error_of(response) == (503, "QueryTimeoutError")
    finally:
        storage.query_time_limit = limits.QUERY_TIME_LIMIT
    assert query(api, analysis, **params).status_code == 200
    assert api.count("c") == 3000


@each_engine
def test_a_catastrophic_regex_is_refused_before_it_runs(api: Api) -> None:
    api.write("c", {"s": "a" * 40 + "!"})
    response = query(api, "count", filters=[
        {"property_name": "s", "operator": "regex", "property_value": "^(a+)+$"}])
    assert error_of(response) == (400, "InvalidFilterError")
    assert "run away" in response.json()["message"]
    response = query(api, "count", filters=[
        {"property_name": "s", "operator": "regex", "property_value": "^a+!$"}])
    assert response.json()["result"] == 1


@pytest.mark.parametrize(("message", "expected"), [
    ("too many SQL variables", (400, "QueryTooComplexError")),
    ("Expression tree is too large (maximum depth 1000)", (400, "QueryTooComplexError")),
    ("parser stack overflow", (400, "QueryTooComplexError")),
    ("too many columns in result set", (400, "QueryTooComplexError")),
    ("interrupted", (503, "QueryTimeoutError")),
    ("no such table: events", None),
])
def test_sqlite_limit_errors_left_over_become_4xx(message: str, expected: Any) -> None:
    import sqlite3

    answer = limits.sqlite_limit_error(sqlite3.OperationalError(message))
    got = None if answer is None else (answer.status, answer.error_code)
    assert got == expected


DEEP_TEXT = "[" * 3000 + "]" * 3000  # deeper than Python's JSON parser recurses


@pytest.mark.parametrize("name", ["filters", "timeframe", "group_by", "order_by",
                                  "property_names", "steps", "analyses", "timezone"])
def test_json_in_a_query_string_nested_past_the_parser_is_a_400(api: Api, name: str) -> None:
    params = {"event_collection": "c", "timeframe": "this_10_years", name: DEEP_TEXT}
    for analysis in ("count", "extraction", "funnel", "multi_analysis"):
        response = api.get(f"/queries/{analysis}", api.server.read_key, params=params)
        assert response.status_code == 400, (analysis, response.text)
        assert error_of(response)[1]


@each_engine
def test_deep_json_in_a_beacon_a_delete_or_a_dataset_index_is_a_400(api: Api) -> None:
    import base64

    data = base64.b64encode(('{"a": ' + DEEP_TEXT + "}").encode()).decode()
    response = api.get("/events/c", params={"api_key": api.server.write_key, "data": data})
    assert error_of(response) == (400, "InvalidEventError")
    response = api.delete("/events/c", api.server.master_key, params={"filters": DEEP_TEXT})
    assert error_of(response) == (400, "InvalidFilterError")
    api.write("c", {"u": "x"})
    response = api.put("/datasets/d", api.server.master_key, body={
        "display_name": "d", "index_by": "u",
        "query": {"analysis_type": "count", "event_collection": "c",
                  "timeframe": "this_10_years", "interval": "daily"}})
    assert response.status_code in (200, 201), response.text
    response = api.get("/datasets/d/results", api.server.read_key,
                       params={"index_by": DEEP_TEXT, "timeframe": "this_10_years"})
    assert response.status_code < 500, response.text


def test_run_query_stops_at_the_storage_time_limit(engine: str) -> None:
    from keen.server.engine import run_query

    with open_store(engine) as storage:
        storage.insert_events("p", "c", [{"n": i} for i in range(3000)], now=NOW)
        params = {"event_collection": "c", "timeframe": "this_10_years",
                  "filters": [{"property_name": "n", "operator": "gte", "property_value": 0}]}
        assert run_query(storage, "p", "count", params, now=NOW)["result"] == 3000
        storage.query_time_limit = 1e-9
        with pytest.raises(QueryError) as caught:
            run_query(storage, "p", "count", params, now=NOW)
        assert (caught.value.status, caught.value.error_code) == (503, "QueryTimeoutError")
        storage.query_time_limit = None  # no limit at all
        assert run_query(storage, "p", "count", params, now=NOW)["result"] == 3000


def test_a_slow_statement_is_stopped_while_it_runs(engine: str) -> None:
    """The limit stops a statement in its middle, not only between statements: 40 events whose
    regex (one the guard accepts) takes about 0.25 s each would take 10 s; with a limit of
    0.5 s the answer is a 503, and the store answers the next query."""
    from keen.server.engine import run_query

    with open_store(engine) as storage:
        storage.insert_events("p", "c", SLOW_EVENTS, now=NOW)
        slow = {**QUERY, "filters": [SLOW_REGEX]}
        storage.query_time_limit = 0.5
        with pytest.raises(QueryError) as caught:
            run_query(storage, "p", "count", slow, now=NOW)
        assert (caught.value.status, caught.value.error_code) == (503, "QueryTimeoutError")
        quick = {**QUERY, "filters": [QUICK_REGEX]}
        assert run_query(storage, "p", "count", quick, now=NOW)["result"] == 40


def test_the_servers_query_time_limit_stops_a_slow_query_and_holds_after_a_restart(
        engine: str, tmp_path: Path) -> None:
    """``LocalKeenServer(query_time_limit=0.5)``: a slow query over HTTP is a 503, also after
    ``stop()`` and ``start()`` reopened the file database (a new store)."""
    server = LocalKeenServer(db=str(tmp_path / f"k.{engine}"), engine=engine,
                             clock=lambda: NOW, query_time_limit=0.5)
    try:
        server.storage.insert_events(server.project_id, "c", SLOW_EVENTS, now=NOW)
        server.start()
        first = server.storage
        for restart in (False, True):
            if restart:
                server.stop()
                server.start()
                assert server.storage is not first
            api = Api(server)
            assert error_of(query(api, "count", filters=[SLOW_REGEX])) == (
                503, "QueryTimeoutError")
            assert query(api, "count", filters=[QUICK_REGEX]).json()["result"] == 40
            api.session.close()
    finally:
        server.close()


@pytest.mark.parametrize("limit", [0, 0.0, None])
def test_a_query_time_limit_of_0_or_none_is_no_limit(engine: str, limit: float | None) -> None:
    """A limit of 0 seconds would stop every query (as 1e-9 does above): 0 means none."""
    with LocalKeenServer(engine=engine, clock=lambda: NOW, query_time_limit=limit) as server:
        api = Api(server)
        api.write("c", *[{"n": i} for i in range(3000)])
        assert server.storage.query_time_limit is None
        response = query(api, "count", filters=[
            {"property_name": "n", "operator": "gte", "property_value": 0}])
        assert response.json()["result"] == 3000, response.text
        api.session.close()


@pytest.mark.parametrize("value", [-1, -1e-9, float("nan"), float("inf"), float("-inf"),
                                   limits.QUERY_TIME_LIMIT_MAX + 1, "60", True, [60]])
def test_a_bad_query_time_limit_is_refused_before_the_server_opens_anything(
        value: Any, tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with pytest.raises(ValueError, match=r"^query_time_limit must be a number of seconds"):
        LocalKeenServer(db=str(db), query_time_limit=value)
    assert not db.exists()


@pytest.mark.parametrize("value", [1e-3, 2, limits.QUERY_TIME_LIMIT_MAX])
def test_a_query_time_limit_in_range_is_the_stores(value: float) -> None:
    with LocalKeenServer(query_time_limit=value) as server:
        assert server.storage.query_time_limit == value
    assert LocalKeenServer().storage.query_time_limit == limits.QUERY_TIME_LIMIT


def test_a_slow_delete_is_stopped_while_it_runs_and_deletes_nothing(engine: str) -> None:
    with open_store(engine) as storage:
        storage.insert_events("p", "c", SLOW_EVENTS, now=NOW)
        storage.query_time_limit = 0.5
        with pytest.raises(QueryError) as caught:
            storage.delete_events("p", "c", now=NOW, filters=[SLOW_REGEX])
        assert (caught.value.status, caught.value.error_code) == (503, "QueryTimeoutError")
        assert storage.count_events("p", "c") == 40
        storage.insert_events("p", "c", [{"s": "x"}], now=NOW)  # the writer goes on
        assert storage.count_events("p", "c") == 41


def _store_raw(storage: Any, engine: str, ts: int, event: dict[str, Any]) -> None:
    """Store an event as an older version could have, past today's validation (for DuckDB the
    way migrating an old SQLite database stores it)."""
    with storage._write() as conn:
        if engine == "sqlite":
            conn.execute("INSERT INTO events VALUES ('p', 'c', ?, 99, NULL, ?)",
                         (ts, json.dumps(event)))
        else:
            storage._store(conn, "p", "c", [ts], [None], [event], {})


def test_values_stored_before_the_nesting_limit_are_a_400_not_a_500(engine: str) -> None:
    """A database written by an older version may hold a 600-deep list."""
    from keen.server.engine import run_query

    with open_store(engine) as storage:
        storage.insert_events("p", "c", [{"l": 1}], now=NOW)
        _store_raw(storage, engine, 1_773_100_800_000_000, {
            "l": nested_list(600), "keen": {"timestamp": "2026-03-10T00:00:00.000Z"}})
        for analysis, extra in [("count", {"group_by": "l"}),
                                ("select_unique", {"target_property": "l"})]:
            with pytest.raises(QueryError) as caught:
                run_query(storage, "p", analysis, {**QUERY, **extra}, now=NOW)
            assert (caught.value.status, caught.value.error_code) == (400,
                                                                       "QueryTooComplexError")


def test_a_batch_of_more_events_than_the_limit_is_a_413_and_stores_nothing(api: Api) -> None:
    events = [{}] * (limits.MAX_BATCH_EVENTS // 2)
    response = api.post("/events", api.server.write_key,
                        data=json.dumps({"a": events, "b": [*events, {}]}))
    assert error_of(response) == (413, "RequestEntityTooLargeError")
    assert str(limits.MAX_BATCH_EVENTS) in response.json()["message"]
    assert api.server.storage.count_events(api.server.project_id) == 0


@each_engine
def test_a_delete_past_the_time_limit_is_a_503_and_deletes_nothing(api: Api) -> None:
    api.write("c", *[{"n": i} for i in range(3000)])
    api.server.storage.query_time_limit = 1e-9
    try:
        response = api.delete("/events/c", api.server.master_key, params={"filters": json.dumps(
            [{"property_name": "n", "operator": "gte", "property_value": 0}])})
        assert error_of(response) == (503, "QueryTimeoutError")
    finally:
        api.server.storage.query_time_limit = limits.QUERY_TIME_LIMIT
    assert api.count("c") == 3000
