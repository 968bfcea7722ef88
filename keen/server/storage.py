"""SQLite storage of the local Keen server: events, inferred schemas and JSON documents.

One database (a file, or memory when ``path`` is None) holds everything, so a file database
survives restarts:

* ``events``: one row per stored event: ``project``, ``collection``, ``ts`` (``keen.timestamp`` as
  integer UTC microseconds), ``seq`` (insertion number), ``token`` (the
  ``keen.uniqueness_token``, unique per project and collection when present) and ``body`` (the
  event as JSON text). The table is clustered on ``(project, collection, ts, seq)`` (``WITHOUT
  ROWID``), so a query over a timeframe reads one contiguous range of the file.
* ``properties``: the inferred type of every dotted property path per collection.
* ``documents``: JSON documents by ``(project, kind, name)`` (saved queries, datasets, access
  keys... : the HTTP layer decides the kinds).

A repeated ``keen.uniqueness_token`` in a collection is not stored again and is reported as a
success (``{"success": true}``), so a client that retries a batch sees the same answer as the
first time. Validation and enrichment rules: :mod:`keen.server._events`.

Thread safety: an in-memory database has one connection guarded by a lock. A file database uses
WAL with ``synchronous=NORMAL``: writes go through one connection under the lock, reads through
a small pool of connections that run concurrently with writes.

Closing while a query runs: ``close`` stops the reads under way (their statements are
interrupted within ``_PROGRESS_STEPS`` SQLite steps; the answer is 503 ``StoreClosedError``,
``ServiceUnavailableError``) instead of waiting for them (an in-memory database's read holds
the lock ``close`` needs); a write under way is let finish.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from keen.server._engine_sql import (
    ActorSets,
    Scope,
    aggregate,
    group_universe,
    register_sql,
    select_bodies,
)
from keen.server._errors import QueryError, StoreClosedError
from keen.server._events import EventError, collection_name_error, prepare_events
from keen.server.engines._catalog import SqlCatalog, dumps
from keen.server.filters import Column, compile_filters, normalize_filters, remove_sql
from keen.server.limits import (
    QUERY_TIME_LIMIT,
    QUERY_TIMEOUT,
    check_filter_counts,
    check_json,
    deadline_passed,
    query_deadline,
    sqlite_limit_error,
    sqlite_storage_error,
    timeout_error,
)
from keen.server.timeframes import resolve_timeframe, to_micros

__all__ = ["Storage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    project TEXT NOT NULL,
    collection TEXT NOT NULL,
    ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    token TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (project, collection, ts, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_token ON events (project, collection, token)
    WHERE token IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS properties (
    project TEXT NOT NULL,
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (project, collection, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (project, kind, name)
) WITHOUT ROWID;
"""
_POOL_SIZE = 4
_INSERT_CHUNK = 1_000  # events validated, then inserted together
_PROGRESS_STEPS = 10_000  # SQLite VM steps between two looks at the query deadline


@contextmanager
def _query_errors() -> Iterator[None]:
    """SQLite errors a query caused by its size or its deadline, or met on a full disk, as
    the API's answers."""
    try:
        yield
    except sqlite3.Error as exc:
        # A Python function that stopped at the deadline (keen_regexp) is an error to SQLite.
        # A full disk is a 507 (temporary files of a large group_by, DISTINCT or sort).
        answer = timeout_error() if deadline_passed() else (
            sqlite_limit_error(exc) or sqlite_storage_error(exc, query=True))
        if answer is None:
            raise
        raise answer from None


_dumps = dumps


class Storage(SqlCatalog):
    """Events and documents of every project in one SQLite database (``path`` None = memory)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        # Seconds a query may run before it is stopped (503 QueryTimeoutError); None: no limit.
        self.query_time_limit: float | None = QUERY_TIME_LIMIT
        self._lock = threading.RLock()
        self._memory = path is None or path == ":memory:"
        self._pool: list[sqlite3.Connection] = []
        self._closed = False
        self._closing = False  # set by close first: reads under way stop (_progress)
        self._reads = threading.local()  # .active: this thread is in a read (reading())
        self._writer = self._connect()
        with self._lock:
            self._writer.executescript(_SCHEMA)

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            ":memory:" if self._memory else str(self.path),
            check_same_thread=False,
            isolation_level=None,  # explicit BEGIN/COMMIT below
            timeout=30.0,
        )
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=FILE")
        register_sql(conn)
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        return conn

    def _progress(self) -> int:
        """SQLite progress handler (on the thread running the statement): non-zero interrupts
        the statement, past the query's deadline or when a read's store is closing."""
        closing = self._closing and getattr(self._reads, "active", False)
        return 1 if closing or deadline_passed() else 0

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        """``_query_errors``, and a read stopped because the store is closing (503)."""
        outer = getattr(self._reads, "active", False)
        self._reads.active = True
        try:
            with _query_errors():
                yield
        except (sqlite3.Error, QueryError) as exc:
            # interrupted by _progress (_query_errors takes an interruption for the deadline's)
            if self._closing and (isinstance(exc, sqlite3.Error)
                                  or exc.error_code == QUERY_TIMEOUT):
                raise StoreClosedError("the query was stopped") from None
            raise
        finally:
            self._reads.active = outer

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside one transaction, committed unless an error escapes.
        Rolled back whole when the block raises or the commit fails; a write that fails
        because the disk is full or failing (SQLITE_FULL, SQLITE_IOERR: in the block or at
        the commit) is then a 507 InsufficientStorageError (``sqlite_storage_error``)."""
        with self._lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # SQLite may have rolled back already (interrupt, FULL)
                    conn.execute("ROLLBACK")
                answer = sqlite_storage_error(exc) if isinstance(exc, sqlite3.Error) else None
                if answer is None:
                    raise
                raise answer from None

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads; cursors must be consumed before the block ends. SQLite's
        refusals of a query too large and its interruption past the query deadline leave the
        block as ``QueryError`` (400 QueryTooComplexError, 503 QueryTimeoutError).

        Memory databases serialise on the lock; file databases hand out pooled connections
        (WAL readers see the last committed state and do not block writers).
        """
        if self._memory:
            with self._lock:
                self._check_open()
                with self._read_errors():
                    yield self._writer
            return
        with self._lock:
            self._check_open()
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        try:
            with self._read_errors():
                yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._lock:
                if self._closed or len(self._pool) >= _POOL_SIZE:
                    conn.close()
                else:
                    self._pool.append(conn)

    _read = reading

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("its database is closed")

    def close(self) -> None:
        """Close every connection (idempotent). Reads under way are stopped (503
        ``StoreClosedError``), a write under way is let finish first."""
        self._closing = True
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._pool:
                conn.close()
            self._pool.clear()
            self._writer.close()

    def __enter__(self) -> Storage:
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
        """Validate, enrich and store ``events``; one result per event, in order.

        Each result is ``{"success": True}`` (one shared object: do not modify it) or
        ``{"success": False, "error": {"name", "description"}}`` with the API's error names
        (``InvalidCollectionNameError``, ``InvalidPropertyNameError``,
        ``InvalidPropertyValueError``, ``InvalidEventError``, ``NamespaceTypeError``); an
        ``EventError`` among ``events`` (refused by the caller) is reported as it is.

        ``events`` is consumed one at a time and stored in chunks, inside one transaction, so
        memory does not grow with the number of events (apart from one result each).
        """
        problem = collection_name_error(collection)
        if problem is not None:
            refused = EventError("InvalidCollectionNameError", problem).as_item()
            return [refused for _ in events]
        results: list[dict[str, Any]] = []
        schema: dict[str, str] = {}
        rows: list[tuple[int, str | None, str]] = []
        with self._write() as conn:
            for result, prepared in prepare_events(events, now=now, autofill=autofill,
                                                   schema=schema):
                results.append(result)
                if prepared is None:
                    continue
                stored, ts, token = prepared
                rows.append((ts, token, _dumps(stored)))
                if len(rows) >= _INSERT_CHUNK:
                    self._insert_rows(conn, project_id, collection, rows)
                    rows.clear()
            if rows:
                self._insert_rows(conn, project_id, collection, rows)
            if schema:
                conn.executemany(
                    "INSERT INTO properties (project, collection, path, type) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (project, collection, path) DO UPDATE SET type = excluded.type "
                    "WHERE properties.type = 'null'",
                    [(project_id, collection, path, kind) for path, kind in schema.items()],
                )
        return results

    def _insert_rows(self, conn: sqlite3.Connection, project_id: str, collection: str,
                     rows: list[tuple[int, str | None, str]]) -> None:
        first = self._take_sequence(conn, len(rows))
        conn.executemany(
            "INSERT OR IGNORE INTO events (project, collection, ts, seq, token, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(project_id, collection, ts, first + index, token, body)
             for index, (ts, token, body) in enumerate(rows)],
        )

    @staticmethod
    def _take_sequence(conn: sqlite3.Connection, count: int) -> int:
        """Reserve ``count`` insertion numbers (inside the caller's write transaction)."""
        conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('events', 0)")
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'events'", (count,))
        row = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()
        return int(row[0]) - count

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
        ``QueryTimeoutError`` past ``query_time_limit`` (nothing is deleted then).
        """
        where = ["project = ?", "collection = ?"]
        params: list[Any] = [project_id, collection]
        if timeframe is not None:
            start, end = resolve_timeframe(timeframe, timezone, now)
            where.append("ts >= ? AND ts < ?")
            params += [to_micros(start), to_micros(end)]
        check_json(filters, "filters", "InvalidFilterError")
        checked = normalize_filters(filters)
        if checked:
            check_filter_counts(checked)
            sql, filter_params = compile_filters(checked)
            where.append(sql)
            params += filter_params
        with query_deadline(self.query_time_limit), _query_errors(), self._write() as conn:
            deleted = conn.execute(
                f"DELETE FROM events WHERE {' AND '.join(where)}", params  # noqa: S608
            ).rowcount
            if timeframe is None and not checked:
                conn.execute(
                    "DELETE FROM properties WHERE project = ? AND collection = ?",
                    (project_id, collection),
                )
        return int(deleted)

    def delete_property(self, project_id: str, collection: str, name: str) -> int:
        """Remove the dotted property ``name`` from every event of a collection (keen-api.md
        6.3) and from its schema; returns how many events held it. ``keen.*`` properties are
        refused (``QueryError`` 403)."""
        if name == "keen" or name.startswith("keen."):
            raise QueryError(403, "ForbiddenError", "Properties of 'keen' cannot be deleted.")
        column = Column(name)
        with self._write() as conn:
            changed = conn.execute(
                f"UPDATE events SET body = {remove_sql(name)} "  # noqa: S608
                f"WHERE project = ? AND collection = ? AND {column.type} IS NOT NULL",
                (project_id, collection),
            ).rowcount
            conn.execute(
                "DELETE FROM properties WHERE project = ? AND collection = ? "
                "AND (path = ? OR substr(path, 1, length(?) + 1) = ? || '.')",
                (project_id, collection, name, name, name),
            )
        return int(changed)

    # ------------------------------------------------------------------ query primitives
    # The EventStore interface (keen.server.engines.base): thin delegations to _engine_sql.

    def aggregate(
        self, scope: Scope, analysis: str, target: str | None, percentile: float | None,
    ) -> dict[tuple[int, tuple[Any, ...]], Any]:
        with self.reading() as conn:
            return aggregate(conn, scope, analysis, target, percentile)

    def insert_batch(
        self, project_id: str, text: str, *, now: datetime,
    ) -> dict[str, list[dict[str, Any]]] | None:
        """None: every batch is read event by event (``insert_events``)."""
        return None

    def ordered_groups(
        self, scope: Scope, analyses: Sequence[tuple[str, str | None, float | None]],
    ) -> list[tuple[Any, ...]] | None:
        """None: the shared path orders and renders ``aggregate``'s groups (a SQLite scan costs
        far more than that shaping, so ordering in SQL would gain nothing noticeable)."""
        return None

    def joined_groups(
        self, scope: Scope, analyses: Sequence[tuple[str, str | None, float | None]],
        pieces: Sequence[str],
    ) -> dict[int, str] | None:
        """None, as ``ordered_groups``."""
        return None

    def group_universe(self, scope: Scope) -> set[tuple[int, tuple[Any, ...]]]:
        with self.reading() as conn:
            return group_universe(conn, scope)

    @contextmanager
    def event_bodies(
        self, scope: Scope, *, newest_first: bool, limit: int | None,
    ) -> Iterator[Iterator[str]]:
        with self.reading() as conn:
            cursor = select_bodies(conn, scope, newest_first=newest_first, limit=limit)
            yield (body for (body,) in cursor)

    @contextmanager
    def actor_sets(self) -> Iterator[ActorSets]:
        with self.reading() as conn:
            sets = ActorSets(conn)
            try:
                yield sets
            finally:
                sets.drop()
