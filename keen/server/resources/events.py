"""Events: recording them (one, a batch, the image beacon), collection schemas, deleting.

Choices where keen-api.md leaves room [INF]:

* event bodies are parsed as JSON whatever their ``Content-Type`` (``sendBeacon`` sends
  ``text/plain``). Events over 900,000 bytes are refused with 413 (single event) or as a batch
  item error ``EventTooLargeError``; batches over 10,000,000 bytes or 100,000 events with 413;
  both carry ``error_code`` ``RequestEntityTooLargeError`` (limits: :mod:`keen.server.limits`).
  Malformed JSON is 400 ``InvalidEventError`` (single event) or ``InvalidBatchError`` (batch).
* the string values ``"${keen.ip}"`` and ``"${keen.user_agent}"`` anywhere in an event are
  replaced by the client's address and ``User-Agent`` (keen-api.md 4.4).
* image beacon: ``data`` may use either base64 alphabet, with or without padding, and ``' '``
  for an unescaped ``+``; the answer is a 1x1 GIF (200) or, with ``redirect``, a 302. A
  ``HEAD`` request gets the same answer without recording the event. A ``redirect`` holding a
  control character (CR, LF...) is a 400 ``InvalidParameterError`` and nothing is recorded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from keen.server._errors import bad_request
from keen.server._events import STORED, EventError
from keen.server._http_errors import ApiError, not_found
from keen.server._json import JsonText, encode_value
from keen.server.auth import ADMIN, SCHEMA, WRITES
from keen.server.limits import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from keen.server.limits import MAX_BATCH_EVENTS, MAX_NESTING, text_problem
from keen.server.limits import MAX_EVENT_BYTES as MAX_EVENT_BYTES
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
    event = _fill_placeholders(event, _placeholder_values(call))
    item = call.storage.insert_events(call.project_id, collection, [event], now=call.now,
                                      autofill=call.principal.autofill)[0]
    if not item["success"]:
        error = item["error"]
        raise bad_request(error["name"], error["description"])
    return json_response(201, {"created": True})


def post_batch(call: Call) -> Response:
    """Record a batch. The body is read one event at a time (after one pass that checks its
    shape), and each event is validated and stored before the next is parsed, so memory stays
    a small multiple of the body whatever its events look like."""
    call.principal.require(WRITES)
    body = call.request.body
    if len(body) > MAX_BATCH_BYTES:
        raise ApiError(413, TOO_LARGE, f"The batch is larger than {MAX_BATCH_BYTES} bytes.")
    text = _batch_text(body)
    # (a "$" is looked for first: one byte is found ~40 times quicker than the mark, which
    # took 0.6 ms of a 1.5 MB body with none)
    values = (_placeholder_values(call) if b"$" in body and _PLACEHOLDER_MARK in body
              else None)
    if values is None and not call.principal.autofill:  # the engine may read it its own way
        answer = call.storage.insert_batch(call.project_id, text, now=call.now)
        if answer is not None:
            return json_response(200, _batch_answer(answer))
    check_size = len(body) > MAX_EVENT_BYTES
    results = {}
    for collection, start in _batch_lists(text):
        events = _batch_events(text, start, check_size, values)
        results[collection] = call.storage.insert_events(
            call.project_id, collection, events, now=call.now,
            autofill=call.principal.autofill)
    return json_response(200, _batch_answer(results))


_STORED_TEXT = encode_value(STORED)


def _batch_answer(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``results`` with each list of successes only already written as JSON text (5,000
    ``{"success":true}`` joined instead of encoded one dict at a time)."""
    return {name: JsonText(f"[{','.join([_STORED_TEXT] * len(items))}]")
            if all(item is STORED for item in items) else items
            for name, items in results.items()}


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _invalid_batch(detail: str) -> ApiError:
    return ApiError(400, "InvalidBatchError",
                    "A batch must be a JSON object mapping collection names to lists of "
                    f"events: {detail}.")


def _batch_text(body: bytes) -> str:
    if not body or body.isspace():  # (strip() would copy the whole body)
        raise _invalid_batch("the request body is empty")
    try:
        return body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        raise _invalid_batch("the request body is not UTF-8") from None


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # always matches


def _batch_lists(text: str) -> list[tuple[str, int]]:
    """Check the whole batch (JSON syntax, an object of lists, each collection once) without
    keeping its events; ``[(collection, offset of its list)]``."""
    pos = _skip(text, 0)
    if text[pos:pos + 1] != "{":
        raise _invalid_batch("the body is not a JSON object")
    found: list[tuple[str, int]] = []
    count = 0
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == "}":
        pos += 1
    else:
        while True:
            if text[pos:pos + 1] != '"':
                raise _invalid_batch(f"a collection name was expected at offset {pos}")
            name, pos = _decode(text, pos)
            pos = _skip(text, pos)
            if text[pos:pos + 1] != ":":
                raise _invalid_batch(f"':' was expected at offset {pos}")
            pos = _skip(text, pos + 1)
            if name in (known for known, _ in found):
                raise _invalid_batch(f"the collection {name!r} appears twice")
            if text_problem(name):  # the answer could not even name it
                raise _invalid_batch(f"the collection name {name!r} {text_problem(name)}")
            found.append((name, pos))
            end = [pos]
            for _ in _list_items(text, pos, end):
                count += 1
                if count > MAX_BATCH_EVENTS:
                    raise ApiError(413, TOO_LARGE, f"The batch holds more than "
                                                   f"{MAX_BATCH_EVENTS} events.")
            pos = _skip(text, end[0])
            if text[pos:pos + 1] == ",":
                pos = _skip(text, pos + 1)
            elif text[pos:pos + 1] == "}":
                pos += 1
                break
            else:
                raise _invalid_batch(f"',' or '}}' was expected at offset {pos}")
    if _skip(text, pos) != len(text):
        raise _invalid_batch(f"extra data after the batch at offset {pos}")
    return found


def _decode(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except ValueError as exc:
        raise _invalid_batch(f"the body is not valid JSON ({exc})") from None
    except RecursionError:
        raise _invalid_batch("an event is nested too deeply") from None


def _list_items(text: str, pos: int, end: list[int]) -> Iterator[tuple[Any, int, int]]:
    """The values of the JSON list at ``pos`` with their offsets; ``end[0]`` is set to the
    offset after the list."""
    if text[pos:pos + 1] != "[":
        raise _invalid_batch(f"a list of events was expected at offset {pos}")
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == "]":
        end[0] = pos + 1
        return
    while True:
        value, stop = _decode(text, pos)
        yield value, pos, stop
        pos = _skip(text, stop)
        if text[pos:pos + 1] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos:pos + 1] == "]":
            end[0] = pos + 1
            return
        else:
            raise _invalid_batch(f"',' or ']' was expected at offset {pos}")


def _batch_events(text: str, start: int, check_size: bool,
                  values: Mapping[str, str] | None) -> Iterator[Any]:
    """The events of one collection's list, parsed one at a time; an event over
    ``MAX_EVENT_BYTES`` (as sent) comes as an ``EventError``."""
    for event, begin, stop in _list_items(text, start, [start]):
        # UTF-8 takes at most 4 bytes a character: encode only events that could be too big.
        if check_size and (stop - begin) * 4 > MAX_EVENT_BYTES and len(
                text[begin:stop].encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
            yield EventError("EventTooLargeError",
                             f"The event is larger than {MAX_EVENT_BYTES} bytes.")
            continue
        yield event if values is None else _fill_placeholders(event, values)


def _placeholder_values(call: Call) -> dict[str, str]:
    return {"${keen.ip}": call.request.client_address,
            "${keen.user_agent}": call.request.headers.get("user-agent", "")}


def collection_or_beacon(call: Call, collection: str) -> Response:
    if "data" not in call.request.query:
        return json_response(200, _schema(call, collection))
    call.principal.require(WRITES)
    event = _beacon_event(call.request.query["data"])
    redirect = call.request.query.get("redirect")
    if redirect and any(ord(c) < 0x20 or ord(c) == 0x7F for c in redirect):
        # It becomes the Location header: CR/LF would split the answer (checked before recording).
        raise bad_request("InvalidParameterError",
                          "redirect must be a URL without control characters.")
    if call.request.method != "HEAD":  # HEAD is safe: a link checker records nothing
        _record_one(call, collection, event)
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


def _beacon_event(data: str) -> Any:
    text = data.strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise bad_request("InvalidEventError",
                          "The data parameter must be base64-encoded JSON.") from exc


ROUTES: list[Route] = [
    (("events",), {"GET": list_collections, "POST": post_batch}),
    (("events", "*"), {"GET": collection_or_beacon, "POST": post_event,
                       "DELETE": delete_events}),
    (("events", "*", "properties"), {"GET": list_properties}),
    (("events", "*", "properties", "*"), {"GET": get_property, "DELETE": delete_property}),
]
