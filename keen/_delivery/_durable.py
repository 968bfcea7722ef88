"""The durable queue: events in a SQLite file (WAL mode) until the server confirms them.

One table; each row is one encoded event with the process ("origin") that will send it::

    events(id INTEGER PRIMARY KEY AUTOINCREMENT, collection, body, created, origin)

* Adding: in ``"group"`` durability, add_event appends to an in-memory buffer (the in-memory
  queue of :mod:`._queue`, with its bound and overflow policy) and a writer thread commits the
  buffer once its oldest event is half a ``commit_interval`` old. The loss bound: when
  add_event returns, no event older than ``commit_interval`` is left unwritten. A producer that
  finds one (the writer fell behind: a slow disk, a starved thread, a burst) wakes the writer
  and waits for it to catch up (up to ``block_timeout``: a file that cannot be written at all
  must not hang the application), so the writer's lag turns into back-pressure, not loss.
  In ``"process"`` and ``"full"`` durability the calling thread
  commits before add_event returns (threads arriving together share one commit).
* Sending: the sender reads its own rows in id order, posts them, and deletes a row only once the
  server confirmed the event (or rejected it for good).
* Restarting and taking over: each open queue holds a lease, an exclusive ``flock`` on its own
  file in ``<path>.owners/``, for as long as it is open. The kernel releases it when the queue
  is closed or its process ends, however it ends (a crash, ``kill -9``, even a zombie not yet
  reaped, since a dead process holds no files). A queue opening the file adopts the rows of every
  origin whose lease nobody holds, and sends them; an open queue whose sender has been idle for
  ``TAKE_OVER_INTERVAL`` (5 s) looks again (rows released since, by a close or a death). Rows
  of an origin whose lease is held (a live client, in this process or another) are left to it,
  so nothing is sent twice. After a fork
  the child closes its copy of the parent's lease (the parent's death must release it) and
  takes its own. Without ``fcntl`` (Windows) the lease is the open file itself: a file that can
  be removed is not open any more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable

from keen._delivery._config import DurableDelivery
from keen._delivery._queue import EventQueue, Item
from keen.exceptions import InvalidDeliveryError, NotDeliveredError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DurableQueue"]

log = logging.getLogger("keen.delivery")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_origin ON events (origin, id);
"""

#: Connections inherited from a parent process: never used nor closed in the child (closing one
#: could make SQLite treat the parent's WAL as abandoned), just kept.
_INHERITED: list[sqlite3.Connection] = []
#: Seconds an idle sender waits before it looks for rows released by other clients of the file.
TAKE_OVER_INTERVAL = 5.0


def _new_origin() -> str:
    """A name for one open queue in the file (and its lease file): the pid, to help a reader,
    and a random part, so that it names nothing else."""
    return f"{os.getpid()}-{os.urandom(8).hex()}"


def _lease_dir(path: str) -> str:
    return path + ".owners"


def _lease_path(path: str, origin: str) -> str | None:
    """The lease file of ``origin``; None for a name that is no lease (a hand-made row)."""
    if not origin or any(c in origin for c in (os.sep, "/", "\0")) or origin.startswith("."):
        return None
    return os.path.join(_lease_dir(path), origin + ".lock")


def _take_lease(path: str, origin: str) -> int:
    """Create and lock the lease file of ``origin``; its descriptor (held until release)."""
    lease = _lease_path(path, origin)
    assert lease is not None
    os.makedirs(_lease_dir(path), exist_ok=True)
    while True:
        fd = os.open(lease, os.O_RDWR | os.O_CREAT, 0o600)  # (not inherited by exec'd children)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            # another queue's cleanup may have removed the file between our open and lock: then
            # ours is locked but nameless, so make it again
            if os.path.samestat(os.fstat(fd), os.stat(lease)):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _release_lease(path: str, origin: str, fd: int | None) -> None:
    """Give up a lease: remove the file, then unlock (in that order: a queue that finds the file
    gone, or unlocked, adopts the rows; they are no longer ours)."""
    if fd is None:
        return
    lease = _lease_path(path, origin)
    if lease is not None:
        with contextlib.suppress(OSError):
            os.unlink(lease)
    os.close(fd)


def _lease_free(path: str, origin: str) -> bool:
    """Whether nobody holds the lease of ``origin`` (then its file is removed)."""
    lease = _lease_path(path, origin)
    if lease is None:
        return True
    if fcntl is None:  # an open file cannot be removed: one that can was released
        try:
            os.unlink(lease)
        except FileNotFoundError:
            return True
        except PermissionError:
            return False
        return True
    try:
        fd = os.open(lease, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with contextlib.suppress(OSError):
            os.unlink(lease)
        return True
    finally:
        os.close(fd)


class DurableQueue(EventQueue):
    """The event queue kept in a SQLite file."""

    clock = staticmethod(time.time)

    def __init__(self, config: DurableDelivery) -> None:
        self._path = os.fspath(config.path)
        self._group = config.durability == "group"
        self._synchronous = "FULL" if config.durability == "full" else "NORMAL"
        self._commit_interval = config.commit_interval
        super().__init__(config)
        self._open()

    def _reset(self) -> None:
        super()._reset()
        self._origin = _new_origin()
        self._rows_ready = threading.Condition(self._lock)  # wakes the sender: rows to send
        self._ready = 0  # rows of ours on disk not yet handed to the sender
        self._cursor = 0  # the highest row id handed to the sender
        self._db_lock = threading.RLock()  # the writing connection (producers, writer thread)
        self._writer: threading.Thread | None = None
        #: the queue time of the oldest event the writer is committing (None: not writing)
        self._writing_oldest: float | None = None
        self._behind = 0  # producers waiting for the writer (group durability)
        self._warned_at = float("-inf")  # when add_event last said it stopped waiting for it
        self._written = threading.Condition(self._lock)  # wakes them: a commit ended
        self._writer_conn: sqlite3.Connection | None = None
        self._sender_conn: sqlite3.Connection | None = None
        self._lease: int | None = None  # the descriptor of our lease file, while open

    def after_fork_in_child(self) -> None:
        """In a forked child: keep the parent's connections unused, start afresh."""
        for conn in (self._writer_conn, self._sender_conn):
            if conn is not None:
                _INHERITED.append(conn)
        if self._lease is not None:  # the parent's: its death must release it, so let go
            with contextlib.suppress(OSError):
                os.close(self._lease)
        self._reset()
        self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    def _open(self) -> None:
        """Open the file (an error names it: not a database, locked, unwritable...)."""
        folder = os.path.dirname(os.path.abspath(self._path))
        if not os.path.isdir(folder):
            raise InvalidDeliveryError(
                f"the durable delivery queue file {self._path!r} cannot be created: its folder "
                f"{folder!r} does not exist (create it, or give another path)"
            )
        if os.path.isdir(self._path):
            raise InvalidDeliveryError(
                f"the durable delivery queue file {self._path!r} is a folder: give a file path"
            )
        try:
            self._open_file()
        except (sqlite3.Error, OSError) as error:  # (OSError: the lease file)
            self.close()
            raise type(error)(
                f"cannot use {self._path!r} as the keen delivery queue: {error}"
            ) from error

    def _open_file(self) -> None:
        """Open the file, adopt the rows nobody holds, count what there is to send."""
        conn = self._writer_conn = self._connect()
        self._sender_conn = self._connect()
        conn.executescript(_SCHEMA)
        self._lease = _take_lease(self._path, self._origin)  # (before any row is ours)
        with self._db_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for origin in self._unheld_origins(conn):
                    conn.execute(
                        "UPDATE events SET origin = ? WHERE origin = ?", (self._origin, origin)
                    )
                (count,) = conn.execute(
                    "SELECT count(*) FROM events WHERE origin = ?", (self._origin,)
                ).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        with self._lock:
            self.queued += count
            self._pending += count
            self._admitted += count
            self._ready += count
        self._sweep_leases()

    def _unheld_origins(self, conn: sqlite3.Connection) -> list[str]:
        """The origins of rows in the file whose lease nobody holds (one index seek each)."""
        found: list[str] = []
        row = conn.execute("SELECT origin FROM events ORDER BY origin LIMIT 1").fetchone()
        while row is not None:
            origin = row[0]
            if origin != self._origin and _lease_free(self._path, origin):
                found.append(origin)
            row = conn.execute(
                "SELECT origin FROM events WHERE origin > ? ORDER BY origin LIMIT 1", (origin,)
            ).fetchone()
        return found

    def _take_over(self) -> int:
        """While this queue is open (idle): make ours the rows whose lease was released since
        (a client of the file closed, or its process ended); how many. They are moved to new
        rows, after ours: the sender reads rows above the last one it took."""
        with self._db_lock:
            conn = self._writer_conn
            if conn is None:
                return 0
            origins = self._unheld_origins(conn)
            if not origins:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = 0
                for origin in origins:  # (none if another client took them first)
                    moved += conn.execute(
                        "INSERT INTO events (collection, body, created, origin) SELECT "
                        "collection, body, created, ? FROM events WHERE origin = ? ORDER BY id",
                        (self._origin, origin),
                    ).rowcount
                    conn.execute("DELETE FROM events WHERE origin = ?", (origin,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if moved:
            log.info("took over %d event(s) left in %r by a closed or ended client",
                     moved, self._path)
            with self._lock:
                self.queued += moved
                self._pending += moved
                self._admitted += moved
                self._ready += moved
        return moved

    def _sweep_leases(self) -> None:
        """Remove the lease files nobody holds (left by crashed clients that had no rows)."""
        with contextlib.suppress(OSError):
            for name in os.listdir(_lease_dir(self._path)):
                origin = name[: -len(".lock")]
                if name.endswith(".lock") and origin != self._origin:
                    _lease_free(self._path, origin)

    @property
    def leftovers(self) -> int:
        """Rows adopted at open that are waiting to be sent."""
        with self._lock:
            return self._ready

    # ----------------------------------------------------------------- adding

    def put(self, collection: str, text: str) -> list[Item]:
        dropped = EventQueue.put(self, collection, text)  # (cheaper than super() on this path)
        if not self._group:
            self._commit_now([text])
            return dropped
        # the loss bound, checked without the lock on the fast path (a deque's ends are read
        # atomically, and the writer marks what it writes before it takes it off the buffer):
        # the newest event is about now; is the oldest unwritten one more than the bound older?
        items = self._items
        try:
            if items[-1][3] - (self._writing_oldest or items[0][3]) <= self._commit_interval:
                return dropped
        except IndexError:  # (the writer took the buffer meanwhile: look closer)
            pass
        self._wait_for_writer()
        return dropped

    def put_many(self, events: Iterable[tuple[str, str]]) -> list[Item]:
        events = list(events)
        dropped = super().put_many(events)
        if not self._group:
            self._commit_now([text for _collection, text in events])
        else:
            self._wait_for_writer()
        return dropped

    def _oldest_unwritten(self) -> float | None:
        """The queue time of the oldest event not yet committed (lock held)."""
        if self._writing_oldest is not None:
            return self._writing_oldest
        return self._items[0][3] if self._items else None

    def _wait_for_writer(self) -> None:
        """Wait until no event older than commit_interval is unwritten (group durability),
        block_timeout at most."""
        with self._lock:
            oldest = self._oldest_unwritten()
            now = self.clock()
            if oldest is None or now - oldest <= self._commit_interval:
                return
            deadline = now + self.config.block_timeout
            self._behind += 1
            self._wake.notify_all()  # the writer: commit now
            try:
                while not self._closing:
                    oldest = self._oldest_unwritten()
                    now = self.clock()
                    if oldest is None or now - oldest <= self._commit_interval:
                        return
                    if now >= deadline:
                        if now - self._warned_at >= 60:  # (once a minute at most)
                            self._warned_at = now
                            log.warning(
                                "the queue file %r has not taken events for %.1f s; add_event "
                                "goes on, and a crash now would lose them",
                                self._path, now - oldest,
                            )
                        return
                    self._written.wait(deadline - now)
            finally:
                self._behind -= 1

    def _commit_now(self, texts: list[str]) -> None:
        """Commit before add_event returns ("process", "full"). If the file cannot take them
        (disk full, locked too long), the caller's events are taken back (counted as dropped)
        and NotDeliveredError raised: an add_event that raised has queued nothing."""
        try:
            self._commit_buffer()
        except sqlite3.Error as error:
            mine = {id(text) for text in texts}
            with self._lock:
                kept = [item for item in self._items if id(item[2]) not in mine]
                self._account(0, 0, len(self._items) - len(kept))
                self._items = deque(kept)
            raise NotDeliveredError(
                f"could not write the event(s) to the queue file {self._path!r}: {error}"
            ) from error

    def _commit_buffer(self) -> int:
        """Write the buffered events to the file and commit; how many were written.

        Holding the database lock while taking the buffer means that when this returns, any
        event buffered before the call is committed (by this thread or the one that took it).
        """
        with self._db_lock:
            conn = self._writer_conn
            if conn is None:  # closed: nothing can be written any more
                return 0
            with self._lock:
                if not self._items:
                    return 0
                self._writing_oldest = self._items[0][3]  # (first: put reads it unlocked)
                items = list(self._items)
                self._items.clear()
            try:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO events (collection, body, created, origin) VALUES (?, ?, ?, ?)",
                    [(c, text, queued_at, self._origin) for _k, c, text, queued_at in items],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._lock:
                    self._items.extendleft(reversed(items))
                    self._writing_oldest = None
                raise
            with self._lock:
                self._writing_oldest = None
                self._ready += len(items)
                self._rows_ready.notify()
                self._written.notify_all()
        return len(items)

    def start(self) -> None:
        """Start the writer thread (group durability)."""
        if self._group and self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="keen-delivery-writer", daemon=True
            )
            self._writer.start()

    def _write_loop(self) -> None:
        """Commit the buffer once its oldest event is half a commit_interval old (so that the
        commit ends before it is a whole one old), at once during a flush or when a producer
        waits for it, until close() begins; close() writes what is left itself (drain)."""
        due = self._commit_interval / 2
        while True:
            with self._lock:
                while True:
                    if self._closing:
                        return
                    if self._items:
                        if self._flushing or self._behind:
                            break
                        timeout = self._items[0][3] + due - self.clock()
                        if timeout <= 0:
                            break
                        self._wake.wait(timeout)
                    else:
                        self._wake.wait()
            try:
                self._commit_buffer()
            except Exception:
                log.exception(
                    "could not write events to the queue file %r; trying again", self._path
                )
                with self._lock:  # (close wakes it)
                    if not self._closing:
                        self._wake.wait(max(self._commit_interval, 0.1))

    # ----------------------------------------------------------------- sending

    def _notify_all_workers(self) -> None:
        self._wake.notify_all()
        self._rows_ready.notify_all()
        self._written.notify_all()

    def _wait_for_rows(self) -> bool | None:
        """Wait until a batch is ready (True); None when closing with nothing left; False after
        TAKE_OVER_INTERVAL seconds with nothing of ours to send (time to look for rows to take
        over)."""
        with self._lock:
            waited_since = self.clock()
            while True:
                ready = self._ready
                if ready >= self._batch_size or (ready and (self._flushing or self._closing)):
                    return True
                if self._closing and not self._items:
                    return None
                if ready:
                    timeout = waited_since + self._interval - self.clock()
                    if timeout <= 0:
                        return True
                    self._rows_ready.wait(timeout)
                elif self._closing:
                    self._rows_ready.wait(0.05)
                else:
                    if not self._rows_ready.wait(TAKE_OVER_INTERVAL) and not self._ready:
                        return False
                    waited_since = self.clock()

    def next_batch(self) -> list[Item] | None:
        while True:
            state = self._wait_for_rows()
            if state is None:
                return None
            if state:
                break
            try:
                self._take_over()  # (without the queue lock: the database lock comes first)
            except sqlite3.Error:
                log.exception("could not take over the events left in %r", self._path)
        conn = self._sender_conn
        try:
            if conn is None:
                raise sqlite3.ProgrammingError("closed")
            rows = conn.execute(
                "SELECT id, collection, body, created FROM events WHERE origin = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (self._origin, self._cursor, self._batch_size),
            ).fetchall()
        except sqlite3.ProgrammingError:
            if self._closing:  # close() did not wait for a sender still busy: it stops here
                return None
            raise
        batch: list[Item] = []
        size = 0
        for row in rows:
            size += len(row[2]) + 2
            if batch and size > self._max_bytes:
                break
            batch.append(row)
        with self._lock:
            if batch:
                self._cursor = batch[-1][0]
                self._ready -= len(batch)
            else:  # counted rows that are not there: forget them
                self._ready = 0
            self._inflight = batch
        return batch

    def settle(self, sent: list[Item], failed: list[Item]) -> None:
        """Delete the settled rows. If that fails (the file is full, locked for too long, or
        closed under a sender still finishing a request), the rows stay: the next start sends
        them again, and their uniqueness tokens keep the server from storing them twice."""
        done = sent + failed
        conn = self._sender_conn
        if done and conn is not None:
            try:
                conn.execute("BEGIN")
                conn.executemany("DELETE FROM events WHERE id = ?", [(item[0],) for item in done])
                conn.execute("COMMIT")
            except sqlite3.Error:
                log.exception(
                    "could not remove %d settled event(s) from the queue file; the next start "
                    "sends them again (the server stores them once)", len(done),
                )
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        super().settle(sent, failed)

    def abandon(self, items: list[Item]) -> list[Item]:
        """Closing before these were sent: they stay in the file for the next start."""
        return []

    def drain(self) -> list[Item]:
        """At close: whatever is still buffered is written to the file, nothing is dropped;
        unless the file cannot take it (disk full...): then it is dropped and returned."""
        with self._db_lock:  # (so that no other thread takes the buffer in between)
            try:
                self._commit_buffer()
            except sqlite3.Error:
                log.exception("could not write the last events to the queue file %r", self._path)
                return super().drain()
        return []

    def close(self) -> None:
        """Close the connections; rows still in the file are adopted by the next open."""
        if self._writer is not None:
            self._writer.join(1.0)  # it stops once the buffer is written (we are closing)
        with self._db_lock:
            for conn in (self._writer_conn, self._sender_conn):
                if conn is not None:
                    conn.close()
            self._writer_conn = self._sender_conn = None
            lease, self._lease = self._lease, None
            _release_lease(self._path, self._origin, lease)  # others may take the rows now

    def _oldest_row_age(self) -> float | None:
        with self._db_lock:
            conn = self._writer_conn
            if conn is None:
                return None
            (created,) = conn.execute(
                "SELECT min(created) FROM events WHERE origin = ?", (self._origin,)
            ).fetchone()
        return None if created is None else max(self.clock() - created, 0.0)

    def stats(self) -> dict[str, int | float | None]:
        row_age = self._oldest_row_age()  # (database lock before the queue lock, as elsewhere)
        result = super().stats()
        with self._lock:
            result["queue_depth"] = len(self._items) + self._ready
        ages = [age for age in (result["oldest_event_age"], row_age) if age is not None]
        result["oldest_event_age"] = max(ages) if ages else None
        return result

