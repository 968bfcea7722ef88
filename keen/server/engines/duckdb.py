"""The DuckDB engine of the local server: events in a columnar table, queries answered by DuckDB.

Layout (one DuckDB database: a file, or memory when ``path`` is None):

* ``events``: ``project``, ``collection``, ``ts`` (``keen.timestamp`` as integer UTC
  microseconds), ``seq`` (insertion number), ``token`` (``keen.uniqueness_token``) and ``body``
  (the stored event as JSON text, exactly as the SQLite engine stores it). Columns are
  compressed per column (dictionary, FSST, bit packing) and ``ts`` carries min/max zone maps,
  so a timeframe skips row groups.
* ``tokens``: the uniqueness tokens per project and collection (a primary key), so a repeated
  token is refused by an index probe instead of a scan.
* ``properties`` and ``documents``: the inferred schemas and the JSON documents (saved queries,
  datasets, access keys), as in the SQLite engine.

Queries are compiled by :mod:`keen.server.engines._duckdb_sql`; their meaning is decided in
:mod:`keen.server.engine`, shared with the SQLite engine.

An existing SQLite database of the ``sqlite`` engine given as ``path`` is **migrated**: the
first open copies its events, schemas and documents into a DuckDB database beside it
(``PATH.duckdb``), which is used from then on; the SQLite file is left untouched.

Thread safety: writes go through one connection under a lock; every read uses its own cursor
(DuckDB runs reads concurrently with writes, each seeing the last committed state). A batch of
``insert_batch`` is parsed and checked on a cursor of its own outside the lock (a large one in
parts at once, on a pool of threads: ``_duckdb_batch``), then stored in a transaction of that
cursor under the lock (so concurrent batches overlap).

Checkpoints: a commit does not checkpoint the WAL of a file database, as DuckDB's would once
past its threshold (250-500 ms added to that request's answer): the store's housekeeping
thread does, under the lock, while the next batches are being read, once the WAL passes
``_CHECKPOINT_WAL_LEAST`` (48 MB, about 180,000 realistic events) and the rows added since the
last checkpoint nearly fill a row group, so that DuckDB has no old rows to rewrite (or at
``_CHECKPOINT_WAL``, 128 MB: see there). DuckDB's own threshold (16 MB by default) is raised to
256 MB, left as a backstop; a ``checkpoint_threshold`` (or ``wal_autocheckpoint``) given in
``config`` is DuckDB's own, as given.

Closing while requests run (``close``; ``LocalKeenServer.stop`` and ``keen-server``'s shutdown
close a file database): every cursor comes from ``_cursor``, so ``close`` knows the queries and
batches being read, interrupts them (again every 50 ms: an interruption between two statements
does not stop the next one) and waits for them at most ``_CLOSE_WAIT`` seconds, because DuckDB
refuses to close a connection whose cursor is running (``ResourceInUseException``). A write
under way (a batch being stored included) is let finish first. A stopped query answers **503
``ServiceUnavailableError``** (``StoreClosedError``; also a ``RuntimeError``, as any use of the
closed store): not ``QueryTimeoutError``, since the query was within its time and narrowing it
(that error's remedy) would not help, while 503 ``ServiceUnavailableError`` is already the
server's "not now, send it again" (``KeenClient`` and background delivery retry a 503). A batch
not yet stored when the store closes is not stored and gets the same 503. ``close`` never
raises: a statement stuck past the wait (a Python function that does not return) leaves the
connection open, and a checkpoint that fails leaves the committed writes in the WAL (each
logged on the ``keen.server`` logger).

Time limit (``query_time_limit``, as the SQLite engine's): DuckDB cannot look at the query's
deadline itself, so a watchdog thread interrupts the cursor (or, for a delete, the writer) at
the deadline, and ``keen_regexp`` stops once every running query is past its own; either way
the answer is 503 QueryTimeoutError (``_bounded``).

Memory limit (DuckDB's ``memory_limit``: 80% of the machine's memory unless ``config`` says
otherwise). A query past it is a 400 QueryTooComplexError: the request is what is too large,
and a narrower one is the remedy. A write past it (storing events, deleting events or a
property, or a commit that cannot allocate) is a **507 InsufficientStorageError**, and the
whole write is rolled back: nothing of it is kept, no typed column it added stays known, and
the store goes on. A write that cannot write its files (a full disk: the database, its WAL, or
the temporary files DuckDB spills to under memory pressure; an ``IOException`` or a failed
commit) is the same 507, rolled back the same way (``_storage_full``; the SQLite engine answers
its SQLITE_FULL and SQLITE_IOERR alike: ``keen.server.limits.storage_full``). Why 507 (RFC
4918: the server "is unable to store the representation needed to complete the request") rather
than the alternatives: not 413, because the request is within every documented limit and how
much memory it needs depends on the server's state (queries running beside it; an in-memory
database's own events), which the client cannot know, and keen's background delivery answers a
413 by splitting the batch down to single events and dropping those still refused; not 503,
because waiting does not free the memory an in-memory database's events hold, and clients retry
a 503 on their own (KeenClient does) to no end. A 507 is reported at once by KeenClient and
kept and retried by background delivery (it retries every 5xx, so no event is lost while the
operator frees memory or space).

The migration of a SQLite database is built in ``PATH.duckdb.partial`` and renamed to
``PATH.duckdb`` once complete, so a migration that fails (out of memory, a crash) leaves no
database that a later start would take for a finished copy: that start copies again. Its
failure is a ``DatabaseError`` (``keen-server`` says why and exits).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from keen.server._errors import QueryError, StoreClosedError, bad_request
from keen.server._events import EventError, collection_name_error, prepare_events
from keen.server.engines import _duckdb_batch
from keen.server.engines._catalog import SqlCatalog, dumps
from keen.server.engines._duckdb_batch import insert_batch
from keen.server.engines._duckdb_sql import (
    DEADLINES,
    TIMESTAMP_COLUMN,
    Compiled,
    QueryTimedOut,
    register_functions,
)
from keen.server.engines.base import DatabaseError
from keen.server.filters import normalize_filters
from keen.server.limits import (
    MAX_NESTING,
    QUERY_TIME_LIMIT,
    QUERY_TIMEOUT,
    TOO_COMPLEX,
    check_deadline,
    check_filter_counts,
    check_json,
    deadline_passed,
    query_deadline,
    storage_full,
    time_left,
    timeout_error,
)
from keen.server.timeframes import resolve_timeframe, to_micros

__all__ = ["DuckDBStore"]

logger = logging.getLogger("keen.server")

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    project VARCHAR NOT NULL,
    collection VARCHAR NOT NULL,
    ts BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    token VARCHAR,
    body VARCHAR NOT NULL USING COMPRESSION zstd
);
CREATE TABLE IF NOT EXISTS typed_columns (
    project VARCHAR NOT NULL,
    collection VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    id INTEGER NOT NULL,
    kinds VARCHAR NOT NULL,
    PRIMARY KEY (project, collection, path)
);
CREATE TABLE IF NOT EXISTS tokens (
    project VARCHAR NOT NULL,
    collection VARCHAR NOT NULL,
    token VARCHAR NOT NULL,
    PRIMARY KEY (project, collection, token)
);
CREATE TABLE IF NOT EXISTS properties (
    project VARCHAR NOT NULL,
    collection VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    PRIMARY KEY (project, collection, path)
);
CREATE TABLE IF NOT EXISTS documents (
    project VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    body VARCHAR NOT NULL,
    PRIMARY KEY (project, kind, name)
);
"""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_IMPORT_BATCH = 20_000
_FETCH_ROWS = 1_000  # rows fetched at a time when events are read back
_INSERT_CHUNK = 1_000  # events validated, then inserted together (memory: a few times the body)
# delete_property reads and rewrites at most this many events together, and about this many
# characters of their bodies (a chunk may end one event past it)
_DELETE_CHUNK = 5_000
_DELETE_CHUNK_BYTES = 4_000_000
MAX_TYPED_PATHS = 64  # per collection; further properties are read from the JSON body only
# per database (every collection's columns are in one table): each new column is an ALTER TABLE
# that takes longer as the table widens, so past this, new properties stay in the JSON body
MAX_TYPED_COLUMNS = 1_024
# seconds close() waits for the cursors it interrupted (each stops within milliseconds)
_CLOSE_WAIT = 10.0
# ordered_groups leaves a scope that had at most this many (bucket, group) rows to the shared
# path (rendering in Python: ~5 us a group, against ~0.5 ms more planning for DuckDB's);
# the row counts of this many grouped scopes are remembered
_FEW_GROUPS = 100
_GROUP_MEMORY = 1_024
# When the housekeeping thread checkpoints (``_checkpoint_soon``), and DuckDB's own threshold,
# left as a backstop. A checkpoint writes the rows added since the last one as new row groups
# of up to _ROW_GROUP_ROWS rows (DuckDB's default size), and merges a row group the last one
# left partly filled with the new ones whenever that leaves fewer row groups, rewriting its old
# rows. So once the WAL passes _CHECKPOINT_WAL_LEAST, the checkpoint waits for the rows added
# since the last one to come within a commit of filling their last row group (then nothing old
# is rewritten, or a row group of a commit's rows), or for the WAL to reach _CHECKPOINT_WAL.
# Measured on 600-1,000 batches of 5,000 realistic events, the next batches being read
# meanwhile: at every 64 MB of WAL, 270-780 ms a checkpoint (the larger ones rewriting a row
# group of the last), 8.4-8.7 ms a batch in all; so, 250-280 ms, 5.2 ms a batch (2.8 with
# nothing else running). (Not DuckDB's default of 16 MB: from the fourth such checkpoint on,
# one in two took 300-600 ms, 15 ms a batch in all, and the file was a third larger.)
_CHECKPOINT_WAL_LEAST = 48 * 2**20
_CHECKPOINT_WAL = 128 * 2**20
_ROW_GROUP_ROWS = 122_880
_CHECKPOINT_BACKSTOP = "256MB"
_NO_COLUMN_YET = -2  # a property that has held no scalar yet (objects, lists, nulls)
_SCALARS = frozenset("sifb")
_COLUMN_TYPES = {"s": "VARCHAR", "i": "BIGINT", "f": "DOUBLE", "b": "BOOLEAN"}


_KINDS: dict[type, str] = {str: "s", bool: "b", int: "i", float: "f", type(None): "n",
                           list: "l", dict: "o"}
_UNSEEN: Any = object()


def _kind(value: Any) -> str:
    """``s``tring, ``i``nteger, ``f``loat, ``b``oolean, ``n``ull, ``l``ist or ``o``bject."""
    if isinstance(value, str):
        return "s"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    if value is None:
        return "n"
    return "l" if isinstance(value, list) else "o"


def _put_back(event: dict[str, Any], path: str, value: Any) -> None:
    node = event
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


_dumps = dumps


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


class _Watchdog:
    """One thread that interrupts the DuckDB connections whose query is past its deadline
    (DuckDB cannot look at the deadline itself; a timer thread per query cost 0.15 ms)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Any]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, con: Any) -> int:
        with self._cond:
            token = self._next
            self._next += 1
            self._armed[token] = (deadline, con)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="keen-duckdb-deadlines")
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:  # once this returns, the connection is never interrupted for it
            self._armed.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token in [t for t, (deadline, _) in self._armed.items() if deadline <= now]:
                    self._armed.pop(token)[1].interrupt()
                soonest = min((deadline for deadline, _ in self._armed.values()), default=None)
                self._cond.wait(None if soonest is None else soonest - now)


_WATCHDOG = _Watchdog()


def _storage_full(exc: duckdb.Error) -> QueryError | None:
    """The 507 of a write DuckDB could not keep (see the module docstring), or None: past its
    memory limit, or an I/O error (a full disk: its file, its WAL, or the temporary files it
    spills to under memory pressure)."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return storage_full("ran out of memory (past its memory limit, DuckDB's memory_limit)")
    if isinstance(exc, duckdb.IOException):
        return storage_full(_io_failure(exc))
    return None


def _io_failure(exc: duckdb.Error) -> str:
    return f"could not write ({str(exc).splitlines()[0]})"


@contextmanager
def _bounded(con: Any, *, writing: bool = False) -> Iterator[None]:
    """Statements of ``con`` run in the block stop at the running query's deadline
    (``keen.server.limits.query_deadline``): the watchdog calls ``con.interrupt()``, and the
    answer is 503 QueryTimeoutError. A value nested too deeply for a Python function, or a
    query past DuckDB's memory limit, is a 400 QueryTooComplexError (``writing``: left to
    ``_write``, which answers it 507); a query whose temporary files the disk cannot hold is a
    507 InsufficientStorageError."""
    left = time_left()
    if left is not None and left <= 0:
        raise timeout_error()
    deadline = math.inf if left is None else time.monotonic() + left
    token = DEADLINES.add(deadline)
    armed = None if left is None else _WATCHDOG.arm(deadline, con)
    try:
        yield
    except duckdb.Error as exc:
        if isinstance(exc, duckdb.InterruptException) or deadline_passed() or (
                QueryTimedOut.__name__ in str(exc)):
            raise timeout_error() from None
        if "RecursionError" in str(exc):
            raise bad_request(TOO_COMPLEX,
                              "A value this query compares is nested too deeply (stored before "
                              f"the limit of {MAX_NESTING} levels); delete those events or "
                              "query another property.") from None
        if isinstance(exc, duckdb.IOException) and not writing:  # spilling to a full disk
            raise storage_full(_io_failure(exc), query=True) from None
        if isinstance(exc, duckdb.OutOfMemoryException) and not writing:  # (_write: a 507)
            raise bad_request(TOO_COMPLEX,
                              "The query needs more memory than DuckDB may use here (its "
                              "memory_limit); narrow its timeframe, filters or group_by.") from None
        raise
    finally:
        if armed is not None:
            _WATCHDOG.disarm(armed)
        DEADLINES.remove(token)


def _sum_value(row: Sequence[Any]) -> Any:
    """The sum of a row ending with the integer and the float sums (None when both are)."""
    whole, fraction = row[-2], row[-1]
    if whole is None and fraction is None:
        return None
    return int(whole) if fraction is None else fraction if whole is None else int(whole) + fraction


def _values(
    columns: Sequence[Any], analyses: Sequence[tuple[str, str | None, float | None]],
) -> Iterator[Any]:
    """One value per analysis from its result columns (a sum has two, see ``_sum_value``)."""
    position = 0
    for analysis, _, _ in analyses:
        if analysis == "sum":
            yield _sum_value(columns[position:position + 2])
            position += 2
        else:
            yield columns[position]
            position += 1


def _bucket_key(scope: Any, groups: list[str]) -> tuple[str, list[str]]:
    """The bucket column of a grouped statement's rows (first) and the keys to group by:
    without an interval the bucket is the constant 0, selected around the grouping (``"0, "``)
    rather than grouped by (a constant key made DuckDB's grouping of 1M rows up to twice as
    slow); with one, ``q.b`` is the first key."""
    if scope.buckets is None:
        return "0, ", groups
    return "", ["q.b", *groups]


def _group_scope(scope: Any) -> tuple[Any, ...]:
    """What ``DuckDBStore._group_rows`` remembers a grouped scope's row count by."""
    return scope.project_id, scope.collection, tuple(scope.group_by), scope.buckets is None


def _key(number: Any, text: Any) -> Any:
    """A group key in the shared convention (a number, else JSON text)."""
    return number if number is not None else text


class DuckDBStore(SqlCatalog):
    """Events and documents of every project in one DuckDB database (``path`` None = memory)."""

    def __init__(self, path: str | None = None, *, config: Mapping[str, Any] | None = None,
                 ) -> None:
        """``config``: DuckDB settings of the database (``{"memory_limit": "4GB"}``)."""
        self.path = path
        # Seconds a query may run before it is stopped (503 QueryTimeoutError); None: no limit.
        self.query_time_limit: float | None = QUERY_TIME_LIMIT
        self._lock = threading.RLock()
        self._closed = False
        self._config = dict(config or {})
        # A file database is checkpointed by the housekeeping thread (``_checkpoint_soon``),
        # not by a commit (which would answer 250-500 ms later); DuckDB's own checkpoint
        # stays as a backstop.
        if not {"checkpoint_threshold", "wal_autocheckpoint"} & set(self._config):
            self._config["checkpoint_threshold"] = _CHECKPOINT_BACKSTOP
        self._housekeeper: ThreadPoolExecutor | None = None  # see _later
        self._checkpoint_due = False
        # rows of the events table (with deleted ones: its row groups' rows) at the last
        # checkpoint, and at the last commit looked at since (_checkpoint_soon)
        self._rows_checkpointed = 0
        self._rows_seen: int | None = None
        self.batches_taken = 0  # batches stored by insert_batch (the others: insert_events)
        # (project, collection, group_by, no interval) -> rows of its last answer: see
        # ordered_groups
        self._group_rows: dict[tuple[Any, ...], int] = {}
        # the cursors in use (queries of _read, batches of insert_batch): see close
        self._running = threading.Condition()
        self._cursors: set[Any] = set()
        self._storing: set[Any] = set()  # those of them storing a batch (_write): let finish
        self._pool: ThreadPoolExecutor | None = None  # reads parts of batches (_batch_pool)
        self._workers = _duckdb_batch.WORKERS
        # CPUs (the pool's threads, and one for each batch being read or stored) in use by
        # batches: see _helpers
        self._cpus = threading.Lock()
        self._cpus_busy = 0
        self._pace = _duckdb_batch.Pace()  # whether to cut the next body in parts
        self._columns_added = 0  # typed columns added (ALTER TABLE) since the store opened
        migrate_from: str | None = None
        target = ":memory:" if path is None or path == ":memory:" else path
        if target != ":memory:" and _is_sqlite(target):
            migrate_from, target = target, target + ".duckdb"
            if os.path.exists(target):
                migrate_from = None  # migrated on an earlier start
            else:
                self._migrate(migrate_from, target)
        self._open(target)
        self.database = target
        self.migrated_from = migrate_from

    def _open(self, target: str) -> None:
        # the WAL the housekeeping thread checkpoints (``_checkpoint_soon``)
        self._wal: str | None = None if target == ":memory:" else target + ".wal"
        try:
            self._con = duckdb.connect(target, config=self._config)
            register_functions(self._con)
            # tables shared by the cursors reading the parts of a batch (_duckdb_batch)
            # (not the name of the file's own database: keen_scratch.duckdb is keen_scratch)
            main = self._con.execute("SELECT current_database()").fetchone()
            self.scratch = "keen_scratch_" if main == ("keen_scratch",) else "keen_scratch"
            self._con.execute(f"ATTACH ':memory:' AS {self.scratch}")
            self._con.execute(_SCHEMA)
            row = self._con.execute("SELECT max(seq) FROM events").fetchone()
            self._rows_checkpointed = self._table_rows()
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot open the DuckDB database {target!r}: {exc}") from None
        self._next_seq = 0 if row is None or row[0] is None else int(row[0]) + 1
        self._load_typed()

    def _migrate(self, sqlite_path: str, target: str) -> None:
        """Copy the SQLite database into ``target`` through ``target.partial``, renamed only
        once complete and checkpointed; on failure nothing is left (DatabaseError)."""
        partial = target + ".partial"
        leftovers = (partial, partial + ".wal")
        for name in leftovers:  # of a copy that a crash interrupted
            if os.path.exists(name):
                os.remove(name)
        try:
            self._open(partial)
            self._wal = None  # checkpointed below, once copied
            try:
                self._import_sqlite(sqlite_path)
                self._con.execute("CHECKPOINT")
            finally:
                self._con.close()
            os.replace(partial, target)
        except (duckdb.Error, QueryError, sqlite3.Error) as exc:
            for name in leftovers:
                if os.path.exists(name):
                    os.remove(name)
            reason = (exc.message.split("; ")[0]  # (a 507 of _write: why it was not kept)
                      if isinstance(exc, QueryError) else str(exc).splitlines()[0])
            raise DatabaseError(
                f"cannot copy the SQLite database {sqlite_path!r} into {target!r}: {reason} "
                "(nothing was kept; the next start copies again)") from None

    # ------------------------------------------------------------------ typed columns

    def _load_typed(self) -> None:
        """Which properties of each collection have typed columns, with the kinds of value
        (``_kind``) each property has held: ``(project, collection) -> path -> (column,
        kinds)``; column -1 when the collection had too many properties to give it one, -2
        while it has held no scalar."""
        self._typed: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        self._pending: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        # the stored schema of each collection, as _save_schema last knew it (path -> type)
        self._schemas: dict[tuple[str, str], dict[str, str]] = {}
        self._schemas_pending: dict[tuple[str, str], dict[str, str]] = {}
        self._version = 0
        self._next_column = 0
        for project, collection, path, column, kinds in self._con.execute(
                "SELECT project, collection, path, id, kinds FROM typed_columns").fetchall():
            self._typed.setdefault((project, collection), {})[path] = (int(column), kinds)
            self._next_column = max(self._next_column, int(column) + 1)

    def _columns_for(
        self, project_id: str, collection: str,
    ) -> dict[str, tuple[int | str, str]]:
        known = self._typed.get((project_id, collection), {})
        found: dict[str, tuple[int | str, str]] = {
            path: info for path, info in list(known.items()) if info[0] >= 0}
        found["keen.timestamp"] = TIMESTAMP_COLUMN
        return found

    def _compiled(self, scope: Any) -> Compiled:
        return Compiled(scope, self._columns_for(scope.project_id, scope.collection))

    def _shred(
        self, con: Any, project_id: str, collection: str, events: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, list[Any]], list[str]]:
        """Split ``events`` (inside the write transaction) into typed column values and the
        JSON bodies of the rest (objects kept, even when emptied); records the kinds of every
        property seen, adding columns for new ones."""
        # Changes are published when the transaction commits (``_write``): until then readers
        # must not name the columns it adds.
        key = (project_id, collection)
        known = self._pending.get(key)
        if known is None:
            known = self._pending[key] = dict(self._typed.get(key, {}))
        changed: dict[str, tuple[int, str]] = {}
        columns: dict[str, list[Any]] = {}
        count = len(events)
        typed_paths = [sum(1 for c, _ in known.values() if c >= 0)]

        def note(path: str, kind: str) -> int:
            column, kinds = known.get(path, (_NO_COLUMN_YET, ""))
            if column == _NO_COLUMN_YET and kind in _SCALARS:  # the first scalar it holds
                column = self._next_column if (typed_paths[0] < MAX_TYPED_PATHS
                                               and self._next_column < MAX_TYPED_COLUMNS) else -1
                if column >= 0:
                    self._next_column += 1
                    typed_paths[0] += 1
                known[path] = changed[path] = (column, kinds)
            if kind not in kinds:
                kinds += kind
                if column >= 0 and kind in _SCALARS:
                    con.execute(f"ALTER TABLE events ADD COLUMN p{column}_{kind} "
                                f"{_COLUMN_TYPES[kind]}")
                    self._columns_added += 1
                known[path] = changed[path] = (column, kinds)
            return column

        # (path, kind) -> the typed column's values, or None: the kind is already recorded
        targets: dict[tuple[str, str], list[Any] | None] = {}

        def split(event: Mapping[str, Any], prefix: str, row: int) -> dict[str, Any]:
            rest: dict[str, Any] = {}
            for name, value in event.items():
                path = prefix + name
                kind = _KINDS.get(type(value)) or _kind(value)
                target = targets.get((path, kind), _UNSEEN)
                if target is _UNSEEN:  # first time in this batch
                    if path == "keen.timestamp":
                        continue  # rendered from ts (TIMESTAMP_COLUMN)
                    column = note(path, kind)
                    target = None
                    if column >= 0 and kind in _SCALARS:
                        target = columns.setdefault(f"p{column}_{kind}", [None] * count)
                    targets[(path, kind)] = target
                if target is not None:
                    target[row] = value
                elif kind == "o":
                    rest[name] = split(value, path + ".", row)
                else:
                    rest[name] = value
            return rest

        bodies = [_dumps(split(event, "", row)) for row, event in enumerate(events)]
        if changed:
            con.executemany(
                "INSERT OR REPLACE INTO typed_columns VALUES (?, ?, ?, ?, ?)",
                [[project_id, collection, path, column, kinds]
                 for path, (column, kinds) in changed.items()],
            )
        return columns, bodies

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _write(self, con: Any = None) -> Iterator[Any]:
        """The writer connection (or ``con``, a cursor of it) in a transaction, under the
        lock. The block's changes are committed when it ends, or all rolled back when it
        raises or the commit fails: then the typed columns it added are forgotten, and a write
        past DuckDB's memory limit, or that fails to write its files (a full disk), is a 507
        (``_storage_full``)."""
        with self._lock:
            with self._running:  # (close: not interrupted once storing)
                self._check_open()
                if con is not None:
                    self._storing.add(con)
            try:
                with self._writing(self._con if con is None else con) as written:
                    yield written
            finally:
                if con is not None:
                    with self._running:
                        self._storing.discard(con)

    @contextmanager
    def _writing(self, con: Any) -> Iterator[Any]:
        """``_write``'s transaction on ``con`` (under the lock)."""
        next_column = self._next_column
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException as exc:
            self._forget(next_column)
            con.execute("ROLLBACK")
            answer = _storage_full(exc) if isinstance(exc, duckdb.Error) else None
            if answer is None:
                raise
            raise answer from None
        try:
            con.execute("COMMIT")
        except duckdb.Error as exc:  # DuckDB has rolled the transaction back
            self._forget(next_column)
            raise storage_full(f"could not commit ({str(exc).splitlines()[0]})") from None
        if self._pending:  # still under the lock: see _stable
            self._typed.update(self._pending)
            self._pending.clear()
            self._version += 1
        self._schemas.update(self._schemas_pending)
        self._schemas_pending.clear()
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """After a commit (under the lock): have the WAL of a file database checkpointed by
        the housekeeping thread, once it passes ``_CHECKPOINT_WAL_LEAST`` bytes and the rows
        added since the last checkpoint are within a commit like this one of filling their last
        row group (or the WAL passes ``_CHECKPOINT_WAL``). The checkpoint takes the lock, so
        writes wait for it while batches go on being read."""
        if self._checkpoint_due or self._wal is None:
            return
        try:
            size = os.path.getsize(self._wal)
        except OSError:
            return  # no WAL
        if size < _CHECKPOINT_WAL_LEAST:
            self._rows_seen = None
            return
        try:
            rows: int | None = self._table_rows()
        except duckdb.Error:  # (the commit is done: never its error) then by size alone
            rows = None
        last, self._rows_seen = self._rows_seen, rows
        if size < _CHECKPOINT_WAL:
            if last is None or rows is None:
                return  # (the size of a commit is known from the next one)
            filled = (rows - self._rows_checkpointed) % _ROW_GROUP_ROWS
            if filled and filled + (rows - last) <= _ROW_GROUP_ROWS:
                return  # a commit like the last one still fits in the last row group
        self._checkpoint_due = True
        self._later(self._checkpoint)

    def _table_rows(self) -> int:
        """The rows of the events table's row groups, deleted ones included."""
        row = self._con.execute(
            "SELECT estimated_size FROM duckdb_tables() WHERE database_name = "
            "current_database() AND schema_name = 'main' AND table_name = 'events'").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def _later(self, work: Callable[..., object], *args: Any) -> None:
        """Run ``work(*args)`` on the store's housekeeping thread (checkpoints, dropping a
        batch's tables: off the requests' way), started when first needed."""
        with self._running:
            self._check_open()  # (the thread is shut down by close)
            if self._housekeeper is None:
                self._housekeeper = ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="keen-housekeeping")
            self._housekeeper.submit(work, *args)

    def _checkpoint(self) -> None:
        with self._lock:
            self._checkpoint_due = False
            if self._closed:
                return  # (close checkpoints)
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # (committed writes are kept in the WAL regardless)
                logger.warning("keen local server: could not checkpoint the DuckDB database: "
                               "%s", str(exc).splitlines()[0])
                return
            self._rows_seen = None
            with contextlib.suppress(duckdb.Error):  # (else counted from the last one known)
                self._rows_checkpointed = self._table_rows()

    def _forget(self, next_column: int) -> None:
        """Forget the typed columns and schemas of a rolled-back write (``_write``)."""
        self._pending.clear()
        self._schemas_pending.clear()
        self._next_column = next_column

    def _stable(self, run: Callable[[], _T]) -> _T:
        """``run()`` again until no write changed the typed columns while it ran: a query
        compiled with older column knowledge must not read events written after the change
        (``_write`` publishes a change under the lock right after its commit)."""
        while True:
            with self._lock:
                version = self._version
            answer = run()
            with self._lock:
                if self._version == version:
                    return answer

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A connection of its own (``cursor()``: its own temp tables), opened without waiting
        for the lock; known to ``close`` while in use, which interrupts it and waits for it.
        Every cursor of the store comes from here (queries and batches alike)."""
        with self._running:
            self._check_open()
            cursor = self._con.cursor()
            self._cursors.add(cursor)
        try:
            yield cursor
        finally:
            cursor.close()  # drops its temp tables
            with self._running:
                self._cursors.discard(cursor)
                self._running.notify_all()

    def _batch_pool(self) -> ThreadPoolExecutor:
        """The threads reading the parts of large batches besides the requests' own
        (``_duckdb_batch._parts``), started when first needed; shut down by ``close``."""
        with self._running:
            self._check_open()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(self._workers, 1),
                                                thread_name_prefix="keen-batch")
            return self._pool

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """A batch being read or stored: one CPU in use while the block runs (_helpers)."""
        with self._cpus:
            self._cpus_busy += 1
        try:
            yield
        finally:
            with self._cpus:
                self._cpus_busy -= 1

    @contextmanager
    def _helpers(self, wanted: int) -> Iterator[int]:
        """Up to ``wanted`` threads of the pool to read parts of a batch (inside ``_batch``),
        as many as there are CPUs that no batch uses (one each, and those of its helpers):
        one request at a time gets every CPU, concurrent ones a CPU each, and a part never
        waits behind another batch's. Theirs while the block runs."""
        with self._cpus:
            taken = max(0, min(wanted, self._workers + 1 - self._cpus_busy))
            self._cpus_busy += taken
        try:
            yield taken
        finally:
            with self._cpus:
                self._cpus_busy -= taken

    @contextmanager
    def _read(self) -> Iterator[Any]:
        """A cursor of its own (``_cursor``); its statements stop at the query's deadline
        (``_bounded``), or when the store closes (503 ``StoreClosedError``)."""
        with self._cursor() as cursor:
            try:
                with _bounded(cursor):
                    yield cursor
            except (QueryError, duckdb.Error) as exc:
                # interrupted by close (_bounded takes an interruption for the deadline's)
                if self._closed and (isinstance(exc, duckdb.Error)
                                     or exc.error_code == QUERY_TIMEOUT):
                    raise StoreClosedError("the query was stopped") from None
                raise

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("its database is closed")

    def close(self) -> None:
        """Close the database (idempotent); a file database is checkpointed first. The
        cursors in use (queries, batches being read: ``_cursor``) are interrupted and waited
        for, at most ``_CLOSE_WAIT`` seconds (DuckDB refuses to close a connection whose
        cursor is running); a write under way (a batch being stored included) is let finish,
        one not yet begun raises ``StoreClosedError``. Never raises: a cursor still in use
        past that wait (a Python function that does not return) leaves the connection open,
        and a checkpoint that fails leaves the committed writes in the WAL (both logged)."""
        with self._running:
            if self._closed:
                return
            self._closed = True
            give_up = time.monotonic() + _CLOSE_WAIT
            # interrupted again every 50 ms: interrupting a cursor between two statements
            # does not stop the next one
            while self._cursors and time.monotonic() < give_up:
                for cursor in self._cursors - self._storing:
                    # (a cursor closed by its user but not yet discarded: nothing to stop)
                    with contextlib.suppress(duckdb.Error):
                        cursor.interrupt()
                self._running.wait(0.05)
            busy = len(self._cursors)
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)  # (idle: every part it read was on a cursor waited for)
        if self._housekeeper is not None:
            self._housekeeper.shutdown(wait=False)  # (a checkpoint under way has the lock)
        if busy:  # (a cursor in a Python function that does not return)
            logger.warning("keen local server: %d DuckDB statement(s) did not stop within "
                           "%g s of closing the database; it is left open (committed "
                           "writes are kept in its WAL)", busy, _CLOSE_WAIT)
            return
        with self._lock:
            try:
                if self.database != ":memory:":
                    self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # (committed writes are kept in the WAL regardless)
                logger.warning("keen local server: could not checkpoint the DuckDB database "
                               "when closing it: %s", str(exc).splitlines()[0])
            finally:
                self._con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events

    def insert_events(
        self,
        project_id: str,
        collection: str,
        events: Iterable[Any],
        *,
        now: datetime,
        autofill: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Validate, enrich and store ``events``; one result per event (as the SQLite
        engine's ``insert_events``: an ``EventError`` among ``events`` is reported as it is, a
        stored event's result is one shared ``{"success": True}``). ``events`` is consumed one
        at a time and stored in chunks, the whole batch in one transaction."""
        problem = collection_name_error(collection)
        if problem is not None:
            refused = EventError("InvalidCollectionNameError", problem).as_item()
            return [refused for _ in events]
        stamps: list[int] = []
        tokens: list[str | None] = []
        parsed: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        schema: dict[str, str] = {}
        with self._write() as con:
            for result, prepared in prepare_events(events, now=now, autofill=autofill,
                                                   schema=schema):
                results.append(result)
                if prepared is None:
                    continue
                stored, ts, token = prepared
                stamps.append(ts)
                tokens.append(token)
                parsed.append(stored)
                if len(parsed) >= _INSERT_CHUNK:
                    self._store(con, project_id, collection, stamps, tokens, parsed, {})
                    stamps, tokens, parsed = [], [], []
            if parsed or schema:
                self._store(con, project_id, collection, stamps, tokens, parsed, schema)
        return results

    def insert_batch(
        self, project_id: str, text: str, *, now: datetime,
    ) -> dict[str, list[dict[str, Any]]] | None:
        """Store a whole ``POST /events`` body (``text``) through DuckDB's own JSON reading
        (:mod:`keen.server.engines._duckdb_batch`) and return the answer; None when nothing was
        stored because the body needs the exact Python lane (``insert_events``)."""
        return insert_batch(self, project_id, text, now)

    def _store(
        self, con: Any, project_id: str, collection: str, stamps: list[int],
        tokens: list[str | None], parsed: list[dict[str, Any]], schema: Mapping[str, str],
    ) -> None:
        """Append prepared events (inside the caller's write transaction), skipping those
        whose uniqueness token is already stored (or repeated earlier in the batch)."""
        named = [t for t in tokens if t is not None]
        if named:
            fresh = {
                row[0] for row in con.execute(
                    "INSERT INTO tokens SELECT ?, ?, unnest(?::VARCHAR[]) "
                    "ON CONFLICT DO NOTHING RETURNING token",
                    [project_id, collection, list(dict.fromkeys(named))],
                ).fetchall()
            }
            keep = []
            for index, token in enumerate(tokens):
                if token is None:
                    keep.append(index)
                elif token in fresh:
                    fresh.discard(token)  # the first event with the token wins
                    keep.append(index)
            if len(keep) < len(tokens):
                stamps = [stamps[i] for i in keep]
                tokens = [tokens[i] for i in keep]
                parsed = [parsed[i] for i in keep]
        if parsed:
            typed, bodies = self._shred(con, project_id, collection, parsed)
            first = self._next_seq
            names = "".join(f", {name}" for name in typed)
            values = "".join(f", unnest(?::{_COLUMN_TYPES[name[-1]]}[])" for name in typed)
            con.execute(
                f"INSERT INTO events (project, collection, ts, seq, token, body{names}) "
                "SELECT ?, ?, unnest(?::BIGINT[]), unnest(range(?, ?)), "
                f"unnest(?::VARCHAR[]), unnest(?::VARCHAR[]){values}",
                [project_id, collection, stamps, first, first + len(bodies), tokens, bodies,
                 *typed.values()],
            )
            self._next_seq = first + len(bodies)
        if schema:
            self._save_schema(con, project_id, collection, schema)

    def _save_schema(self, con: Any, project_id: str, collection: str,
                     schema: Mapping[str, str]) -> None:
        """Merge the types of a batch into the collection's schema (``null`` gives way),
        inside the write transaction. The schemas stored are remembered (``_schemas``: read
        once, published by ``_write`` after the commit, as typed columns are), so that an
        ordinary batch does not read the table under the lock."""
        key = (project_id, collection)
        known = self._schemas_pending.get(key)
        if known is None:
            known = self._schemas.get(key)
        if known is None:
            known = dict(con.execute("SELECT path, type FROM properties WHERE project = ? AND "
                                     "collection = ?", [project_id, collection]).fetchall())
            self._schemas_pending[key] = known
        schema = {path: kind for path, kind in schema.items()
                  if known.get(path, "null") == "null" and known.get(path) != kind}
        if not schema:  # the usual case once a collection has its properties: no upsert
            return
        self._schemas_pending[key] = {**known, **schema}
        # one statement: DuckDB's executemany runs one statement a row (~1.5 ms each)
        con.execute(
            "INSERT INTO properties SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]) "
            "ON CONFLICT (project, collection, path) DO UPDATE SET type = excluded.type "
            "WHERE properties.type = 'null'",
            [project_id, collection, list(schema), list(schema.values())],
        )

    def _forget_schema(self, project_id: str, collection: str) -> None:
        """The collection's schema is about to change otherwise than by _save_schema (under
        the lock): read it again next time, whether this write commits or not."""
        self._schemas.pop((project_id, collection), None)
        self._schemas_pending.pop((project_id, collection), None)

    def delete_events(
        self,
        project_id: str,
        collection: str,
        *,
        timeframe: Any = None,
        timezone: Any = None,
        filters: Any = None,
        now: datetime,
    ) -> int:
        """Delete the events of a collection matching ``timeframe``/``filters`` (all when both
        are absent, which also forgets the collection's schema); returns how many.

        Raises ``QueryError`` (400) for a bad timeframe, timezone or filter, and 503
        ``QueryTimeoutError`` past ``query_time_limit`` (nothing is deleted then)."""
        from keen.server._engine_sql import Scope

        start, end = -(2**63), 2**63 - 1
        if timeframe is not None:
            lo, hi = resolve_timeframe(timeframe, timezone, now)
            start, end = to_micros(lo), to_micros(hi)
        check_json(filters, "filters", "InvalidFilterError")
        checked = normalize_filters(filters)
        if checked:
            check_filter_counts(checked)
        with query_deadline(self.query_time_limit), self._write() as con, \
                _bounded(con, writing=True):
            # compiled under the lock: the typed columns hold still
            compiled = self._compiled(Scope(project_id, collection, start, end, None, checked))
            where, params = compiled.filters(checked)
            source, params = compiled.source(where, params)
            chosen = f"SELECT q.seq {source}"
            con.execute(
                "DELETE FROM tokens WHERE project = ? AND collection = ? AND token IN "  # noqa: S608
                f"(SELECT q.token {source} AND q.token IS NOT NULL)",
                [project_id, collection, *params],
            )
            row = con.execute(
                f"DELETE FROM events WHERE seq IN ({chosen}) RETURNING 1", params  # noqa: S608
            ).fetchall()
            if timeframe is None and not checked:
                self._forget_schema(project_id, collection)
                con.execute("DELETE FROM properties WHERE project = ? AND collection = ?",
                            [project_id, collection])
        return len(row)

    def delete_property(self, project_id: str, collection: str, name: str) -> int:
        """Remove the dotted property ``name`` from every event of a collection and from its
        schema; returns how many events held it. ``keen.*`` is refused (403)."""
        from keen.server.filters import _sql_remove

        if name == "keen" or name.startswith("keen."):
            raise QueryError(403, "ForbiddenError", "Properties of 'keen' cannot be deleted.")
        from keen.server.engines._duckdb_sql import _literal, pointer

        path_json = json.dumps(name)
        changed = 0
        with self._write() as con:
            column, kinds = self._typed.get((project_id, collection), {}).get(name, (-1, ""))
            held = "".join(f" OR p{column}_{kind} IS NOT NULL"
                           for kind in kinds if column >= 0 and kind in _SCALARS)
            where = ("project = ? AND collection = ? AND "
                     f"(json_extract(body, {_literal(pointer(name))}) IS NOT NULL{held})")
            cleared = "".join(
                f", p{column}_{kind} = NULL"
                for path, (column, kinds) in self._typed.get((project_id, collection), {}).items()
                if column >= 0 and (path == name or path.startswith(name + "."))
                for kind in kinds if kind in _SCALARS
            )
            # Bodies are read and rewritten a chunk at a time (at most _DELETE_CHUNK events and
            # about _DELETE_CHUNK_BYTES of bodies), so Python holds one chunk, not the
            # collection: first the seq each chunk starts at (the matching events by seq, a new
            # chunk wherever either bound is crossed), then each chunk by its seq range.
            starts = [row[0] for row in con.execute(
                "SELECT min(seq) FROM (SELECT seq, "  # noqa: S608
                f"(row_number() OVER w - 1) // {int(_DELETE_CHUNK)} + "
                f"(sum(length(body)) OVER w - length(body)) // {int(_DELETE_CHUNK_BYTES)} AS k "
                f"FROM events WHERE {where} WINDOW w AS (ORDER BY seq)) GROUP BY k ORDER BY 1",
                [project_id, collection],
            ).fetchall()]
            for index, start in enumerate(starts):
                end = starts[index + 1] if index + 1 < len(starts) else 2**63 - 1
                chunk = con.execute(
                    f"SELECT seq, body FROM events WHERE {where} AND seq >= ? AND seq < ?",  # noqa: S608
                    [project_id, collection, start, end],
                ).fetchall()
                con.execute(
                    f"UPDATE events SET body = u.body{cleared} "  # noqa: S608
                    "FROM (SELECT unnest(?::BIGINT[]) AS seq, "
                    "unnest(?::VARCHAR[]) AS body) AS u WHERE events.seq = u.seq "
                    "AND events.seq >= ? AND events.seq < ?",  # (reads only the chunk's range)
                    [[seq for seq, _ in chunk],
                     [_sql_remove(body, path_json) for _, body in chunk], start, end],
                )
                changed += len(chunk)
            self._forget_schema(project_id, collection)
            con.execute(
                "DELETE FROM properties WHERE project = ? AND collection = ? "
                "AND (path = ? OR starts_with(path, ? || '.'))",
                [project_id, collection, name, name],
            )
        return changed

    # ------------------------------------------------------------------ query primitives

    def aggregate(
        self, scope: Any, analysis: str, target: str | None, percentile: float | None,
    ) -> dict[tuple[int, tuple[Any, ...]], Any]:
        """``{(bucket, group_key): raw value}`` (see ``keen.server.engines.base``)."""
        found = self._stable(lambda: self._aggregate(scope, analysis, target, percentile))
        if scope.group_by:
            self._note_groups(scope, len(found))
        return found

    def _aggregate(
        self, scope: Any, analysis: str, target: str | None, percentile: float | None,
    ) -> dict[tuple[int, tuple[Any, ...]], Any]:
        compiled = self._compiled(scope)
        groups: list[str] = []
        decoders: list[tuple[int, Callable[[Sequence[Any]], Any]]] = []
        for name in scope.group_by:
            columns, decode = compiled.group_columns(name)
            groups += columns
            decoders.append((len(columns), decode))
        if analysis == "select_unique":
            assert target is not None
            return self._select_unique(compiled, groups, decoders, target)
        result_sql, extra_where = self._result_sql(compiled, analysis, target, percentile)
        where, params = compiled.filters(scope.filters)
        source, params = compiled.source(where + extra_where, params,
                                         reads=[*groups, *result_sql])
        bucket, keys = _bucket_key(scope, groups)
        results = ", ".join(result_sql)
        if not keys:  # one answer: a plain (ungrouped) aggregate
            sql = f"SELECT 0, {results} {source}"
        else:  # (a constant selected beside the keys is not grouped by)
            first = 1 + bool(bucket)
            positions = ", ".join(str(i + first) for i in range(len(keys)))
            sql = f"SELECT {bucket}{', '.join(keys)}, {results} {source} GROUP BY {positions}"
        found: dict[tuple[int, tuple[Any, ...]], Any] = {}
        with self._read() as cur:
            for row in cur.execute(sql, params).fetchall():
                key = self._row_key(row, decoders)
                found[key] = _sum_value(row) if analysis == "sum" else row[-1]
        return found

    @staticmethod
    def _result_sql(
        compiled: Compiled, analysis: str, target: str | None, percentile: float | None,
    ) -> tuple[list[str], str]:
        """The aggregate columns of an analysis (``sum``: two, see ``_sum_value``) and what
        the WHERE clause needs besides the filters."""
        if analysis == "count":
            return ["count(*)"], ""
        assert target is not None
        number, integers, floats = compiled.number(target)
        if analysis == "sum":
            return [f"sum({integers})" if integers else "NULL",
                    f"sum({floats})" if floats else "NULL"], ""
        if analysis in ("minimum", "maximum", "average", "standard_deviation"):
            function = {"minimum": "min", "maximum": "max", "average": "avg",
                        "standard_deviation": "stddev_pop"}[analysis]
            return [f"{function}({number})"], ""
        if analysis in ("median", "percentile"):
            # nearest rank: the ceil(p/100 * n)-th smallest value (at least the first)
            # DuckDB's quantile_disc(q) is the ceil(q * n)-th value; q is nudged down by
            # 1e-14 so that float rounding of q * n never crosses an integer (exact for
            # n up to 10**10, checked against the integer formula of the SQLite engine).
            rank = round((50.0 if analysis == "median" else float(percentile or 0)) * 100)
            fraction = max(0.0, rank / 10_000 - 1e-14)
            return [f"quantile_disc({number}, {fraction!r})"], f" AND {number} IS NOT NULL"
        if analysis == "count_unique":
            return [compiled.distinct_count(target)], ""
        raise AssertionError(analysis)  # pragma: no cover - the engine validates analysis names

    def ordered_groups(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
    ) -> list[tuple[Any, ...]] | None:
        """Groups in the answer's order and text (see ``keen.server.engines.base``) when every
        group_by property is kept in typed columns (only strings, numbers and booleans: their
        order and JSON text are computed in SQL); else None. One statement for all analyses.

        Also None for one analysis whose scope (project, collection, group_by, with an
        interval or not) gave at most ``_FEW_GROUPS`` rows the last time it was asked: the
        shared path renders so few groups faster than DuckDB plans the ordering and the
        rendering (~0.5 ms of a 2.5 ms group_by of 20 values over 1M events), and gives the
        same answer. (Several analyses stay one statement here rather than one each there.)"""
        if self._few_groups(scope, analyses):
            return None
        rows = self._stable(lambda: self._ordered_groups(scope, analyses))
        if rows is not None:
            self._note_groups(scope, len(rows))
        return rows

    def joined_groups(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
        pieces: Sequence[str],
    ) -> dict[int, str] | None:
        """The items of ``ordered_groups``' rows, each written whole in SQL (a count's text
        is its decimal digits there as in Python) and fetched as one column of strings
        (``fetchnumpy``: no tuple per row), joined per bucket; None when ``ordered_groups``
        would be, or an analysis is not a count. Over 100,000 groups this is ~20 ms less
        than fetching the rows and formatting each item in Python."""
        if (any(analysis != "count" for analysis, _, _ in analyses)
                or self._few_groups(scope, analyses)):
            return None
        found = self._stable(lambda: self._joined_groups(scope, analyses, pieces))
        if found is None:
            return None
        rows, joined = found
        self._note_groups(scope, rows)
        return joined

    def _few_groups(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
    ) -> bool:
        """Whether one analysis of this scope gave at most ``_FEW_GROUPS`` rows last time."""
        return len(analyses) == 1 and self._group_rows.get(
            _group_scope(scope), _FEW_GROUPS + 1) <= _FEW_GROUPS

    def _note_groups(self, scope: Any, rows: int) -> None:
        """Remember how many (bucket, group) rows a grouped scope had (``ordered_groups``)."""
        key = _group_scope(scope)
        if key not in self._group_rows and len(self._group_rows) >= _GROUP_MEMORY:
            self._group_rows.clear()  # (bounded: a hint, relearnt by the next query)
        self._group_rows[key] = rows

    def _ordered_groups(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
    ) -> list[tuple[Any, ...]] | None:
        statement = self._group_statement(scope, analyses, None)
        if statement is None:
            return None
        sql, params, width = statement
        with self._read() as cur:
            rows: list[tuple[Any, ...]] = cur.execute(sql, params).fetchall()
        if not any(analysis == "sum" for analysis, _, _ in analyses):
            return rows
        return [(*row[:width], *_values(row[width:], analyses)) for row in rows]

    def _joined_groups(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
        pieces: Sequence[str],
    ) -> tuple[int, dict[int, str]] | None:
        statement = self._group_statement(scope, analyses, pieces)
        if statement is None:
            return None
        sql, params, _ = statement
        with self._read() as cur:
            columns = cur.execute(sql, params).fetchnumpy()
        buckets, items = columns["b"], columns["t"]
        if scope.buckets is None:  # (the bucket is 0 throughout)
            return len(items), ({0: ",".join(items)} if len(items) else {})
        joined = {bucket: ",".join(text for _, text in found)
                  for bucket, found in groupby(zip(buckets.tolist(), items), key=itemgetter(0))}
        return len(items), joined

    def _group_statement(
        self, scope: Any, analyses: Sequence[tuple[str, str | None, float | None]],
        pieces: Sequence[str] | None,
    ) -> tuple[str, list[Any], int] | None:
        """The statement of ``_ordered_groups`` (its SQL, parameters and the position of the
        first value in a row), or of ``_joined_groups`` with ``pieces``: rows ``(b, t)``, the
        bucket and the item's text, ``pieces`` put around the keys' and values' texts."""
        compiled = self._compiled(scope)
        typed = [compiled.typed.get(name) for name in scope.group_by]
        if not typed or any(analysis in ("median", "percentile", "select_unique")
                            for analysis, _, _ in analyses):
            return None
        # (no interval: the bucket is 0, selected rather than grouped by; see _bucket_key)
        bucket = "0" if scope.buckets is None else "g0"
        inner = [] if scope.buckets is None else ["q.b AS g0"]
        texts: list[str] = []
        order = [] if scope.buckets is None else ["g0"]
        keys = 0
        for typed_property in typed:
            if typed_property is None:
                return None
            aliases = []
            for column in typed_property.key_columns():
                keys += 1
                aliases.append(f"g{keys}")
                inner.append(f"{column} AS {aliases[-1]}")
            text, ranks = typed_property.ordered_text(aliases)
            texts.append(text)
            order += ranks
        results: list[str] = []
        for analysis, target, percentile in analyses:
            result_sql, _ = self._result_sql(compiled, analysis, target, percentile)
            for sql in result_sql:  # (no extra WHERE: only median and percentile have one)
                results.append(f"r{len(results)}")
                inner.append(f"{sql} AS {results[-1]}")
        where, params = compiled.filters(scope.filters)
        source, params = compiled.source(where, params, reads=inner)
        positions = ", ".join(str(i + 1) for i in range(len(inner) - len(results)))
        if pieces is None:
            columns = f"{bucket}, {', '.join(texts)}, {', '.join(results)}"
        else:  # (the pieces are parameters, which come first: the select list is first)
            parts = [*texts, *results]
            assert len(pieces) == len(parts) + 1
            text = " || ".join(f"? || {part}" for part in parts)
            columns = f"{bucket} AS b, {text} || ? AS t"
            params = [*pieces, *params]
        sql = (f"SELECT {columns} "  # noqa: S608
               f"FROM (SELECT {', '.join(inner)} {source} GROUP BY {positions}) "
               f"ORDER BY {', '.join(order)}")
        return sql, params, 1 + len(texts)

    @staticmethod
    def _row_key(
        row: Sequence[Any], decoders: Sequence[tuple[int, Callable[[Sequence[Any]], Any]]],
    ) -> tuple[int, tuple[Any, ...]]:
        group = []
        position = 1
        for width, decode in decoders:
            group.append(decode(row[position:position + width]))
            position += width
        return int(row[0]), tuple(group)

    def _select_unique(
        self, compiled: Compiled, groups: list[str],
        decoders: Sequence[tuple[int, Callable[[Sequence[Any]], Any]]], target: str,
    ) -> dict[tuple[int, tuple[Any, ...]], Any]:
        present, columns, value = compiled.present_value(target)
        where, params = compiled.filters(compiled.scope.filters)
        source, params = compiled.source(f"{where} AND {present}", params,
                                         reads=[*groups, *columns])
        bucket, keys = _bucket_key(compiled.scope, groups)
        distinct = ", ".join([*keys, *columns])
        sql = f"SELECT {bucket}* FROM (SELECT DISTINCT {distinct} {source})"  # noqa: S608
        found: dict[tuple[int, tuple[Any, ...]], Any] = {}
        width = len(columns)
        with self._read() as cur:
            for row in cur.execute(sql, params).fetchall():
                key = self._row_key(row[:-width], decoders)
                found.setdefault(key, []).append(value(row[-width:]))
        return found

    def group_universe(self, scope: Any) -> set[tuple[int, tuple[Any, ...]]]:
        """Every (bucket, group) that has at least one matching event."""
        return set(self.aggregate(scope, "count", None, None))

    @contextmanager
    def event_bodies(
        self, scope: Any, *, newest_first: bool, limit: int | None,
    ) -> Iterator[Iterator[str]]:
        """The JSON texts of matching events by (timestamp, insertion order), whole again (the
        scalars of typed columns put back), fetched as the block consumes them."""
        with self._read() as cur:
            while True:  # as _stable: the statement's snapshot must match the columns named
                with self._lock:
                    version = self._version
                compiled = self._compiled(scope)
                where, params = compiled.filters(scope.filters)
                source, params = compiled.source(where, params)
                order = "DESC" if newest_first else "ASC"
                # the body, and every typed column: the scalars they hold go back into the event
                typed = [(path, f"p{column}_{kind}")
                         for path, (column, kinds) in compiled.columns.items()
                         for kind in kinds if kind in _SCALARS]
                columns = "".join(f", q.{name}" for _, name in typed)
                sql = f"SELECT q.body{columns} {source} ORDER BY q.ts {order}, q.seq {order}"
                if limit is not None:
                    sql += " LIMIT ?"
                    params.append(limit)
                cur.execute(sql, params)
                with self._lock:  # a writer publishes its columns under the lock
                    if self._version == version:
                        break
            yield self._whole_events(cur, [path for path, _ in typed])

    @staticmethod
    def _whole_events(cursor: Any, paths: list[str]) -> Iterator[str]:
        while True:
            rows = cursor.fetchmany(_FETCH_ROWS)
            if not rows:
                return
            for body, *values in rows:
                event = json.loads(body)
                for path, value in zip(paths, values):
                    if value is not None:
                        _put_back(event, path, value)
                yield _dumps(event)

    @contextmanager
    def actor_sets(self) -> Iterator[_ActorSets]:
        """Funnel actor sets as temporary tables of one cursor (dropped with it)."""
        with self._read() as cur:
            yield _ActorSets(cur, self)

    # ------------------------------------------------------------------ migration

    def _import_sqlite(self, sqlite_path: str) -> None:
        """Copy the events, schemas and documents of a SQLite engine's database."""
        source = sqlite3.connect(Path(sqlite_path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            with self._write() as con:
                events = source.execute(
                    "SELECT project, collection, ts, token, body FROM events ORDER BY seq")
                while True:
                    chunk = events.fetchmany(_IMPORT_BATCH)
                    if not chunk:
                        break
                    groups: dict[tuple[str, str], list[Any]] = {}
                    for project, collection, ts, token, body in chunk:
                        groups.setdefault((project, collection), []).append((ts, token, body))
                    for (project, collection), rows in groups.items():
                        # through the typed columns, as if the events were sent again
                        self._store(con, project, collection, [r[0] for r in rows],
                                    [r[1] for r in rows], [json.loads(r[2]) for r in rows], {})
                for table, width in (("properties", 4), ("documents", 4)):
                    rows = source.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                    if rows:
                        marks = ", ".join("?" * width)
                        con.executemany(f"INSERT INTO {table} VALUES ({marks})",  # noqa: S608
                                        [list(r) for r in rows])
        finally:
            source.close()


class _ActorSets:
    """Funnel actor sets as DuckDB temporary tables of one cursor (see ``EventStore``)."""

    def __init__(self, cursor: Any, store: DuckDBStore) -> None:
        self.cursor = cursor
        self.store = store
        self.count_tables = 0

    def _new(self, select: str, params: list[Any]) -> str:
        check_deadline()  # a statement started after the deadline's interrupt is not stopped
        name = f"keen_actors_{self.count_tables}"  # our own name: nothing from the query
        self.count_tables += 1
        self.cursor.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}", params)
        return name

    def did(self, scope: Any, actor: str) -> str:
        return self.store._stable(lambda: self._did(scope, actor))

    def _did(self, scope: Any, actor: str) -> str:
        compiled = self.store._compiled(scope)
        present, number, text = compiled.actor_columns(actor)
        where, params = compiled.filters(scope.filters)
        typed = compiled.typed.get(actor)
        if typed is None:
            source, params = compiled.source(f"{where} AND {present}", params,
                                             reads=[number, text])
            return self._new(f"SELECT DISTINCT {number} AS n, {text} AS t {source}", params)
        # A typed actor: its distinct columns first, then the (n, t) of each distinct value
        # (~100,000 texts rather than one per event: a step over 1M events ~30 ms sooner);
        # distinct again, as 1 and 1.0 (two columns) are one number.
        columns = [typed.col(kind) for kind in sorted(typed.kinds)]
        source, params = compiled.source(f"{where} AND {present}", params, reads=columns)
        raw = ", ".join(f"{column} AS {column.removeprefix('q.')}" for column in columns)
        return self._new(f"SELECT DISTINCT {number} AS n, {text} AS t "  # noqa: S608
                         f"FROM (SELECT DISTINCT {raw} {source}) AS q", params)

    def combine(self, previous: str, did: str, *, inverted: bool) -> str:
        operator = "EXCEPT" if inverted else "INTERSECT"
        return self._new(
            f"SELECT n, t FROM {previous} {operator} SELECT n, t FROM {did}", [])  # noqa: S608

    def count(self, table: str) -> int:
        return int(self.cursor.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def actors(self, table: str) -> list[Any]:
        rows = self.cursor.execute(f"SELECT n, t FROM {table}").fetchall()  # noqa: S608
        return [_key(n, t) for n, t in rows]
