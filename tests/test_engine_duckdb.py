"""What only the DuckDB engine does: migrating a SQLite engine's database, being optional,
interrupting a statement at the query deadline.

Its query semantics are tested with every other engine's by the shared suites
(tests/test_engine_*.py, tests/test_e2e_queries.py, test_server_auth.py, test_server_events.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from _server_helpers import TIMEOUT, ServerProcess
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.server import DEV_PROJECT_ID, DEV_READ_KEY, LocalKeenServer
from keen.server.engine import run_query
from keen.server.engines import DatabaseError, EngineUnavailable, open_engine

pytest.importorskip("duckdb")

import duckdb as duckdb_errors  # (after the skip)

from keen.server.engines.duckdb import DuckDBStore  # after the skip: it needs duckdb

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
QUERIES = [
    ("count", {"group_by": "user.country"}),
    ("sum", {"target_property": "price"}),
    ("select_unique", {"target_property": "user.country"}),
    ("extraction", {}),
]


def _sqlite_file(path: Path) -> list[dict[str, object]]:
    """A SQLite engine database with events (one with a uniqueness token) and a document;
    returns the answers of QUERIES on it."""
    with open_engine("sqlite", str(path)) as store:
        store.insert_events("p", "buys", [
            {"price": 10, "user": {"country": "FR"}, "tags": ["a", 1]},
            {"price": 2.5, "user": {"country": "DE"}, "keen": {"uniqueness_token": "t1"}},
            {"price": "free", "tags": ["a", 1.0]},
        ], now=NOW)
        store.put_doc("p", "saved_query", "q", {"query_name": "q"})
        return [_ask(store, analysis, params) for analysis, params in QUERIES]


def _ask(store: object, analysis: str, params: dict[str, object]) -> dict[str, object]:
    query = {"event_collection": "buys", "timeframe": "this_1_days", **params}
    return run_query(store, "p", analysis, query, now=NOW)  # type: ignore[arg-type]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sqlite_database_is_copied_into_a_duckdb_database_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "keen.db"
    answers = _sqlite_file(path)
    before = _digest(path)
    with open_engine("duckdb", str(path)) as store:
        assert [_ask(store, a, p) for a, p in QUERIES] == answers
        assert store.get_doc("p", "saved_query", "q") == {"query_name": "q"}
        assert store.collection("p", "buys") is not None
        # the token came along: the same event is not stored twice
        assert store.insert_events("p", "buys", [{"keen": {"uniqueness_token": "t1"}}],
                                   now=NOW) == [{"success": True}]
        assert store.count_events("p", "buys") == 3
        store.insert_events("p", "buys", [{"price": 1}], now=NOW)
        # the copied events are in the typed columns too: price is now read from them
        assert _ask(store, "sum", {"target_property": "price"}) == {"result": 13.5}
        assert _ask(store, "count", {"filters": [
            {"property_name": "user.country", "operator": "eq", "property_value": "FR"}]}) == {
            "result": 1}
    assert _digest(path) == before  # the SQLite file is left as it was
    assert (tmp_path / "keen.db.duckdb").exists()
    with open_engine("duckdb", str(path)) as store:  # copied once, then used as it is
        assert store.count_events("p", "buys") == 4
        new_seq = store.insert_events("p", "buys", [{"price": 7}], now=NOW)
        assert new_seq == [{"success": True}]
        latest = _ask(store, "extraction", {"latest": 1})["result"]
        assert [event["price"] for event in latest] == [7]  # type: ignore[index]


def test_keen_server_engine_duckdb_serves_an_old_sqlite_db(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with LocalKeenServer(db=str(path)) as server:  # the sqlite engine, as before
        server.client.add_events({"buys": [{"price": 3}, {"price": 4}]})
    process = ServerProcess("--engine", "duckdb", "--db", str(path))
    try:
        lines = process.read_banner()
        assert any("Copied the SQLite database" in line for line in lines)
        answer = requests.get(
            f"{process.url}/3.0/projects/{DEV_PROJECT_ID}/queries/sum",
            params={"event_collection": "buys", "target_property": "price",
                    "timeframe": "this_1_days"},
            headers={"Authorization": DEV_READ_KEY}, timeout=TIMEOUT)
        assert answer.json() == {"result": 7}
    finally:
        assert process.stop()[0] == 0


def test_a_file_that_is_no_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError, match="cannot open the DuckDB database"):
        open_engine("duckdb", str(path))


def test_without_duckdb_the_engine_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb now fails
    with pytest.raises(EngineUnavailable, match=r'pip install "keen\[server\]"'):
        open_engine("duckdb")


def test_an_unknown_engine_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="Unknown engine 'mysql'; use one of sqlite, duckdb"):
        LocalKeenServer(engine="mysql")


def test_a_long_duckdb_statement_is_interrupted_at_the_query_deadline() -> None:
    """DuckDB cannot look at the deadline itself: a timer interrupts the running statement
    (here one that would count for hours), the answer is 503 QueryTimeoutError, and the
    interruption does not reach the next statement of the store."""
    from keen.server._errors import QueryError
    from keen.server.limits import query_deadline

    with open_engine("duckdb") as store:
        store.insert_events("p", "c", [{"n": 1}], now=NOW)
        with pytest.raises(QueryError) as caught, query_deadline(0.2), \
                store._read() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SELECT count(*) FROM range(1000000000000) t(i) "
                           "WHERE i % 7 = 3").fetchall()
        assert (caught.value.status, caught.value.error_code) == (503, "QueryTimeoutError")
        params = {"event_collection": "c", "timeframe": "this_1_days"}
        assert run_query(store, "p", "count", params, now=NOW)["result"] == 1


def test_typed_columns_stop_at_the_database_cap_and_answers_stay_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every collection's typed columns are in one table, and each new one is an ALTER TABLE
    that slows as the table widens: past MAX_TYPED_COLUMNS (lowered here) new properties stay
    in the JSON body, so many collections with many properties cannot stall writes."""
    import keen.server.engines.duckdb as engine_module

    monkeypatch.setattr(engine_module, "MAX_TYPED_COLUMNS", 6)
    with open_engine("duckdb") as store:
        for name in ("a", "b", "c"):
            store.insert_events("p", name, [{"x": 1, "y": "s", "z": 2.5}, {"x": 3}], now=NOW)
        columns = [row[0] for row in store._con.execute(  # type: ignore[attr-defined]
            "DESCRIBE events").fetchall()]
        slots = {name.split("_")[0] for name in columns if re.fullmatch(r"p\d+_[sifb]", name)}
        assert len(slots) == 6  # the first collection's five (keen.id and keen.created_at
        # included) and one of the second's: the third collection has none
        params = {"event_collection": "c", "timeframe": "this_1_days"}
        assert run_query(store, "p", "sum", {**params, "target_property": "x"},
                         now=NOW)["result"] == 4
        assert run_query(store, "p", "count", {**params, "group_by": "y"}, now=NOW)["result"] == [
            {"y": None, "result": 1}, {"y": "s", "result": 1}]
        whole = run_query(store, "p", "extraction", params, now=NOW)["result"]
        assert [{k: v for k, v in e.items() if k != "keen"} for e in whole] == [
            {"x": 1, "y": "s", "z": 2.5}, {"x": 3}]


@contextmanager
def _memory_limit(store: Any, limit: str) -> Iterator[None]:
    """DuckDB's memory limit lowered to ``limit`` in the block, then put back as it was
    (``RESET memory_limit`` does not put it back on DuckDB 1.4)."""
    before = store._con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    store._con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        store._con.execute(f"SET memory_limit = '{before}'")


def test_a_query_past_duckdbs_memory_limit_is_a_400_and_the_store_goes_on() -> None:
    from keen.server._errors import QueryError

    with open_engine("duckdb") as store:
        store.insert_events("p", "c", [{"u": f"user-{i}-{'x' * 50}", "n": i}
                                       for i in range(50_000)], now=NOW)
        params = {"event_collection": "c", "timeframe": "this_1_days"}
        with _memory_limit(store, "2MB"), pytest.raises(QueryError) as caught:
            run_query(store, "p", "count_unique",
                      {**params, "target_property": "u", "group_by": "n"}, now=NOW)
        assert (caught.value.status, caught.value.error_code) == (400, "QueryTooComplexError")
        assert run_query(store, "p", "count", params, now=NOW)["result"] == 50_000


# ---------------------------------------------------------------- queries racing new columns


class _Seams(DuckDBStore):
    """A DuckDB store with test seams at the points where a query and a write that adds typed
    columns can interleave; each hook runs once, then clears itself.

    ``before_compile`` / ``after_compile``: around the compiling of the next query (the
    column knowledge it is compiled with); ``after_execute``: once the next read statement ran
    or failed; ``mid_write``: inside the next write transaction, after its new columns were
    added and before it commits."""

    def __init__(self) -> None:
        super().__init__()
        self.before_compile: Callable[[], None] | None = None
        self.after_compile: Callable[[], None] | None = None
        self.after_execute: Callable[[], None] | None = None
        self.mid_write: Callable[[], None] | None = None

    def _fire(self, name: str) -> None:
        hook = getattr(self, name)
        setattr(self, name, None)
        if hook is not None:
            hook()

    def _compiled(self, scope: Any) -> Any:
        self._fire("before_compile")
        compiled = super()._compiled(scope)
        self._fire("after_compile")
        return compiled

    def _shred(self, *args: Any) -> Any:
        shredded = super()._shred(*args)
        self._fire("mid_write")
        return shredded

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with super()._read() as cursor:
            yield _SeamCursor(cursor, self)


class _SeamCursor:
    def __init__(self, cursor: Any, store: _Seams) -> None:
        self._cursor = cursor
        self._store = store

    def execute(self, *args: Any) -> Any:
        try:
            return self._cursor.execute(*args)
        finally:
            self._store._fire("after_execute")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


_MOVED = {"property_name": "x", "operator": "eq", "property_value": 7}
# (analysis, parameters, answer once the write's three events {"x": 7} are seen)
_RACED = [
    ("extraction", {}, None),
    ("count", {"filters": [_MOVED]}, 3),
    ("sum", {"target_property": "x"}, 21),
    ("funnel", {"steps": [{"event_collection": "c", "actor_property": "keen.id",
                           "timeframe": "this_1_days", "filters": [_MOVED]}]}, [3]),
]


def _raced(store: DuckDBStore, analysis: str, params: dict[str, Any]) -> Any:
    query = params if analysis == "funnel" else {
        "event_collection": "c", "timeframe": "this_1_days", **params}
    answer = run_query(store, "p", analysis, query, now=NOW)["result"]
    return [event.get("x", "MISSING") for event in answer] if analysis == "extraction" else answer


@pytest.mark.parametrize("before", [[1], "a"], ids=["list-then-number", "string-then-number"])
@pytest.mark.parametrize("analysis, params, expected", _RACED, ids=[r[0] for r in _RACED])
def test_a_query_compiled_before_a_write_moved_values_into_new_columns_sees_them(
    before: Any, analysis: str, params: dict[str, Any], expected: Any,
) -> None:
    """A property that held only lists (no typed column) or only strings gets numbers: the
    write adds a column and the numbers go there, not in the JSON body. A query compiled just
    before that write committed, executed just after, must not read the new events with the
    old column knowledge (their x would be missing): it runs again."""
    with _Seams() as store:
        store.insert_events("p", "c", [{"x": before}] * 2, now=NOW)
        store.after_compile = lambda: store.insert_events("p", "c", [{"x": 7}] * 3, now=NOW)
        answer = _raced(store, analysis, params)
        assert store.after_compile is None  # the write did land between compile and execute
    assert answer == ([before] * 2 + [7] * 3 if expected is None else expected)


@pytest.mark.parametrize("analysis, params, expected", [
    r for r in _RACED if r[0] in ("extraction", "funnel")], ids=["extraction", "funnel"])
def test_a_query_never_names_a_column_a_write_has_not_committed(
    analysis: str, params: dict[str, Any], expected: Any,
) -> None:
    """Extractions and funnels hold their cursor while they compile: a write that has added a
    column but not committed it yet is under way when the query is compiled, and still when
    it is executed (the write waits for that). The query must not name the column (its
    snapshot has no such column: a DuckDB Binder Error); it answers from a committed state."""
    mid_write, executed = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    with _Seams() as store:
        store.insert_events("p", "c", [{"x": [1]}] * 2, now=NOW)

        def write() -> None:
            try:
                store.insert_events("p", "c", [{"x": 7}] * 3, now=NOW)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        writer = threading.Thread(target=write)

        def paused() -> None:  # in the writer's transaction, its new column added
            mid_write.set()
            if not executed.wait(TIMEOUT):  # pragma: no cover - reported below
                errors.append(AssertionError("the query was never executed"))

        def start_writer() -> None:  # in the reader, before it compiles
            writer.start()
            assert mid_write.wait(TIMEOUT)

        store.before_compile, store.mid_write = start_writer, paused
        store.after_execute = executed.set
        try:
            answer = _raced(store, analysis, params)
        finally:
            executed.set()
            writer.join(TIMEOUT)
        assert not errors and not writer.is_alive()
        assert store.mid_write is None and store.after_execute is None
        assert _raced(store, analysis, params) == (
            [[1], [1], 7, 7, 7] if expected is None else expected)
    assert answer in ([[[1], [1]], [[1], [1], 7, 7, 7]] if expected is None else [[0], expected])


# ---------------------------------------------------------------- writes past the memory limit


def _three_writes_under(server: LocalKeenServer, api: Any, *limits: Any) -> list[Any]:
    """20,000 events stored, then, inside the context managers ``limits``, the three writes
    the 507 tests refuse: deleting a property, deleting most events, and a 20,000-event batch
    with a new property."""
    from _server_helpers import NOW as SERVER_NOW

    store: Any = server.storage
    store.insert_events(server.project_id, "c", [
        {"u": f"user-{i}", "n": i, "o": {"a": i, "b": f"{i}{'t' * 50}"}}
        for i in range(20_000)], now=SERVER_NOW)
    store._con.execute("SET threads = 1")  # memory use does not vary with the machine
    store._con.execute("CHECKPOINT")
    big = [{"u": f"v-{i}", "s": f"{i}{'y' * 50}", "n": i, "new": i} for i in range(20_000)]
    with contextlib.ExitStack() as stack:
        for limit in limits:
            stack.enter_context(limit)
        return [
            api.delete("/events/c/properties/o", server.master_key),
            api.delete("/events/c", server.master_key, params={"filters": json.dumps([
                {"property_name": "n", "operator": "lt", "property_value": 15_000}])}),
            api.post("/events", server.write_key, body={"c": big}),  # fails as it commits
        ]


def _sum_of_new(server: LocalKeenServer, api: Any) -> Any:
    answer = api.post("/queries/sum", server.read_key, body={
        "event_collection": "c", "timeframe": "this_10_years", "target_property": "new"})
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def test_writes_past_duckdbs_memory_limit_are_a_507_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    """Storing events, deleting events and deleting a property, each past DuckDB's memory
    limit (lowered here): a 507 InsufficientStorageError over HTTP, nothing of the write kept
    (no event, no property in the schema, no typed column a later query would name), and the
    store goes on: a later write and queries pass."""
    from _server_helpers import NOW as SERVER_NOW
    from _server_helpers import Api, error_of

    with LocalKeenServer(engine="duckdb", db=str(tmp_path / "k.duckdb"),
                         clock=lambda: SERVER_NOW) as server:
        api = Api(server)
        too_much = _three_writes_under(server, api, _memory_limit(server.storage, "6MB"))
        assert [error_of(answer) for answer in too_much] == [
            (507, "InsufficientStorageError")] * 3
        assert all("nothing of it was kept" in answer.json()["message"] for answer in too_much)
        api.write("c", {"u": "small", "n": -1, "o": {"a": -1}})
        assert api.count("c") == 20_001
        assert api.count("c", filters=[{"property_name": "o.a", "operator": "exists",
                                        "property_value": True}]) == 20_001
        assert api.count("c", filters=[{"property_name": "s", "operator": "exists",
                                        "property_value": True}]) == 0
        assert api.get("/events/c/properties/new", server.master_key).status_code == 404
        assert _sum_of_new(server, api) in (0, None)
        api.write("c", {"new": 5})  # the property a rolled-back write had a column for
        assert _sum_of_new(server, api) == 5


def test_writes_that_spill_to_a_full_disk_are_a_507_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    """Under memory pressure DuckDB spills a write's data to temporary files; on a full disk
    (``disk_full``: real write failures, no stub) that is an ``IOException`` in the middle of
    the write's statements, not at its commit: a 507 InsufficientStorageError over HTTP
    naming the failed write, nothing kept, and the store goes on once there is space."""
    from _server_helpers import NOW as SERVER_NOW
    from _server_helpers import Api, disk_full, error_of

    with LocalKeenServer(engine="duckdb", db=str(tmp_path / "k.duckdb"),
                         clock=lambda: SERVER_NOW) as server:
        api = Api(server)
        refused = _three_writes_under(server, api, _memory_limit(server.storage, "12MB"),
                                      disk_full())
        assert [error_of(answer) for answer in refused] == [
            (507, "InsufficientStorageError")] * 3
        messages = [answer.json()["message"] for answer in refused]
        assert all("nothing of it was kept" in message for message in messages), messages
        assert any("could not write" in message for message in messages), messages
        assert api.count("c") == 20_000
        assert api.count("c", filters=[{"property_name": "o.a", "operator": "exists",
                                        "property_value": True}]) == 20_000
        assert api.get("/events/c/properties/new", server.master_key).status_code == 404
        api.write("c", {"new": 5})
        assert api.count("c") == 20_001
        assert _sum_of_new(server, api) == 5


def test_a_migration_past_the_memory_limit_keeps_nothing_and_the_next_start_copies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keen.db"
    with open_engine("sqlite", str(path)) as sqlite_store:
        sqlite_store.insert_events("p", "c", [{"u": f"user-{i}-{'x' * 50}", "n": i}
                                              for i in range(20_000)], now=NOW)
    copy = tmp_path / "keen.db.duckdb"
    (tmp_path / "keen.db.duckdb.partial").write_bytes(b"left by a crash")
    with pytest.raises(DatabaseError,
                       match=r"(memory limit|could not allocate).*the next start copies again"):
        DuckDBStore(str(path), config={"memory_limit": "6MB", "threads": 1})
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(copy.name)]
    with DuckDBStore(str(path)) as store:
        assert store.migrated_from == str(path)
        assert store.count_events("p", "c") == 20_000
    assert copy.exists() and not (tmp_path / "keen.db.duckdb.partial").exists()


# ---------------------------------------------------------------- delete_property in chunks


def _mixed(i: int) -> dict[str, Any]:
    """An event of collection ``c``: ``p`` holds every kind of value or is missing, ``o`` is
    an object whose scalars have typed columns, ``q.r`` a nested property."""
    kinds: list[Any] = [i, f"s{i}", i / 4, i % 2 == 0, None, {"a": i, "b": "x"}, [i, "l"]]
    event: dict[str, Any] = {"n": i, "o": {"a": i, "b": f"b{i % 3}"}, "q": {"r": i, "t": 1}}
    if i % 9 != 8:  # missing from some events
        event["p"] = kinds[i % len(kinds)]
    return event


def _without(event: dict[str, Any], path: str) -> dict[str, Any]:
    """The brute-force reference: ``event`` without the dotted ``path`` (objects kept)."""
    copy = json.loads(json.dumps(event))
    *parents, leaf = path.split(".")
    node = copy
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)
    return copy


class _BodiesFetched:
    """The store's writer connection, counting the most event bodies one fetch handed to
    Python (the memory delete_property holds at once)."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.most = 0  # bodies
        self.most_chars = 0  # characters of them

    def execute(self, *args: Any) -> _BodiesFetched:
        self.con.execute(*args)
        return self

    def fetchall(self) -> list[Any]:
        rows = self.con.fetchall()
        bodies = [value for row in rows for value in row
                  if isinstance(value, str) and value.startswith("{")]
        if bodies:
            self.most = max(self.most, len(bodies))
            self.most_chars = max(self.most_chars, sum(map(len, bodies)))
        return list(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


@pytest.mark.parametrize(("chunk", "chunk_chars"), [(1, 10**9), (7, 10**9), (10**6, 300)])
@pytest.mark.parametrize("name", ["p", "o", "q.r", "absent"])
def test_delete_property_in_chunks_answers_as_in_one_pass(
    monkeypatch: pytest.MonkeyPatch, chunk: int, chunk_chars: int, name: str,
) -> None:
    """delete_property reads and rewrites bodies a chunk at a time (``_DELETE_CHUNK`` events,
    about ``_DELETE_CHUNK_BYTES`` of bodies; never more in Python at once): with more
    matching events than a chunk (and another collection's events between them) it removes
    the property from exactly the events a brute-force pass does, counts them the same, and
    queries see the same events and schema."""
    import keen.server.engines.duckdb as engine_module

    monkeypatch.setattr(engine_module, "_DELETE_CHUNK", chunk, raising=False)
    monkeypatch.setattr(engine_module, "_DELETE_CHUNK_BYTES", chunk_chars, raising=False)
    events = [_mixed(i) for i in range(120)]
    with DuckDBStore() as store:
        for start in range(0, len(events), 40):  # several writes, interleaved with another
            store.insert_events("p", "c", events[start:start + 40], now=NOW)
            store.insert_events("p", "other", [{"p": 1, "o": {"a": 1}}] * 5, now=NOW)
        expected = [_without(event, name) for event in events]
        held = sum(1 for before, after in zip(events, expected) if before != after)
        fetched = _BodiesFetched(store._con)
        store._con = fetched
        try:
            assert store.delete_property("p", "c", name) == held
        finally:
            store._con = fetched.con
        assert fetched.most <= chunk
        assert fetched.most_chars < chunk_chars + 100  # one event past it at most (< 100 here)
        answer = run_query(store, "p", "extraction",
                           {"event_collection": "c", "timeframe": "this_1_days"}, now=NOW)
        assert [{k: v for k, v in e.items() if k != "keen"}
                for e in answer["result"]] == expected
        assert store.count_events("p", "other") == 15  # other collections untouched
        other = run_query(store, "p", "extraction",
                          {"event_collection": "other", "timeframe": "this_1_days"}, now=NOW)
        assert all(e["p"] == 1 and e["o"] == {"a": 1} for e in other["result"])
        schema = store.collection("p", "c")
        assert schema is not None
        assert not [path for path in schema["properties"]
                    if path == name or path.startswith(name + ".")]
        assert store.delete_property("p", "c", name) == 0  # nothing left to remove


_MISSING = object()  # the event has no ``p``
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6)
    | st.text("ab.", max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner,
                                                                 max_size=2),
    max_leaves=4)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.just(_MISSING) | _VALUES, min_size=1, max_size=25),
       chunk=st.integers(1, 4), name=st.sampled_from(["p", "p.a", "p.b"]))
def test_delete_property_in_chunks_matches_brute_force(
    values: list[Any], chunk: int, name: str,
) -> None:
    """Any values of ``p`` (missing, scalars of every kind, lists, objects nesting ``a``/``b``),
    chunks of 1 to 4 events: the same events and count as the brute-force removal."""
    import keen.server.engines.duckdb as engine_module

    events = [{"n": i} if value is _MISSING else {"n": i, "p": value}
              for i, value in enumerate(values)]
    before = engine_module._DELETE_CHUNK
    engine_module._DELETE_CHUNK = chunk
    try:
        with DuckDBStore() as store:
            store.insert_events("p", "c", events[: len(events) // 2], now=NOW)
            store.insert_events("p", "c", events[len(events) // 2:], now=NOW)
            expected = [_without(event, name) for event in events]
            held = sum(1 for old, new in zip(events, expected) if old != new)
            assert store.delete_property("p", "c", name) == held
            answer = run_query(store, "p", "extraction",
                               {"event_collection": "c", "timeframe": "this_1_days"}, now=NOW)
    finally:
        engine_module._DELETE_CHUNK = before
    assert [{k: v for k, v in e.items() if k != "keen"} for e in answer["result"]] == expected


# ---------------------------------------------------------------------------- checkpoints

def _checkpoints_done(store: DuckDBStore) -> None:
    """Wait for the checkpoints asked of the store's checkpoint thread so far (one thread:
    what is given to it after them runs after them)."""
    assert store._housekeeper is not None
    store._housekeeper.submit(lambda: None).result(timeout=TIMEOUT)


def _wal(path: Path) -> int:
    wal = Path(str(path) + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def _some_events(store: DuckDBStore, count: int) -> None:
    events = [{"user": {"id": f"u{i}", "plan": "pro"}, "price": i / 4, "n": i}
              for i in range(count)]
    assert all(result == {"success": True} for result in store.insert_events(
        "p", "buys", events, now=datetime(2026, 3, 1, tzinfo=timezone.utc)))


def test_the_wal_is_checkpointed_by_a_thread_of_its_own_once_past_its_threshold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write whose commit takes the WAL past ``_CHECKPOINT_WAL`` is answered without
    checkpointing: the store's checkpoint thread does it, and the WAL is empty again (the
    events are in the database file, there when it opens again)."""
    from keen.server.engines import duckdb as duckdb_engine

    path = tmp_path / "k.duckdb"
    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL_LEAST", 200_000)
    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL", 200_000)
    store = DuckDBStore(str(path))
    try:
        _some_events(store, 100)
        assert 0 < _wal(path) < 200_000 and store._housekeeper is None  # under it: kept
        checkpoint = threading.Event()
        run = store._checkpoint

        def checkpoint_after_the_answer() -> None:
            assert checkpoint.wait(timeout=TIMEOUT)
            run()

        monkeypatch.setattr(store, "_checkpoint", checkpoint_after_the_answer)
        _some_events(store, 5_000)  # past it: answered before the checkpoint has begun
        assert _wal(path) >= 200_000
        checkpoint.set()
        _checkpoints_done(store)
        assert _wal(path) == 0
    finally:
        store.close()
    with DuckDBStore(str(path)) as again:
        assert again._con.execute("SELECT count(*) FROM events").fetchone() == (5_100,)


def test_past_the_least_wal_the_checkpoint_waits_for_the_rows_to_nearly_fill_a_row_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between ``_CHECKPOINT_WAL_LEAST`` and ``_CHECKPOINT_WAL``, the checkpoint comes with
    the first commit after which another of the same size would not fit in the row group the
    rows added since the last checkpoint are filling (so the checkpoint leaves it nearly full,
    and the next one has nothing old to rewrite), counted again from each checkpoint."""
    from keen.server.engines import duckdb as duckdb_engine

    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL_LEAST", 1)
    monkeypatch.setattr(duckdb_engine, "_ROW_GROUP_ROWS", 1_000)
    store = DuckDBStore(str(tmp_path / "k.duckdb"))
    asked: list[int] = []
    monkeypatch.setattr(store, "_later", lambda work: asked.append(store._table_rows()))
    try:
        for commit in range(1, 4):  # 300, 600 (another 300 fits), 900 (it would not)
            _some_events(store, 300)
            assert asked == ([900] if commit == 3 else []), commit
        store._checkpoint_due = False
        store._checkpoint()  # counted from here: 300 and 600 wait, and 900 again
        for commit in range(4, 7):
            _some_events(store, 300)
            assert asked == ([900, 1_800] if commit == 6 else [900]), commit
        store._checkpoint_due = False
        store._checkpoint()
        _some_events(store, 500)
        _some_events(store, 500)  # exactly full: now
        assert asked == [900, 1_800, 2_800]
    finally:
        store.close()


def test_a_failing_row_count_never_fails_a_commit_and_leaves_the_checkpoint_to_the_wal_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are counted after the commit: should that fail, the write is still answered
    as stored, and the checkpoint comes when the WAL passes ``_CHECKPOINT_WAL``."""
    from keen.server.engines import duckdb as duckdb_engine

    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL_LEAST", 1)
    path = tmp_path / "k.duckdb"
    store = DuckDBStore(str(path))
    asked: list[str] = []
    monkeypatch.setattr(store, "_later", lambda work: asked.append("checkpoint"))

    def failing() -> int:
        raise duckdb_errors.IOException("cannot read the catalog")

    monkeypatch.setattr(store, "_table_rows", failing)
    try:
        for _ in range(3):
            _some_events(store, 300)  # (asserts every event stored)
        assert asked == []
        monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL", 1)
        _some_events(store, 300)
        assert asked == ["checkpoint"]
        assert store._con.execute("SELECT count(*) FROM events").fetchone() == (1_200,)
    finally:
        store.close()


def test_a_checkpoint_threshold_given_in_the_config_is_duckdbs_own(tmp_path: Path) -> None:
    """``config`` naming a checkpoint threshold keeps DuckDB checkpointing in the commit that
    passes it, as DuckDB does: no checkpoint thread."""
    path = tmp_path / "k.duckdb"
    with DuckDBStore(str(path), config={"checkpoint_threshold": "100KB"}) as store:
        _some_events(store, 5_000)
        assert _wal(path) == 0 and store._housekeeper is None


def test_closing_the_store_with_a_checkpoint_asked_for_checkpoints_once_and_keeps_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keen.server.engines import duckdb as duckdb_engine

    path = tmp_path / "k.duckdb"
    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL_LEAST", 1)
    monkeypatch.setattr(duckdb_engine, "_CHECKPOINT_WAL", 1)
    store = DuckDBStore(str(path))
    _some_events(store, 1_000)
    store.close()  # whether or not the thread's checkpoint has run: close checkpoints
    assert _wal(path) == 0
    with DuckDBStore(str(path)) as again:
        assert again._con.execute("SELECT count(*) FROM events").fetchone() == (1_000,)


def test_closing_the_store_tolerates_a_cursor_closed_but_not_yet_forgotten() -> None:
    """A cursor's user closes it, then forgets it (``_cursor``); ``close`` arriving between
    the two interrupts a closed cursor, which DuckDB answers with an error: ``close`` goes on
    waiting for it to be forgotten, and closes without raising."""
    store = DuckDBStore()
    interrupted = threading.Event()

    class ClosedCursor:
        def interrupt(self) -> None:
            interrupted.set()
            raise duckdb_errors.ConnectionException("Connection already closed!")

    closed = ClosedCursor()
    with store._running:
        store._cursors.add(closed)
    failures: list[BaseException] = []

    def close() -> None:
        try:
            store.close()
        except BaseException as exc:  # reported below
            failures.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    assert interrupted.wait(timeout=TIMEOUT)
    with store._running:  # the user forgets it
        store._cursors.discard(closed)
        store._running.notify_all()
    closer.join(timeout=TIMEOUT)
    assert not closer.is_alive() and failures == []
    with pytest.raises(RuntimeError, match="closed"):
        store.insert_events("p", "c", [{"a": 1}], now=datetime(2026, 3, 1, tzinfo=timezone.utc))


def test_the_schema_it_remembers_follows_every_write_deletes_and_rollbacks_included(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The duckdb store remembers each collection's stored schema so as not to read it on
    every batch: the schema it reports stays the sqlite engine's (which reads it each time)
    through new properties, null giving way, deleting a property, deleting every event, and a
    write rolled back after its schema was merged."""
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    duck, lite = DuckDBStore(), open_engine("sqlite", None)

    def both(do: Callable[[Any], Any]) -> None:
        for store in (duck, lite):
            do(store)
        assert duck.collection("p", "c") == lite.collection("p", "c")

    try:
        both(lambda s: s.insert_events("p", "c", [{"a": None, "o": {"x": 1}}], now=now))
        both(lambda s: s.insert_events("p", "c", [{"a": "s", "b": True}], now=now))
        both(lambda s: s.delete_property("p", "c", "o"))
        both(lambda s: s.insert_events("p", "c", [{"o": {"x": "now a string"}}], now=now))
        both(lambda s: s.delete_events("p", "c", now=now))
        assert duck.collection("p", "c") is None
        both(lambda s: s.insert_events("p", "c", [{"a": 1.5}], now=now))
        save = DuckDBStore._save_schema

        def save_then_fail(self: DuckDBStore, *args: Any) -> None:
            save(self, *args)
            raise duckdb_errors.InterruptException("after the schema was merged")

        monkeypatch.setattr(DuckDBStore, "_save_schema", save_then_fail)
        with pytest.raises(duckdb_errors.InterruptException):
            duck.insert_events("p", "c", [{"z": "never stored"}], now=now)
        monkeypatch.setattr(DuckDBStore, "_save_schema", save)
        assert duck.collection("p", "c") == lite.collection("p", "c")  # no "z"
        both(lambda s: s.insert_events("p", "c", [{"z": 2}], now=now))  # stored this time
        assert duck.collection("p", "c")["properties"]["z"] == "num"
    finally:
        duck.close()
        lite.close()
