"""Event storage of the local server: validation (keen-api.md 4.5), enrichment (4.4, 4.6),
uniqueness tokens, schema inference (4.7), deletes (6.2), documents and persistence."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401 (a fixture)

from keen.server.engine import QueryError, run_query
from keen.server.engines.base import EventStore as Storage

NOW = datetime(2024, 3, 10, 12, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture
def storage(engine: str) -> Iterator[Storage]:
    with open_store(engine) as store:
        yield store


def _extract(storage: Storage, collection: str = "c") -> list[dict[str, Any]]:
    body = run_query(storage, "p", "extraction",
                     {"event_collection": collection, "timeframe": "this_10_years"}, now=NOW)
    return list(body["result"])


def _error_name(result: dict[str, Any]) -> str:
    assert result["success"] is False
    return str(result["error"]["name"])


def test_stored_events_gain_timestamp_created_at_and_id(storage: Storage) -> None:
    assert storage.insert_events("p", "c", [{"a": 1, "keen": {"addons": []}}], now=NOW) == [
        {"success": True}
    ]
    (event,) = _extract(storage)
    assert event["a"] == 1
    assert event["keen"]["timestamp"] == event["keen"]["created_at"] == "2024-03-10T12:00:00.123Z"
    assert re.fullmatch(r"[0-9a-f]{24}", event["keen"]["id"])
    assert "addons" not in event["keen"]


def test_a_given_timestamp_is_kept_in_utc_and_created_at_is_not_overridable(
    storage: Storage,
) -> None:
    storage.insert_events("p", "c", [{"keen": {
        "timestamp": "2024-03-09T20:00:00-08:00", "created_at": "1999-01-01T00:00:00Z",
        "id": "mine",
    }}], now=NOW)
    (event,) = _extract(storage)
    assert event["keen"]["timestamp"] == "2024-03-10T04:00:00.000Z"
    assert event["keen"]["created_at"] == "2024-03-10T12:00:00.123Z"
    assert event["keen"]["id"] != "mine"


@pytest.mark.parametrize(
    ("collection", "reason"),
    [("", "empty"), ("_private", "_"), (".dot", "."), ("dot.", "."), ("a$b", "$"),
     ("x" * 65, "64"), ("café", "ASCII"), ("   ", "empty")],
)
def test_bad_collection_names_fail_every_item(
    storage: Storage, collection: str, reason: str
) -> None:
    results = storage.insert_events("p", collection, [{"a": 1}, {"a": 2}], now=NOW)
    assert [_error_name(r) for r in results] == ["InvalidCollectionNameError"] * 2
    assert reason in results[0]["error"]["description"]
    assert storage.count_events("p") == 0


def test_collection_names_with_spaces_and_periods_are_fine(storage: Storage) -> None:
    assert storage.insert_events("p", "User posts.new", [{}], now=NOW) == [{"success": True}]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ({"a.b": 1}, "InvalidPropertyNameError"),
        ({"$a": 1}, "InvalidPropertyNameError"),
        ({"": 1}, "InvalidPropertyNameError"),
        ({"x" * 256: 1}, "InvalidPropertyNameError"),
        ({"n": {"in.ner": 1}}, "InvalidPropertyNameError"),
        ({"s": "x" * 10_000}, "InvalidPropertyValueError"),
        ({"l": ["ok", "x" * 10_000]}, "InvalidPropertyValueError"),
        ({"big": 2**63}, "InvalidPropertyValueError"),
        ({"keen": {"timestamp": "yesterday"}}, "InvalidPropertyValueError"),
        ({"keen": {"timestamp": 12}}, "InvalidPropertyValueError"),
        ({"keen": {"timestamp": "0001-01-01T00:00:00+01:00"}}, "InvalidPropertyValueError"),
        ({"keen": {"timestamp": "9999-12-31T23:59:59-01:00"}}, "InvalidPropertyValueError"),
        ({"keen": {"uniqueness_token": "t" * 65}}, "InvalidPropertyValueError"),
        ({"keen": "no"}, "NamespaceTypeError"),
        ([1, 2], "InvalidEventError"),
    ],
)
def test_bad_events_are_refused_item_by_item(
    storage: Storage, event: Any, name: str
) -> None:
    results = storage.insert_events("p", "c", [{"ok": 1}, event, {"ok": 2}], now=NOW)
    assert results[0] == results[2] == {"success": True}
    assert _error_name(results[1]) == name
    assert storage.count_events("p", "c") == 2


def test_limits_are_inclusive_where_the_rules_say_so(storage: Storage) -> None:
    event = {"s": "x" * 9_999, "x" * 255: 1, "n": -(2**63), "l": [[1, [2]], {"o": 1}]}
    assert storage.insert_events("p", "c", [event], now=NOW) == [{"success": True}]


def test_autofill_is_deep_merged_and_wins(storage: Storage) -> None:
    sent = {"user": {"id": 1, "plan": "free"}, "a": 1}
    storage.insert_events("p", "c", [sent], now=NOW,
                          autofill={"user": {"plan": "pro", "org": 7}, "source": "key"})
    (event,) = _extract(storage)
    assert event["user"] == {"id": 1, "plan": "pro", "org": 7}
    assert event["source"] == "key"
    assert sent == {"user": {"id": 1, "plan": "free"}, "a": 1}  # the caller's dict is untouched


def test_a_repeated_uniqueness_token_is_stored_once_and_reported_as_success(
    storage: Storage,
) -> None:
    def send(value: int) -> list[dict[str, Any]]:
        return storage.insert_events(
            "p", "c", [{"v": value, "keen": {"uniqueness_token": "tok-1"}}], now=NOW
        )

    assert send(1) == [{"success": True}]
    assert send(2) == [{"success": True}]
    batch = [{"keen": {"uniqueness_token": "tok-2"}}, {"keen": {"uniqueness_token": "tok-2"}}]
    assert storage.insert_events("p", "c", batch, now=NOW) == [{"success": True}] * 2
    assert [e.get("v") for e in _extract(storage)] == [1, None]
    # tokens are per collection and per project
    storage.insert_events("p", "other", [{"keen": {"uniqueness_token": "tok-1"}}], now=NOW)
    storage.insert_events("q", "c", [{"keen": {"uniqueness_token": "tok-1"}}], now=NOW)
    assert storage.count_events("p", "other") == storage.count_events("q", "c") == 1


def test_schema_is_inferred_with_dotted_paths_and_types(storage: Storage) -> None:
    storage.insert_events("p", "purchases", [
        {"item": {"id": 1, "on_sale": True, "tags": ["a"]}, "note": None, "later": None},
        {"screen": {"name": "home"}, "later": 3.5},
    ], now=NOW)
    (collection,) = storage.collections("p")
    assert collection == storage.collection("p", "purchases")
    assert collection["name"] == "purchases"
    assert collection["url"] == "/3.0/projects/p/events/purchases"
    assert collection["properties"] == {
        "item.id": "num", "item.on_sale": "bool", "item.tags": "list", "note": "null",
        "later": "num", "screen.name": "string", "keen.timestamp": "datetime",
        "keen.created_at": "datetime", "keen.id": "string",
    }
    assert storage.collection("p", "nothing") is None


def test_delete_events_by_filter_and_timeframe(storage: Storage) -> None:
    events = [{"u": "bob", "keen": {"timestamp": f"2024-03-0{d}T00:00:00Z"}} for d in (1, 2, 3)]
    events.append({"u": "ann", "keen": {"timestamp": "2024-03-02T00:00:00Z"}})
    storage.insert_events("p", "c", events, now=NOW)
    deleted = storage.delete_events(
        "p", "c", filters=[{"property_name": "u", "operator": "eq", "property_value": "bob"}],
        timeframe={"start": "2024-03-02T00:00:00Z", "end": "2024-03-03T00:00:00Z"},
        timezone=None, now=NOW,
    )
    assert deleted == 1
    assert sorted(e["keen"]["timestamp"][:10] + e["u"] for e in _extract(storage)) == [
        "2024-03-01bob", "2024-03-02ann", "2024-03-03bob"
    ]
    assert storage.collection("p", "c") is not None
    assert storage.delete_events("p", "c", now=NOW) == 3
    assert storage.collection("p", "c") is None  # deleting everything forgets the collection


def test_delete_events_refuses_bad_timeframes(storage: Storage) -> None:
    with pytest.raises(QueryError) as info:
        storage.delete_events("p", "c", timeframe="last_week", now=NOW)
    assert info.value.error_code == "TimeframeDefinitionError"


def test_documents_round_trip_and_are_listed_by_name(storage: Storage) -> None:
    storage.put_doc("p", "saved_query", "b", {"n": 2})
    storage.put_doc("p", "saved_query", "a", {"n": 1})
    storage.put_doc("p", "dataset", "a", {"n": 3})
    storage.put_doc("p", "saved_query", "a", {"n": 4})
    assert storage.list_docs("p", "saved_query") == [{"n": 4}, {"n": 2}]
    assert storage.get_doc("p", "dataset", "a") == {"n": 3}
    assert storage.get_doc("q", "dataset", "a") is None
    assert storage.delete_doc("p", "dataset", "a") is True
    assert storage.delete_doc("p", "dataset", "a") is False


def test_a_file_database_keeps_everything_across_reopen(engine: str, tmp_path: Path) -> None:
    path = str(tmp_path / "keen.db")
    with open_store(engine, path) as store:
        store.insert_events("p", "c", [{"a": 1, "keen": {"uniqueness_token": "t"}}], now=NOW)
        store.put_doc("p", "access_key", "k", {"name": "k"})
    with open_store(engine, path) as store:
        assert store.insert_events("p", "c", [{"keen": {"uniqueness_token": "t"}}, {"b": 2}],
                                   now=NOW) == [{"success": True}] * 2
        assert store.count_events("p", "c") == 2
        assert store.get_doc("p", "access_key", "k") == {"name": "k"}
        assert store.collection("p", "c") is not None
        if engine == "sqlite":
            with store.reading() as conn:  # type: ignore[attr-defined]
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("in_memory", [True, False])
def test_concurrent_writers_and_readers_lose_nothing(
    engine: str, tmp_path: Path, in_memory: bool
) -> None:
    path = None if in_memory else str(tmp_path / "threads.db")
    errors: list[BaseException] = []
    with open_store(engine, path) as store:
        def write(worker: int) -> None:
            try:
                for i in range(20):
                    store.insert_events("p", "c", [{"w": worker, "i": i}] * 5, now=NOW)
                    run_query(store, "p", "count",
                              {"event_collection": "c", "timeframe": "today"}, now=NOW)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors
        assert store.count_events("p", "c") == 4 * 20 * 5


def test_a_query_in_progress_does_not_hold_up_writes_on_a_file_database(
    engine: str, tmp_path: Path
) -> None:
    """Readers see a snapshot and never block the writer: a write made while a query's events
    are half read completes at once, and the query still sees the events as it began."""
    from keen.server._engine_sql import Scope

    with open_store(engine, str(tmp_path / "k.db")) as store:
        store.insert_events("p", "c", [{"i": i} for i in range(10)], now=NOW)
        everything = Scope("p", "c", -(2**63), 2**63 - 1)
        with store.event_bodies(everything, newest_first=False, limit=None) as bodies:
            assert next(bodies)  # the read has begun
            writer = threading.Thread(
                target=store.insert_events, args=("p", "c", [{"i": 10}]), kwargs={"now": NOW})
            writer.start()
            writer.join(timeout=10)
            assert not writer.is_alive()
            assert len(list(bodies)) == 9
        assert store.count_events("p", "c") == 11


def test_a_closed_storage_refuses_work(engine: str) -> None:
    store = open_store(engine)
    store.close()
    store.close()
    with pytest.raises(RuntimeError):
        store.count_events("p")


def test_delete_property_removes_it_from_events_and_schema(storage: Storage) -> None:
    storage.insert_events("p", "c", [
        {"user": {"id": 1, "email": "a@b"}, 'odd "name"': 1},
        {"user": {"id": 2}, 'odd "name"': 2},
        {"other": True},
    ], now=NOW)
    assert storage.delete_property("p", "c", "user.email") == 1
    assert storage.delete_property("p", "c", 'odd "name"') == 2
    assert storage.delete_property("p", "c", "absent") == 0
    users = [e.get("user") for e in _extract(storage)]
    assert users == [{"id": 1}, {"id": 2}, None]
    assert all('odd "name"' not in e for e in _extract(storage))
    properties = storage.collection("p", "c")["properties"]
    assert "user.email" not in properties and 'odd "name"' not in properties
    assert properties["user.id"] == "num"
    assert storage.delete_property("p", "c", "user") == 2
    assert not any(path.startswith("user") for path in storage.collection("p", "c")["properties"])
    with pytest.raises(QueryError) as info:
        storage.delete_property("p", "c", "keen.timestamp")
    assert info.value.status == 403

