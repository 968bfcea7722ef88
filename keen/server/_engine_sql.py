"""SQL of the query engine: scope (collection, timeframe, interval buckets, filters), group keys
and one aggregate query per analysis, all evaluated inside SQLite and read back row by row.

Results come back as ``{(bucket_index, group_key): value}`` where ``group_key`` is a tuple with
one key per group_by property (see ``Scope.group_columns``).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keen.server.filters import Column, compile_filters, register_functions

__all__ = [
    "ActorSets", "Scope", "aggregate", "decode_group_value", "group_universe", "register_sql",
    "select_bodies",
]

_NUMERIC = "IN ('integer', 'real')"


class _PopulationStdDev:
    """SQLite aggregate: population standard deviation (Welford's method)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.squares = 0.0

    def step(self, value: Any) -> None:
        if value is None:
            return
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.squares += delta * (value - self.mean)

    def finalize(self) -> float | None:
        if self.count == 0:
            return None
        return math.sqrt(max(self.squares, 0.0) / self.count)


def register_sql(connection: sqlite3.Connection) -> None:
    """Install the Python functions and aggregates the engine's SQL uses."""
    register_functions(connection)
    connection.create_aggregate("keen_stddev", 1, _PopulationStdDev)  # type: ignore[arg-type]


@dataclass
class Scope:
    """Which events a query reads: a collection, ``[start, end)`` in UTC microseconds, optional
    interval buckets and normalised filters; plus the group_by properties."""

    project_id: str
    collection: str
    start: int
    end: int
    buckets: list[tuple[int, int]] | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)

    def source(self) -> tuple[str, str, list[Any]]:
        """``(bucket_expression, "FROM ... WHERE ...", params)``."""
        filter_sql, filter_params = compile_filters(self.filters, "e.body")
        where = f"e.project = ? AND e.collection = ? AND {filter_sql}"
        if self.buckets is None:
            return (
                "0",
                f"FROM events AS e WHERE e.ts >= ? AND e.ts < ? AND {where}",
                [self.start, self.end, self.project_id, self.collection, *filter_params],
            )
        # One index range scan per bucket: the bucket list drives the join.
        return (
            "b.key",
            "FROM json_each(?) AS b CROSS JOIN events AS e "
            "WHERE e.ts >= json_extract(b.value, '$[0]') AND e.ts < json_extract(b.value, '$[1]') "
            f"AND {where}",
            [json.dumps(self.buckets), self.project_id, self.collection, *filter_params],
        )

    def group_columns(self) -> list[str]:
        """One SQL group key per group_by property (``value_key``), with null and missing both
        ``'null'``."""
        return [f"coalesce({value_key(Column(name, 'e.body'))}, 'null')"
                for name in self.group_by]


def value_key(column: Column) -> str:
    """SQL identifying a value as JSON does (the identity of group_by, count_unique,
    select_unique and funnel actors): the number for numbers (SQLite compares 1 and 1.0 equal),
    the ``canonical_json`` text for lists and objects (``[1.0, {"b": 1, "a": 2}]`` and
    ``[1, {"a": 2, "b": 1}]`` are one value), else the JSON text (strings whole, NUL included;
    ``true``, ``false``, ``null``). NULL when missing. ``decode_group_value`` reads it back.

    The stored text of a list is already canonical (the server wrote it with the separators
    and escapes ``canonical_json`` uses) unless it holds a float (a digit before ``.`` or
    ``e``) or an object (``{``): only those, and strings that merely look so, go through
    Python."""
    canonical = f"keen_canonical({column.repr})"
    return (f"CASE {column.type} WHEN 'text' THEN {column.repr} "  # the usual case first
            f"WHEN 'integer' THEN {column.value} WHEN 'real' THEN {column.value} "
            f"WHEN 'array' THEN CASE WHEN {column.repr} GLOB '*[0-9][.eE]*' "
            f"OR {column.repr} GLOB '*{{*' THEN {canonical} ELSE {column.repr} END "
            f"WHEN 'object' THEN {canonical} "
            f"ELSE {column.repr} END")


def decode_group_value(key: Any) -> Any:
    """The JSON value of one key produced by ``value_key``: the canonical representative
    (integral numbers as ints, object members sorted by key) whichever event it came from."""
    if isinstance(key, float) and key.is_integer() and abs(key) < 2**63:
        return int(key)
    return key if isinstance(key, (int, float)) else json.loads(key)


def _keys(row: Sequence[Any], width: int) -> tuple[int, tuple[Any, ...]]:
    return int(row[0]), tuple(row[1:1 + width])


def _numeric(column: Column) -> str:
    return f"CASE WHEN {column.type} {_NUMERIC} THEN {column.value} END"


_SIMPLE_AGGREGATES = {
    "sum": "sum({num})",
    "minimum": "min({num})",
    "maximum": "max({num})",
    "average": "avg({num})",
    "standard_deviation": "keen_stddev({num})",
    "count_unique": "count(DISTINCT CASE WHEN {type} != 'null' THEN {key} END)",
}


def aggregate(
    conn: sqlite3.Connection,
    scope: Scope,
    analysis: str,
    target: str | None,
    percentile: float | None,
) -> dict[tuple[int, tuple[Any, ...]], Any]:
    """Run one analysis; ``{(bucket, group_key): raw value}`` for every (bucket, group) that has
    matching events (for median/percentile: numeric values; for select_unique: values)."""
    bucket, source, params = scope.source()
    groups = scope.group_columns()
    keys = ", ".join([bucket, *groups])
    width = len(groups)
    positions = ", ".join(str(i + 1) for i in range(width + 1))  # GROUP BY the key columns
    if analysis == "count":
        sql = f"SELECT {keys}, count(*) {source} GROUP BY {positions}"
        return {_keys(row, width): row[-1] for row in conn.execute(sql, params)}
    assert target is not None
    column = Column(target, "e.body")
    if analysis in _SIMPLE_AGGREGATES:
        expression = _SIMPLE_AGGREGATES[analysis].format(
            num=_numeric(column), type=column.type, key=value_key(column)
        )
        sql = f"SELECT {keys}, {expression} {source} GROUP BY {positions}"
        try:
            return {_keys(row, width): row[-1] for row in conn.execute(sql, params)}
        except sqlite3.OperationalError as exc:  # integer overflow of sum(): add as floats
            if analysis != "sum" or "overflow" not in str(exc):
                raise
            sql = sql.replace("sum(CASE", "total(CASE", 1)
            return {_keys(row, width): row[-1] for row in conn.execute(sql, params)}
    if analysis in ("median", "percentile"):
        # Nearest rank: the ceil(p/100 * n)-th smallest value (at least the first).
        rank = round((50.0 if analysis == "median" else float(percentile or 0)) * 100)
        aliases = ", ".join(f"k{i}" for i in range(width + 1))
        partition = ", ".join(f"k{i}" for i in range(width + 1))
        sql = (
            f"SELECT {aliases}, v FROM (SELECT {aliases}, v, "  # noqa: S608
            f"row_number() OVER (PARTITION BY {partition} ORDER BY v) AS rn, "
            f"count(*) OVER (PARTITION BY {partition}) AS n FROM ("
            f"SELECT {', '.join(f'{expr} AS k{i}' for i, expr in enumerate([bucket, *groups]))}, "
            f"{column.value} AS v {source} AND {column.type} {_NUMERIC})) "
            f"WHERE rn = max(1, ({rank} * n + 9999) / 10000)"
        )
        return {_keys(row, width): row[-1] for row in conn.execute(sql, params)}
    if analysis == "select_unique":
        sql = (
            f"SELECT DISTINCT {keys}, {value_key(column)} {source} "
            f"AND {column.type} IS NOT NULL AND {column.type} != 'null'"
        )
        found: dict[tuple[int, tuple[Any, ...]], Any] = {}
        for row in conn.execute(sql, params):
            found.setdefault(_keys(row, width), []).append(decode_group_value(row[-1]))
        return found
    raise AssertionError(analysis)  # pragma: no cover - the engine validates analysis names


def group_universe(conn: sqlite3.Connection, scope: Scope) -> set[tuple[int, tuple[Any, ...]]]:
    """Every (bucket, group) that has at least one matching event."""
    return set(aggregate(conn, scope, "count", None, None))


def select_bodies(
    conn: sqlite3.Connection, scope: Scope, *, newest_first: bool, limit: int | None
) -> sqlite3.Cursor:
    """A cursor over the JSON bodies of matching events, by timestamp."""
    _, source, params = scope.source()
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT e.body {source} ORDER BY e.ts {order}, e.seq {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params = [*params, limit]
    return conn.execute(sql, params)


class ActorSets:
    """The actor sets of a funnel as temporary tables of one connection, so memory does not
    grow with the number of actors (SQLite keeps temporary tables in files). Values are keys
    for ``decode_group_value`` (``1`` and ``1.0`` are one actor). ``drop()`` when done."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.tables: list[str] = []

    def _new(self, select: str, params: Sequence[Any] = ()) -> str:
        name = f"temp.keen_actors_{len(self.tables)}"  # our own name: nothing from the query
        self.conn.execute(f"DROP TABLE IF EXISTS {name}")  # left over by an interrupted funnel
        self.conn.execute(f"CREATE TABLE {name} AS {select}", params)
        self.tables.append(name)
        return name

    def did(self, scope: Scope, actor: str) -> str:
        """A table of the distinct ``actor`` values (present, not null) of matching events."""
        column = Column(actor, "e.body")
        _, source, params = scope.source()
        return self._new(
            f"SELECT DISTINCT {value_key(column)} AS actor {source} "
            f"AND {column.type} IS NOT NULL AND {column.type} != 'null'", params)

    def combine(self, previous: str, did: str, *, inverted: bool) -> str:
        """``previous`` actors who are (or, ``inverted``, are not) in ``did``."""
        operator = "EXCEPT" if inverted else "INTERSECT"
        return self._new(
            f"SELECT actor FROM {previous} {operator} SELECT actor FROM {did}")  # noqa: S608

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def actors(self, table: str) -> list[Any]:
        return [row[0] for row in self.conn.execute(f"SELECT actor FROM {table}")]  # noqa: S608

    def drop(self) -> None:
        for name in self.tables:
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")
        self.tables.clear()
