"""JSON encoding of what users send: event bodies, batches, query parameters.

One encoder, on the add_event hot path, so it is ``json.dumps`` with a ``default`` hook and no
walk over the data beforehand. The output is what ``json.dumps`` gives with its default
separators (``", "`` and ``": "``), as keen 0.7.0 sent. On top of plain JSON:

* ``datetime``: aware ones are converted to UTC; both render as ISO-8601 (``isoformat()``);
  naive datetimes are sent as they are (the API reads a zone-less timestamp as UTC).
* ``date``: ISO-8601 (``2024-05-01``). ``time``: ISO-8601.
* ``Decimal``: a JSON number (an int when integral, else a float; the API stores doubles).
* ``UUID``: its canonical string. ``set`` / ``frozenset``: a list (sorted when sortable).
  Any other ``Mapping``: an object, like a dict.
  ``tuple``: a list (plain JSON already does this).

NaN and infinities are refused (they are not JSON and the API rejects them).
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

from keen.exceptions import InvalidEventError

__all__ = ["dumps", "dumps_compact", "encode_event", "encode_value", "validate_collection_name"]

_UTC = datetime.timezone.utc


def encode_value(value: Any) -> Any:
    """The JSON-native stand-in for one non-JSON value; TypeError when there is none."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(_UTC)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        integral = value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, Mapping):  # a mapping that is not a dict (MappingProxyType...)
        return dict(value)
    raise TypeError(f"values of type {type(value).__name__} cannot be sent as JSON")


_encoder = json.JSONEncoder(default=encode_value, allow_nan=False)
_compact_encoder = json.JSONEncoder(default=encode_value, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """JSON text for ``value`` (TypeError / ValueError when it cannot be encoded)."""
    return _encoder.encode(value)


def dumps_compact(value: Any) -> str:
    """Like :func:`dumps`, without spaces after separators (for scoped keys: shorter keys)."""
    return _compact_encoder.encode(value)


def encode_event(body: Mapping[str, Any]) -> str:
    """The JSON text of one event body; InvalidEventError naming the bad value otherwise."""
    if not isinstance(body, Mapping):
        raise InvalidEventError(
            f"An event body must be a dict, not {type(body).__name__}."
        )
    try:
        return _encoder.encode(body)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"The event cannot be encoded as JSON: {_describe_problem(body)} ({exc})."
        ) from None


def _describe_problem(value: Any, path: str = "") -> str:
    """Where in ``value`` encoding fails (only called after it did: the slow path)."""
    found = _find_bad(value, path, set())
    return found if found is not None else "a value is not JSON"


def _find_bad(value: Any, path: str, seen: set[int]) -> str | None:
    if isinstance(value, (str, int, bool)) or value is None:
        return None
    if isinstance(value, float):
        finite = value == value and abs(value) != float("inf")
        return None if finite else f"{path or 'body'} is {value}"
    if isinstance(value, (set, frozenset)):
        value = list(value)
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in seen:
            return f"{path or 'body'} contains itself"
        seen = seen | {id(value)}
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    return f"{path or 'body'} has a key of type {type(key).__name__}"
                where = _find_bad(item, f"{path}.{key}" if path else str(key), seen)
                if where is not None:
                    return where
        else:
            for index, item in enumerate(value):
                where = _find_bad(item, f"{path}[{index}]", seen)
                if where is not None:
                    return where
        return None
    try:
        encode_value(value)
    except (TypeError, ValueError):
        return f"{path or 'body'} is of type {type(value).__name__}"
    return None


def validate_collection_name(name: Any) -> str:
    """``name`` if it can name an event collection; InvalidEventError otherwise.

    Only what the client can know is checked: a non-empty string (the API checks the rest, such
    as the 64-character limit, and answers with an error naming it).
    """
    if not isinstance(name, str) or not name:
        raise InvalidEventError(
            f"An event collection name must be a non-empty string, not {name!r}."
        )
    return name
