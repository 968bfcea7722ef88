"""The durable queue (SQLite file) and process life: restarts, kills, forks, interpreter exit."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _delivery_helpers import (
    QUICK_RETRY,
    FakeApi,
    Recorder,
    add,
    assert_exactly_once,
    check_counters,
    run_worker,
    stored_events,
    wait_until,
)

from keen._delivery import DurableDelivery
from keen._delivery._strategy import QueuedPersistenceStrategy
from keen.exceptions import KeenConnectionError, NotDeliveredError, ServerError
from keen.server import LocalKeenServer

COLLECTION = "durable"


def _durable(api: Any, path: Path, **options: Any) -> QueuedPersistenceStrategy:
    settings: dict[str, Any] = {"retry": QUICK_RETRY, "flush_interval": 0.01,
                                "commit_interval": 0.01}
    settings.update(options)
    return QueuedPersistenceStrategy(api, DurableDelivery(path=str(path), **settings))


def _rows(path: Path) -> list[dict[str, Any]]:
    """The events waiting in a queue file, read by an independent connection."""
    conn = sqlite3.connect(str(path))
    try:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM events")]
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "queue.sqlite3"


def test_events_wait_in_the_file_and_are_sent_by_the_next_client(path: Path) -> None:
    down = FakeApi()
    down.failure = KeenConnectionError("refused", request_sent=False)
    first = _durable(down, path)
    for n in range(30):
        add(first, COLLECTION, {"n": n})
    assert first.flush(0.1) is False
    first.close(0.1)
    assert first.stats()["dropped"] == 0  # nothing is given up: it is on disk
    waiting = _rows(path)
    assert sorted(event["n"] for event in waiting) == list(range(30))

    up = FakeApi()
    second = _durable(up, path)  # no add_event: leftovers go out on their own
    wait_until(lambda: len(up.stored) == 30)
    assert second.flush(5)
    stats = second.stats()
    second.close(1)
    check_counters(stats)
    assert stats["queued"] == stats["sent"] == 30
    # the very events first queued: same tokens
    assert sorted(e["keen"]["uniqueness_token"] for _c, e in up.stored) == sorted(
        e["keen"]["uniqueness_token"] for e in waiting)
    assert _rows(path) == []


def test_an_event_leaves_the_file_only_once_the_server_confirmed_it(path: Path) -> None:
    api = FakeApi()
    api.failure = ServerError({"message": "down"}, 500)
    target = _durable(api, path)
    for n in range(5):
        add(target, COLLECTION, {"n": n})
    wait_until(lambda: len(api.bodies) >= 3)  # tried, refused, tried again...
    assert len(_rows(path)) == 5
    api.failure = None
    assert target.flush(5)
    assert _rows(path) == []
    target.close(1)
    assert sorted(api.stored_values()) == list(range(5))


def test_rejected_events_leave_the_file_and_are_reported(path: Path) -> None:
    errors = Recorder()
    api = FakeApi(reject=lambda event: event["n"] == 2)
    target = _durable(api, path, on_error=errors)
    for n in range(4):
        add(target, COLLECTION, {"n": n})
    assert target.flush(5)
    stats = target.stats()
    target.close(1)
    assert stats["failed"] == 1 and stats["sent"] == 3
    assert [event["n"] for _c, event in errors.events] == [2]
    assert _rows(path) == []


@pytest.mark.parametrize("durability", ["process", "full"])
def test_per_event_durability_commits_before_add_event_returns(path: Path,
                                                               durability: str) -> None:
    api = FakeApi()
    api.gate.clear()  # nothing gets confirmed
    target = _durable(api, path, durability=durability)
    try:
        for n in range(3):
            add(target, COLLECTION, {"n": n})
            assert [event["n"] for event in _rows(path)] == list(range(n + 1))
    finally:
        api.gate.set()
        target.close(5)


def test_group_durability_commits_within_the_commit_interval(path: Path) -> None:
    api = FakeApi()
    api.gate.clear()
    target = _durable(api, path, commit_interval=0.02)
    try:
        target.batch_persist({COLLECTION: [{"n": n} for n in range(100)]})
        wait_until(lambda: len(_rows(path)) == 100)
    finally:
        api.gate.set()
        target.close(5)


def test_a_client_already_open_takes_over_what_another_leaves_at_close(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keen._delivery import _durable as durable_module

    monkeypatch.setattr(durable_module, "TAKE_OVER_INTERVAL", 0.05)  # (5 s by default)
    up = FakeApi()
    second = _durable(up, path)  # open first, idle
    down = FakeApi()
    down.failure = KeenConnectionError("refused", request_sent=False)
    first = _durable(down, path)
    try:
        for n in range(20):
            add(first, COLLECTION, {"n": n})
        assert first.flush(0.1) is False
        assert up.stored == []  # the rows are first's while it is open
        first.close(0.05)
        wait_until(lambda: len(up.stored) == 20)
        add(second, COLLECTION, {"n": 20})  # its own events go on as before
        assert second.flush(5)
        stats = second.stats()
    finally:
        second.close(1)
    check_counters(stats)
    assert stats["queued"] == stats["sent"] == 21
    assert sorted(up.stored_values()) == list(range(21))
    assert _rows(path) == []


def test_group_add_event_waits_for_a_writer_that_fell_behind(path: Path) -> None:
    """The loss bound of "group": when add_event returns, no event older than commit_interval
    is unwritten. A writer that cannot keep up (here: held off the file) makes add_event wait
    for it instead of letting the unwritten backlog, and what a crash would lose, grow."""
    api = FakeApi()
    api.gate.clear()  # nothing leaves the file meanwhile
    target = _durable(api, path, commit_interval=0.05, block_timeout=30)
    queue: Any = target._queue
    now = [1_000_000.0]
    queue.clock = lambda: now[0]  # the queue's clock, moved by hand
    try:
        queue._db_lock.acquire()  # the writer falls behind: it cannot reach the file
        try:
            add(target, COLLECTION, {"n": 0})
            now[0] += 0.04  # within the bound: add_event returns at once
            add(target, COLLECTION, {"n": 1})
            now[0] += 0.02  # event 0 is now 0.06 s old and unwritten
            late = threading.Thread(target=add, args=(target, COLLECTION, {"n": 2}))
            late.start()
            late.join(0.3)
            assert late.is_alive(), "add_event returned with an event unwritten for too long"
            assert _rows(path) == []
        finally:
            queue._db_lock.release()
        late.join(10)
        assert not late.is_alive()
        assert sorted(event["n"] for event in _rows(path)) == [0, 1, 2]  # (written before)
    finally:
        api.gate.set()
        target.close(5)
    assert sorted(api.stored_values()) == [0, 1, 2]


def test_group_add_event_stops_waiting_for_a_stuck_writer_after_block_timeout(
        path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file that takes nothing (locked, full) must not hang the application: after
    block_timeout add_event returns, and says that the bound no longer holds."""
    api = FakeApi()
    api.gate.clear()
    target = _durable(api, path, commit_interval=0.05, block_timeout=2)
    queue: Any = target._queue
    now = [1_000_000.0]
    queue.clock = lambda: now[0]
    try:
        queue._db_lock.acquire()  # the writer is stuck
        try:
            add(target, COLLECTION, {"n": 0})
            now[0] += 0.06
            late = threading.Thread(target=add, args=(target, COLLECTION, {"n": 1}))
            late.start()
            late.join(0.2)
            assert late.is_alive()
            now[0] += 2  # block_timeout passes
            with queue._lock:
                queue._written.notify_all()  # (what the clock cannot do: wake it to look)
            late.join(10)
            assert not late.is_alive()  # returned, the writer still stuck
        finally:
            queue._db_lock.release()
        wait_until(lambda: len(_rows(path)) == 2)  # written once the file takes them
    finally:
        api.gate.set()
        target.close(5)
    warnings = [r for r in caplog.records if "has not taken events" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert sorted(api.stored_values()) == [0, 1]


def test_stats_count_leftovers_and_their_age(path: Path) -> None:
    down = FakeApi()
    down.failure = KeenConnectionError("refused", request_sent=False)
    first = _durable(down, path)
    add(first, COLLECTION, {"n": 1})
    first.close(0.05)
    second = _durable(down, path)
    try:
        stats = second.stats()
        assert stats["queued"] == stats["pending"] == 1
        assert stats["oldest_event_age"] is not None and stats["oldest_event_age"] >= 0
    finally:
        second.close(0.05)


def test_only_rows_whose_lease_nobody_holds_are_adopted(path: Path) -> None:
    from keen._delivery._durable import _lease_path, _take_lease

    _durable(FakeApi(), path).close(0)  # creates the file
    held = _take_lease(str(path), "1-held")  # a live client's lease (a descriptor held here)
    released = _lease_path(str(path), "2-released")  # a lease file nobody holds any more
    assert released is not None
    Path(released).touch()
    conn = sqlite3.connect(str(path))
    with conn:
        conn.executemany(
            "INSERT INTO events (collection, body, created, origin) VALUES (?, ?, 0, ?)",
            [("c", json.dumps({"n": n}), origin)
             for n, origin in enumerate(["1-held", "2-released", "3-no-lease-file", "1-held",
                                         "../../not-a-lease", "nul\0byte", ""])],
        )
    conn.close()
    api = FakeApi()
    try:
        target = _durable(api, path)
        assert target.flush(5)
        target.close(1)
    finally:
        os.close(held)
    # (origins that name no lease file, however odd, are nobody's: adopted, no file touched)
    assert sorted(api.stored_values()) == [1, 2, 4, 5, 6]
    assert sorted(event["n"] for event in _rows(path)) == [0, 3]
    assert not os.path.exists(released)  # cleaned up with its rows


def test_rows_of_a_closed_client_are_taken_over_in_the_same_process(path: Path) -> None:
    down = FakeApi()
    down.failure = KeenConnectionError("refused", request_sent=False)
    first = _durable(down, path)
    for n in range(10):
        add(first, COLLECTION, {"n": n})
    first.close(0.05)
    up = FakeApi()
    second = _durable(up, path)
    try:
        assert second.stats()["pending"] == 10
        assert second.flush(5)
    finally:
        second.close(1)
    assert sorted(up.stored_values()) == list(range(10))


# ------------------------------------------------------------------ other processes


@pytest.fixture
def server() -> Iterator[LocalKeenServer]:
    with LocalKeenServer() as running:
        yield running


def _settings(server: LocalKeenServer, **more: Any) -> dict[str, Any]:
    settings = {"url": server.url, "project_id": server.project_id,
                "write_key": server.write_key, "collection": COLLECTION}
    settings.update(more)
    return settings


def _drain(server: LocalKeenServer, **more: Any) -> dict[str, Any]:
    worker = run_worker("drain", _settings(server, **more), stdout=subprocess.PIPE, text=True)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("durability", ["process", "group"])
def test_producer_killed_mid_stream_then_restarted(server: LocalKeenServer, path: Path,
                                                   durability: str) -> None:
    """Nothing is stored twice; every event whose add_event returned before the kill is stored
    ("process"), or ("group") every one queued a commit interval (0.05 s) before the last
    add_event that returned began: the README's loss bound, under a producer adding as fast as
    it can."""
    server.faults.slow_next(2, seconds=0.2)  # some batches are in flight at the kill
    producer = run_worker("produce", _settings(server, path=str(path), durability=durability,
                                               start=0, block_timeout=60),
                          stdout=subprocess.PIPE, text=True)
    assert producer.stdout is not None
    lines: list[str] = []
    enough = threading.Event()

    def read() -> None:  # all along: a producer blocked on a full pipe would add nothing
        assert producer.stdout is not None
        for line in producer.stdout:
            lines.append(line)
            if len(lines) == 600:
                enough.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert enough.wait(30)
        wait_until(lambda: server.storage.count_events(server.project_id) > 0)
        if durability == "group":
            time.sleep(0.2)  # let the first events become older than the commit interval
        killed_at = time.monotonic()
        producer.send_signal(signal.SIGKILL)
    finally:
        producer.kill()
        producer.wait(30)
        reader.join(30)
        producer.stdout.close()
    # "n returned began" per line; the kill may cut the last line short (its event counts as
    # last + 1)
    fields = [line.split() for line in lines]
    complete = [(int(n), float(when), float(began)) for n, when, began in
                (f for f in fields if len(f) == 3)]
    returned = {n: when for n, when, _began in complete}
    began = {n: start for n, _when, start in complete}
    assert producer.returncode == -signal.SIGKILL
    assert len(returned) >= 600

    result = _drain(server, path=str(path), extra=[10**6, 10**6 + 1], batch_size=500)
    assert result["flushed"]
    stored = [event["n"] for event in stored_events(server, COLLECTION)]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    # add_event may have committed one more event before the kill stopped its print
    last = int(max(returned))
    assert set(stored) <= {*map(int, returned), last + 1, 10**6, 10**6 + 1}
    if durability == "process":
        must = {n for n, when in returned.items() if when <= killed_at}
    else:  # event n was queued before n + 1 began; the last add_event's check came after it
        # began (0.005 s: time.time against time.monotonic)
        horizon = began[last] - 0.05 - 0.005
        must = {n for n in returned if n + 1 in began and began[n + 1] <= horizon}
    must |= {10**6, 10**6 + 1}
    lost = must - set(stored)
    assert not lost, f"lost: {sorted(lost)[:10]} ({len(lost)} in all)"
    assert len(must) > 100
    assert _rows(path) == []


def _holder(server: LocalKeenServer, path: Path, *, close: bool) -> Any:
    """Process A: queues 100 events in the file (the server is down), closes its client if
    asked, and lives on until its stdin is closed."""
    holder = run_worker("hold", _settings(server, path=str(path), durability="process",
                                          count=100, close=close),
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True)
    assert holder.stdout.readline().strip() == "ready"
    assert len(_rows(path)) == 100
    return holder


def test_rows_left_by_a_close_are_taken_over_while_that_process_lives(
        server: LocalKeenServer, path: Path) -> None:
    server.stop()
    holder = _holder(server, path, close=True)
    try:
        server.start()
        result = _drain(server, path=str(path))  # process B
        assert holder.poll() is None  # A still runs
        assert result["flushed"] and result["stats"]["sent"] == 100, result
        assert_exactly_once(server, COLLECTION, range(100))
        assert _rows(path) == []
    finally:
        holder.stdin.close()
        holder.wait(30)


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs waitid")
def test_rows_of_a_killed_process_are_taken_over_before_it_is_reaped(
        server: LocalKeenServer, path: Path) -> None:
    server.stop()
    holder = _holder(server, path, close=False)
    try:
        holder.send_signal(signal.SIGKILL)
        # dead but not reaped (a zombie: its pid and start time still exist)
        os.waitid(os.P_PID, holder.pid, os.WEXITED | os.WNOWAIT)
        server.start()
        result = _drain(server, path=str(path))
        assert result["flushed"] and result["stats"]["sent"] == 100, result
        assert_exactly_once(server, COLLECTION, range(100))
        assert _rows(path) == []
    finally:
        holder.kill()
        holder.stdin.close()
        holder.wait(30)


def test_rows_of_a_live_client_in_another_process_are_left_to_it(
        server: LocalKeenServer, path: Path) -> None:
    server.stop()
    holder = _holder(server, path, close=False)
    try:
        server.start()
        result = _drain(server, path=str(path))
        assert result["flushed"] and result["stats"]["queued"] == 0, result  # A's, not B's
        wait_until(lambda: _rows(path) == [])  # A sends them itself
        assert_exactly_once(server, COLLECTION, range(100))
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_events_queued_at_interpreter_exit_are_flushed(server: LocalKeenServer) -> None:
    worker = run_worker("exit", _settings(server, count=300, flush_interval=60, batch_size=1000),
                        stdout=subprocess.PIPE, text=True)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0 and out.strip() == "queued"
    assert_exactly_once(server, COLLECTION, range(300))


def test_exit_is_bounded_when_the_server_is_down(server: LocalKeenServer,
                                                 tmp_path: Path) -> None:
    settings = _settings(server, count=10, flush_interval=60, exit_timeout=0.2)
    server.stop()
    worker = run_worker("exit", settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
    out, err = worker.communicate(timeout=30)  # would hang without the bound
    assert worker.returncode == 0 and out.strip() == "queued"
    assert "10 event(s)" in err and "not delivered" in err  # the loss is logged


def test_events_lost_at_exit_are_said_on_stderr_without_any_logging(
        server: LocalKeenServer) -> None:
    settings = _settings(server, count=10, flush_interval=60, exit_timeout=0.2,
                         no_logging=True)
    server.stop()
    worker = run_worker("exit", settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and out.strip() == "queued"
    (line,) = err.strip().splitlines()  # one line: how many, why, what to do
    assert line.startswith("keen: 10 event(s) not delivered at exit, within exit_timeout=0.2 s")
    assert "KeenConnectionError" in line and "DurableDelivery" in line and "flush" in line
    assert server.write_key not in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("durable", [False, True])
def test_a_forked_child_sends_only_its_own_events(server: LocalKeenServer, path: Path,
                                                  durable: bool) -> None:
    settings = _settings(server, flush_interval=0.3, batch_size=500)
    if durable:
        settings["path"] = str(path)
    worker = run_worker("fork", settings, stdout=subprocess.PIPE, text=True)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0
    reports = {report["who"]: report for report in map(json.loads, out.splitlines())}
    assert reports["child"]["flushed"] and reports["parent"]["flushed"]
    child, parent = reports["child"]["stats"], reports["parent"]["stats"]
    assert child["queued"] == child["sent"] == 50  # not the parent's 100 pending at the fork
    assert parent["queued"] == parent["sent"] == 150
    assert_exactly_once(server, COLLECTION, [*range(150), *range(1000, 1050)])  # type: ignore[arg-type]



class _NoDeletes:
    """A connection whose DELETEs fail, as when the disk is full or the file stays locked."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if sql.startswith("DELETE"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.executemany(sql, *args)


def test_a_row_that_cannot_be_deleted_does_not_stall_the_queue(path: Path) -> None:
    api = FakeApi()
    target = _durable(api, path)
    queue: Any = target._queue
    real = queue._sender_conn
    queue._sender_conn = _NoDeletes(real)
    try:
        add(target, COLLECTION, {"n": 1})
        assert target.flush(5)  # sent: the row stays, but the queue goes on
        queue._sender_conn = real
        add(target, COLLECTION, {"n": 2})
        assert target.flush(5)
        stats = target.stats()
    finally:
        queue._sender_conn = real
        target.close(1)
    check_counters(stats)
    assert stats["sent"] == 2 and api.stored_values() == [1, 2]
    assert [event["n"] for event in _rows(path)] == [1]  # sent again (once stored) next start


def test_a_queue_file_that_is_not_a_database_is_named_in_the_error(path: Path) -> None:
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(sqlite3.DatabaseError, match=f"{path.name}.*keen delivery queue"):
        _durable(FakeApi(), path)


@pytest.mark.parametrize("durability", ["process", "full"])
def test_an_event_the_full_disk_cannot_take_raises_and_is_not_sent(path: Path,
                                                                   durability: str) -> None:
    api = FakeApi()
    api.gate.clear()  # nothing leaves the file meanwhile
    target = _durable(api, path, durability=durability)
    conn: Any = target._queue._writer_conn  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is (nearly) full
    added = []
    try:
        with pytest.raises(NotDeliveredError, match=f"{path.name}.*full"):
            for n in range(1000):
                add(target, COLLECTION, {"n": n, "pad": "x" * 1000})
                added.append(n)
        stats = target.stats()
        check_counters(stats)
        assert stats["dropped"] == 1 and stats["pending"] == len(added)
        api.gate.set()
        assert target.flush(5)
    finally:
        api.gate.set()
        target.close(1)
    assert sorted(api.stored_values()) == added  # not the event whose add_event raised


def test_close_reports_buffered_events_the_full_disk_cannot_take(path: Path) -> None:
    errors = Recorder()
    api = FakeApi()
    api.gate.clear()
    target = _durable(api, path, commit_interval=60, on_error=errors)
    conn: Any = target._queue._writer_conn  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    for n in range(3):
        add(target, COLLECTION, {"n": n, "pad": "x" * 5000})
    try:
        target.close(0.1)  # no exception: the events are reported as not delivered
    finally:
        api.gate.set()
    stats = target.stats()
    check_counters(stats)
    assert stats["dropped"] == 3, (stats, errors.calls, _rows(path))
    assert sorted(event["n"] for _c, event in errors.events) == [0, 1, 2]
    assert all(isinstance(error, NotDeliveredError) for error in errors.errors())


def test_drop_oldest_never_drops_an_event_on_disk(path: Path) -> None:
    dropped = [3, 4]  # (with "group" durability: the oldest not yet written, timing-dependent)
    errors = Recorder()
    api = FakeApi()
    api.gate.clear()  # nothing leaves the queue meanwhile
    target = _durable(api, path, durability="process", max_queue_size=3,
                      overflow="drop_oldest", on_error=errors)
    try:
        for n in range(5):
            add(target, COLLECTION, {"n": n})
        assert [event["n"] for _c, event in errors.events] == dropped
    finally:
        api.gate.set()
        target.close(5)
    assert sorted(api.stored_values()) == sorted(set(range(5)) - set(dropped))
