"""Turning what the user typed into API values: filters, timeframes, JSON documents, orders.

Every function raises :class:`UsageError` naming the flag and the problem, before any request.

Filters (``--filter``, repeatable, all must match) come in two forms:

* compact: ``'PROPERTY OPERATOR VALUE'``, e.g. ``'price gte 10'``, ``'user.name eq Ada Lovelace'``.
  The value is read as JSON when it parses as JSON (``10``, ``true``, ``null``, ``["a", "b"]``,
  ``"10"`` for the string) and is the text itself otherwise (``Ada Lovelace``).
* JSON: a filter object ``{"property_name": ..., "operator": ..., "property_value": ...}`` or a
  list of them.

Timeframes (``--timeframe``): a relative one (``this_7_days``, ``previous_month``), a JSON object
``{"start": ISO, "end": ISO}``, or the shorthand ``START..END`` for that object.

JSON documents (``--steps``, ``--analyses``, ``--options``, ``--file``): JSON text when it starts
with ``{`` or ``[``, ``-`` for standard input, a file name otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = [
    "OPERATORS",
    "UsageError",
    "load_json",
    "parse_filter",
    "parse_filters",
    "parse_order_by",
    "parse_timeframe",
    "parse_timezone",
]

#: The filter operators of the API (keen-api.md 7.6).
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "exists", "in", "contains", "not_contains",
             "within", "regex", "or")


class UsageError(ValueError):
    """The command line is wrong; the message names the flag and says what is expected."""


#: The timeframe of an export without --timeframe.
ALL_TIME = {"start": "0001-01-01T00:00:00.000Z", "end": "9999-12-31T23:59:59.999Z"}


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text!r}")
    return value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_filter(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: a filter must be a JSON object, not {json.dumps(item)[:60]}")
    operator = item.get("operator")
    if operator not in OPERATORS:
        raise UsageError(f"{where}: unknown operator {operator!r}; one of: "
                         f"{', '.join(OPERATORS)}")
    if operator != "or":
        name = item.get("property_name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: the filter needs a property_name")
        if "property_value" not in item:
            raise UsageError(f"{where}: the filter needs a property_value")
    return item


def parse_filter(text: str) -> list[dict[str, Any]]:
    """The filters one ``--filter`` stands for (a JSON list gives several)."""
    where = f"--filter {text!r}"
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc})") from None
        items = value if isinstance(value, list) else [value]
        return [_check_filter(item, where) for item in items]
    parts = stripped.split(None, 2)
    if len(parts) < 3:
        raise UsageError(f"{where}: expected 'PROPERTY OPERATOR VALUE' (e.g. 'price gte 10') "
                         "or a JSON filter object")
    name, operator, value = parts
    if operator not in OPERATORS or operator == "or":
        raise UsageError(f"{where}: unknown operator {operator!r}; one of: "
                         f"{', '.join(o for o in OPERATORS if o != 'or')}")
    return [{"property_name": name, "operator": operator, "property_value": _json_or_text(value)}]


def parse_filters(texts: list[str] | None) -> list[dict[str, Any]] | None:
    """All the ``--filter`` values as one list (None when there are none)."""
    if not texts:
        return None
    return [item for text in texts for item in parse_filter(text)]


def parse_timeframe(text: str | None) -> str | dict[str, Any] | None:
    """A relative timeframe as is, ``{...}`` as JSON, ``START..END`` as an absolute one."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        raise UsageError("--timeframe: empty")
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(f"--timeframe: not valid JSON ({exc})") from None
        if not isinstance(value, dict) or not {"start", "end"} <= set(value):
            raise UsageError('--timeframe: an absolute timeframe needs "start" and "end"')
        return value
    if ".." in stripped:
        start, _, end = stripped.partition("..")
        if not start.strip() or not end.strip():
            raise UsageError(f"--timeframe {text!r}: expected START..END")
        return {"start": start.strip(), "end": end.strip()}
    return stripped


def parse_timezone(text: str | None) -> str | int | None:
    """A number of seconds as an int, a zone name as is."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def parse_order_by(texts: list[str] | None) -> list[dict[str, str]] | None:
    """``--order-by result:desc`` (direction ``asc`` by default), repeatable."""
    if not texts:
        return None
    orders = []
    for text in texts:
        name, direction = text, "ASC"
        head, sep, tail = text.rpartition(":")
        if sep and tail.upper() in ("ASC", "DESC"):
            name, direction = head, tail.upper()
        if not name:
            raise UsageError(f"--order-by {text!r}: expected PROPERTY[:asc|:desc]")
        orders.append({"property_name": name, "direction": direction})
    return orders


def load_json(text: str, flag: str) -> Any:
    """JSON text, ``-`` (standard input) or a file name holding JSON."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        source, where = stripped, "the argument"
    elif stripped == "-":
        source, where = sys.stdin.read(), "standard input"
    else:
        try:
            with open(text, encoding="utf-8") as handle:
                source = handle.read()
        except OSError as exc:
            raise UsageError(f"{flag}: {text!r} is neither JSON nor a readable file "
                             f"({exc.strerror})") from None
        where = f"file {text!r}"
    try:
        return json.loads(source)
    except ValueError as exc:
        raise UsageError(f"{flag}: {where} is not valid JSON ({exc})") from None
