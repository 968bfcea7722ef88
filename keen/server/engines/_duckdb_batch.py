"""The fast lane of batch ingestion on the DuckDB engine: a whole ``POST /events`` body parsed,
validated and stored by DuckDB, with the exact Python lane (``_events.prepare_events`` and
``DuckDBStore.insert_events``) as the fallback.

Python reads, validates and splits every event one at a time (~30 us an event); here DuckDB
parses the body once, computes each event's *shape* (``json_structure``: every path with its
kind), and Python validates each distinct shape once (a batch usually has a handful) with the
shared rules: a representative event of the shape (``""`` for strings, ``0`` / ``0.0`` for
integers / floats...) goes through ``_events.prepare_event``, which checks names, nesting, the
``keen`` namespace and gives the schema types; ``DuckDBStore._shred`` of the representatives
records the typed columns exactly as the events would. One ``SELECT`` per shape (shapes read by
the same SQL share one: ``_alike``) then reads its events with ``json_transform_strict`` into
the shape's typed STRUCT (one parse: the typed columns' values, and a duplicate key is a
statement error) and builds the remaining JSON body with ``json_object`` (the values of typed
columns left out, as ``_shred`` does).
What is stored (typed columns, bodies as JSON values, schemas, tokens, insertion order) is
what the Python lane stores; ``tests/test_engine_duckdb_batch.py`` compares the two.

Concurrency: reading a batch (the text check, the parse, the shapes, their rules: nothing of
the store) runs on DuckDB connections of its own (``cursor()``), without the store's lock, so
that requests posted at once overlap (DuckDB releases the GIL); storing it (uniqueness tokens,
typed columns, seq numbers, the rows, the commit) is one transaction of the first of them under
the lock, so batches are stored one at a time, each batch's events with consecutive seq numbers
in its order, and a token is kept from the batch stored first.

Parts: one request at a time would leave all CPUs but one idle, so a large body of one
collection (``{"name": [...]}``) is cut into parts (``_parts``: one per CPU no other batch is
using, parts of at least ``_PART`` characters), each read at once on its own connection and
thread (``WORKERS`` threads in the store's pool) into a table of a shared in-memory database
(``keen_scratch``: a connection's temp tables are its own); parts found not to be cut between
the collection's events are read again whole. Once the collection's typed columns are all known
(so that the layout of its rows is), each part's events are also read at once into the rows to
store (``_Collection.stage``: typed values, ``keen.timestamp``, bodies), and storing them under
the lock is a single ``INSERT``; a property given its first typed column meanwhile (the layout
is checked again under the lock) has the batch read under the lock as a whole body is. Reading
in parts does more work in all and its parts wait when other work has the CPUs: it is used
while it has been the quicker way lately (``Pace``). The tables are dropped by the store's
housekeeping thread once the batch is answered.

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
* speed: a body under ``_SMALL`` bytes, or too many shapes for its events (each shape can cost
  a statement of its own: see ``_EVENTS_PER_SHAPE``);
* the caller also keeps autofill (access keys) and ``${keen.`` placeholders on the Python lane.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
from concurrent.futures import Future
from contextlib import ExitStack
from datetime import datetime
from typing import Any, Callable

import duckdb

from keen.server._errors import StoreClosedError
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

__all__ = ["WORKERS", "Pace", "insert_batch"]

# Text Python's JSON parser reads differently from DuckDB's, or refuses: NaN / Infinity (DuckDB
# takes any case), exponents and long digit runs (out-of-range numbers; an exponent can also
# grow when DuckDB rewrites it, see _fits), trailing commas, NUL characters.
# One pattern per character a value can follow, each starting with that character: RE2 then
# skips to its next occurrence (memchr) rather than stepping its automaton over every byte, and
# the three take 1.1 ms of a body of 2,500 realistic events where ``[:\[,]...`` alone took
# 1.9 ms. (``\u0000`` is a plain ``contains``.)
_VALUE_DOUBT = r"[ \t\n\r]*-?(?:[0-9]+(?:\.[0-9]+)?[eE]|[0-9]{16}|[nN][aA]|[iI])"
_DOUBT = (":" + _VALUE_DOUBT, ",(?:" + _VALUE_DOUBT + r"|[ \t\n\r]*[\]}])", r"\[" + _VALUE_DOUBT)
_NUL_ESCAPE = "\\u0000"
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
# parsed here at all (it holds at most a few dozen realistic events). (Measured before shapes
# read alike shared a statement, ``_alike``: the rule still counts every shape, which errs
# towards the Python lane.)
_SMALL = 16_384
# The threads that read parts of a large body besides the request's own (``_parts``): one
# per other CPU the process may use, at most 3.
WORKERS = min(3, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1) - 1)
_EVENTS_PER_SHAPE = 137
_EVENTS_FIXED = 78
# Ends the INSERT of a batch's rows. With more than one thread DuckDB plans an INSERT ...
# SELECT as a parallel "batch" insert, which gathers the rows apart and then merges them: 4.4 ms
# for 5,000 realistic rows on two threads, 2.4 ms on one. A RETURNING clause makes it plan the
# plain, one-thread insert (3.3 ms: the returned column is built but never fetched); the
# database's thread count stays as it is, for the queries.
_ONE_THREAD = " RETURNING NULL"


class _NotTaken(Exception):
    """The batch takes the Python lane."""


def insert_batch(store: DuckDBStore, project_id: str, text: str,
                 now: datetime) -> dict[str, list[dict[str, Any]]] | None:
    """Store the batch ``text`` (a ``POST /events`` body) and return the answer, or None
    (nothing stored) when it must take the Python lane."""
    if len(text) < _SMALL or text[:100].lstrip(" \t\n\r")[:1] != "{":
        return None  # a small body, or not an object (or more leading space): the Python lane
    with ExitStack() as stack:
        stack.enter_context(store._batch())
        # Reading a batch (parsing, checking, and when it is cut in parts, reading its events
        # into the rows to store) reads nothing of the store: outside the lock, so that another
        # request stores its batch meanwhile (DuckDB runs without the GIL). Everything that
        # reads or changes the store's state happens under the lock, in one transaction.
        started = time.perf_counter()
        cuttable = len(text) // _PART - 1  # (the helpers it could use)
        with store._helpers(cuttable if cuttable > 0 and store._pace.cut() else 0) as helpers:
            parts = _parts(text, helpers + 1)
            # Connections of their own (one per part), opened without waiting for the lock;
            # known to ``close``, which interrupts them and waits. Their tables are dropped
            # once the batch is answered.
            cursors = [stack.enter_context(store._cursor()) for _ in parts]
            tag = os.urandom(8).hex()
            # the first part's on the first cursor, its own (dropped with it); the others' in
            # the shared database, where the first cursor reads them
            tables = ["keen_rows"] + [f"{store.scratch}.rows_{tag}_{i}"
                                      for i in range(1, len(parts))]
            stack.callback(_drop_later, store, tables)
            try:
                batch, read = _read(store, cursors, tables, parts, text, now)
                if len(read) > 1:
                    _stage(store, project_id, batch, cursors, read, tables)
            except (_NotTaken, duckdb.Error, UnicodeError, RecursionError):
                return None
        waited = time.perf_counter()
        with store._lock:
            waited = time.perf_counter() - waited  # (another batch, a checkpoint)
            next_seq, next_column = store._next_seq, store._next_column
            added = store._columns_added
            try:
                with store._write(cursors[0]) as con:
                    answer = {name: collection.store(store, con, project_id, name)
                              for name, collection in batch.items()}
            except (_NotTaken, duckdb.Error, UnicodeError, RecursionError):
                store._next_seq, store._next_column = next_seq, next_column
                return None
            store.batches_taken += 1
            added = store._columns_added - added
        if cuttable > 0 and not added:  # (a body too small to cut, or one that added typed
            # columns, which takes a while whichever way, tells nothing)
            store._pace.took(len(read) > 1,
                             (time.perf_counter() - started - waited) / len(text))
        return answer


class Pace:
    """Whether to cut bodies into parts, by how long batches have taken lately each way.

    Reading in parts is quicker when CPUs are idle, slower when other work has them (its
    parts wait for a CPU, and it does more work in all): the way batches have been quicker
    lately is taken (seconds per character of body, from the start of reading to the commit
    but for waiting for the lock, averaged over the last few of each), the other way again
    every ``TRY`` batches to see whether that changed (every ``4 * TRY`` while it is ``FAR``
    slower)."""

    TRY = 16
    FAR = 1.15  # the other way tried 4 times less often when that much slower
    WEIGHT = 0.25  # of the newest batch in the average

    def __init__(self) -> None:
        self.lately: dict[bool, float] = {}
        self.batches = 0

    def cut(self) -> bool:
        """Whether to cut the next body."""
        self.batches += 1
        if len(self.lately) < 2:
            return True not in self.lately  # each way tried first
        quicker = self.lately[True] <= self.lately[False]
        slower = max(self.lately.values()) / max(min(self.lately.values()), 1e-15)
        every = self.TRY if slower < self.FAR else self.TRY * 4  # (a try costs what it loses)
        return quicker != (self.batches % every == 0)

    def took(self, cut: bool, seconds: float) -> None:
        """A batch read ``cut`` (in parts or not) took ``seconds`` per character."""
        before = self.lately.get(cut)
        self.lately[cut] = seconds if before is None else (
            before + self.WEIGHT * (seconds - before))


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def _create(table: str) -> str:
    """``CREATE TABLE table``: a temp table (its cursor's own) unless qualified (in the
    store's shared database, ``keen_scratch``)."""
    return f"CREATE {'' if '.' in table else 'TEMP '}TABLE {table}"


def _drop_later(store: DuckDBStore, tables: list[str]) -> None:
    """Have the store's housekeeping thread drop a batch's tables in ``keen_scratch``, once
    it is answered (the others go with their cursor)."""
    shared = [table for table in tables if "." in table]
    if shared:
        with contextlib.suppress(RuntimeError, StoreClosedError):  # closed: they go with it
            store._later(_drop, store, shared)


def _drop(store: DuckDBStore, tables: list[str]) -> None:
    with contextlib.suppress(duckdb.Error, StoreClosedError), store._cursor() as cursor:
        cursor.execute("BEGIN TRANSACTION")
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("COMMIT")


# The start of a body of one collection up to its list, and of an object up to its first key.
_HEAD = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"(?:[^"\\]|\\.)*"[ \t\n\r]*:[ \t\n\r]*\[[ \t\n\r]*')
_OPENING = re.compile(r'\{[ \t\n\r]*"(?:[^"\\]|\\.)*"[ \t\n\r]*:')
_PART = 200_000  # the least characters of a part (about 650 realistic events)


@functools.lru_cache(maxsize=64)
def _between(opening: str) -> re.Pattern[str]:
    """Where an object opening as ``opening`` follows a ``},`` (``_parts``)."""
    return re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*" + re.escape(opening))


def _parts(text: str, count: int) -> list[str]:
    """``text`` cut into at most ``count`` parts of about the same size, read at once, each a
    body of the same collection (``{"name": [`` ... ``]}``) holding the next events. A body
    that does not start as one of a single collection is one part. Cuts are made where an
    object that opens as the first event does (its first key) follows a ``},``: never in a
    string (it holds a bare ``"``), but possibly inside an event, or in a list after the
    first collection's: ``_read`` then finds the parts are not bodies of the collection."""
    head = _HEAD.match(text) if count > 1 else None
    opening = _OPENING.match(text, head.end()) if head is not None else None
    if head is None or opening is None:
        return [text]
    prefix = text[:head.end()]
    between = _between(opening.group())
    parts = []
    start = 0
    for i in range(1, count):
        found = between.search(text, max(start, len(text) * i // count))
        if found is None:
            break
        parts.append((prefix if start else "") + text[start:found.start() + 1] + "]}")
        start = found.end() - len(opening.group())
    parts.append((prefix if start else "") + text[start:])
    return parts


def _parse(con: Any, table: str, text: str) -> list[Any]:
    """Parse and check the body ``text`` into ``table``; its groups of events (_read)."""
    # One statement checks the text (_DOUBT: a statement error, even for a body of no
    # collection; the body is handed to DuckDB once), parses the body and each event: a row
    # per event (``o``: the collection's position, ``n``: the event's), and one row with a
    # null ``e`` for an empty list or a value that is not a list, so that every collection
    # shows up in the groups. (The text as one parameter: joining pieces in SQL before
    # json_each made reading ~10% slower.)
    con.execute(
        f"{_create(table)} AS "  # noqa: S608
        # json_structure recurses: DuckDB 1.4 crashes on an event nested 100,000 deep. An event
        # of MAX_STRING bytes or more takes the Python lane anyway, and is never given to it.
        "SELECT k, t, o, n - 1 AS n, e, s, hash(s) AS h, m FROM (SELECT *, CASE WHEN m < $1 "
        "THEN json_structure(e) END AS s FROM (SELECT *, strlen(e) AS m FROM ("
        "  SELECT k, t, o, unnest(CASE WHEN len(l) = 0 THEN [NULL] ELSE l END) AS e,"
        "    unnest(range(1, greatest(len(l), 1) + 1)) AS n FROM ("
        "      SELECT key AS k, type AS t, id AS o, CASE WHEN type = 'ARRAY' "
        "      THEN json_extract(value, '$[*]') ELSE [] END AS l FROM json_each("
        "        CASE WHEN regexp_matches($2, $3) OR regexp_matches($2, $4) OR "
        "          regexp_matches($2, $5) OR contains($2, $6) THEN error('doubtful text') "
        "        ELSE $2 END::JSON"
        ")))))", [MAX_STRING, text, *_DOUBT, _NUL_ESCAPE])
    rows: list[Any] = con.execute(
        "SELECT o, any_value(k), any_value(t), s, count(e), min(n), max(m), sum(m), "  # noqa: S608
        f"any_value(h) FROM {table} GROUP BY o, s").fetchall()
    rows.sort(key=lambda row: (row[0], row[5]))  # (a few rows: quicker here than ORDER BY)
    return rows


def _merged(counted: list[list[Any]]) -> tuple[list[Any], list[int]]:
    """The groups of the whole body from those of its parts (each the next events of the one
    collection, each part's events numbered from 0), and where each part's numbers start."""
    if len(counted) == 1:
        return counted[0], [0]
    if any(len({row[:3] for row in rows}) != 1 or rows[0][:3] != counted[0][0][:3]
           or rows[0][2] != "ARRAY" for rows in counted):
        raise _NotTaken  # not cut between events of one collection
    merged: dict[Any, list[Any]] = {}
    offsets = []
    offset = 0
    for rows in counted:
        offsets.append(offset)
        for o, k, t, s, count, first, longest, size, hashed in rows:
            group = merged.get(s)
            if group is None:
                merged[s] = [o, k, t, s, count, first + offset, longest, size, hashed]
            else:
                group[4] += count
                group[6] = max(group[6], longest)
                group[7] += size
        offset += sum(row[4] for row in rows)
    return sorted(merged.values(), key=lambda group: group[5]), offsets


def _read(store: DuckDBStore, cursors: list[Any], tables: list[str], parts: list[str],
          text: str, now: datetime) -> tuple[dict[str, _Collection], list[str]]:
    """Parse and check the batch (nothing stored yet): its collections in order, and the
    tables holding the events of each part read. The parts of the body are read at once, each
    on its cursor into its table of ``tables``; when they turn out not to be cut between
    events (``_merged``), or are refused, the body is read again whole. The events are then
    read from those tables together (``_Collection.events``)."""
    read = tables[:len(parts)]
    try:
        rows, offsets = _merged(_run(store, cursors, lambda cursor, i: _parse(
            cursor, read[i], parts[i])))
    except (_NotTaken, duckdb.Error, UnicodeError, RecursionError):
        if len(parts) == 1 or store._closed:
            raise
        # not cut between events (or a body the whole reading refuses as well): read whole
        read = [f"{tables[0]}_whole"]
        tables.append(read[0])
        rows, offsets = _merged([_parse(cursors[0], read[0], text)])
    con = cursors[0]
    # the events of the body (k, t, o, n, e, s, h, m), numbered across parts
    events = read[0] if len(read) == 1 else "(" + " UNION ALL ".join(  # noqa: S608
        f"SELECT k, t, o, n + {offset} AS n, e, s, h, m FROM {table}"  # noqa: S608
        for table, offset in zip(read, offsets)) + ")"
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
            if con.execute(f"SELECT count(*) FROM {events} WHERE h = ? AND NOT ({empty})",  # noqa: S608
                           [shape.hash, *pointers]).fetchone()[0]:
                raise _NotTaken  # not an empty object everywhere
    for collection in batch.values():
        collection.offsets, collection.events = offsets, events
    return batch, read


def _run(store: DuckDBStore, cursors: list[Any], work: Callable[[Any, int], Any]) -> list[Any]:
    """``work(cursor, i)`` for each part ``i`` at once (the first in this thread, the others
    in the store's pool); every part has finished when this returns or raises."""
    futures: list[Future[Any]] = [store._batch_pool().submit(work, cursor, i)
                                  for i, cursor in enumerate(cursors) if i]
    try:
        results = [work(cursors[0], 0)]
    finally:
        for future in futures:  # every part done before going on (or giving up)
            future.exception()
    return results + [future.result() for future in futures]


def _stage(store: DuckDBStore, project_id: str, batch: dict[str, _Collection],
           cursors: list[Any], read: list[str], tables: list[str]) -> None:
    """Read each collection's events into the rows to store (``_Collection.stage``), every
    part at once, when the typed columns of all its properties are known already (published:
    read without the lock); storing them checks that they still are. The new tables go into
    ``tables`` (to be dropped)."""
    plans = {name: collection.plan(store._typed.get((project_id, name), {}))
             for name, collection in batch.items()}
    todo = [(name, plan) for name, plan in plans.items() if plan]

    def work(cursor: Any, i: int) -> list[str]:
        staged = []
        for name, plan in todo:
            table = f"{read[i]}_stage_{batch[name].o}"
            tables.append(table)
            batch[name].stage(cursor, plan, read[i], table, i)
            staged.append(table)
        return staged

    if todo:
        staged = _run(store, cursors, work)
        for j, (name, plan) in enumerate(todo):
            batch[name].staged = (plan, [part[j] for part in staged])


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
        self.transform = json.dumps(_transform_type(self.structure))  # (json_transform_strict)
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
        self.offsets = [0]  # where each part's events start
        self.events = ""  # the SQL of the body's events, numbered across parts (_read)
        # the plan of the rows read already to be stored (``stage``) and their tables
        self.staged: tuple[list[tuple[str, dict[str, str]]], list[str]] | None = None

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
                f"SELECT s, min(n) FROM {self.events} WHERE o = ? "  # noqa: S608
                "AND NOT list_contains(?, n) "
                "GROUP BY s", [self.o, dropped]).fetchall())
            shapes = sorted((s for s in shapes if s.text in firsts),
                            key=lambda s: firsts[s.text])
        if shapes:
            store._shred(con, project_id, name, [shape.stored for shape in shapes])
            known = store._pending[(project_id, name)]
            first = store._next_seq
            kept = self.count - len(dropped)
            if self.staged is not None and self.staged[0] == self.plan(known):
                self._insert_staged(con, project_id, name, self.staged, first, dropped)
            else:  # a property's typed column is new: read the events now
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
            "SELECT n, t FROM (SELECT n, json_extract_string(e, '/keen/uniqueness_token') AS t "  # noqa: S608
            f"FROM {self.events} WHERE o = ?) WHERE t IS NOT NULL ORDER BY n",
            [self.o]).fetchall()
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

    def plan(self, known: dict[str, tuple[int, str]]) -> list[tuple[str, dict[str, str]]] | None:
        """For each shape, the SQL of the stored body and of the typed columns' values
        (``_split``) given the typed columns ``known``; None when a property has none yet."""
        plan = []
        for shape in self.shapes:
            columns: dict[str, str] = {}
            try:
                body = self._split(shape.stored, (), shape, known, columns)
            except KeyError:
                return None
            plan.append((body, columns))
        return plan

    def _select(self, shapes: list[_Shape], body: str, values: str, table: str,
                keep: str) -> str:
        """The events of ``shapes`` in ``table`` as they are stored: ``n, ts, token, body``,
        then ``values``. ``json_transform_strict`` reads each event into the shapes' typed
        STRUCT in one parse (a duplicate key is a statement error), ``json_object`` builds the
        remaining body (``_split``); parameters ``$o`` and ``$ids`` (the events' keen.id).
        The shapes are read alike (``_alike``)."""
        shape = shapes[0]
        stamp = "t['keen']['timestamp']" if shape.has_stamp else "NULL"
        stamp_sql = _timestamp_sql("st", self.now_ms) if shape.has_stamp else str(self.now_ms)
        token = "t['keen']['uniqueness_token']" if shape.has_token else "NULL"
        hashes = ", ".join(str(each.hash) for each in shapes)
        return (
            f"SELECT n, u - ((u % 1000) + 1000) % 1000 AS ts, {token} AS token, "  # noqa: S608
            f"{body} AS body{values} FROM ("
            f"  SELECT *, {stamp_sql} AS u FROM ("
            f"    SELECT *, {stamp} AS st, substr($ids, 24 * n + 1, 24) AS keen_id FROM ("
            f"      SELECT n, e, json_transform_strict(e, {_lit(shape.transform)}) AS t "
            f"      FROM {table} WHERE o = $o AND h IN ({hashes}){keep})))")

    @staticmethod
    def _alike(branches: list[tuple[_Shape, str, str]]) -> list[tuple[list[_Shape], str, str]]:
        """``(shape, body, values)`` gathered into one ``(shapes, body, values)`` per way of
        reading them: shapes read by the same SQL (same STRUCT, ``keen`` fields, body and
        columns; such as a list that is empty in some events) are read by one ``SELECT``,
        whose planning costs ~1.5 ms whatever the events."""
        alike: dict[tuple[str, bool, bool, str, str], list[_Shape]] = {}
        for shape, body, values in branches:
            alike.setdefault((shape.transform, shape.has_stamp, shape.has_token, body, values),
                             []).append(shape)
        return [(shapes, body, values) for (*_, body, values), shapes in alike.items()]

    def stage(self, con: Any, plan: list[tuple[str, dict[str, str]]], rows: str, table: str,
              part: int) -> None:
        """Read the events of part ``part`` of the body (in ``rows``, numbered from 0) into
        ``table`` as they are to be stored, by ``plan``: one statement for all shapes, every
        typed column of any (null where a shape has none)."""
        count = [*self.offsets, self.count][part + 1] - self.offsets[part]
        names = list(dict.fromkeys(column for _, columns in plan for column in columns))
        selects = [self._select(shapes, body, values, rows, "") for shapes, body, values in
                   self._alike([(shape, body, "".join(f", {columns.get(column, 'NULL')} AS "
                                                      f"{column}" for column in names))
                                for shape, (body, columns) in zip(self.shapes, plan)])]
        con.execute(f"{_create(table)} AS " + " UNION ALL ".join(selects),
                    {"ids": os.urandom(12 * count).hex(), "o": self.o})

    @staticmethod
    def _seq(dropped: list[int]) -> tuple[str, str]:
        """The seq of event ``n`` (its rank among the stored events of the collection), and
        the condition keeping it."""
        if not dropped:
            return "$first + n", ""
        return ("$first + n - len(list_filter($dropped, lambda d: d < n))",
                " AND NOT list_contains($dropped, n)")

    def _insert_staged(self, con: Any, project_id: str, name: str,
                       staged: tuple[list[tuple[str, dict[str, str]]], list[str]], first: int,
                       dropped: list[int]) -> None:
        """Store the events read by ``stage``: one ``INSERT`` of its rows."""
        plan, tables = staged
        names = "".join(f", {column}" for column in
                        dict.fromkeys(column for _, columns in plan for column in columns))
        rows = " UNION ALL ".join(f"SELECT n + {offset} AS n, * EXCLUDE (n) FROM {table}"  # noqa: S608
                                  for table, offset in zip(tables, self.offsets))
        seq, keep = self._seq(dropped)
        con.execute(
            f"INSERT INTO events (project, collection, ts, seq, token, body{names}) "  # noqa: S608
            f"SELECT $project, $collection, ts, {seq}, token, body{names} FROM ({rows}) "
            f"WHERE true{keep}{_ONE_THREAD}",
            {"project": project_id, "collection": name, "first": first,
             **({"dropped": dropped} if dropped else {})})

    def _insert(self, con: Any, project_id: str, name: str, shapes: list[_Shape],
                known: dict[str, tuple[int, str]], first: int, dropped: list[int]) -> None:
        """Read and store the events of the batch (``events``): one ``INSERT ... SELECT``
        per way of reading its shapes (``_alike``)."""
        ids = os.urandom(12 * self.count).hex()
        seq, keep = self._seq(dropped)
        branches = []
        names_of = {}  # (the same values: the same columns)
        for shape in shapes:
            columns: dict[str, str] = {}
            body = self._split(shape.stored, (), shape, known, columns)
            values = "".join(f", {value} AS {column}" for column, value in columns.items())
            names_of[values] = "".join(f", {column}" for column in columns)
            branches.append((shape, body, values))
        for alike, body, values in self._alike(branches):
            names = names_of[values]
            con.execute(
                f"INSERT INTO events (project, collection, ts, seq, token, body{names}) "  # noqa: S608
                f"SELECT $project, $collection, ts, {seq}, token, body{names} FROM ("
                f"{self._select(alike, body, values, self.events, keep)}){_ONE_THREAD}",
                {"project": project_id, "collection": name, "first": first, "ids": ids,
                 "o": self.o, **({"dropped": dropped} if dropped else {})})

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
