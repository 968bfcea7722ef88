"""Event writes through the local server over loopback HTTP: single, batch, beacon, limits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from _server_helpers import Api, api_fixture, each_engine_server_fixture, error_of  # noqa: F401

from keen.server.resources.events import MAX_BATCH_BYTES, MAX_EVENT_BYTES, PIXEL_GIF


def extraction(api: Api, collection: str) -> list[dict[str, Any]]:
    response = api.post("/queries/extraction", api.server.read_key,
                        body={"event_collection": collection, "timeframe": "this_10_years"})
    assert response.status_code == 200, response.text
    return list(response.json()["result"])


def test_single_event_is_created_and_stamped(api: Api) -> None:
    response = api.post("/events/sign_ups", api.server.write_key,
                        body={"username": "ada", "keen": {"timestamp": "2026-03-01T10:00:00Z"}})
    assert response.status_code == 201
    assert response.json() == {"created": True}
    [event] = extraction(api, "sign_ups")
    assert event["username"] == "ada"
    assert event["keen"]["timestamp"].startswith("2026-03-01T10:00:00")
    assert len(event["keen"]["id"]) == 24
    assert "created_at" in event["keen"]


def test_single_event_breaking_a_name_rule_is_400_with_the_error_name(api: Api) -> None:
    response = api.post("/events/sign_ups", api.server.write_key, body={"$bad": 1})
    assert error_of(response) == (400, "InvalidPropertyNameError")
    response = api.post("/events/_hidden", api.server.write_key, body={"a": 1})
    assert error_of(response) == (400, "InvalidCollectionNameError")
    assert api.count("sign_ups") == 0


@pytest.mark.parametrize(("data", "code"), [
    (b"{not json", "InvalidEventError"),
    (b"\xff\xfe{}", "InvalidEventError"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "InvalidEventError"),
    (b"", "InvalidEventError"),
    (b"[1, 2]", "InvalidEventError"),
])
def test_single_event_must_be_a_json_object(api: Api, data: bytes, code: str) -> None:
    response = api.post("/events/sign_ups", api.server.write_key, data=data)
    assert error_of(response) == (400, code)


def test_event_body_is_json_whatever_the_content_type(api: Api) -> None:
    # navigator.sendBeacon posts JSON as text/plain
    response = api.post("/events/pings", params={"api_key": api.server.write_key},
                        data=json.dumps({"n": 1}), headers={"Content-Type": "text/plain"})
    assert response.status_code == 201
    assert api.count("pings") == 1


def test_collection_names_are_percent_decoded(api: Api) -> None:
    response = api.post("/events/User%20posts.new", api.server.write_key, body={"a": 1})
    assert response.status_code == 201
    assert api.count("User posts.new") == 1


def test_batch_reports_each_item_in_order(api: Api) -> None:
    body = {"sign_ups": [{"username": "a"}, {"$x": 1}, "not an event", {"username": "b"}],
            "purchases": [{"price": 5}]}
    response = api.post("/events", api.server.write_key, body=body)
    assert response.status_code == 200
    result = response.json()
    assert [item["success"] for item in result["sign_ups"]] == [True, False, False, True]
    assert result["sign_ups"][1]["error"]["name"] == "InvalidPropertyNameError"
    assert result["sign_ups"][2]["error"]["name"] == "InvalidEventError"
    assert result["purchases"] == [{"success": True}]
    assert api.count("sign_ups") == 2


@pytest.mark.parametrize("body", [[{"a": 1}], {"sign_ups": {"a": 1}}, "text"])
def test_batch_must_be_an_object_of_lists(api: Api, body: Any) -> None:
    response = api.post("/events", api.server.write_key, body=body)
    assert error_of(response) == (400, "InvalidBatchError")


def test_malformed_batch_json_is_400(api: Api) -> None:
    response = api.post("/events", api.server.write_key, data=b'{"a": [')
    assert error_of(response) == (400, "InvalidBatchError")


def test_uniqueness_token_stores_an_event_once(api: Api) -> None:
    event = {"n": 1, "keen": {"uniqueness_token": "tok-1"}}
    for _ in range(2):
        assert api.post("/events/orders", api.server.write_key, body=event).status_code == 201
    response = api.post("/events", api.server.write_key, body={"orders": [event, event]})
    assert response.json() == {"orders": [{"success": True}, {"success": True}]}
    assert api.count("orders") == 1


def test_oversize_single_event_is_413(api: Api) -> None:
    event = {"blob": ["x" * 9_000] * (MAX_EVENT_BYTES // 9_000)}
    response = api.post("/events/big", api.server.write_key, body=event)
    assert error_of(response) == (413, "RequestEntityTooLargeError")


def test_oversize_event_in_a_batch_is_an_item_error(api: Api) -> None:
    big = {"blob": ["x" * 9_000] * (MAX_EVENT_BYTES // 9_000)}
    response = api.post("/events", api.server.write_key, body={"c": [{"a": 1}, big]})
    assert response.status_code == 200
    first, second = response.json()["c"]
    assert first == {"success": True}
    assert second["error"]["name"] == "EventTooLargeError"


def test_oversize_batch_is_413(api: Api) -> None:
    data = b'{"c": [' + b",".join([b'{"s": "' + b"x" * 9_000 + b'"}'] * 1_120) + b"]}"
    assert len(data) > MAX_BATCH_BYTES
    response = api.post("/events", api.server.write_key, data=data)
    assert error_of(response) == (413, "RequestEntityTooLargeError")
    assert api.count("c") == 0


def _beacon_data(event: dict[str, Any], *, urlsafe: bool = False, padded: bool = True) -> str:
    raw = json.dumps(event).encode()
    text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
    return text if padded else text.rstrip("=")


@pytest.mark.parametrize(("urlsafe", "padded"), [(False, True), (True, True), (True, False)])
def test_image_beacon_records_and_answers_a_gif(api: Api, urlsafe: bool, padded: bool) -> None:
    event = {"path": "~~~?~~>"}  # encodes with "+" (standard) or "-" (URL-safe), and "=="
    data = _beacon_data(event, urlsafe=urlsafe, padded=padded)
    assert ("-" in data) is urlsafe and data.endswith("=") is padded
    response = api.get("/events/views", params={"api_key": api.server.write_key, "data": data})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.content == PIXEL_GIF
    [stored] = extraction(api, "views")
    assert stored["path"] == event["path"]


def test_image_beacon_accepts_an_unescaped_plus(api: Api) -> None:
    data = _beacon_data({"path": "~~~?~~>"})
    assert "+" in data
    url = f"{api.base}/events/views?api_key={api.server.write_key}&data={data}"  # raw '+'
    assert api.get(url).status_code == 200
    assert api.count("views") == 1


def test_image_beacon_redirects(api: Api) -> None:
    params = {"api_key": api.server.write_key, "data": _beacon_data({"a": 1}),
              "redirect": "http://example.invalid/landing?x=1"}
    response = api.get("/events/clicks", params=params, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://example.invalid/landing?x=1"
    assert api.count("clicks") == 1


def test_head_on_an_image_beacon_records_nothing(api: Api) -> None:
    params = {"api_key": api.server.write_key, "data": _beacon_data({"a": 1})}
    response = api.call("HEAD", "/events/views", params=params)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert api.server.storage.count_events(api.project_id, "views") == 0


def test_image_beacon_with_bad_data_is_400(api: Api) -> None:
    response = api.get("/events/views", params={"api_key": api.server.write_key, "data": "%%%"})
    assert error_of(response) == (400, "InvalidEventError")


def test_write_key_cannot_read_the_beacon_collection_schema(api: Api) -> None:
    # without data the same URL is the schema resource, which needs a read key
    api.write("views", {"a": 1})
    response = api.get("/events/views", api.server.write_key)
    assert error_of(response) == (401, "InvalidApiKeyError")


def test_delete_events_with_filters(api: Api) -> None:
    api.write("purchases", {"price": 1}, {"price": 5}, {"price": 9})
    filters = json.dumps([{"property_name": "price", "operator": "gte", "property_value": 5}])
    response = api.delete("/events/purchases", api.server.master_key,
                          params={"filters": filters, "timeframe": "this_10_years"})
    assert response.status_code == 204
    assert response.content == b""
    assert api.count("purchases") == 1


def test_delete_events_needs_the_master_key(api: Api) -> None:
    api.write("purchases", {"price": 1})
    response = api.delete("/events/purchases", api.server.read_key)
    assert error_of(response) == (401, "AdminOnlyEndpointError")
    assert api.count("purchases") == 1


def test_ip_and_user_agent_placeholders_are_filled(api: Api) -> None:
    event = {"visitor": {"ip": "${keen.ip}", "ua": "${keen.user_agent}"}, "tags": ["${keen.ip}"],
             "note": "not ${keen.ip} here"}
    response = api.post("/events", api.server.write_key, body={"visits": [event]},
                        headers={"User-Agent": "probe/1.0"})
    assert response.status_code == 200
    [stored] = extraction(api, "visits")
    assert stored["visitor"] == {"ip": "127.0.0.1", "ua": "probe/1.0"}
    assert stored["tags"] == ["127.0.0.1"]
    assert stored["note"] == "not ${keen.ip} here"


def test_chunked_request_body_is_read(api: Api) -> None:
    chunks = (part for part in [b'{"c": [{"a"', b": 1}]}"])
    response = api.post("/events", api.server.write_key, data=chunks)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.json() == {"c": [{"success": True}]}


def test_delete_without_parameters_empties_the_collection(api: Api) -> None:
    api.write("purchases", {"price": 1}, {"price": 5})
    api.write("other", {"price": 1})
    assert api.delete("/events/purchases", api.server.master_key).status_code == 204
    assert api.count("purchases") == 0
    assert api.count("other") == 1


def test_a_batch_answer_is_the_same_json_text_when_its_successes_are_written_at_once() -> None:
    from keen.server._events import STORED
    from keen.server._json import encode
    from keen.server.resources.events import _batch_answer

    refused = {"success": False, "error": {"name": "InvalidPropertyNameError",
                                          "description": "x"}}
    results = {"purchases": [STORED] * 3, 'é"\\n': [STORED, refused, STORED],
               "empty": [], "equal but not the shared dict": [{"success": True}]}
    assert encode(_batch_answer(results)) == json.dumps(
        results, separators=(",", ":"), ensure_ascii=False).encode()
