"""Hostile input at every parameter of the local server: whatever JSON or text arrives, the
answer is never a 500 (a 4xx names the problem; a batch answers per event).

Requests go through ``KeenApp.handle`` in-process (the code behind the HTTP framing) so that
hypothesis can try many shapes quickly; tests/test_server_limits.py checks the same classes
over real sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _engines import ENGINE_PARAMS
from _server_helpers import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.server import LocalKeenServer
from keen.server.app import KeenApp
from keen.server.engine import ANALYSES
from keen.server.filters import OPERATORS
from keen.server.resources._base import Request, Response

NASTY_TEXT = [
    "\ud800", "a\udfffb", "", " ", "\x00", "keen.timestamp", "keen", "a.b", "$x", "c",
    "this_1_days", "previous_3_weeks", f"this_{'9' * 5000}_days", f"every_{'1' * 400}_minutes",
    "daily", "every_0_hours", "1" * 400, "-" + "9" * 30, "US/Pacific", "../../etc/passwd",
    "a{99999999999}", "^(a+)+$", "(?P<x>a)(?P=x)", "[", "\\", "2026-03-08T11:00:00+01:00",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "x" * 10_001, "NaN", "Infinity",
    "[" * 3000 + "]" * 3000, "{" * 10, "[1, 2",
]
PROPERTY_NAMES = ["n", "s", "l", "o", "o.k", "keen.timestamp", "keen.location.coordinates",
                  "missing", "\ud800", "a\x00b", 'q"uote']

text = st.one_of(st.sampled_from(NASTY_TEXT),
                 st.text(st.characters(blacklist_categories=[]), max_size=12))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.one_of(text, st.sampled_from(["property_name", "operator", "property_value",
                                         "operands", "start", "end", "analysis_type",
                                         "target_property", "event_collection"])),
        children, max_size=4),
    max_leaves=12,
)


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


filters = st.lists(st.one_of(
    st.fixed_dictionaries({
        "property_name": st.sampled_from(PROPERTY_NAMES) | text,
        "operator": st.sampled_from(sorted(OPERATORS)) | text,
        "property_value": json_values | st.sampled_from([deep(150), list(range(20_000))]),
    }),
    st.builds(lambda ops: {"operator": "or", "operands": ops}, st.lists(
        st.fixed_dictionaries({"property_name": st.sampled_from(PROPERTY_NAMES),
                               "operator": st.sampled_from(sorted(OPERATORS)),
                               "property_value": json_values}), max_size=3)),
    json_values,
), max_size=4)

PARAMETERS = {
    "event_collection": text | json_values,
    "target_property": st.sampled_from(PROPERTY_NAMES) | text | json_values,
    "timeframe": text | json_values | st.fixed_dictionaries({"start": text, "end": text}),
    "timezone": text | json_values,
    "interval": text | json_values,
    "filters": filters | json_values,
    "group_by": st.lists(st.sampled_from(PROPERTY_NAMES) | text, max_size=3) | json_values,
    "order_by": json_values,
    "limit": json_values,
    "percentile": json_values,
    "latest": json_values,
    "property_names": json_values,
    "steps": st.lists(st.fixed_dictionaries({
        "event_collection": st.just("c") | text, "actor_property": st.sampled_from(
            PROPERTY_NAMES) | text, "timeframe": st.just("this_10_years") | json_values,
        "optional": json_values, "inverted": json_values, "with_actors": json_values,
        "filters": filters}), max_size=3) | json_values,
    "analyses": st.dictionaries(text, st.fixed_dictionaries({
        "analysis_type": st.sampled_from(sorted(ANALYSES)) | text,
        "target_property": st.sampled_from(PROPERTY_NAMES) | text}), max_size=3) | json_values,
    "include_metadata": json_values,
    "email": json_values,
    "max_age": json_values,
}
EVENTS = [
    {"n": 1, "s": "a", "l": [1, "a", [2]], "o": {"k": True}, "keen": {
        "timestamp": "2026-03-10T10:00:00Z", "location": {"coordinates": [2.35, 48.85]}}},
    {"n": 2.5, "s": "b", "l": [], "o": {"k": None}, 'q"uote': 1},
]


@pytest.fixture(scope="module", name="app", params=ENGINE_PARAMS)
def app_fixture(request: pytest.FixtureRequest) -> Iterator[tuple[KeenApp, LocalKeenServer]]:
    """The app of a server of each engine, holding ``EVENTS`` in collection ``c``."""
    server = LocalKeenServer(clock=lambda: NOW, engine=str(request.param))
    application = KeenApp(server.storage, server.projects, lambda: NOW, server.faults)
    response = call(application, server, "POST", "/events", server.write_key,
                    json.dumps({"c": EVENTS}).encode())
    assert response.status == 200
    yield application, server
    server.storage.close()


def call(app: KeenApp, server: LocalKeenServer, method: str, path: str, key: str | None,
         body: bytes = b"", query: dict[str, str] | None = None) -> Response:
    request = Request(method, f"/3.0/projects/{server.project_id}{path}",
                      query=dict(query or {}), body=body,
                      headers={"authorization": key} if key else {},
                      client_address="127.0.0.1")
    return app.handle(request)


def check(response: Response, what: Any) -> None:
    assert response.status < 500, (what, response.body[:300])
    json.loads(response.body or b"null")  # and the answer is JSON


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", sorted(PARAMETERS))
@FUZZ
@given(data=st.data())
def test_no_query_parameter_value_is_a_500(
    app: tuple[KeenApp, LocalKeenServer], name: str, data: st.DataObject,
) -> None:
    application, server = app
    analysis = data.draw(st.sampled_from(sorted(ANALYSES)), label="analysis")
    params: dict[str, Any] = {"event_collection": "c", "timeframe": "this_10_years",
                              "target_property": "n", "percentile": 50,
                              "steps": [{"event_collection": "c", "actor_property": "n"}],
                              "analyses": {"a": {"analysis_type": "count"}}}
    params[name] = data.draw(PARAMETERS[name], label=name)
    body = json.dumps(params).encode()  # lone surrogates travel as \ud800 escapes
    check(call(application, server, "POST", f"/queries/{analysis}", server.read_key, body),
          params)
    # The same value in a GET query string (JSON text, or the bare string).
    value = params[name]
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    query[name] = value if isinstance(value, str) else json.dumps(value)
    check(call(application, server, "GET", f"/queries/{analysis}", server.read_key,
               query=query), query)


@FUZZ
@given(events=st.lists(json_values | st.dictionaries(text, json_values, max_size=5),
                       max_size=5),
       collection=text)
def test_no_event_shape_is_a_500_and_a_batch_answers_each_event(
    app: tuple[KeenApp, LocalKeenServer], events: list[Any], collection: str,
) -> None:
    application, server = app
    body = json.dumps({collection: events}).encode()
    response = call(application, server, "POST", "/events", server.write_key, body)
    check(response, events)
    if response.status == 200:
        answer = json.loads(response.body)
        assert len(answer[collection]) == len(events)
    for event in events[:2]:
        check(call(application, server, "POST", "/events/c", server.write_key,
                   json.dumps(event).encode()), event)


@FUZZ
@given(filters=filters | json_values, timeframe=PARAMETERS["timeframe"],
       timezone=PARAMETERS["timezone"])
def test_no_delete_parameter_is_a_500(
    app: tuple[KeenApp, LocalKeenServer], filters: Any, timeframe: Any, timezone: Any,
) -> None:
    application, server = app
    query = {"filters": json.dumps(filters), "timezone": json.dumps(timezone),
             "timeframe": timeframe if isinstance(timeframe, str) else json.dumps(timeframe)}
    # Collection "d" holds nothing: the fixture's events stay for the other tests.
    check(call(application, server, "DELETE", "/events/d", server.master_key, query=query),
          query)


@FUZZ
@given(definition=json_values | st.fixed_dictionaries({
    "query": st.fixed_dictionaries({"analysis_type": st.sampled_from(sorted(ANALYSES)) | text,
                                    "event_collection": text, "timeframe": text,
                                    "filters": filters}),
    "metadata": json_values, "refresh_rate": json_values}), name=st.sampled_from(
    ["s", "x-1", "a" * 300]))
def test_no_saved_query_definition_is_a_500(
    app: tuple[KeenApp, LocalKeenServer], definition: Any, name: str,
) -> None:
    application, server = app
    body = json.dumps(definition).encode()
    check(call(application, server, "PUT", f"/queries/saved/{name}", server.master_key, body),
          definition)
    check(call(application, server, "GET", f"/queries/saved/{name}/result", server.read_key),
          definition)


@FUZZ
@given(definition=json_values | st.fixed_dictionaries({
    "name": text, "permitted": st.lists(text, max_size=3) | json_values,
    "options": st.fixed_dictionaries({"queries": st.fixed_dictionaries({"filters": filters}),
                                      "writes": st.fixed_dictionaries({
                                          "autofill": json_values})})}))
def test_no_access_key_definition_is_a_500(
    app: tuple[KeenApp, LocalKeenServer], definition: Any,
) -> None:
    application, server = app
    response = call(application, server, "POST", "/keys", server.master_key,
                    json.dumps(definition).encode())
    check(response, definition)
    if response.status == 201:
        key = json.loads(response.body)["key"]
        for path, body in (("/queries/count", {"event_collection": "c",
                                               "timeframe": "this_10_years"}),
                           ("/events/c", {"n": 1})):
            check(call(application, server, "POST", path, key, json.dumps(body).encode()),
                  definition)


@FUZZ
@given(definition=json_values | st.fixed_dictionaries({
    "display_name": text, "index_by": st.sampled_from(PROPERTY_NAMES) | json_values,
    "query": st.fixed_dictionaries({"analysis_type": st.sampled_from(sorted(ANALYSES)) | text,
                                    "event_collection": text, "timeframe": text,
                                    "interval": text, "filters": filters})}),
    index_by=text | json_values)
def test_no_dataset_definition_is_a_500(
    app: tuple[KeenApp, LocalKeenServer], definition: Any, index_by: Any,
) -> None:
    application, server = app
    check(call(application, server, "PUT", "/datasets/d", server.master_key,
               json.dumps(definition).encode()), definition)
    query = {"index_by": index_by if isinstance(index_by, str) else json.dumps(index_by),
             "timeframe": "this_10_years"}
    check(call(application, server, "GET", "/datasets/d/results", server.read_key,
               query=query), (definition, query))
