"""Events: recording them (one, a batch, the image beacon), collection schemas, deleting.

Choices where keen-api.md leaves room [INF]:

* event bodies are parsed as JSON whatever their ``Content-Type`` (``sendBeacon`` sends
  ``text/plain``). Events over 900,000 bytes are refused with 413 (single event) or as a batch
  item error ``EventTooLargeError``; batches over 10,000,000 bytes with 413; both carry
  ``error_code`` ``RequestEntityTooLargeError``. Malformed JSON is 400 ``InvalidEventError``
  (single event) or ``InvalidBatchError`` (batch).
* the string values ``"${keen.ip}"`` and ``"${keen.user_agent}"`` anywhere in an event are
  replaced by the client's address and ``User-Agent`` (keen-api.md 4.4).
* image beacon: ``data`` may use either base64 alphabet, with or without padding, and ``' '``
  for an unescaped ``+``; the answer is a 1x1 GIF (200) or, with ``redirect``, a 302. A
  ``HEAD`` request gets the same answer without recording the event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from keen.server._errors import bad_request
from keen.server._http_errors import ApiError, not_found
from keen.server.auth import ADMIN, SCHEMA, WRITES
from keen.server.limits import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from keen.server.limits import MAX_EVENT_BYTES as MAX_EVENT_BYTES
from keen.server.limits import MAX_NESTING
from keen.server.resources._base import Call, Response, Route, json_response

TOO_LARGE = "RequestEntityTooLargeError"

_PLACEHOLDER_MARK = b"${keen."
# A transparent 1x1 GIF, the answer of the image beacon.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def post_event(call: Call, collection: str) -> Response:
    call.principal.require(WRITES)
    if len(call.request.body) > MAX_EVENT_BYTES:
        raise ApiError(413, TOO_LARGE, f"The event is larger than {MAX_EVENT_BYTES} bytes.")
    return _record_one(call, collection, call.json_body("InvalidEventError"))


def _record_one(call: Call, collection: str, event: Any) -> Response:
    item = _insert(call, collection, [event], check_size=False)[0]
    if not item["success"]:
        error = item["error"]
        raise bad_request(error["name"], error["description"])
    return json_response(201, {"created": True})


def post_batch(call: Call) -> Response:
    call.principal.require(WRITES)
    body_size = len(call.request.body)
    if body_size > MAX_BATCH_BYTES:
        raise ApiError(413, TOO_LARGE, f"The batch is larger than {MAX_BATCH_BYTES} bytes.")
    batch = call.json_body("InvalidBatchError")
    if not isinstance(batch, dict) or not all(isinstance(v, list) for v in batch.values()):
        raise bad_request("InvalidBatchError",
                          "A batch must be a JSON object mapping collection names to "
                          "lists of events.")
    results = {
        collection: _insert(call, collection, events, check_size=body_size > MAX_EVENT_BYTES)
        for collection, events in batch.items()
    }
    return json_response(200, results)


def _insert(call: Call, collection: str, events: list[Any],
            check_size: bool) -> list[dict[str, Any]]:
    """Store the good events; per-item results in the order given."""
    if len(events) == 1 or _PLACEHOLDER_MARK in call.request.body:
        events = _fill_placeholders(events, {
            "${keen.ip}": call.request.client_address,
            "${keen.user_agent}": call.request.headers.get("user-agent", ""),
        })
    refused: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            refused[index] = _item_error("InvalidEventError", "An event must be a JSON object.")
        elif check_size and _encoded_size(event) > MAX_EVENT_BYTES:
            refused[index] = _item_error("EventTooLargeError",
                                         f"The event is larger than {MAX_EVENT_BYTES} bytes.")
    good = [e for i, e in enumerate(events) if i not in refused] if refused else events
    stored = iter(call.storage.insert_events(
        call.project_id, collection, good, now=call.now, autofill=call.principal.autofill,
    ) if good else [])
    if not refused:
        return list(stored)
    return [refused[i] if i in refused else next(stored) for i in range(len(events))]


def collection_or_beacon(call: Call, collection: str) -> Response:
    if "data" not in call.request.query:
        return json_response(200, _schema(call, collection))
    call.principal.require(WRITES)
    event = _beacon_event(call.request.query["data"])
    if call.request.method != "HEAD":  # HEAD is safe: a link checker records nothing
        _record_one(call, collection, event)
    redirect = call.request.query.get("redirect")
    if redirect:
        return Response(302, headers={"Location": redirect})
    return Response(200, PIXEL_GIF, "image/gif", {"Cache-Control": "no-store"})


def list_collections(call: Call) -> Response:
    call.principal.require(SCHEMA)
    return json_response(200, call.storage.collections(call.project_id))


def _schema(call: Call, collection: str) -> dict[str, Any]:
    call.principal.require(SCHEMA)
    schema = call.storage.collection(call.project_id, collection)
    if schema is None:
        raise not_found(f"Collection {collection!r} not found.")
    return schema


def list_properties(call: Call, collection: str) -> Response:
    schema = _schema(call, collection)
    return json_response(200, [_property(call, collection, name, kind)
                               for name, kind in sorted(schema["properties"].items())])


def get_property(call: Call, collection: str, name: str) -> Response:
    properties = _schema(call, collection)["properties"]
    if name not in properties:
        raise not_found(f"Property {name!r} not found in collection {collection!r}.")
    return json_response(200, _property(call, collection, name, properties[name]))


def delete_property(call: Call, collection: str, name: str) -> Response:
    call.principal.require(ADMIN)
    _schema(call, collection)  # 404 for an unknown collection
    call.storage.delete_property(call.project_id, collection, name)
    return Response(204)


def _property(call: Call, collection: str, name: str, kind: str) -> dict[str, str]:
    url = f"{call.base}/events/{quote(collection, safe='')}/properties/{quote(name, safe='')}"
    return {"property_name": name, "type": kind, "url": url}


def delete_events(call: Call, collection: str) -> Response:
    call.principal.require(ADMIN)
    params = call.params()
    call.storage.delete_events(
        call.project_id, collection, timeframe=params.get("timeframe"),
        timezone=params.get("timezone"), filters=params.get("filters"), now=call.now,
    )
    return Response(204)


def _fill_placeholders(value: Any, values: Mapping[str, str], depth: int = 0) -> Any:
    """``value`` with the string values ``${keen.ip}`` / ``${keen.user_agent}`` replaced.
    Below ``MAX_NESTING`` levels it stops: validation refuses such an event anyway."""
    if isinstance(value, str):
        return values.get(value, value)
    if depth > MAX_NESTING:
        return value
    if isinstance(value, dict):
        return {k: _fill_placeholders(v, values, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_placeholders(v, values, depth + 1) for v in value]
    return value


def _item_error(name: str, description: str) -> dict[str, Any]:
    return {"success": False, "error": {"name": name, "description": description}}


def _encoded_size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, separators=(",", ":")).encode("utf-8"))


def _beacon_event(data: str) -> Any:
    text = data.strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise bad_request("InvalidEventError",
                          "The data parameter must be base64-encoded JSON.") from exc


ROUTES: list[Route] = [
    (("events",), {"GET": list_collections, "POST": post_batch}),
    (("events", "*"), {"GET": collection_or_beacon, "POST": post_event,
                       "DELETE": delete_events}),
    (("events", "*", "properties"), {"GET": list_properties}),
    (("events", "*", "properties", "*"), {"GET": get_property, "DELETE": delete_property}),
]
