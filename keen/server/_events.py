"""Validation and enrichment of events on write (keen-api.md 4.4-4.7).

Choices where keen-api.md leaves room ([INF] points):

* ``autofill`` (access keys, 4.6) is deep-merged into the event and **autofill wins** on a
  conflict; nested objects present on both sides are merged key by key.
* ``keen.timestamp`` may carry any ISO-8601 offset (none = UTC); it is stored normalised to UTC
  (``...Z``, millisecond precision) and an unparseable value is an ``InvalidPropertyValueError``.
  ``keen.created_at`` and ``keen.id`` (24 hex digits) are always set by the server;
  ``keen.addons`` is dropped. Other ``keen.*`` sub-properties are kept as sent.
* ``keen.uniqueness_token`` must be a string of at most 64 characters. Tokens never expire here
  (the service forgets them after 31 days).
* Limits (:mod:`keen.server.limits`): strings shorter than ``MAX_STRING`` characters, property
  names shorter than ``MAX_PROPERTY_NAME``, at most ``MAX_NESTING`` levels of objects and lists;
  strings and names may not hold lone surrogates (``"\\ud800"``: not Unicode, cannot be stored).
  Each is an ``InvalidPropertyValueError`` / ``InvalidPropertyNameError`` of that event alone.
* Schema types: ``string``, ``num``, ``bool``, ``list``, ``null``, ``datetime`` (only
  ``keen.timestamp`` and ``keen.created_at``), one per dotted path; objects are flattened, lists
  are not. A path seen as ``null`` takes the first non-null type seen later.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from keen.server.limits import MAX_NESTING, MAX_PROPERTY_NAME, MAX_STRING, text_problem
from keen.server.timeframes import format_timestamp, parse_iso, to_micros

__all__ = ["STORED", "EventError", "collection_name_error", "prepare_event", "prepare_events",
           "property_paths"]

STORED: dict[str, Any] = {"success": True}  # the result of every stored event (shared)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_STRING = MAX_STRING
_MAX_PROPERTY_NAME = MAX_PROPERTY_NAME
_MAX_TOKEN = 64
_MAX_DEPTH = MAX_NESTING


class EventError(Exception):
    """One event the API refuses; ``name`` is the API's error name (batch ``error.name``)."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(description)
        self.name = name
        self.description = description

    def as_item(self) -> dict[str, Any]:
        return {"success": False, "error": {"name": self.name, "description": self.description}}


def collection_name_error(name: Any) -> str | None:
    """Why ``name`` is not a valid collection name (keen-api.md 4.5), or None when it is."""
    if not isinstance(name, str) or not name.strip():
        return "Collection names must be non-empty strings."
    if len(name) > 64:
        return f"Collection name {name[:80]!r} is longer than 64 characters."
    if not name.isascii():
        return f"Collection name {name!r} must contain only ASCII characters."
    if "$" in name:
        return f"Collection name {name!r} must not contain '$'."
    if name.startswith("_"):
        return f"Collection name {name!r} must not start with '_'."
    if name.startswith(".") or name.endswith("."):
        return f"Collection name {name!r} must not start or end with '.'."
    return None


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Deep-merge ``extra`` into ``target``; ``extra`` wins on conflicts."""
    for key, value in extra.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge(current, value)
        elif isinstance(value, Mapping):
            target[key] = _deep_copy(value)
        else:
            target[key] = value


def _deep_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in value.items()}


_KINDS: dict[type, str] = {str: "string", bool: "bool", int: "num", float: "num",
                           type(None): "null"}


def _value_error(path: str, problem: str) -> EventError:
    return EventError("InvalidPropertyValueError", f"Property {path!r} {problem}.")


def _check_scalar(path: str, value: Any, kind: str) -> None:
    if kind == "string":
        if len(value) >= _MAX_STRING:
            raise _value_error(
                path, f"is a string of {len(value)} characters; strings must be shorter than "
                f"{_MAX_STRING}"
            )
        if not value.isascii():
            problem = text_problem(value)
            if problem:
                raise _value_error(path, problem)
    elif kind == "num":
        if isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise _value_error(path, "is a number outside the signed 64-bit range")
        elif not math.isfinite(value):
            raise _value_error(path, "is not a finite number")


def _kind_of_other(path: str, value: Any, depth: int) -> str:
    """Schema type of a value that is not a plain JSON scalar or object: lists (checked
    element by element), subclasses of JSON types; anything else is an error."""
    if isinstance(value, list):
        if depth > _MAX_DEPTH:
            raise _value_error(path, f"is nested more than {_MAX_DEPTH} levels deep")
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            kind = _KINDS.get(type(item))
            if kind is not None:
                _check_scalar(item_path, item, kind)
            elif isinstance(item, dict):
                _walk(item, item_path + ".", {}, depth + 1)
            else:
                _kind_of_other(item_path, item, depth + 1)
        return "list"
    for base in (bool, str, int, float):  # bool before int: True is an int
        if isinstance(value, base):
            kind = _KINDS[base]
            _check_scalar(path, value, kind)
            return kind
    if isinstance(value, Mapping):
        raise _value_error(path, "is a mapping that is not a dict")
    raise _value_error(path, f"holds a {type(value).__name__}, which is not a JSON value")


def _walk(obj: Mapping[str, Any], prefix: str, types: dict[str, str], depth: int) -> None:
    """Validate the names and values of an object (keen-api.md 4.5) and record the schema type
    of each dotted path in ``types``. The hot path of ingestion: keep it lean."""
    if depth > _MAX_DEPTH:
        raise _value_error(prefix.rstrip("."), f"is nested more than {_MAX_DEPTH} levels deep")
    for key, value in obj.items():
        if type(key) is not str or not key or key[0] == "$" or "." in key or (
            len(key) >= _MAX_PROPERTY_NAME
        ) or (not key.isascii() and text_problem(key)):
            _bad_name(prefix, key)
        path = prefix + key
        kind = _KINDS.get(type(value))
        if kind is None:
            if type(value) is dict:
                _walk(value, path + ".", types, depth + 1)
                continue
            kind = _kind_of_other(path, value, depth + 1)
        elif kind == "string" or kind == "num":
            _check_scalar(path, value, kind)
        types[path] = kind


def _bad_name(prefix: str, key: Any) -> None:
    where = f" (in {prefix.rstrip('.')!r})" if prefix else ""
    if not isinstance(key, str) or not key:
        problem = "is empty"
    elif len(key) >= _MAX_PROPERTY_NAME:
        problem = f"is {len(key)} characters long; names must be shorter than 256"
    elif key.startswith("$"):
        problem = "starts with '$'"
    elif text_problem(key):
        problem = str(text_problem(key))  # {key!r} below escapes the surrogate
    else:
        problem = "contains '.' (periods address nested properties)"
    raise EventError("InvalidPropertyNameError", f"Property name {key!r}{where} {problem}.")


def prepare_event(
    event: Any,
    *,
    now: datetime,
    now_text: str,
    autofill: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], int, str | None, dict[str, str]]:
    """Validate and enrich one event.

    Returns ``(stored_event, timestamp_micros, uniqueness_token, schema_types)``; raises
    ``EventError`` naming the problem.
    """
    if not isinstance(event, dict):
        raise EventError("InvalidEventError", "An event must be a JSON object.")
    if autofill:
        event = _deep_copy(event)
        _merge(event, autofill)
    keen = event.get("keen")
    if keen is None:
        keen = {}
    elif not isinstance(keen, dict):
        raise EventError("NamespaceTypeError", "The 'keen' property must be an object.")
    else:
        keen = dict(keen)
    keen.pop("addons", None)
    stamp = keen.get("timestamp")
    if stamp is None:
        ts_micros, keen["timestamp"] = to_micros(now), now_text
    else:
        if not isinstance(stamp, str):
            raise EventError(
                "InvalidPropertyValueError", "keen.timestamp must be an ISO-8601 string."
            )
        try:
            parsed = parse_iso(stamp)
        except ValueError:
            raise EventError(
                "InvalidPropertyValueError",
                f"keen.timestamp {stamp[:100]!r} is not an ISO-8601 date-time.",
            ) from None
        ts_micros, keen["timestamp"] = to_micros(parsed), format_timestamp(parsed)
    ts_micros -= ts_micros % 1000  # millisecond precision, like the stored text
    token = keen.get("uniqueness_token")
    if token is not None and (not isinstance(token, str) or len(token) > _MAX_TOKEN):
        raise EventError(
            "InvalidPropertyValueError",
            "keen.uniqueness_token must be a string of at most 64 characters.",
        )
    keen["created_at"] = now_text
    keen["id"] = os.urandom(12).hex()
    stored = dict(event)
    stored["keen"] = keen
    types: dict[str, str] = {}
    _walk(stored, "", types, 1)
    types["keen.timestamp"] = types["keen.created_at"] = "datetime"
    return stored, ts_micros, token, types


def prepare_events(
    events: Iterable[Any],
    *,
    now: datetime,
    autofill: Mapping[str, Any] | None,
    schema: dict[str, str],
) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], int, str | None] | None]]:
    """Validate and enrich ``events`` one at a time, for every engine's ``insert_events``.

    Yields each event's result item (``STORED``, or the refusal of an ``EventError``, which
    ``events`` may also hold as it is) with ``(stored_event, timestamp_micros,
    uniqueness_token)`` when the event is to be stored, and merges the types of its properties
    into ``schema`` (a ``null`` type gives way to the first other one).
    """
    now_text = format_timestamp(now)
    for event in events:
        if isinstance(event, EventError):
            yield event.as_item(), None
            continue
        try:
            stored, ts, token, types = prepare_event(
                event, now=now, now_text=now_text, autofill=autofill
            )
        except EventError as exc:
            yield exc.as_item(), None
            continue
        for path, kind in types.items():
            if schema.get(path, "null") == "null":
                schema[path] = kind
        yield STORED, (stored, ts, token)


def property_paths(event: Mapping[str, Any]) -> set[str]:
    """The dotted property paths of a stored event, as its collection's schema lists them."""
    types: dict[str, str] = {}
    with contextlib.suppress(EventError):  # stored before a rule existed: what was read
        _walk(event, "", types, 1)
    return set(types)
