"""The fast lane of batch ingestion on the DuckDB engine: a whole ``POST /events`` body parsed,
validated and stored by DuckDB, with the exact Python lane (``_events.prepare_events`` and
``DuckDBStore.insert_events``) as the fallback.

Python reads, validates and splits every event one at a time (~30 us an event); here DuckDB
parses the body once, computes each event's *shape* (``json_structure``: every path with its
kind), and Python validates each distinct shape once (a batch usually has a handful) with the
shared rules: a representative event of the shape (``""`` for strings, ``0`` / ``0.0`` for
integers / floats...) goes through ``_events.prepare_event``, which checks names, nesting, the
``keen`` namespace and gives the schema types; ``DuckDBStore._shred`` of the representatives
records the typed columns exactly as the events would. One ``INSERT ... SELECT`` per shape
then reads its events with ``json_transform_strict`` into the shape's typed STRUCT (one parse:
the typed columns' values, and a duplicate key is a statement error) and builds the remaining
JSON body with ``json_object`` (the values of typed columns left out, as ``_shred`` does).
What is stored (typed columns, bodies as JSON values, schemas, tokens, insertion order) is
what the Python lane stores; ``tests/test_engine_duckdb_batch.py`` compares the two.

Concurrency: reading a batch (the text check, the parse, the shapes, their rules: nothing of
the store) runs on a DuckDB connection of its own (``cursor()``: its own temp table) without
the store's lock, so requests posted at once overlap (DuckDB releases the GIL); storing it
(uniqueness tokens, typed columns, seq numbers, the rows, the commit) is one transaction of that
connection under the lock, so batches are stored one at a time, each batch's events with
consecutive seq numbers in its order, and a token is kept from the batch stored first.

The lane is all or nothing per request: it returns None (nothing stored; the caller takes the
Python lane, which gives every answer, per-event refusals included) whenever the body holds
anything DuckDB's parser reads differently from Python's or that needs a per-event answer:

* text: ``NaN`` / ``Infinity`` (any case), numbers with an exponent or 16+ digits, trailing
  commas, ``\\u0000`` (a regular expression over the body; a false positive only costs speed);
  anything DuckDB refuses (lone surrogates, control characters...);
* batch shape: not an object of lists, a collection twice or with an invalid name, more than
  ``MAX_BATCH_EVENTS`` events, an event possibly over ``MAX_EVENT_BYTES`` as sent;
* events: not an object, a shape the rules refuse (names, nesting, ``keen`` not an object, a
  non-string ``keen.timestamp`` or token), a list mixing kinds or holding an empty object
  (the shape cannot show what is inside), a duplicate key (``json_transform_strict`` refuses it), an
  event whose JSON text reaches ``MAX_STRING`` bytes, a token longer than 64 characters, a
  ``keen.timestamp`` outside ``_STAMP`` (read in SQL exactly as ``timeframes.parse_iso``);
* speed: a body under ``_SMALL`` bytes, or too many shapes for its events (each shape costs
  one INSERT statement: see ``_EVENTS_PER_SHAPE``);
* the caller also keeps autofill (access keys) and ``${keen.`` placeholders on the Python lane.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import duckdb

from keen.server._events import (
    _MAX_TOKEN,
    STORED,
    EventError,
    collection_name_error,
    prepare_event,
)
from keen.server.limits import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_STRING
from keen.server.timeframes import format_timestamp, to_micros

# The store is a ``keen.server.engines.duckdb.DuckDBStore`` (typed Any here: that module
# imports this one).
DuckDBStore = Any

__all__ = ["insert_batch"]

# Text Python's JSON parser reads differently from DuckDB's, or refuses: NaN / Infinity (DuckDB
# takes any case), exponents and long digit runs (out-of-range numbers; an exponent can also
# grow when DuckDB rewrites it, see _fits), trailing commas, NUL characters.
_DOUBT = (r"[:\[,][ \t\n\r]*-?([0-9]+(\.[0-9]+)?[eE]|[0-9]{16}|[nN][aA]|[iI])"
          r"|,[ \t\n\r]*[\]}]|\\u0000")
# keen.timestamp forms read in SQL: years 1000-8999 (no overflow past year 9999 with any
# offset), hours 00-23, an optional fraction of up to six digits and an optional offset.
# DuckDB refuses an impossible date (February 30), which sends the batch to the Python lane.
_STAMP = (r"[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):"
          r"[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?")
_SCALAR = {"VARCHAR": "", "UBIGINT": 0, "BIGINT": 0, "HUGEINT": 0, "DOUBLE": 0.0, "BOOLEAN": True,
           "NULL": None}
# the STRUCT field types json_transform_strict reads each kind into (JSON: checked empty objects)
_TRANSFORM = {"VARCHAR": "VARCHAR", "UBIGINT": "BIGINT", "BIGINT": "BIGINT", "HUGEINT": "BIGINT",
              "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN", "NULL": "JSON", "JSON": "JSON"}
_KIND = {str: "s", bool: "b", int: "i", float: "f"}
# When the Python lane is the quicker one (measured side by side on a file database with
# realistic events of ~300 bytes): each distinct shape costs the fast lane one INSERT
# statement, ~3.7 ms of binding, planning and scanning the batch whatever its size, about
# what the Python lane spends on 137 events, and the lane's other statements cost about 78
# events more. So a batch of 5,000 events of 64 shapes takes 60 us an event here and 37 us
# there, one of 50 events 260 us here and 97 us there. A body under _SMALL bytes is not
# parsed here at all (it holds at most a few dozen realistic events).
_SMALL = 16_384
_EVENTS_PER_SHAPE = 137
_EVENTS_FIXED = 78


class _NotTaken(Exception):
    """The batch takes the Python lane."""


def insert_batch(store: DuckDBStore, project_id: str, text: str,
                 now: datetime) -> dict[str, list[dict[str, Any]]] | None:
    """Store the batch ``text`` (a ``POST /events`` body) and return the answer, or None
    (nothing stored) when it must take the Python lane."""
    if len(text) < _SMALL or text[:100].lstrip(" \t\n\r")[:1] != "{":
        return None  # a small body, or not an object (or more leading space): the Python lane
    # A connection of its own (its own temp table), opened without waiting for the lock that
    # a batch being stored holds; known to ``close``, which interrupts it and waits.
    with store._cursor() as cursor:
        # Parsing and checking read nothing of the store: outside the lock, so that another
        # request stores its batch meanwhile (DuckDB runs without the GIL). Everything that
        # reads or changes the store's state happens under the lock, in one transaction.
        try:
            batch = _read(cursor, text, now)
        except (_NotTaken, duckdb.Error, UnicodeError, RecursionError):
            return None
        with store._lock:
            next_seq, next_column = store._next_seq, store._next_column
            try:
                with store._write(cursor) as con:
                    answer = {name: collection.store(store, con, project_id, name)
                              for name, collection in batch.items()}
            except (_NotTaken, duckdb.Error, UnicodeError, RecursionError):
                store._next_seq, store._next_column = next_seq, next_column
                return None
            store.batches_taken += 1
            return answer


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def _read(con: Any, text: str, now: datetime) -> dict[str, _Collection]:
    """Parse and check the batch (nothing stored yet): its collections in order."""
    # One statement checks the text (_DOUBT: a statement error, even for a body of no
    # collection; the body is handed to DuckDB once), parses the body and each event: a row
    # per event (``o``: the collection's position, ``n``: the event's), and one row with a
    # null ``e`` for an empty list or a value that is not a list, so that every collection
    # shows up in ``groups``.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE keen_rows AS "
        # json_structure recurses: DuckDB 1.4 crashes on an event nested 100,000 deep. An event
        # of MAX_STRING bytes or more takes the Python lane anyway, and is never given to it.
        "SELECT k, t, o, n - 1 AS n, e, s, hash(s) AS h, m FROM (SELECT *, CASE WHEN m < $1 "
        "THEN json_structure(e) END AS s FROM (SELECT *, strlen(e) AS m FROM ("
        "  SELECT k, t, o, unnest(CASE WHEN len(l) = 0 THEN [NULL] ELSE l END) AS e,"
        "    unnest(range(1, greatest(len(l), 1) + 1)) AS n FROM ("
        "      SELECT key AS k, type AS t, id AS o, CASE WHEN type = 'ARRAY' "
        "      THEN json_extract(value, '$[*]') ELSE [] END AS l FROM json_each("
        "        CASE WHEN regexp_matches($2, $3) THEN error('doubtful text') ELSE $2 END::JSON"
        ")))))", [MAX_STRING, text, _DOUBT])
    rows = con.execute("SELECT o, any_value(k), any_value(t), s, count(e), min(n), max(m), "
                       "sum(m), any_value(h) FROM keen_rows GROUP BY o, s "
                       "ORDER BY o, min(n)").fetchall()
    top = list({o: (k, t, o) for o, k, t, *_ in rows}.values())  # the collections, in order
    names = [k for k, _, _ in top]
    if len(set(names)) < len(names) or any(t != "ARRAY" for _, t, _ in top) or any(
            collection_name_error(name) for name in names):
        raise _NotTaken
    # the groups of events (o, s, count, first, longest, total length, hash); an empty list's
    # row counts no event (its ``s`` is null, as is that of an event of MAX_STRING bytes or
    # more, which cannot be in the same list)
    groups = [(o, s, count, first, longest, size, hashed)
              for o, _, _, s, count, first, longest, size, hashed in rows if count]
    if len({group[6] for group in groups}) < len({group[1] for group in groups}):
        raise _NotTaken  # two shapes with one hash: rows are told apart by their hash
    total = sum(group[2] for group in groups)
    if total > MAX_BATCH_EVENTS or not _fits(text, groups):
        raise _NotTaken
    if total < _EVENTS_FIXED + _EVENTS_PER_SHAPE * len(groups):
        raise _NotTaken  # too many shapes for the events: the Python lane is quicker
    now_text = format_timestamp(now)
    now_ms = to_micros(now)
    now_ms -= now_ms % 1000
    batch = {name: _Collection(o, now_text, now_ms) for name, _, o in top}
    by_o = {c.o: c for c in batch.values()}
    for o, shape, count, first, longest, _, hashed in groups:
        if longest >= MAX_STRING:  # a string could reach MAX_STRING characters
            raise _NotTaken
        by_o[o].add(shape, hashed, count, first, now=now)
    for collection in batch.values():
        for shape in collection.shapes:
            if not shape.empty:
                continue
            empty = " AND ".join(["json_type(e, ?) = 'OBJECT' AND len(json_keys(e, ?)) = 0"]
                                 * len(shape.empty))
            pointers = [_pointer(path) for path in shape.empty for _ in range(2)]
            if con.execute(f"SELECT count(*) FROM keen_rows WHERE h = ? AND NOT ({empty})",  # noqa: S608
                           [shape.hash, *pointers]).fetchone()[0]:
                raise _NotTaken  # not an empty object everywhere
    return batch


def _fits(text: str, groups: list[Any]) -> bool:
    """Whether no event can be over ``MAX_EVENT_BYTES`` as sent. DuckDB's text of an event
    (``m``) is never longer than the event as sent, the body being free of exponents (_DOUBT):
    it drops whitespace and escapes of characters it writes as they are, rewrites numbers
    without growing them. So an event as sent is at most its ``m`` plus the body's bytes that
    are in no ``m``."""
    if len(text) * 4 <= MAX_EVENT_BYTES:
        return True
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size <= MAX_EVENT_BYTES:
        return True
    slack = size - sum(int(group[5]) for group in groups)
    return max((int(group[4]) for group in groups), default=0) + slack <= MAX_EVENT_BYTES


def _transform_type(structure: Any, in_list: bool = False) -> Any:
    """The STRUCT ``json_transform_strict`` reads the events of a shape into: typed leaves
    outside lists (the typed columns' values), the keys of every object (duplicates refused)."""
    if isinstance(structure, dict):
        return {key: _transform_type(value, in_list) for key, value in structure.items()}
    if isinstance(structure, list):
        return [_transform_type(structure[0], True)] if _has_object(structure) else "JSON"
    return "JSON" if in_list else _TRANSFORM[structure]


def _has_object(structure: Any) -> bool:
    if isinstance(structure, dict):
        return True
    return isinstance(structure, list) and any(_has_object(item) for item in structure)


def _representative(structure: Any, path: tuple[str, ...], empty: list[tuple[str, ...]],
                    in_list: bool = False) -> Any:
    """An event of the shape ``structure`` whose values pass every value rule; the paths
    where the shape says ``JSON`` outside lists go into ``empty`` (to be checked: ``{}``)."""
    if isinstance(structure, dict):
        return {key: _representative(value, (*path, key), empty, in_list)
                for key, value in structure.items()}
    if isinstance(structure, list) and len(structure) == 1:
        return [_representative(structure[0], path, empty, True)]
    if isinstance(structure, str) and structure in _SCALAR:
        return _SCALAR[structure]
    if structure == "JSON" and not in_list and path:
        empty.append(path)  # an empty object, or a key twice with two kinds: checked in SQL
        return {}
    raise _NotTaken  # a list of mixed kinds or an empty object in a list: unknown inside


class _Shape:
    """One distinct shape of a collection's events, validated."""

    def __init__(self, text: str, hashed: int, count: int, first: int, now: datetime) -> None:
        self.text, self.hash, self.count, self.first = text, hashed, count, first
        self.structure = json.loads(text)
        if not isinstance(self.structure, dict):
            raise _NotTaken  # an event that is not an object
        self.empty: list[tuple[str, ...]] = []
        event = _representative(self.structure, (), self.empty)
        keen = event.get("keen")
        self.has_stamp = self.has_token = False
        if isinstance(keen, dict):
            stamp, token = keen.get("timestamp"), keen.get("uniqueness_token")
            if stamp not in (None, "") or token not in (None, ""):
                raise _NotTaken  # a refusal: its exact answer is the Python lane's
            self.has_stamp, self.has_token = stamp == "", token == ""
            if self.has_stamp:
                keen["timestamp"] = None  # read in SQL (_STAMP)
        elif keen is not None:
            raise _NotTaken
        try:
            self.stored, _, _, self.types = prepare_event(
                event, now=now, now_text=format_timestamp(now), autofill=None)
        except EventError:
            raise _NotTaken from None


class _Collection:
    """The events of one collection of the batch, by shape."""

    def __init__(self, o: int, now_text: str, now_ms: int) -> None:
        self.o, self.now_text, self.now_ms = o, now_text, now_ms
        self.shapes: list[_Shape] = []
        self.count = 0

    def add(self, text: str, hashed: int, count: int, first: int, *, now: datetime) -> None:
        self.shapes.append(_Shape(text, hashed, count, first, now))
        self.count += count

    def store(self, store: DuckDBStore, con: Any, project_id: str,
              name: str) -> list[dict[str, Any]]:
        if not self.shapes:
            return []
        schema: dict[str, str] = {}
        for shape in self.shapes:  # by first event: the first non-null kind wins, as per event
            for path, kind in shape.types.items():
                if schema.get(path, "null") == "null":
                    schema[path] = kind
        dropped = self._tokens(con, project_id, name)
        shapes = self.shapes
        if dropped:  # the kinds of a column are recorded in the order of the stored events
            firsts = dict(con.execute(
                "SELECT s, min(n) FROM keen_rows WHERE o = ? AND NOT list_contains(?, n) "
                "GROUP BY s", [self.o, dropped]).fetchall())
            shapes = sorted((s for s in shapes if s.text in firsts),
                            key=lambda s: firsts[s.text])
        if shapes:
            store._shred(con, project_id, name, [shape.stored for shape in shapes])
            known = store._pending[(project_id, name)]
            first = store._next_seq
            kept = self.count - len(dropped)
            self._insert(con, project_id, name, shapes, known, first, dropped)
            store._next_seq = first + kept
        store._save_schema(con, project_id, name, schema)
        return [STORED] * self.count

    def _tokens(self, con: Any, project_id: str, name: str) -> list[int]:
        """Record the batch's uniqueness tokens; the rows not to store (a token already stored,
        or repeated earlier in the batch)."""
        if not any(shape.has_token for shape in self.shapes):
            return []
        rows = con.execute(
            "SELECT n, t FROM (SELECT n, json_extract_string(e, '/keen/uniqueness_token') AS t "
            "FROM keen_rows WHERE o = ?) WHERE t IS NOT NULL ORDER BY n", [self.o]).fetchall()
        if any(len(token) > _MAX_TOKEN for _, token in rows):
            raise _NotTaken
        fresh = {row[0] for row in con.execute(
            "INSERT INTO tokens SELECT ?, ?, unnest(?::VARCHAR[]) ON CONFLICT DO NOTHING "
            "RETURNING token", [project_id, name, list(dict.fromkeys(t for _, t in rows))]
        ).fetchall()}
        dropped = []
        for n, token in rows:
            if token in fresh:
                fresh.discard(token)  # the first event with the token wins
            else:
                dropped.append(n)
        return dropped

    def _insert(self, con: Any, project_id: str, name: str, shapes: list[_Shape],
                known: dict[str, tuple[int, str]], first: int, dropped: list[int]) -> None:
        """One ``INSERT ... SELECT`` per shape: ``json_transform_strict`` reads each event
        into the shape's typed STRUCT in one parse (a duplicate key is a statement error),
        ``json_object`` builds the remaining body (``_split``)."""
        ids = os.urandom(12 * self.count).hex()
        # the rank among the stored events of the collection
        seq = "? + n - len(list_filter(?, lambda d: d < n))" if dropped else "? + n"
        keep = " AND NOT list_contains(?, n)" if dropped else ""
        for shape in shapes:
            columns: dict[str, str] = {}
            body = self._split(shape.stored, (), shape, known, columns)
            stamp = "t['keen']['timestamp']" if shape.has_stamp else "NULL"
            stamp_sql = _timestamp_sql("st", self.now_ms) if shape.has_stamp else str(self.now_ms)
            token = "t['keen']['uniqueness_token']" if shape.has_token else "NULL"
            names = "".join(f", {column}" for column in columns)
            values = "".join(f", {value}" for value in columns.values())
            con.execute(
                f"INSERT INTO events (project, collection, ts, seq, token, body{names}) "  # noqa: S608
                f"SELECT ?, ?, u - ((u % 1000) + 1000) % 1000, {seq}, {token}, "
                f"{body}{values} FROM ("
                f"  SELECT *, {stamp_sql} AS u FROM ("
                f"    SELECT *, {stamp} AS st, substr(?, 24 * n + 1, 24) AS keen_id FROM ("
                f"      SELECT n, e, json_transform_strict(e, "
                f"{_lit(json.dumps(_transform_type(shape.structure)))}) AS t "
                f"      FROM keen_rows WHERE o = ? AND h = ?{keep})))",
                [project_id, name, first, *([dropped] if dropped else []), ids, self.o,
                 shape.hash, *([dropped] if dropped else [])],
            )

    def _split(self, stored: dict[str, Any], prefix: tuple[str, ...], shape: _Shape,
               known: dict[str, tuple[int, str]], columns: dict[str, str]) -> str:
        """The SQL of a stored event's remaining body (as ``_shred``: the values of typed
        columns left out, objects kept even when emptied, keys in order), built from the
        transformed event ``t``; the typed columns' value expressions go into ``columns``."""
        parts = []
        for key, value in stored.items():
            path = (*prefix, key)
            dotted = ".".join(path)
            field = "t" + "".join(f"[{_lit(part)}]" for part in path)
            if dotted == "keen.timestamp":
                continue  # rendered from ts
            kind = _KIND.get(type(value))
            if kind is not None:
                if dotted == "keen.created_at":
                    field = _lit(self.now_text)
                elif dotted == "keen.id":
                    field = "keen_id"
                column = known[dotted][0]
                if column >= 0:
                    columns[f"p{column}_{kind}"] = field
                    continue
            elif isinstance(value, dict):
                field = self._split(value, path, shape, known, columns)
            elif isinstance(value, list) and _has_object(_at(shape.structure, path)):
                field = f"json_extract(e, {_lit(_pointer(path))})"  # as sent, not as a STRUCT
            parts.append(f"{_lit(key)}, {field}")
        return f"json_object({', '.join(parts)})"


def _at(structure: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        structure = structure[part]
    return structure


def _timestamp_sql(stamp: str, now_ms: int) -> str:
    """UTC microseconds of the keen.timestamp ``stamp`` (an SQL column; null: ``now_ms``), as
    ``timeframes.parse_iso`` reads it (no offset: UTC); outside ``_STAMP``: a statement
    error."""
    zoned = (f"CASE WHEN right({stamp}, 1) = 'Z' OR substr({stamp}, length({stamp}) - 5, 1) "
             f"IN ('+', '-') THEN {stamp} ELSE {stamp} || 'Z' END")
    return (f"CASE WHEN {stamp} IS NULL THEN {now_ms} WHEN regexp_full_match({stamp}, "
            f"{_lit(_STAMP)}) THEN epoch_us(CAST({zoned} AS TIMESTAMPTZ)) "
            "ELSE error('keen.timestamp') END")
