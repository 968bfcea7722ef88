"""Resources of the local server: schemas, queries routing, saved queries, datasets, access keys."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest
from _server_helpers import TIMEOUT, Api, api_fixture, error_of, server_fixture  # noqa: F401

from keen.server import LocalKeenServer
from keen.server.engine import ANALYSES

COUNT_QUERY = {"analysis_type": "count", "event_collection": "purchases",
               "timeframe": "this_10_years"}


# --- service resources and routing --------------------------------------------------------------

def test_versions_discovery_and_timezones(api: Api) -> None:
    root = api.server.url
    assert api.get(f"{root}/").json()[0]["version"] == "3.0"
    assert api.get(f"{root}/3.0").json() == {"projects_resource_url": "/3.0/projects"}
    zones = {z["name"]: z for z in api.get(f"{root}/timezones").json()}
    assert zones["UTC"]["number_of_seconds_to_offset_time"] == 0
    assert zones["Asia/Tokyo"]["utc_offset"] == "+09:00"


def test_project_resources_need_the_master_key(api: Api) -> None:
    api.write("purchases", {"price": 1})
    info = api.get("", api.server.master_key).json()
    assert info["id"] == api.project_id
    assert [e["name"] for e in info["events"]] == ["purchases"]
    listing = api.get(f"{api.server.url}/3.0/projects", api.server.master_key).json()
    assert [p["id"] for p in listing] == [api.project_id]
    assert error_of(api.get("", api.server.read_key)) == (401, "AdminOnlyEndpointError")
    assert error_of(api.get(f"{api.server.url}/3.0/projects", api.server.read_key))[0] == 401


def test_unknown_path_is_404_and_wrong_method_405(api: Api) -> None:
    assert error_of(api.get("/nothing/here", api.server.master_key)) == (
        404, "ResourceNotFoundError")
    response = api.put("/events", api.server.master_key, body={})
    assert error_of(response) == (405, "MethodNotAllowedError")
    assert "POST" in response.headers["Allow"]
    assert error_of(api.post(f"{api.server.url}/nowhere", body={}))[0] == 404
    assert error_of(api.post(f"{api.server.url}/3.0", body={}))[0] == 405


def test_patch_is_405_like_any_other_wrong_method(api: Api) -> None:
    response = api.call("PATCH", "/events", api.server.master_key, body={})
    assert error_of(response) == (405, "MethodNotAllowedError")
    assert error_of(api.call("PATCH", "/nothing/here", body={}))[0] == 404


def _raw_exchange(server: LocalKeenServer, request: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(("request_head", "status", "code"), [
    (b"GET /_keen/health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
     "RequestHeaderFieldsTooLargeError"),
    (b"GET /_keen/health HTTP/1.1\r\n" + b"X-H: 1\r\n" * 150 + b"\r\n", 431,
     "RequestHeaderFieldsTooLargeError"),
    (b"GET /3.0/projects/p/queries/count?api_key=SECRET HTTP/1.x\r\n\r\n", 400,
     "InvalidRequestError"),
    (b"GET /_keen/health HTTP/3.5\r\n\r\n", 505, "HTTPVersionNotSupportedError"),
])
def test_requests_http_cannot_parse_get_the_json_error_envelope(
    server: LocalKeenServer, request_head: bytes, status: int, code: str
) -> None:
    answer = _raw_exchange(server, request_head)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b"Content-Type: application/json" in head
    error = json.loads(body)
    assert error["error_code"] == code
    assert "SECRET" not in error["message"]  # the request line is never echoed


def test_a_repeated_query_parameter_is_refused(api: Api) -> None:
    """keen-api.md 7.3: several timeframe values are a TimeframeDefinitionError."""
    key = api.server.read_key
    query = "/queries/count?event_collection=c&timeframe=this_1_days&timeframe=this_9_days"
    response = api.get(query, key)
    assert error_of(response) == (400, "TimeframeDefinitionError")
    assert "multiple values for timeframe" in response.json()["message"]
    response = api.get("/queries/count?event_collection=c&event_collection=d"
                       "&timeframe=this_1_days", key)
    assert error_of(response) == (400, "InvalidParameterError")
    assert api.get(query.rsplit("&", 1)[0], key).json() == {"result": 0}


@pytest.mark.parametrize(("length", "status"), [(50_000_000, b"413"), ("x", b"400")])
def test_expect_100_continue_refuses_a_bad_body_before_it_is_sent(
    server: LocalKeenServer, length: object, status: bytes
) -> None:
    head = (f"POST /3.0/projects/{server.project_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {server.write_key}\r\nContent-Length: {length}\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    answer = _raw_exchange(server, head)  # no body is ever sent
    assert answer.split(b" ")[1] == status
    assert b"100 Continue" not in answer


def test_expect_100_continue_then_the_body(server: LocalKeenServer) -> None:
    body = b'{"c": [{"a": 1}]}'
    head = (f"POST /3.0/projects/{server.project_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {server.write_key}\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert server.storage.count_events(server.project_id, "c") == 1


def test_head_and_cors_preflight(api: Api) -> None:
    response = api.call("HEAD", "/events", api.server.read_key)
    assert response.status_code == 200
    assert response.content == b""
    origin = "http://localhost:3000"  # the developer's own web app (see test_server_browsers)
    preflight = api.call("OPTIONS", "/events/x", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["Access-Control-Allow-Origin"] == origin


def test_collection_schema_and_properties(api: Api) -> None:
    api.write("purchases", {"item": {"id": 7, "on_sale": True}, "name": "x"})
    key = api.server.read_key
    listing = api.get("/events", key).json()
    assert listing[0]["name"] == "purchases"
    schema = api.get("/events/purchases", key).json()
    assert schema["properties"]["item.id"] == "num"
    assert schema["properties"]["keen.timestamp"] == "datetime"
    props = api.get("/events/purchases/properties", key).json()
    assert {"property_name": "item.on_sale", "type": "bool",
            "url": f"/3.0/projects/{api.project_id}/events/purchases/properties/item.on_sale"
            } in props
    assert api.get("/events/purchases/properties/name", key).json()["type"] == "string"
    assert error_of(api.get("/events/purchases/properties/nope", key))[0] == 404
    assert error_of(api.get("/events/unknown", key)) == (404, "ResourceNotFoundError")


def test_deleting_a_property_removes_it_from_events_and_schema(api: Api) -> None:
    api.write("purchases", {"item": {"id": 7, "note": "gift"}, "price": 3})
    api.write("purchases", {"price": 4})
    master, read = api.server.master_key, api.server.read_key
    assert error_of(api.delete("/events/purchases/properties/price", read)) == (
        401, "AdminOnlyEndpointError")
    assert api.delete("/events/purchases/properties/item.note", master).status_code == 204
    properties = api.get("/events/purchases", read).json()["properties"]
    assert "item.note" not in properties
    assert properties["item.id"] == "num"
    events = api.get("/queries/extraction", read,
                     params={"event_collection": "purchases", "timeframe": "this_1_days"}).json()
    assert [e.get("item") for e in events["result"]] == [{"id": 7}, None]
    assert error_of(api.delete("/events/purchases/properties/keen.id", master))[0] == 403
    assert error_of(api.delete("/events/nowhere/properties/price", master))[0] == 404


def test_queries_resource_lists_analysis_urls(api: Api) -> None:
    urls = api.get("/queries", api.server.read_key).json()
    assert urls["count_url"] == f"/3.0/projects/{api.project_id}/queries/count"
    assert "standard_deviation_url" in urls


# --- ad-hoc queries --------------------------------------------------------------------------

def test_get_and_post_queries_agree(api: Api) -> None:
    api.write("purchases", {"price": 1, "item": "a"}, {"price": 5, "item": "b"},
              {"price": 9, "item": "b"})
    post = api.post("/queries/sum", api.server.read_key, body={
        "event_collection": "purchases", "target_property": "price",
        "timeframe": "this_10_years", "group_by": ["item"],
        "filters": [{"property_name": "price", "operator": "gt", "property_value": 1}]})
    get = api.get("/queries/sum", api.server.read_key, params={
        "event_collection": "purchases", "target_property": "price",
        "timeframe": "this_10_years", "group_by": '["item"]',
        "filters": '[{"property_name": "price", "operator": "gt", "property_value": 1}]'})
    assert post.status_code == get.status_code == 200, (post.text, get.text)
    assert post.json() == get.json() == {"result": [{"item": "b", "result": 14}]}


def _query_for(analysis: str) -> dict[str, Any]:
    query: dict[str, Any] = {"event_collection": "purchases", "timeframe": "this_10_years"}
    if analysis in ("count_unique", "minimum", "maximum", "sum", "average", "median",
                    "percentile", "select_unique", "standard_deviation"):
        query["target_property"] = "price"
    if analysis == "percentile":
        query["percentile"] = 50
    if analysis == "funnel":
        query = {"steps": [{"event_collection": "purchases", "actor_property": "item",
                            "timeframe": "this_10_years"}]}
    if analysis == "multi_analysis":
        query["analyses"] = {"n": {"analysis_type": "count"},
                             "top": {"analysis_type": "maximum", "target_property": "price"}}
    return query


@pytest.mark.parametrize("analysis", sorted(ANALYSES))
def test_every_analysis_answers_get_and_post_alike(api: Api, analysis: str) -> None:
    api.write("purchases", {"price": 1, "item": "a"}, {"price": 5, "item": "b"})
    query = _query_for(analysis)
    post = api.post(f"/queries/{analysis}", api.server.read_key, body=query)
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    get = api.get(f"/queries/{analysis}", api.server.read_key, params=encoded)
    assert post.status_code == get.status_code == 200, (post.text, get.text)
    assert post.json() == get.json()
    assert "result" in post.json()


def test_unknown_analysis_is_404(api: Api) -> None:
    response = api.get("/queries/mode", api.server.read_key,
                       params={"event_collection": "c", "timeframe": "this_1_days"})
    assert error_of(response) == (404, "ResourceNotFoundError")
    assert "count" in response.json()["message"]


def test_post_analysis_type_must_match_the_path(api: Api) -> None:
    response = api.post("/queries/count", api.server.read_key,
                        body={**COUNT_QUERY, "analysis_type": "sum"})
    assert error_of(response)[0] == 400
    same = api.post("/queries/count", api.server.read_key, body=COUNT_QUERY)
    assert same.status_code == 200


def test_bad_timeframe_is_reported_by_the_engine_as_400(api: Api) -> None:
    response = api.get("/queries/count", api.server.read_key,
                       params={"event_collection": "c", "timeframe": "this_often"})
    status, code = error_of(response)
    assert status == 400
    assert code == "TimeframeDefinitionError"


def test_malformed_query_body_is_400(api: Api) -> None:
    response = api.post("/queries/count", api.server.read_key, data=b"{oops")
    assert error_of(response) == (400, "InvalidJSONError")


# --- saved queries ---------------------------------------------------------------------------

def put_saved(api: Api, name: str, **body: Any) -> Any:
    return api.put(f"/queries/saved/{name}", api.server.master_key, body=body)


def test_saved_query_lifecycle(api: Api) -> None:
    api.write("purchases", {"price": 1}, {"price": 2})
    master = api.server.master_key
    created = put_saved(api, "total", query=COUNT_QUERY, refresh_rate=0,
                        metadata={"display_name": "Total"})
    assert created.status_code == 201
    definition = created.json()
    assert definition["query_name"] == "total"
    assert definition["query"]["group_by"] is None  # unset fields shown as null
    assert definition["urls"]["cached_results_url"].endswith("/queries/saved/total/result")
    assert definition["run_information"] is None
    assert api.get("/queries/saved/total", master).json() == definition

    updated = put_saved(api, "total", query={**COUNT_QUERY, "group_by": None},
                        refresh_rate=14_400)
    assert updated.status_code == 200
    assert updated.json()["refresh_rate"] == 14_400
    assert updated.json()["metadata"] == {}  # full replace
    assert updated.json()["created_date"] == definition["created_date"]
    assert updated.json()["run_information"]["last_run_date"]

    result = api.get("/queries/saved/total/result", api.server.read_key)
    assert result.status_code == 200
    assert result.json()["result"] == 2
    assert result.json()["query_name"] == "total"

    assert [q["query_name"] for q in api.get("/queries/saved", master).json()] == ["total"]
    assert api.delete("/queries/saved/total", master).status_code == 204
    assert error_of(api.get("/queries/saved/total", master)) == (404, "ResourceNotFoundError")
    assert error_of(api.delete("/queries/saved/total", master))[0] == 404


def test_saved_query_rename(api: Api) -> None:
    master = api.server.master_key
    put_saved(api, "old", query=COUNT_QUERY)
    put_saved(api, "taken", query=COUNT_QUERY)
    renamed = put_saved(api, "old", query_name="new", query=COUNT_QUERY)
    assert renamed.status_code == 200
    assert renamed.json()["query_name"] == "new"
    assert error_of(api.get("/queries/saved/old", master))[0] == 404
    assert api.get("/queries/saved/new", master).status_code == 200
    assert error_of(put_saved(api, "new", query_name="taken", query=COUNT_QUERY))[0] == 409
    assert error_of(put_saved(api, "ghost", query_name="x", query=COUNT_QUERY))[0] == 404


@pytest.mark.parametrize(("body", "needle"), [
    ({"query": COUNT_QUERY, "refresh_rate": 60}, "refresh_rate"),
    ({"query": COUNT_QUERY, "refresh_rate": 172_801}, "refresh_rate"),
    ({"query": COUNT_QUERY, "urls": {}}, "urls"),
    ({"query": COUNT_QUERY, "last_modified_date": "2020-01-01"}, "last_modified_date"),
    ({"query": COUNT_QUERY, "colour": "red"}, "colour"),
    ({"refresh_rate": 0}, "query"),
    ({"query": {**COUNT_QUERY, "analysis_type": "mode"}}, "analysis_type"),
    ({"query": {**COUNT_QUERY, "analysis_type": ["count"]}}, "analysis_type"),
    ({"query": COUNT_QUERY, "query_name": {"a": 1}}, "query name"),
    ({"query": {**COUNT_QUERY, "filters": {"property_name": "a"}}}, "filters"),
    ({"query": {"analysis_type": "count"}}, "event_collection"),
    ({"query": COUNT_QUERY, "query_name": "has space"}, "has space"),
])
def test_invalid_saved_query_definitions_are_400(api: Api, body: dict[str, Any],
                                                 needle: str) -> None:
    response = put_saved(api, "q", **body)
    assert error_of(response)[0] == 400
    assert needle in response.json()["message"]


def test_saved_funnel_result_is_the_whole_funnel_answer(api: Api) -> None:
    api.write("visits", {"user": "a"}, {"user": "b"})
    api.write("buys", {"user": "a"})
    steps = [{"event_collection": "visits", "actor_property": "user",
              "timeframe": "this_10_years"},
             {"event_collection": "buys", "actor_property": "user",
              "timeframe": "this_10_years"}]
    assert put_saved(api, "f", query={"analysis_type": "funnel", "steps": steps}).status_code == 201
    result = api.get("/queries/saved/f/result", api.server.read_key).json()["result"]
    assert result["result"] == [2, 1]
    assert len(result["steps"]) == 2


# --- cached datasets -------------------------------------------------------------------------

DATASET = {"display_name": "Daily purchases", "index_by": "customer",
           "query": {"analysis_type": "count", "event_collection": "purchases",
                     "timeframe": "this_30_days", "interval": "daily", "group_by": "item"}}


def test_dataset_lifecycle_and_results(api: Api) -> None:
    master = api.server.master_key
    api.write("purchases", {"customer": "c1", "item": "x"}, {"customer": "c1", "item": "y"},
              {"customer": "c2", "item": "x"})
    created = api.put("/datasets/daily", master, body=DATASET)
    assert created.status_code == 201
    definition = created.json()
    assert definition["dataset_name"] == "daily"
    assert definition["index_by"] == ["customer"]
    assert definition["query"]["group_by"] == ["item"]
    assert definition["query"]["project_id"] == api.project_id
    assert api.get("/datasets/daily", api.server.read_key).json() == definition
    assert api.put("/datasets/daily", master, body=definition).status_code == 200

    results = api.get("/datasets/daily/results", api.server.read_key,
                      params={"index_by": "c1", "timeframe": "this_2_days"})
    assert results.status_code == 200, results.text
    buckets = results.json()["result"]
    assert len(buckets) == 2
    today = buckets[-1]["value"]
    assert sorted((g["item"], g["result"]) for g in today) == [("x", 1), ("y", 1)]

    assert api.delete("/datasets/daily", master).status_code == 204
    assert error_of(api.get("/datasets/daily", master)) == (404, "ResourceNotFoundError")


def test_dataset_listing_pages(api: Api) -> None:
    for name in ("d1", "d2", "d3"):
        assert api.put(f"/datasets/{name}", api.server.master_key, body=DATASET).status_code == 201
    first = api.get("/datasets", api.server.read_key, params={"limit": 2}).json()
    assert [d["dataset_name"] for d in first["datasets"]] == ["d1", "d2"]
    assert first["count"] == 3
    second = api.get(first["next_page_url"], api.server.read_key).json()
    assert [d["dataset_name"] for d in second["datasets"]] == ["d3"]
    assert second["next_page_url"] is None
    assert error_of(api.get("/datasets", api.server.read_key, params={"limit": "0"}))[0] == 400


@pytest.mark.parametrize("change", [
    {"display_name": None}, {"index_by": []},
    {"query": {**DATASET["query"], "interval": None}},
    {"query": {**DATASET["query"], "analysis_type": "extraction"}},
    {"query": {**DATASET["query"], "filters": -1}},
    {"query": {**DATASET["query"], "filters": [{"property_name": "a", "operator": "like",
                                                "property_value": 1}]}},
    {"extra": 1},
])
def test_invalid_dataset_definitions_are_400(api: Api, change: dict[str, Any]) -> None:
    body = {k: v for k, v in {**DATASET, **change}.items() if v is not None}
    assert error_of(api.put("/datasets/bad", api.server.master_key, body=body))[0] == 400
    assert api.get("/datasets/bad", api.server.master_key).status_code == 404  # not stored


def test_dataset_results_need_an_index(api: Api) -> None:
    api.put("/datasets/daily", api.server.master_key, body=DATASET)
    response = api.get("/datasets/daily/results", api.server.read_key,
                       params={"timeframe": "this_2_days"})
    assert error_of(response)[0] == 400


# --- access keys -----------------------------------------------------------------------------

def test_access_key_lifecycle(api: Api) -> None:
    master = api.server.master_key
    created = api.post("/keys", master, body={"name": "Bob", "permitted": ["queries"]})
    assert created.status_code == 201
    key = created.json()
    assert re.fullmatch(r"[0-9A-F]{64}", key["key"])
    assert key["is_active"] is True
    assert key["project_id"] == api.project_id
    assert key["options"] == {"writes": None, "queries": None, "saved_queries": None,
                              "cached_queries": None, "datasets": None}
    assert api.get("/keys", master).json() == [key]
    assert api.get(f"/keys/{key['key']}", master).json() == key

    updated = api.post(f"/keys/{key['key']}", master,
                       body={"name": "Bobby", "permitted": ["writes"],
                             "options": {"writes": {"autofill": {"a": 1}}}})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Bobby"
    assert updated.json()["permitted"] == ["writes"]
    assert updated.json()["options"]["writes"] == {"autofill": {"a": 1}}
    assert updated.json()["key"] == key["key"]

    revoked = api.post(f"/keys/{key['key']}/revoke", master)
    assert revoked.status_code == 200
    assert revoked.json() == {**updated.json(), "is_active": False}
    assert api.get(f"/keys/{key['key']}", master).json()["is_active"] is False
    unrevoked = api.post(f"/keys/{key['key']}/unrevoke", master)
    assert unrevoked.status_code == 200
    assert api.get(f"/keys/{key['key']}", master).json() == updated.json()
    assert api.delete(f"/keys/{key['key']}", master).status_code == 204
    assert error_of(api.get(f"/keys/{key['key']}", master)) == (404, "ResourceNotFoundError")


@pytest.mark.parametrize("body", [
    {"permitted": ["everything"]}, {"permitted": "queries"}, {"is_active": "yes"},
    {"options": {"teleport": {}}}, {"options": {"writes": []}}, {"colour": "red"}, [1],
    {"options": {"writes": {"autofill": [1]}}}, {"options": {"queries": {"filters": {}}}},
    {"options": {"datasets": {"allowed": ["x"]}}},
    {"options": {"saved_queries": {"allowed": {"x": {}}}}},
    {"options": {"queries": {"filters": [{"property_name": "a", "operator": "like",
                                          "property_value": 1}]}}},
    {"options": {"saved_queries": {"filters": [1]}}},
])
def test_invalid_access_key_definitions_are_400(api: Api, body: Any) -> None:
    assert error_of(api.post("/keys", api.server.master_key, body=body))[0] == 400
    assert api.get("/keys", api.server.master_key).json() == []  # nothing was created


def test_access_keys_are_master_only(api: Api) -> None:
    key = api.create_key(permitted=["queries", "writes", "schema"])
    assert error_of(api.get("/keys", key)) == (401, "AdminOnlyEndpointError")
    assert error_of(api.post("/keys", key, body={"permitted": []})) == (
        401, "AdminOnlyEndpointError")
