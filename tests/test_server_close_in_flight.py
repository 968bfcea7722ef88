"""Closing a store, or stopping the server, while a query runs: the query is stopped and
answered 503 ``ServiceUnavailableError``, ``close()`` neither raises nor hangs, and the database
opens again with everything stored before."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from keen.server import LocalKeenServer
from keen.server._errors import QueryError
from keen.server.engine import run_query
from keen.server.engines import open_engine

ENGINES = ["sqlite", "duckdb"]
EVENTS = 3_000  # more than one DuckDB vector (2,048 rows): the interruption is seen after one
TIMEOUT = 30.0
PARAMS = {"event_collection": "c", "timeframe": "this_1_days",
          "filters": [{"property_name": "name", "operator": "regex", "property_value": "^x"}]}


def _engine_ready(engine: str) -> None:
    if engine == "duckdb":
        pytest.importorskip("duckdb")


def _block_regex_until_closing(monkeypatch: pytest.MonkeyPatch, engine: str,
                               store: Callable[[], Any]) -> threading.Event:
    """The regex filter's first search waits (at most TIMEOUT s) until ``store()`` is being
    closed, so a query is certainly running when ``close`` starts; the returned event is set
    once it waits. Installed before the store opens its connections."""
    started = threading.Event()
    wait = threading.Event()

    def blocking(pattern: Any, text: Any) -> bool:
        if not started.is_set():
            started.set()
            current = store()
            for _ in range(int(TIMEOUT / 0.005)):  # (no event to await in the store)
                if getattr(current, "_closing", False) or current._closed:
                    break
                wait.wait(0.005)
        return False

    if engine == "sqlite":
        from keen.server import filters

        monkeypatch.setitem(filters._FUNCTIONS, "keen_regexp", (2, blocking))
    else:
        from keen.server.engines import _duckdb_sql

        monkeypatch.setattr(_duckdb_sql, "_sql_regexp", blocking)
    return started


def _events(count: int) -> list[dict[str, Any]]:
    return [{"name": f"user{i}", "n": i, "nested": {"k": i % 7}} for i in range(count)]


def _query_in_thread(store: Any, now: datetime) -> tuple[threading.Thread, list[Any]]:
    """A count on ``store`` running in a thread; its answer (or QueryError) lands in the list."""
    answers: list[Any] = []

    def query() -> None:
        try:
            answers.append(run_query(store, "p", "count", PARAMS, now=now))
        except QueryError as error:
            answers.append(error)

    thread = threading.Thread(target=query, daemon=True)
    thread.start()
    return thread, answers


def _assert_stopped_by_shutdown(answers: list[Any]) -> QueryError:
    [error] = answers
    assert isinstance(error, QueryError), error
    assert (error.status, error.error_code) == (503, "ServiceUnavailableError")
    return error


@pytest.mark.parametrize("on_file", [False, True], ids=["memory", "file"])
@pytest.mark.parametrize("engine", ENGINES)
def test_closing_a_store_stops_the_query_running_on_it_with_a_503(
        engine: str, on_file: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _engine_ready(engine)
    now = datetime.now(timezone.utc)
    path = str(tmp_path / "k.db") if on_file else None
    holder: list[Any] = []
    started = _block_regex_until_closing(monkeypatch, engine, lambda: holder[0])
    store = open_engine(engine, path)
    holder.append(store)
    store.insert_events("p", "c", _events(EVENTS), now=now)
    thread, answers = _query_in_thread(store, now)
    assert started.wait(TIMEOUT)
    store.close()  # neither raises (DuckDB: ResourceInUseException) nor waits for the query
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    error = _assert_stopped_by_shutdown(answers)
    assert "shutting down" in error.message
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        run_query(store, "p", "count", {"event_collection": "c", "timeframe": "this_1_days"},
                  now=now)
    if on_file:
        with open_engine(engine, path) as again:
            count = {"event_collection": "c", "timeframe": "this_1_days"}
            assert run_query(again, "p", "count", count, now=now)["result"] == EVENTS


@pytest.mark.parametrize("engine", ENGINES)
def test_stopping_the_server_answers_a_query_in_flight_503_and_stops(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stop()`` waits its ``timeout`` for requests in flight, then closes the file database,
    which stops the query still running; its client gets the 503 before the connection
    closes, and the server starts again on the same data."""
    _engine_ready(engine)
    server = LocalKeenServer(db=str(tmp_path / "k.db"), engine=engine)
    started = _block_regex_until_closing(monkeypatch, engine, lambda: server.storage)
    server.start()
    try:
        server.storage.insert_events(server.project_id, "c", _events(EVENTS),
                                     now=datetime.now(timezone.utc))
        answers: list[Any] = []

        def query() -> None:
            params = {**PARAMS, "filters": json.dumps(PARAMS["filters"])}
            answers.append(requests.get(
                f"{server.url}/3.0/projects/{server.project_id}/queries/count",
                params=params, headers={"Authorization": server.read_key or ""},
                timeout=TIMEOUT))

        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        assert started.wait(TIMEOUT)
        server.stop(timeout=0.2)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        [answer] = answers
        assert answer.status_code == 503
        assert answer.json()["error_code"] == "ServiceUnavailableError"
        assert not server.running
        monkeypatch.undo()  # the regex filter as it is, on the connections opened again
        server.start()
        assert server.client.count("c", timeframe="this_1_days") == EVENTS
    finally:
        server.close()


def test_a_duckdb_statement_that_does_not_stop_leaves_close_bounded_and_quiet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A statement stuck in a Python function never sees the interruption: ``close`` waits at
    most ``_CLOSE_WAIT`` for it, then returns without raising (the database left open, a
    warning logged); the query still ends with the 503 once the function returns."""
    pytest.importorskip("duckdb")
    from keen.server.engines import _duckdb_sql
    from keen.server.engines import duckdb as duckdb_engine

    started, release = threading.Event(), threading.Event()

    def stuck(pattern: Any, text: Any) -> bool:
        if not started.is_set():
            started.set()
            release.wait(TIMEOUT)
        return False

    monkeypatch.setattr(_duckdb_sql, "_sql_regexp", stuck)
    monkeypatch.setattr(duckdb_engine, "_CLOSE_WAIT", 0.1)
    now = datetime.now(timezone.utc)
    store = open_engine("duckdb", str(tmp_path / "k.duckdb"))
    store.insert_events("p", "c", _events(EVENTS), now=now)
    thread, answers = _query_in_thread(store, now)
    assert started.wait(TIMEOUT)
    try:
        store.close()  # returns (after 0.1 s) though the statement is still running
        assert thread.is_alive()
        assert "did not stop" in caplog.text
    finally:
        release.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    _assert_stopped_by_shutdown(answers)


def test_closing_the_server_answers_a_query_in_flight_503_with_an_in_memory_database(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``close()`` (what ``keen-server`` does when it shuts down, with or without ``--db``)
    stops a query still running after its wait and answers it before the connections close."""
    server = LocalKeenServer()
    started = _block_regex_until_closing(monkeypatch, "sqlite", lambda: server.storage)
    server.start()
    try:
        server.storage.insert_events(server.project_id, "c", _events(EVENTS),
                                     now=datetime.now(timezone.utc))
        answers: list[Any] = []
        thread = threading.Thread(target=lambda: answers.append(requests.get(
            f"{server.url}/3.0/projects/{server.project_id}/queries/count",
            params={**PARAMS, "filters": json.dumps(PARAMS["filters"])},
            headers={"Authorization": server.read_key or ""}, timeout=TIMEOUT)), daemon=True)
        thread.start()
        assert started.wait(TIMEOUT)
    finally:
        server.close(timeout=0.2)
    thread.join(TIMEOUT)
    [answer] = answers
    assert (answer.status_code, answer.json()["error_code"]) == (503, "ServiceUnavailableError")
