"""Query filters (keen-api.md 7.6): validation, a Python reference evaluator, and SQL compilation.

Every filter is compiled to a SQLite expression over the stored event JSON (``json_extract``,
``json_type``, ``json_each``) so that queries run inside SQLite; ``event_matches`` is the same
semantics in plain Python, used where SQLite cannot address a property (a name containing ``"``)
and as the reference the tests compare the SQL with.

Semantics (the [INF] choices of keen-api.md 7.6, written down):

* Values compare as JSON values (``canonical_json``): ``true`` is not ``1``, ``"1"`` is not ``1``,
  ``1`` equals ``1.0``, lists element by element, objects whatever their member order, strings
  whole: a NUL inside a string is part of it for every operator (SQLite's JSON functions would
  cut the string there, so an event holding one is evaluated by ``event_matches``).
* ``eq``: equal; on a list property it also matches when **any element** equals the value.
  ``eq null`` matches an explicit ``null`` **and a missing property**.
* ``ne``: exactly ``not eq`` (so a missing property matches ``ne 5`` but not ``ne null``).
* ``in``: ``eq`` against any of the listed values (a list property matches on any overlap; a
  ``null`` in the list matches missing properties).
* ``lt``/``lte``/``gt``/``gte``: numbers with numbers, strings with strings (code-point order);
  any element of a list property may match; missing, ``null``, booleans and mismatched types never
  match.
* On ``keen.timestamp`` and ``keen.created_at``, ``eq``/``ne``/``in`` and the ordering operators
  read an ISO-8601 value as its instant (any offset, truncated to the millisecond like stored
  timestamps): ``in`` is ``eq`` against each listed value. Other values compare as JSON.
* ``exists``: ``true`` when the property is present, **even when its value is null**; ``false``
  when it is absent. The value must be a boolean.
* ``contains``: substring of a string property; on a list property, an element equal to the
  value or a string element containing it. ``not_contains`` is its negation, so a missing property
  matches ``not_contains``.
* ``regex``: Python :mod:`re` syntax, ``re.search`` (unanchored) on string values or string
  elements of a list; patterns that could backtrack without bound are refused
  (:mod:`keen.server._regex_guard`).
* ``within``: only on ``keen.location.coordinates`` (``[longitude, latitude]``); value
  ``{"coordinates": [lon, lat], "max_distance_miles": d}``; great-circle distance <= d.
* ``or``: ``{"operator": "or", "operands": [<filter>, ...]}`` (``property_value`` is accepted
  in place of ``operands``); matches when any operand matches.
* Arrays of objects cannot be filtered into (a dotted path does not enter a list).
* Unknown keys in a filter (such as the UI's ``property_type``) are ignored.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Callable

from keen.server._errors import QueryError, bad_request
from keen.server._regex_guard import regex_problem
from keen.server.limits import deadline_passed, timeout_error
from keen.server.timeframes import format_timestamp, parse_iso, to_micros

__all__ = [
    "MISSING",
    "OPERATORS",
    "Column",
    "canonical_json",
    "compile_filters",
    "event_matches",
    "normalize_filters",
    "register_functions",
    "remove_sql",
    "sort_key",
    "value_at",
]

OPERATORS = frozenset(
    {"eq", "ne", "lt", "lte", "gt", "gte", "exists", "in", "contains", "not_contains",
     "within", "regex", "or"}
)
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_COMPARISONS = frozenset({"eq", "ne", *_ORDERING})
_TIMESTAMPS = frozenset({"keen.timestamp", "keen.created_at"})
_GEO_PROPERTY = "keen.location.coordinates"
_EARTH_RADIUS_MILES = 3958.7613
MISSING = object()

Filter = dict[str, Any]


# --------------------------------------------------------------------------- validation

def _filter_error(message: str) -> QueryError:
    return bad_request("InvalidFilterError", message)


def normalize_filters(filters: Any) -> list[Filter]:
    """Check the shape of a filter list; returns it (as a list). Raises QueryError (400)."""
    if filters is None:
        return []
    if isinstance(filters, str):  # JSON text where a list was due
        try:
            filters = json.loads(filters)
        except (ValueError, RecursionError):
            raise _filter_error("filters is not valid JSON.") from None
    if not isinstance(filters, list):
        raise _filter_error("filters must be a list of {property_name, operator, property_value}.")
    return [_normalize_one(item) for item in filters]


def _normalize_one(item: Any) -> Filter:
    if not isinstance(item, dict):
        raise _filter_error(f"Each filter must be an object, not {item!r}.")
    operator = item.get("operator")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise _filter_error(
            f"Unknown filter operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}."
        )
    if operator == "or":
        operands = item.get("operands", item.get("property_value"))
        if not isinstance(operands, list):
            raise _filter_error("An 'or' filter needs 'operands': a list of filters.")
        return {"operator": "or", "operands": [_normalize_one(op) for op in operands]}
    name = item.get("property_name")
    if not isinstance(name, str) or not name:
        raise _filter_error(f"A {operator!r} filter needs a property_name.")
    if "property_value" not in item:
        raise _filter_error(f"The filter on {name!r} needs a property_value.")
    value = item["property_value"]
    problem = _value_problem(name, operator, value)
    if problem:
        raise _filter_error(f"The {operator!r} filter on {name!r} {problem}.")
    if name in _TIMESTAMPS and operator in _COMPARISONS:
        value = _as_instant(value)
    elif name in _TIMESTAMPS and operator == "in":
        value = [_as_instant(choice) for choice in value]  # "in" is "eq" against each value
    return {"property_name": name, "operator": operator, "property_value": value}


def _as_instant(value: Any) -> Any:
    """An ISO-8601 value as the stored text of its instant (UTC, ``...mmmZ``: truncated to the
    millisecond, the precision timestamps are stored at); anything else unchanged."""
    micros = _timestamp_micros(value)
    return value if micros is None else format_timestamp(micros)


def _too_big(value: Any) -> bool:
    """An integer SQLite cannot hold (anywhere inside ``value``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if isinstance(value, list):
        return any(_too_big(v) for v in value)
    if isinstance(value, dict):
        return any(_too_big(v) for v in value.values())
    return False


def _value_problem(name: str, operator: str, value: Any) -> str | None:
    if _too_big(value):
        return "has a number outside the signed 64-bit range"
    if operator == "exists" and not isinstance(value, bool):
        return "needs property_value true or false"
    if operator == "in" and not isinstance(value, list):
        return "needs a list as property_value"
    if operator in _ORDERING and (
        isinstance(value, bool) or not isinstance(value, (int, float, str))
    ):
        return "needs a number or a string as property_value"
    if operator == "regex":
        if not isinstance(value, str):
            return "needs a regular expression string as property_value"
        return regex_problem(value)
    if operator == "within":
        if name != _GEO_PROPERTY:
            raise bad_request(
                "InvalidPropertyNameForGeoFilter",
                "You specified a geo filter on a property other than keen.location.coordinates, "
                f"which is not allowed. You specified: '{name}'.",
            )
        if _geo_target(value) is None:
            return 'needs {"coordinates": [longitude, latitude], "max_distance_miles": <number>}'
    return None


def _geo_target(value: Any) -> tuple[float, float, float] | None:
    if not isinstance(value, dict):
        return None
    coords, miles = value.get("coordinates"), value.get("max_distance_miles")
    numbers = [*coords, miles] if isinstance(coords, list) and len(coords) == 2 else []
    if not numbers or any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers):
        return None
    return float(numbers[0]), float(numbers[1]), float(numbers[2])


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --------------------------------------------------------------------------- Python evaluator

def value_at(event: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in ``event``, or ``MISSING``."""
    current: Any = event
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return current


_INT64 = 2**63


def _number(text: str) -> int | float:
    """A JSON number with a fraction or an exponent: an int when integral (and in the signed
    64-bit range, like stored integers), else the float."""
    value = float(text)
    return int(value) if value.is_integer() and -_INT64 <= value < _INT64 else value


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a JSON value: two values are equal as JSON values exactly
    when their canonical texts are equal.

    Numbers compare by value (``1``, ``1.0`` and ``1e0`` are one number, written ``1``; other
    floats in Python's shortest round-tripping form), objects by their members whatever their
    order (keys sorted by code point), lists element by element, recursively. Booleans are not
    numbers (``true`` is not ``1``), strings are compared whole (a NUL included). Decoding it
    gives the representative the server shows for the value.
    """
    return canonical_text(json.dumps(value, ensure_ascii=False, allow_nan=False))


def canonical_text(text: str) -> str:
    """``canonical_json`` of a JSON text (no recursion in Python: deep lists are fine)."""
    return json.dumps(json.loads(text, parse_float=_number), ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True)


def sort_key(value: Any) -> tuple[Any, ...]:
    """Total order over JSON values: null < booleans < numbers < strings < lists < objects;
    lists compare element by element (``["a"]`` before ``["a", "b"]`` before ``["b"]``),
    objects by their ``canonical_json`` text."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, tuple(sort_key(item) for item in value))
    return (5, canonical_json(value))


def _elements(value: Any) -> Iterable[Any]:
    """The value itself, then its elements when it is a list ("any element" semantics)."""
    yield value
    if isinstance(value, list):
        yield from value


def _ordered(left: Any, operator: str, right: Any) -> bool:
    both_numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)
    )
    if not both_numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if operator == "lt":
        return bool(left < right)
    if operator == "lte":
        return bool(left <= right)
    if operator == "gt":
        return bool(left > right)
    return bool(left >= right)


def _contains(value: Any, wanted: Any) -> bool:
    if isinstance(value, str):
        return isinstance(wanted, str) and wanted in value
    if isinstance(value, list):
        target = canonical_json(wanted)
        return any(
            canonical_json(e) == target
            or (isinstance(e, str) and isinstance(wanted, str) and wanted in e)
            for e in value
        )
    return False


def _miles(coords: Any, target: tuple[float, float, float]) -> bool:
    if not isinstance(coords, list) or len(coords) != 2:
        return False
    if any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in coords):
        return False
    lon1, lat1, lon2, lat2 = map(math.radians, (coords[0], coords[1], target[0], target[1]))
    half = (math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    distance = 2 * _EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(half)))
    return distance <= target[2]


def _timestamp_micros(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return to_micros(parse_iso(value))
    except ValueError:
        return None


def _matches(event: Mapping[str, Any], flt: Filter) -> bool:
    operator: str = flt["operator"]
    if operator == "or":
        return any(_matches(event, op) for op in flt["operands"])
    name, wanted = flt["property_name"], flt["property_value"]
    value = value_at(event, name)
    if operator == "exists":
        return (value is not MISSING) is wanted
    if operator in ("eq", "ne", "in"):
        choices = wanted if operator == "in" else [wanted]
        if value is MISSING:
            hit = any(c is None for c in choices)
        else:
            targets = {canonical_json(c) for c in choices}
            hit = any(canonical_json(e) in targets for e in _elements(value))
        return hit != (operator == "ne")
    if value is MISSING:
        return operator == "not_contains"
    if operator in _ORDERING:
        return any(_ordered(e, operator, wanted) for e in _elements(value))
    if operator in ("contains", "not_contains"):
        return _contains(value, wanted) is not (operator == "not_contains")
    if operator == "regex":
        if deadline_passed():  # as in _sql_regexp: one search may take a noticeable time
            raise timeout_error()
        pattern = _compiled(wanted)
        return any(isinstance(e, str) and pattern.search(e) is not None for e in _elements(value))
    target = _geo_target(wanted)
    return target is not None and _miles(value, target)


def event_matches(event: Mapping[str, Any], filters: Sequence[Filter]) -> bool:
    """True when ``event`` passes every (normalised) filter."""
    return all(_matches(event, flt) for flt in filters)


# --------------------------------------------------------------------------- SQL compilation

# Characters JSON escapes in a key (``"``, ``\\``, control characters): SQLite compares a path
# label with the key's escaped text, so such names go through the Python functions instead.
_ESCAPED_IN_JSON = re.compile(r'["\\\x00-\x1f]')


def _sqlite_path(path: str) -> str | None:
    """SQLite JSON path for a dotted property path, or None when SQLite cannot address it."""
    parts = path.split(".")
    if any(not part or _ESCAPED_IN_JSON.search(part) for part in parts):
        return None
    return "$" + "".join(f'."{part}"' for part in parts)


def _literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


_HAS_ARROW = sqlite3.sqlite_version_info >= (3, 38, 0)
# A NUL in a stored string is the JSON escape \u0000 in the event text, so ``<text> GLOB
# _HAS_NUL`` (SQL has no escapes in literals; GLOB is much faster than instr here) is true for
# every event holding one (and for the rare text holding a backslash before "u0000").
_HAS_NUL = "'*\\u0000*'"


class Column:
    """SQL expressions reading one dotted property of the JSON column ``body``.

    ``value`` is the SQL value (JSON true reads as 1: always pair it with ``type``; lists and
    objects read as their JSON text), ``type`` the JSON type name (NULL when missing) and ``repr``
    the JSON text of the value (NULL when missing). Paths SQLite cannot address go through
    Python functions with the same results.
    """

    def __init__(self, path: str, body: str = "body") -> None:
        self.path = path
        sql_path = _sqlite_path(path)
        self.native = sql_path is not None
        if sql_path is not None:
            lit = _literal(sql_path)
            self.value, self.type = f"json_extract({body}, {lit})", f"json_type({body}, {lit})"
            # Before SQLite 3.38 there is no ``->``: rebuild the JSON text from type and value
            # (in Python when a string may hold a NUL, which json_extract would cut).
            self.repr = f"({body} -> {lit})" if _HAS_ARROW else (
                f"(CASE WHEN {body} GLOB {_HAS_NUL} "
                f"THEN keen_repr({body}, {_path_literal(path)}) "
                f"ELSE CASE {self.type} WHEN 'text' THEN json_quote({self.value}) "
                f"WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' "
                f"ELSE CAST({self.value} AS TEXT) END END)"
            )
            self.elements = f"json_each({body}, {lit})"
        else:
            lit = _path_literal(path)
            self.value, self.type = f"keen_value({body}, {lit})", f"keen_type({body}, {lit})"
            self.repr = f"keen_repr({body}, {lit})"
            self.elements = ""


def _path_literal(path: str) -> str:
    """A dotted path for the Python SQL functions, as a literal of its JSON text (ASCII: SQL
    text cannot hold every character a property name may have, such as NUL)."""
    return _literal(json.dumps(path))


def remove_sql(path: str, body: str = "body") -> str:
    """SQL giving ``body`` without the dotted property ``path``."""
    sql_path = _sqlite_path(path)
    if sql_path is None:
        return f"keen_remove({body}, {_path_literal(path)})"
    return f"json_remove({body}, {_literal(sql_path)})"


def _is_type(type_: str, *kinds: str) -> str:
    """SQL true when the JSON type expression is one of ``kinds``; false (never NULL) when the
    property is missing, so the compiled filters can be negated safely."""
    return "(" + " OR ".join(f"{type_} IS {_literal(kind)}" for kind in kinds) + ")"


def _scalar(operator: str, wanted: Any, value: str, type_: str) -> tuple[str, list[Any]]:
    """SQL that is true when one JSON scalar (``value``/``type_`` expressions) satisfies
    ``operator``/``wanted`` without looking into lists. Never NULL."""
    if operator in ("eq", "in"):
        choices = wanted if operator == "in" else [wanted]
        parts: list[str] = []
        params: list[Any] = []
        numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        strings = [c for c in choices if isinstance(c, str)]
        kinds = sorted({"true" if c else "false" for c in choices if isinstance(c, bool)}
                       | ({"null"} if any(c is None for c in choices) else set()))
        containers = [c for c in choices if isinstance(c, (list, dict))]
        if strings:  # the usual case first: SQLite stops at the first true operand
            marks = ", ".join("?" * len(strings))
            parts.append(f"({value} IN ({marks}) AND {_is_type(type_, 'text')})")
            params += strings
        if numbers:
            marks = ", ".join("?" * len(numbers))
            parts.append(f"({value} IN ({marks}) AND {_is_type(type_, 'integer', 'real')})")
            params += numbers
        if kinds:
            parts.append(_is_type(type_, *kinds))
        for container in containers:
            parts.append(
                f"({_is_type(type_, 'array', 'object')} AND keen_json_eq({value}, ?))"
            )
            params.append(json.dumps(container))
        return ("(" + " OR ".join(parts) + ")" if parts else "0"), params
    if operator in _ORDERING:
        ordered = ("text",) if isinstance(wanted, str) else ("integer", "real")
        return f"({_is_type(type_, *ordered)} AND {value} {_ORDERING[operator]} ?)", [wanted]
    if operator == "contains":
        eq_sql, eq_params = _scalar("eq", wanted, value, type_)
        if not isinstance(wanted, str):
            return eq_sql, eq_params
        substring = f"({_is_type(type_, 'text')} AND instr({value}, ?) > 0)"
        return f"({eq_sql} OR {substring})", [*eq_params, wanted]
    if operator == "regex":
        return f"({_is_type(type_, 'text')} AND keen_regexp(?, {value}))", [wanted]
    raise AssertionError(operator)  # pragma: no cover - callers only pass the operators above


def _any_element(operator: str, wanted: Any, column: Column) -> tuple[str, list[Any]]:
    """SQL true when the property, or any element of it when it is a list, passes the scalar
    test (``contains`` on the property itself is only the substring test)."""
    if operator == "contains":
        if isinstance(wanted, str):
            direct_sql = f"({_is_type(column.type, 'text')} AND instr({column.value}, ?) > 0)"
            direct_params: list[Any] = [wanted]
        else:
            direct_sql, direct_params = "0", []
    else:
        direct_sql, direct_params = _scalar(operator, wanted, column.value, column.type)
    elem_sql, elem_params = _scalar(operator, wanted, "je.value", "je.type")
    # Only our own expressions and quoted literals are interpolated; values are bound.
    sql = (
        f"({direct_sql} OR ({_is_type(column.type, 'array')} AND EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {column.elements} AS je WHERE {elem_sql})))"
    )
    return sql, [*direct_params, *elem_params]


def _compile_one(flt: Filter, body: str) -> tuple[str, list[Any]]:
    operator = flt["operator"]
    if operator == "or":
        if not flt["operands"]:
            return "0", []
        compiled = [_compile_one(op, body) for op in flt["operands"]]
        return (
            "(" + " OR ".join(sql for sql, _ in compiled) + ")",
            [p for _, params in compiled for p in params],
        )
    name, wanted = flt["property_name"], flt["property_value"]
    column = Column(name, body)
    if not column.native:
        return f"keen_filter({body}, ?)", [json.dumps(flt)]
    if operator == "exists":
        return f"({column.type} IS {'NOT ' if wanted else ''}NULL)", []
    if name == "keen.timestamp" and operator in (*_ORDERING, "eq", "ne", "in"):
        # The stored instant (the ``ts`` column): the same answer as the JSON text, faster.
        instants = [_timestamp_micros(c) for c in (wanted if operator == "in" else [wanted])]
        if instants and None not in instants:
            if operator == "in":
                return f"(ts IN ({', '.join('?' * len(instants))}))", instants
            symbol = {"eq": "=", "ne": "!=", **_ORDERING}[operator]
            return f"(ts {symbol} ?)", instants
    if operator == "within":
        target = _geo_target(wanted)
        assert target is not None  # checked by normalize_filters
        return f"keen_within({column.value}, ?, ?, ?)", list(target)
    negate = operator in ("ne", "not_contains")
    positive = str({"ne": "eq", "not_contains": "contains"}.get(operator, operator))
    sql, params = _any_element(positive, wanted, column)
    choices = wanted if positive == "in" else [wanted]
    if positive in ("eq", "in") and any(c is None for c in choices):
        sql, params = f"({column.type} IS NULL OR {sql})", params
    sql = f"({'NOT ' if negate else ''}{sql})"
    if positive == "regex" or any(isinstance(c, str) for c in choices):
        # SQLite's JSON functions cut a string at an escaped NUL ("nul\u0000byte" reads as
        # "nul"), so an event holding one anywhere is tested whole by the Python evaluator.
        # (Not a CASE: SQLite runs these forms about twice as fast.)
        has_nul = f"{body} GLOB {_HAS_NUL}"
        if operator in ("eq", "in") and not any(
            isinstance(c, str) and "\x00" in c for c in choices
        ):
            # A cut string can only make eq/in match more (never less) when the wanted
            # strings hold no NUL: only the events SQL matched need the second look.
            sql = f"({sql} AND (NOT {has_nul} OR keen_filter({body}, ?)))"
        else:
            sql = f"((NOT {has_nul} AND {sql}) OR ({has_nul} AND keen_filter({body}, ?)))"
        params = [*params, json.dumps(flt)]
    return sql, params


def compile_filters(filters: Sequence[Filter], body: str = "body") -> tuple[str, list[Any]]:
    """One SQL boolean expression (AND of all filters) over the JSON column ``body``."""
    if not filters:
        return "1", []
    compiled = [_compile_one(flt, body) for flt in filters]
    return " AND ".join(sql for sql, _ in compiled), [p for _, ps in compiled for p in ps]


# --------------------------------------------------------------------------- SQL functions

def _sql_value(body: str, path_json: str) -> Any:
    value = value_at(json.loads(body), json.loads(path_json))
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _sql_type(body: str, path_json: str) -> str | None:
    value = value_at(json.loads(body), json.loads(path_json))
    if value is MISSING:
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "array" if isinstance(value, list) else "object"


def _sql_repr(body: str, path_json: str) -> str | None:
    value = value_at(json.loads(body), json.loads(path_json))
    if value is MISSING:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _sql_filter(body: str, filter_json: str) -> int:
    return int(_matches(json.loads(body), json.loads(filter_json)))


def _sql_regexp(pattern: str, text: Any) -> int:
    # One search may take a noticeable time (the guard allows quadratic patterns) and SQLite's
    # progress handler counts VM steps, not time: look at the query deadline on every call.
    if deadline_passed():
        raise timeout_error()
    return int(isinstance(text, str) and _compiled(pattern).search(text) is not None)


def _sql_within(coords: Any, lon: float, lat: float, miles: float) -> int:
    if not isinstance(coords, str):
        return 0
    return int(_miles(json.loads(coords), (lon, lat, miles)))


def _sql_json_eq(text: Any, wanted_json: str) -> int:
    if not isinstance(text, str):
        return 0
    return int(canonical_text(text) == canonical_text(wanted_json))


_CACHED_TEXT = 512  # characters: the cache holds at most 4096 of them (a few MiB)


@lru_cache(maxsize=4096)
def _cached_canonical(text: str) -> str:
    return canonical_text(text)


def _sql_canonical(text: str) -> str:
    # Group values and actors repeat, so most calls are cache hits; long texts are not kept.
    return _cached_canonical(text) if len(text) <= _CACHED_TEXT else canonical_text(text)


def _sql_remove(body: str, path_json: str) -> str:
    event = json.loads(body)
    *parents, leaf = json.loads(path_json).split(".")
    node = event
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "keen_remove": (2, _sql_remove),
    "keen_value": (2, _sql_value),
    "keen_type": (2, _sql_type),
    "keen_repr": (2, _sql_repr),
    "keen_filter": (2, _sql_filter),
    "keen_regexp": (2, _sql_regexp),
    "keen_within": (4, _sql_within),
    "keen_json_eq": (2, _sql_json_eq),
    "keen_canonical": (1, _sql_canonical),
}


def register_functions(connection: Any) -> None:
    """Install the Python helpers the compiled SQL may call on a sqlite3 connection."""
    for name, (arity, function) in _FUNCTIONS.items():
        connection.create_function(name, arity, function, deterministic=True)
