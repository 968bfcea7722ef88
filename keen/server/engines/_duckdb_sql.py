"""DuckDB SQL for the local server's queries: filters, group keys and aggregates over the
``events`` table of :mod:`keen.server.engines.duckdb` (typed columns for the scalars of each
collection's properties, the rest of each event as JSON text).

Every query reads ``events`` once. A property that only ever held strings, integers, floats or
booleans in the collection is read from its typed columns (``Typed``); any other property is
read with one ``json_extract`` of all the paths the query names per row (the body is parsed
once), combined with its typed columns (``Compiled.value``). Semantics are those of
:mod:`keen.server.filters` and :mod:`keen.server.engine` (JSON value equality: ``1`` equals
``1.0``, ``true`` is not ``1``, lists and objects compare as JSON, key order aside; a list
property matches an operator when any element does; ``eq null`` also matches a missing
property; ``ne`` is "not eq"; strings are whole strings, NUL included).

Python functions registered on every connection, evaluated only on the rows that need them
(``CASE`` is lazy in DuckDB): ``keen_canon`` (the canonical JSON text of a list or object:
sorted keys, integral floats as integers), ``keen_rebuild`` (an object with the typed values of
its descendants put back), ``keen_regexp`` (Python :mod:`re` search, as the API's regex filter
promises), ``keen_value`` (a property whose name holds NUL, which a SQL literal cannot), and
``keen_string_json`` / ``keen_float_json`` (the JSON text Python writes for a string that
needs escapes and for a float that is no integer: group keys rendered by ``Typed.ordered_text``
are the answer's exact text).
"""

from __future__ import annotations

import json
import json.encoder
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keen.server._engine_sql import Scope
from keen.server._json import encode_value
from keen.server.filters import (
    _EARTH_RADIUS_MILES,
    _geo_target,
    _sql_canonical,
    _sql_regexp,
    _timestamp_micros,
    canonical_json,
)

__all__ = ["DEADLINES", "Compiled", "QueryTimedOut", "Typed", "canonical_text",
           "register_functions"]

NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE')"
_encode_string: Callable[[str], str] = json.encoder.encode_basestring
CONTAINER = "('ARRAY', 'OBJECT')"
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def canonical_text(value: Any) -> str:
    """One JSON text per JSON value: ``keen.server.filters.canonical_json`` (the one canonical
    form of the server: sorted keys, integral floats in the int64 range as integers)."""
    return canonical_json(value)


def _canon_sql(text: str | None) -> str | None:
    return None if text is None else _sql_canonical(text)


class _Deadlines:
    """The deadlines of the queries running on DuckDB (``time.monotonic``).

    DuckDB looks at ``interrupt()`` only between vectors of 2,048 rows, and the Python
    functions it calls run on its own threads, which do not see the query's deadline. So
    ``keen_regexp`` (the one function whose single call may take a noticeable time) stops with
    an error once the latest deadline of the running queries has passed: it never stops a query
    still within its own time, and a query past its time no longer waits for a whole vector.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, float] = {}
        self._next = 0
        self.latest = math.inf

    def add(self, deadline: float) -> int:
        with self._lock:
            token = self._next
            self._next += 1
            self._running[token] = deadline
            self.latest = max(self._running.values())
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._running.pop(token, None)
            self.latest = max(self._running.values(), default=math.inf)

    def passed(self) -> bool:
        return time.monotonic() > self.latest


DEADLINES = _Deadlines()


class QueryTimedOut(RuntimeError):
    """Raised by ``keen_regexp`` past every running query's deadline (see ``_Deadlines``)."""


def _value_sql(body: str | None, path_json: str | None) -> str | None:
    if body is None or path_json is None:
        return None
    from keen.server.filters import MISSING, value_at

    value = value_at(json.loads(body), json.loads(path_json))
    return None if value is MISSING else json.dumps(value, ensure_ascii=False)


def _rebuild_sql(body: str | None, names: str | None, leaves: str | None) -> str | None:
    """An object of the JSON body with the typed values of its descendants put back."""
    if body is None or names is None or leaves is None:
        return body
    found = json.loads(body)
    for name, leaf in zip(json.loads(names), json.loads(leaves)):
        if leaf is None:
            continue
        node = found
        *parents, last = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return json.dumps(found, ensure_ascii=False)


def _regexp_sql(pattern: str | None, text: str | None) -> bool:
    if pattern is None or text is None:
        return False
    if DEADLINES.passed():
        raise QueryTimedOut("past the query deadline")
    return bool(_sql_regexp(pattern, text))


def _string_json_sql(text: str) -> str:
    """The JSON text Python writes for a string (the rare strings needing escapes)."""
    return _encode_string(text)


def _float_json_sql(number: float) -> str:
    """The JSON text of a float that is not an integer in the int64 range (as the answer's)."""
    return encode_value(number)


def register_functions(connection: Any) -> None:
    """Install the Python functions of the module docstring on a DuckDB connection."""
    import duckdb

    varchar, boolean = duckdb.sqltype("VARCHAR"), duckdb.sqltype("BOOLEAN")
    connection.create_function("keen_canon", _canon_sql, [varchar], varchar,
                               null_handling="special", side_effects=False)
    connection.create_function("keen_value", _value_sql, [varchar, varchar], varchar,
                               null_handling="special", side_effects=False)
    connection.create_function("keen_rebuild", _rebuild_sql, [varchar, varchar, varchar],
                               varchar, null_handling="special", side_effects=False)
    connection.create_function("keen_regexp", _regexp_sql, [varchar, varchar], boolean,
                               null_handling="special", side_effects=False)
    connection.create_function("keen_string_json", _string_json_sql, [varchar], varchar,
                               side_effects=False)
    connection.create_function("keen_float_json", _float_json_sql, [duckdb.sqltype("DOUBLE")],
                               varchar, side_effects=False)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pointer(path: str) -> str:
    """The JSON pointer of a dotted property path (``a.b`` -> ``/a/b``)."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path.split("."))


def _type(expr: str) -> str:
    return f"json_type({expr})"


def _number(expr: str) -> str:
    return f"TRY_CAST({expr} AS DOUBLE)"


def _string(expr: str) -> str:
    return f"({expr} ->> '$')"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


@dataclass(frozen=True)
class Typed:
    """A property of a collection kept in typed columns ``p<column>_<kind>`` beside the JSON
    body, because every value it ever had there was a string (``s``), an integer (``i``), a
    float (``f``) or a boolean (``b``): never null, a list or an object. Exactly one of its
    columns is set when an event has the property, none when it has not."""

    column: int | str
    kinds: frozenset[str]

    def col(self, kind: str) -> str:
        return f"q.p{self.column}_{kind}"

    def present(self) -> str:
        return "(" + " OR ".join(f"{self.col(k)} IS NOT NULL" for k in sorted(self.kinds)) + ")"

    def number(self) -> str | None:
        parts = ([f"CAST({self.col('i')} AS DOUBLE)"] if "i" in self.kinds else []) + (
            [self.col("f")] if "f" in self.kinds else [])
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"

    def key_columns(self) -> list[str]:
        """SQL columns identifying a value: the number, the string, the boolean."""
        number = self.number()
        return ([number] if number else []) + [self.col(k) for k in ("s", "b") if k in self.kinds]

    def decode(self, row: Sequence[Any]) -> Any:
        """A group key (shared convention) from the ``key_columns`` of one row."""
        position = 0
        if self.number():
            if row[0] is not None:
                return row[0]
            position = 1
        for kind in ("s", "b"):
            if kind in self.kinds:
                value = row[position]
                if value is not None:
                    return _encode_string(value) if kind == "s" else ("true" if value else "false")
                position += 1
        return "null"

    def ordered_text(self, columns: Sequence[str]) -> tuple[str, list[str]]:
        """SQL over this property's ``key_columns`` (named ``columns`` in a grouped select):
        the JSON text the answer shows for the value (``null`` when missing; integral numbers
        in the int64 range as integers, other numbers as Python writes floats, strings escaped
        as Python's ``json`` does), and the ORDER BY terms putting values in
        ``keen.server.filters.sort_key`` order (missing, booleans, numbers, strings; strings by
        code point, which is DuckDB's byte order of UTF-8)."""
        kinds = (["n"] if self.number() else []) + [k for k in ("s", "b") if k in self.kinds]
        named = dict(zip(kinds, columns))  # the order of key_columns
        whens: list[str] = []
        ranks: list[str] = []
        if "b" in named:
            b = named["b"]
            whens.append(f"WHEN {b} THEN 'true' WHEN NOT {b} THEN 'false'")
            ranks.append(f"WHEN {b} IS NOT NULL THEN 1")
        if "n" in named:
            n = named["n"]
            whens.append(f"WHEN {n} = trunc({n}) AND abs({n}) < 9223372036854775808.0 "
                         f"THEN CAST(CAST({n} AS HUGEINT) AS VARCHAR) "
                         f"WHEN {n} IS NOT NULL THEN keen_float_json({n})")
            ranks.append(f"WHEN {n} IS NOT NULL THEN 2")
        if "s" in named:
            s = named["s"]
            whens.append(f"WHEN regexp_matches({s}, '[\\x00-\\x1f\"\\\\]') "
                         f"THEN keen_string_json({s}) "
                         f"WHEN {s} IS NOT NULL THEN '\"' || {s} || '\"'")
            ranks.append(f"WHEN {s} IS NOT NULL THEN 3")
        text = f"(CASE {' '.join(whens)} ELSE 'null' END)"
        order = [f"(CASE {' '.join(ranks)} ELSE 0 END)"]
        order += [named[k] for k in ("b", "n", "s") if k in named]
        return text, order

    def value(self, row: Sequence[Any]) -> Any:
        """The JSON value from the ``key_columns`` of one row (None when missing)."""
        key = self.decode(row)
        return key if not isinstance(key, str) else json.loads(key)


# keen.timestamp is not stored as text: its typed column ``pts_s`` is rendered from ``ts``
# (always four-digit years, milliseconds, Z), like keen.server.timeframes.format_timestamp.
TIMESTAMP_COLUMN = ("ts", "s")
_RENDERED = "pts_s"  # (the name Typed.col gives TIMESTAMP_COLUMN)
_TIMESTAMP_TEXT = (
    "printf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', year(make_timestamp(e.ts)), "
    "month(make_timestamp(e.ts)), day(make_timestamp(e.ts)), hour(make_timestamp(e.ts)), "
    "minute(make_timestamp(e.ts)), second(make_timestamp(e.ts)), "
    "millisecond(make_timestamp(e.ts)) % 1000)"
)


def typed_json(column: int | str, kinds: str, prefix: str = "q") -> str | None:
    """SQL of the JSON value held by a property's typed columns (NULL when none is set)."""
    scalars = [k for k in "sifb" if k in kinds]
    if not scalars:
        return None
    whens = " ".join(f"WHEN {prefix}.p{column}_{k} IS NOT NULL "
                     f"THEN CAST(to_json({prefix}.p{column}_{k}) AS JSON)" for k in scalars)
    return f"(CASE {whens} END)"


@dataclass
class Compiled:
    """SQL over one scope: the properties it reads become ``x[i]`` of the inner select, or
    their typed columns.

    ``columns``: the properties of the collection that have typed columns, as ``path ->
    (column number, kinds seen)``. A scalar held in a typed column is not in the JSON body (the
    body keeps the rest, objects included even when emptied), so the JSON value of a property
    is its typed column, else the body's value with the typed values of its descendants put
    back (``keen_rebuild``). Properties that only ever held scalars are read from their typed
    columns alone (``Typed``).
    """

    scope: Scope
    columns: Mapping[str, tuple[int | str, str]] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    odd: dict[str, int] = field(default_factory=dict)
    composite: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.typed = {path: Typed(column, frozenset(kinds))
                      for path, (column, kinds) in self.columns.items()
                      if kinds and set(kinds) <= set("sifb")}

    def _body_value(self, path: str, prefix: str) -> str:
        if "\x00" in path:  # a SQL literal cannot hold NUL: extract in Python instead
            if path not in self.odd:
                self.odd[path] = len(self.odd)
            return f"{prefix}.y{self.odd[path]}"
        if path not in self.paths:
            self.paths[path] = len(self.paths) + 1
        return f"{prefix}.x[{self.paths[path]}]"

    def value(self, path: str) -> str:
        """The JSON value (SQL NULL when missing) of a dotted property."""
        own = self.columns.get(path)
        below = [(p[len(path) + 1:], c) for p, c in self.columns.items()
                 if p.startswith(path + ".") and typed_json(*c, prefix="r") is not None]
        if (own is None or typed_json(*own) is None) and not below:
            return self._body_value(path, "q")
        if path not in self.composite:
            body = self._body_value(path, "r")
            if below:
                names = _literal(json.dumps([name for name, _ in below]))
                leaves = ", ".join(str(typed_json(*c, prefix="r")) for _, c in below)
                body = (f"(CASE WHEN json_type({body}) = 'OBJECT' THEN CAST(keen_rebuild("
                        f"CAST({body} AS VARCHAR), {names}, CAST(json_array({leaves}) AS VARCHAR))"
                        f" AS JSON) ELSE {body} END)")
            own_sql = typed_json(*own, prefix="r") if own is not None else None
            sql = f"coalesce({own_sql}, {body})" if own_sql else body
            self.composite[path] = (len(self.composite), sql)
        return f"q.v{self.composite[path][0]}"

    # ------------------------------------------------------------------ source

    def source(
        self, where: str, where_params: list[Any], *, reads: Sequence[str] | None = None,
    ) -> tuple[str, list[Any]]:
        """``FROM ... WHERE ...`` over the scope; columns ``q.ts``, ``q.seq``, ``q.b`` (bucket
        index), ``q.x`` (extracted values) and ``q.token``. Call after compiling expressions.

        ``reads``: the statement's other expressions over ``q`` (its select list), when the
        caller gives them: the rendered ``keen.timestamp`` (``q.pts_s``) is then computed only
        when one of them, ``where`` or a composite value names it (planning it cost DuckDB
        about 0.4 ms a statement), and a statement without an interval that reads only the
        table's own columns reads ``events AS q`` itself (no ``q.b``: the bucket is 0), not a
        subquery (0.1-0.2 ms less planning); None: always the subquery, with ``q.pts_s``."""
        scope = self.scope
        rendered = reads is None or any(
            _RENDERED in sql
            for sql in (where, *reads, *(sql for _, sql in self.composite.values())))
        if (reads is not None and scope.buckets is None and not rendered and not self.paths
                and not self.odd and not self.composite):
            return ("FROM events AS q WHERE q.ts >= ? AND q.ts < ? AND q.project = ? "
                    f"AND q.collection = ? AND ({where})",
                    [scope.start, scope.end, scope.project_id, scope.collection, *where_params])
        extract = ""
        if self.paths:
            pointers = ", ".join(_literal(pointer(p)) for p in self.paths)
            extract = f", json_extract(e.body, [{pointers}]) AS x"
        for path, index in self.odd.items():
            name = _literal(json.dumps(path))
            extract += f", CAST(keen_value(e.body, {name}) AS JSON) AS y{index}"
        params: list[Any] = []
        grid = _grid(scope)
        if scope.buckets is None:
            bucket, join, bounds = "0 AS b", "", "e.ts >= ? AND e.ts < ?"
            params += [scope.start, scope.end]
            inner_where = f"{bounds} AND e.project = ? AND e.collection = ?"
        elif grid is not None:
            # Buckets of one width on a grid (UTC days, hours...): the bucket is arithmetic.
            origin, width = grid
            bucket, join = f"CAST((e.ts - ({origin})) // {width} AS BIGINT) AS b", ""
            inner_where = "e.ts >= ? AND e.ts < ? AND e.project = ? AND e.collection = ?"
            params += [scope.start, scope.end]
        elif not _tiles(scope):
            bucket = "k.i AS b"
            join = (", (SELECT unnest(?::BIGINT[]) AS lo, unnest(?::BIGINT[]) AS hi, "
                    "unnest(range(?)) AS i) AS k")
            params += [[lo for lo, _ in scope.buckets], [hi for _, hi in scope.buckets],
                       len(scope.buckets)]
            inner_where = ("e.ts >= k.lo AND e.ts < k.hi AND e.ts >= ? AND e.ts < ? "
                           "AND e.project = ? AND e.collection = ?")
            params += [scope.start, scope.end]
        else:
            # The buckets tile [start, end) without gaps: an event's bucket is the last one
            # starting at or before it (an ASOF join, one sort-merge pass).
            bucket = "k.i AS b"
            join = (" ASOF JOIN (SELECT unnest(?::BIGINT[]) AS lo, unnest(range(?)) AS i) AS k "
                    "ON e.ts >= k.lo")
            params += [[lo for lo, _ in scope.buckets], len(scope.buckets)]
            inner_where = "e.ts >= ? AND e.ts < ? AND e.project = ? AND e.collection = ?"
            params += [scope.start, scope.end]
        params += [scope.project_id, scope.collection]
        # Only our own expressions and quoted literals are interpolated; values are bound.
        timestamp = f"{_TIMESTAMP_TEXT} AS {_RENDERED}, " if rendered else ""
        inner = (f"(SELECT e.*, {timestamp}{bucket}{extract} "  # noqa: S608
                 f"FROM events AS e{join} WHERE {inner_where})")
        if self.composite:
            values = ", ".join(f"{sql} AS v{index}" for index, sql in self.composite.values())
            inner = f"(SELECT r.*, {values} FROM {inner} AS r)"  # noqa: S608
        return f"FROM {inner} AS q WHERE {where}", [*params, *where_params]

    # ------------------------------------------------------------------ filters

    def filters(self, filters: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
        """One boolean SQL expression (never NULL) for the AND of normalised filters."""
        if not filters:
            return "true", []
        parts = [self._one(flt) for flt in filters]
        return " AND ".join(sql for sql, _ in parts), [p for _, ps in parts for p in ps]

    def _one(self, flt: dict[str, Any]) -> tuple[str, list[Any]]:
        operator = flt["operator"]
        if operator == "or":
            if not flt["operands"]:
                return "false", []
            parts = [self._one(op) for op in flt["operands"]]
            return ("(" + " OR ".join(sql for sql, _ in parts) + ")",
                    [p for _, ps in parts for p in ps])
        name, wanted = flt["property_name"], flt["property_value"]
        if name == "keen.timestamp":
            special = _timestamp_filter(operator, wanted)
            if special is not None:
                return special
        typed = self.typed.get(name)
        if typed is not None:
            return _typed_filter(operator, wanted, typed)
        value = self.value(name)
        if operator == "exists":
            return f"({value} IS {'NOT ' if wanted else ''}NULL)", []
        if operator == "within":
            target = _geo_target(wanted)
            assert target is not None  # checked by normalize_filters
            return _within(value, target), []
        negate = operator in ("ne", "not_contains")
        positive = str({"ne": "eq", "not_contains": "contains"}.get(operator, operator))
        sql, params = _any_element(positive, wanted, value)
        choices = wanted if positive == "in" else [wanted]
        if positive in ("eq", "in") and any(c is None for c in choices):
            sql = f"({value} IS NULL OR {sql})"
        sql = f"coalesce({sql}, false)"
        return (f"(NOT {sql})" if negate else sql), params

    # ------------------------------------------------------------------ keys

    def group_columns(self, path: str) -> tuple[list[str], Callable[[Sequence[Any]], Any]]:
        """SQL columns identifying a property's value (null and missing alike) and the function
        turning their values in one row into a group key of the shared convention."""
        typed = self.typed.get(path)
        if typed is not None:
            return typed.key_columns(), typed.decode
        number, text = self.key(path)
        return [number, text], lambda row: row[0] if row[0] is not None else row[1]

    def number(self, path: str) -> tuple[str, str | None, str | None]:
        """``(number, integer_sum_operand, float_sum_operand)`` SQL of a numeric target: the
        value as a DOUBLE when it is a number (else NULL), and what ``sum`` adds up."""
        typed = self.typed.get(path)
        if typed is not None:
            number = typed.number() or "CAST(NULL AS DOUBLE)"
            return (number, typed.col("i") if "i" in typed.kinds else None,
                    typed.col("f") if "f" in typed.kinds else None)
        value = self.value(path)
        kind = _type(value)
        return (f"(CASE WHEN {kind} IN {NUMERIC} THEN {_number(value)} END)",
                f"(CASE WHEN {kind} IN ('BIGINT', 'UBIGINT') "
                f"THEN TRY_CAST({value} AS HUGEINT) END)",
                f"(CASE WHEN {kind} = 'DOUBLE' THEN {_number(value)} END)")

    def distinct_count(self, path: str) -> str:
        """SQL counting the distinct non-null values of a property."""
        typed = self.typed.get(path)
        columns = typed.key_columns() if typed is not None else list(self.key(path, null=None))
        return " + ".join(f"count(DISTINCT {column})" for column in columns)

    def present_value(self, path: str) -> tuple[str, list[str], Callable[[Sequence[Any]], Any]]:
        """``(condition, columns, decode)``: SQL true when the property is present and not null,
        the SQL columns identifying its value, and their values in one row to the value."""
        from keen.server._engine_sql import decode_group_value

        typed = self.typed.get(path)
        if typed is not None:
            return typed.present(), typed.key_columns(), typed.value
        number, text = self.key(path, null=None)
        return (f"({number} IS NOT NULL OR {text} IS NOT NULL)", [number, text],
                lambda row: decode_group_value(row[0] if row[0] is not None else row[1]))

    def actor_columns(self, path: str) -> tuple[str, str, str]:
        """``(condition, number, text)``: one representation of actor values whatever the
        collection keeps (typed columns or JSON), so funnel steps over different collections
        compare their actors."""
        typed = self.typed.get(path)
        if typed is not None:
            number = typed.number() or "CAST(NULL AS DOUBLE)"
            texts = []
            if "s" in typed.kinds:
                texts.append(f"WHEN {typed.col('s')} IS NOT NULL "
                             f"THEN CAST(to_json({typed.col('s')}) AS VARCHAR)")
            if "b" in typed.kinds:
                texts.append(f"WHEN {typed.col('b')} THEN 'true' "
                             f"WHEN NOT {typed.col('b')} THEN 'false'")
            text = f"(CASE {' '.join(texts)} END)" if texts else "CAST(NULL AS VARCHAR)"
            return typed.present(), number, text
        number, text = self.key(path, null=None)
        return f"({number} IS NOT NULL OR {text} IS NOT NULL)", number, text

    def key(self, path: str, *, null: str | None = "'null'") -> tuple[str, str]:
        """Two SQL columns identifying a property's value as JSON does: the number (a DOUBLE,
        NULL unless a number) and the canonical JSON text (NULL for numbers; ``null`` stands
        for null and missing, both NULL when ``null`` is None)."""
        value = self.value(path)
        kind = _type(value)
        number = f"(CASE WHEN {kind} IN {NUMERIC} THEN {_number(value)} END)"
        text = (
            f"(CASE WHEN {value} IS NULL OR {kind} = 'NULL' THEN {null or 'NULL'} "
            f"WHEN {kind} IN {NUMERIC} THEN NULL "
            f"WHEN {kind} IN {CONTAINER} THEN keen_canon(CAST({value} AS VARCHAR)) "
            f"ELSE CAST({value} AS VARCHAR) END)"
        )
        return number, text


def _timestamp_filter(operator: str, wanted: Any) -> tuple[str, list[Any]] | None:
    """``keen.timestamp`` compared as an instant (its ``ts`` column) when the value is ISO."""
    if operator in ("eq", "ne", *_ORDERING):
        micros = _timestamp_micros(wanted)
        if micros is None:
            return None
        symbol = {"eq": "=", "ne": "<>", **_ORDERING}[operator]
        return f"(q.ts {symbol} ?)", [micros]
    if operator == "in" and isinstance(wanted, list):
        instants = [_timestamp_micros(v) for v in wanted]
        if any(m is None for m in instants):
            return None  # a value that is no instant: compare as JSON values instead
        if not instants:
            return "false", []
        return f"(q.ts IN ({_marks(instants)}))", instants
    return None


def _grid(scope: Scope) -> tuple[int, int] | None:
    """``(origin, width)`` when bucket i covers ``[origin + i*width, origin + (i+1)*width)``
    clipped to the timeframe (fixed-length units in UTC or a fixed offset), else None."""
    buckets = scope.buckets or []
    if len(buckets) < 2 or not _tiles(scope):
        return None
    width = buckets[1][1] - buckets[1][0] if len(buckets) > 2 else buckets[0][1] - buckets[0][0]
    if width <= 0:
        return None
    origin = buckets[0][1] - width
    if any(lo != origin + i * width for i, (lo, _) in enumerate(buckets) if i > 0):
        return None
    if buckets[-1][1] > origin + len(buckets) * width or buckets[0][0] < origin:
        return None
    return origin, width


def _tiles(scope: Scope) -> bool:
    """True when the interval buckets cover ``[start, end)`` end to end without gaps."""
    buckets = scope.buckets or []
    return bool(buckets) and buckets[0][0] == scope.start and buckets[-1][1] == scope.end and all(
        left[1] == right[0] for left, right in zip(buckets, buckets[1:]))


def _typed_filter(operator: str, wanted: Any, typed: Typed) -> tuple[str, list[Any]]:
    """A filter on a property kept in typed columns (never null, a list or an object)."""
    present = typed.present()
    if operator == "exists":
        return (present if wanted else f"(NOT {present})"), []
    if operator == "within":
        return "false", []  # coordinates are a list: never in typed columns
    negate = operator in ("ne", "not_contains")
    positive = str({"ne": "eq", "not_contains": "contains"}.get(operator, operator))
    sql, params = _typed_scalar(positive, wanted, typed)
    choices = wanted if positive == "in" else [wanted]
    if positive in ("eq", "in") and any(c is None for c in choices):
        sql = f"((NOT {present}) OR {sql})"
    sql = f"coalesce({sql}, false)"
    return (f"(NOT {sql})" if negate else sql), params


def _typed_scalar(operator: str, wanted: Any, typed: Typed) -> tuple[str, list[Any]]:
    kinds, col = typed.kinds, typed.col
    parts: list[str] = []
    params: list[Any] = []
    if operator == "contains":  # on a property that is no list: a substring test only
        if isinstance(wanted, str) and "s" in kinds:
            parts.append(f"contains({col('s')}, ?)")
            params.append(wanted)
    elif operator in ("eq", "in"):
        choices = wanted if operator == "in" else [wanted]
        strings = [c for c in choices if isinstance(c, str)]
        numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        integers = [int(c) for c in numbers
                    if float(c).is_integer() and -(2**63) <= int(c) < 2**63]
        booleans = sorted({c for c in choices if isinstance(c, bool)})
        if strings and "s" in kinds:
            parts.append(f"{col('s')} IN ({_marks(strings)})")
            params += strings
        if integers and "i" in kinds:
            parts.append(f"{col('i')} IN ({_marks(integers)})")
            params += integers
        if numbers and "f" in kinds:
            parts.append(f"{col('f')} IN ({_marks(numbers)})")
            params += [float(n) for n in numbers]
        if booleans and "b" in kinds:
            parts.append(f"{col('b')} IN ({', '.join('true' if b else 'false' for b in booleans)})")
    elif operator in _ORDERING:
        symbol = _ORDERING[operator]
        if isinstance(wanted, str):
            if "s" in kinds:
                parts.append(f"{col('s')} {symbol} ?")
                params.append(wanted)
        else:
            for kind in ("i", "f"):
                if kind in kinds:
                    parts.append(f"{col(kind)} {symbol} ?")
                    params.append(float(wanted) if kind == "f" or isinstance(wanted, float)
                                  else wanted)
    elif operator == "regex":
        if "s" in kinds:
            parts.append(f"(CASE WHEN {col('s')} IS NOT NULL "
                         f"THEN keen_regexp(?, {col('s')}) ELSE false END)")
            params.append(wanted)
    else:  # pragma: no cover - callers pass only these
        raise AssertionError(operator)
    return ("(" + " OR ".join(parts) + ")" if parts else "false"), params


def _scalar(operator: str, wanted: Any, value: str, *, element: bool) -> tuple[str, list[Any]]:
    """SQL true when one JSON value (``value``, not looking into lists) passes the test; may be
    NULL when the value is missing."""
    kind = _type(value)
    if operator in ("eq", "in"):
        choices = wanted if operator == "in" else [wanted]
        parts: list[str] = []
        params: list[Any] = []
        strings = [c for c in choices if isinstance(c, str)]
        numbers = [float(c) for c in choices
                   if isinstance(c, (int, float)) and not isinstance(c, bool)]
        booleans = sorted({c for c in choices if isinstance(c, bool)})
        containers = [c for c in choices if isinstance(c, (list, dict))]
        if strings:
            parts.append(f"({kind} = 'VARCHAR' AND {_string(value)} IN ({_marks(strings)}))")
            params += strings
        if numbers:
            parts.append(f"({kind} IN {NUMERIC} AND {_number(value)} IN ({_marks(numbers)}))")
            params += numbers
        if booleans:
            texts = ", ".join(_literal("true" if b else "false") for b in booleans)
            parts.append(f"({kind} = 'BOOLEAN' AND CAST({value} AS VARCHAR) IN ({texts}))")
        if any(c is None for c in choices):
            # an element that is JSON null reads as SQL NULL inside a list
            parts.append(f"({value} IS NULL OR {kind} = 'NULL')" if element
                         else f"({kind} = 'NULL')")
        if containers:
            canonical = [canonical_text(c) for c in containers]
            parts.append(f"(CASE WHEN {kind} IN {CONTAINER} THEN "
                         f"keen_canon(CAST({value} AS VARCHAR)) IN ({_marks(canonical)}) "
                         "ELSE false END)")
            params += canonical
        return ("(" + " OR ".join(parts) + ")" if parts else "false"), params
    if operator in _ORDERING:
        symbol = _ORDERING[operator]
        if isinstance(wanted, str):
            return f"({kind} = 'VARCHAR' AND {_string(value)} {symbol} ?)", [wanted]
        return f"({kind} IN {NUMERIC} AND {_number(value)} {symbol} ?)", [float(wanted)]
    if operator == "contains":
        eq_sql, eq_params = _scalar("eq", wanted, value, element=element)
        if not isinstance(wanted, str):
            return eq_sql, eq_params
        return (f"({eq_sql} OR ({kind} = 'VARCHAR' AND contains({_string(value)}, ?)))",
                [*eq_params, wanted])
    if operator == "regex":
        return (f"(CASE WHEN {kind} = 'VARCHAR' THEN keen_regexp(?, {_string(value)}) "
                "ELSE false END)", [wanted])
    raise AssertionError(operator)  # pragma: no cover - callers pass only these


def _any_element(operator: str, wanted: Any, value: str) -> tuple[str, list[Any]]:
    """The property passes, or (a list) one of its elements does; ``contains`` on the
    property itself is only the substring test."""
    if operator == "contains":
        if isinstance(wanted, str):
            direct = f"({_type(value)} = 'VARCHAR' AND contains({_string(value)}, ?))"
            direct_params: list[Any] = [wanted]
        else:
            direct, direct_params = "false", []
    else:
        direct, direct_params = _scalar(operator, wanted, value, element=False)
    inner, inner_params = _scalar(operator, wanted, "el", element=True)
    sql = (f"({direct} OR (CASE WHEN {_type(value)} = 'ARRAY' THEN "
           f"len(list_filter(CAST({value} AS JSON[]), lambda el: coalesce({inner}, false))) > 0 "
           "ELSE false END))")
    return sql, [*direct_params, *inner_params]


def _within(value: str, target: tuple[float, float, float]) -> str:
    """Great-circle distance of ``[lon, lat]`` to the target at most its miles (the formula of
    ``keen.server.filters``; the target's numbers are written into the SQL as literals)."""
    lon1 = "radians(" + _number(f"json_extract({value}, '$[0]')") + ")"
    lat1 = "radians(" + _number(f"json_extract({value}, '$[1]')") + ")"
    lon2, lat2, miles = (f"radians({target[0]!r})", f"radians({target[1]!r})",
                         repr(target[2]))
    half = (f"(pow(sin(({lat2} - {lat1}) / 2), 2) "
            f"+ cos({lat1}) * cos({lat2}) * pow(sin(({lon2} - {lon1}) / 2), 2))")
    distance = f"(2 * {_EARTH_RADIUS_MILES!r} * asin(least(1.0, sqrt({half}))))"
    return (
        f"coalesce((CASE WHEN {_type(value)} = 'ARRAY' AND json_array_length({value}) = 2 "
        f"AND json_type({value}, '$[0]') IN {NUMERIC} "
        f"AND json_type({value}, '$[1]') IN {NUMERIC} "
        f"THEN {distance} <= {miles} ELSE false END), false)"
    )
