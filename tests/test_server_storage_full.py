"""A write the disk cannot hold, over HTTP, on each engine: 507 InsufficientStorageError, the
write rolled back whole, and the store goes on once there is space again.

The full disk is real, not a stub: the process's file-size limit (``RLIMIT_FSIZE``, settable
without root) is lowered to 0 bytes while the request runs, with ``SIGXFSZ`` ignored, so every
write the database makes to a file fails as it would on a full disk (EFBIG instead of ENOSPC:
SQLite says "disk I/O error" or "database or disk is full", DuckDB raises its ``IOException``
or fails its commit). ``PRAGMA max_page_count`` gives SQLite's own SQLITE_FULL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _engines import ENGINE_PARAMS
from _server_helpers import NOW, Api, disk_full, error_of

from keen.server import LocalKeenServer

COUNT = {"event_collection": "c", "timeframe": "this_10_years"}
DATASET = {"display_name": "Daily", "index_by": "u",
           "query": {"analysis_type": "count", "event_collection": "c",
                     "timeframe": "this_30_days", "interval": "daily"}}


@pytest.fixture(name="api", params=ENGINE_PARAMS)
def file_api_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A server of each engine over a file database, with events, a saved query and a key."""
    with LocalKeenServer(clock=lambda: NOW, engine=str(request.param),
                         db=str(tmp_path / "keen.db")) as server:
        api = Api(server)
        api.write("c", *({"n": i, "u": f"user-{i % 7}", "o": {"a": i, "b": "x" * 40}}
                         for i in range(300)))
        assert api.put("/queries/saved/kept", server.master_key,
                       body={"query": {**COUNT, "analysis_type": "count"}}).status_code == 201
        api.create_key(name="old", permitted=["queries"])
        yield api
        api.session.close()


def _state(api: Api) -> dict[str, Any]:
    """What a client can see of the store: the answer every refused write must leave as it
    was."""
    master = api.server.master_key
    read = api.server.read_key

    def count(*filters: dict[str, Any]) -> Any:
        answer = api.post("/queries/count", read, body={**COUNT, "filters": list(filters)})
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    def exists(name: str) -> dict[str, Any]:
        return {"property_name": name, "operator": "exists", "property_value": True}

    keys = api.get("/keys", master)
    saved = api.get("/queries/saved", master)
    assert keys.status_code == saved.status_code == 200
    return {
        "events": count(),
        "with o": count(exists("o.a")),
        "with new": count(exists("new")),
        "n < 100": count({"property_name": "n", "operator": "lt", "property_value": 100}),
        "schema": api.get("/events/c", master).json().get("properties"),
        "saved": sorted(q["query_name"] for q in saved.json()),
        "keys": sorted(k["name"] for k in keys.json()),
        "dataset": api.get("/datasets/daily", master).status_code,
    }


def test_writes_on_a_full_disk_are_507_and_keep_nothing(api: Api) -> None:
    master, write = api.server.master_key, api.server.write_key
    before = _state(api)
    with disk_full():
        refused = {
            "one event": api.post("/events/c", write, body={"new": 1, "n": -1}),
            "batch": api.post("/events", write, body={"c": [
                {"new": i, "n": 1_000 + i, "s": "y" * 60} for i in range(2_000)]}),
            "delete property": api.delete("/events/c/properties/o", master),
            "delete events": api.delete("/events/c", master, params={"filters": json.dumps([
                {"property_name": "n", "operator": "lt", "property_value": 100}])}),
            "delete all events": api.delete("/events/c", master),
            "save a query": api.put("/queries/saved/new", master, body={
                "query": {**COUNT, "analysis_type": "count"}}),
            "delete a saved query": api.delete("/queries/saved/kept", master),
            "create a key": api.post("/keys", master, body={"name": "new",
                                                             "permitted": ["writes"]}),
            "create a dataset": api.put("/datasets/daily", master, body=DATASET),
        }
    for what, answer in refused.items():
        assert error_of(answer) == (507, "InsufficientStorageError"), (what, answer.text)
        message = answer.json()["message"]
        assert "nothing of it was kept" in message, (what, message)
        assert "could not" in message, (what, message)  # names the write failure
        for key in (master, write, api.server.read_key):
            assert key not in message and key not in answer.text
    assert _state(api) == before  # nothing half-written

    # space again: the store goes on, and the same writes now pass
    api.write("c", {"new": 1, "n": -1})
    assert api.delete("/events/c/properties/o", master).status_code == 204
    assert api.put("/queries/saved/new", master, body={
        "query": {**COUNT, "analysis_type": "count"}}).status_code == 201
    after = _state(api)
    assert (after["events"], after["with o"], after["with new"]) == (301, 0, 1)
    assert after["saved"] == ["kept", "new"]
    assert api.put("/datasets/daily", master, body=DATASET).status_code == 201


def test_a_sqlite_database_at_its_page_limit_is_507_and_goes_on(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL ("database or disk is full"), at ``max_page_count``."""
    with LocalKeenServer(clock=lambda: NOW, db=str(tmp_path / "keen.db")) as server:
        api = Api(server)
        api.write("c", {"n": 0})
        writer: Any = server.storage._writer  # type: ignore[attr-defined]
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count = {pages}")
        refused = [
            api.post("/events", server.write_key, body={"c": [
                {"n": i, "s": f"{i}" + "z" * 200} for i in range(1, 2_000)]}),
            api.put("/queries/saved/big", server.master_key, body={
                "query": {**COUNT, "analysis_type": "count"},
                "metadata": {"note": "m" * 50_000}}),
        ]
        for answer in refused:
            assert error_of(answer) == (507, "InsufficientStorageError"), answer.text
            assert "database or disk is full" in answer.json()["message"]
        writer.execute("PRAGMA max_page_count = 1073741823")
        assert api.count("c") == 1
        assert api.get("/queries/saved/big", server.master_key).status_code == 404
        api.write("c", {"n": 1})
        assert api.count("c") == 2


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_a_query_whose_temporary_files_the_disk_cannot_hold_is_507(
    engine: str, tmp_path: Path,
) -> None:
    """A large group_by needs temporary files (SQLite's, or DuckDB's spill past its memory
    limit, lowered here): on a full disk the query is a 507 that says so, and the same query
    is answered once there is space."""
    with LocalKeenServer(clock=lambda: NOW, engine=engine,
                         db=str(tmp_path / "keen.db")) as server:
        api = Api(server)
        store: Any = server.storage
        store.insert_events(server.project_id, "c", [{"u": f"user-{i}-{'x' * 50}", "n": i}
                                                     for i in range(50_000)], now=NOW)
        query = {**COUNT, "target_property": "u", "group_by": "n"}
        if engine == "duckdb":
            store._con.execute("SET threads = 1")
            before = store._con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            store._con.execute("SET memory_limit = '8MB'")
        with disk_full():
            refused = api.post("/queries/count_unique", api.server.read_key, body=query)
        if engine == "duckdb":
            store._con.execute(f"SET memory_limit = '{before}'")
        assert error_of(refused) == (507, "InsufficientStorageError"), refused.text
        assert "while answering this query" in refused.json()["message"]
        answer = api.post("/queries/count_unique", api.server.read_key, body=query)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["result"]) == 50_000
