"""``keen import``: stable uniqueness tokens, the refusal report, and the export/import round
trip between two local servers (the second on a file database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _cli_helpers import NOW, Cli, cli_fixture, load  # noqa: F401 (a fixture)

from keen.cli._import import stable_token
from keen.server import LocalKeenServer, engine

TF = "this_7_days"


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    with LocalKeenServer(clock=lambda: NOW) as server:
        yield server


def write_jsonl(path: Any, events: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_tokens_depend_only_on_the_event() -> None:
    from collections import Counter

    event = {"a": 1, "keen": {"timestamp": "2026-03-01T00:00:00.000Z"}}
    first, again = Counter[str](), Counter[str]()
    assert stable_token(event, first) == stable_token(dict(event), again)
    # a second identical event in the same import gets its own token
    assert stable_token(event, first) != stable_token(event, Counter())
    assert stable_token({"keen": {"id": "abc", "created_at": "x"}}, Counter()) == stable_token(
        {"keen": {"id": "abc"}, "other": 2}, Counter())
    assert stable_token({"keen": {"uniqueness_token": "mine"}}, Counter()) == "mine"
    assert len(stable_token(event, Counter())) <= 64


def test_an_interrupted_import_run_again_stores_nothing_twice(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    events = [{"price": i % 5, "user": {"id": f"u{i % 7}"},
               "keen": {"timestamp": f"2026-03-{10 + i % 2:02d}T12:00:{i % 60:02d}.000Z"}}
              for i in range(40)]
    events.append(dict(events[0]))  # a real duplicate in the data: stored twice, as given
    half = write_jsonl(tmp_path / "half.jsonl", events[:17])
    whole = write_jsonl(tmp_path / "whole.jsonl", events)
    first = cli.ok("import", "purchases", half)
    assert "purchases: 17 read, 17 accepted, 0 refused" in first.err
    assert server.client.count("purchases", timeframe=TF) == 17
    cli.ok("import", "purchases", whole)
    cli.ok("import", "purchases", whole, "--quiet")
    assert server.client.count("purchases", timeframe=TF) == len(events)
    assert server.client.sum("purchases", "price", timeframe=TF) == sum(
        e["price"] for e in events)


def test_refused_and_unreadable_events_are_reported_with_the_reason(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"ok": 1}\n\n{"a.b": 2}\nnot json\n[1, 2]\n{"ok": 3, "keen": '
                    '{"timestamp": "yesterday-ish"}}\n{"ok": 4}\n'
                    '{"keen": {"uniqueness_token": 5}}\n{"keen": "x"}\n')
    result = cli("import", "clicks", str(path))
    assert result.code == 1
    assert "clicks: 6 read, 2 accepted, 4 refused" in result.err
    assert "InvalidPropertyNameError" in result.err
    assert "InvalidPropertyValueError" in result.err
    assert "InvalidEventError: keen.uniqueness_token must be" in result.err
    assert "InvalidEventError: The event's 'keen' property must be a dict" in result.err
    assert "line 4: not valid JSON" in result.err and "line 5: not a JSON object" in result.err
    assert server.client.count("clicks", timeframe="this_10_years") == 2
    missing = cli("import", "clicks", str(tmp_path / "nope.jsonl"))
    assert missing.code == 2 and "no such file" in missing.err
    bad_name = cli("import", "", str(path))
    assert bad_name.code == 2 and "non-empty string" in bad_name.err
    assert server.client.count("clicks", timeframe="this_10_years") == 2


def test_an_unreachable_server_ends_the_import_with_a_report(cli: Cli, tmp_path: Any) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"n": i} for i in range(3)])
    result = cli("import", "x", path, "--retries", "0", "--base-url", "http://127.0.0.1:9")
    assert result.code == 1
    assert "x: 3 read, 0 accepted, 3 refused" in result.err
    assert "Connection refused" in result.err


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("count", {"event_collection": "purchases", "group_by": ["user.plan", "item.category"]}),
    ("sum", {"event_collection": "purchases", "target_property": "price", "interval": "daily"}),
    ("median", {"event_collection": "purchases", "target_property": "price",
                "group_by": "user.geo.city"}),
    ("count_unique", {"event_collection": "purchases", "target_property": "session.id"}),
    ("select_unique", {"event_collection": "purchases", "target_property": "tags"}),
    ("count", {"event_collection": "purchases", "filters": [
        {"property_name": "coupon", "operator": "exists", "property_value": True}]}),
    ("funnel", {"steps": [{"event_collection": "sign_ups", "actor_property": "user.id"},
                          {"event_collection": "purchases", "actor_property": "user.id"}]}),
]


def answers(server: LocalKeenServer) -> list[Any]:
    client = server.client
    found = [getattr(client, analysis)(timeframe=TF, **params) for analysis, params in QUERIES]
    events = client.extraction("purchases", timeframe=TF)
    for event in events:  # assigned by each server; the import's token is documented
        del event["keen"]["id"], event["keen"]["created_at"]
        event["keen"].pop("uniqueness_token", None)
    found.append(sorted(events, key=lambda e: e["order_id"]))
    found.append(client.saved_queries.results("by-plan")["result"])
    found.append(client.cached_datasets.results("per-user", "u3", TF))
    return found


def test_export_all_then_import_into_a_file_database_gives_the_same_answers(
        cli: Cli, server: LocalKeenServer, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    load(server, 80)
    server.client.saved_queries.create("by-plan", {"query": {
        "analysis_type": "average", "event_collection": "purchases", "target_property": "price",
        "timeframe": TF, "group_by": "user.plan"}, "refresh_rate": 14400})
    server.client.cached_datasets.create("per-user", {
        "analysis_type": "count", "event_collection": "purchases", "timeframe": TF,
        "interval": "daily"}, "user.id", "Purchases per user")
    server.client.create_access_key("reader", permitted=["queries", "schema"], options={
        "queries": {"filters": [{"property_name": "user.plan", "operator": "eq",
                                 "property_value": "pro"}]}})
    monkeypatch.setattr(engine, "MAX_EXTRACTION", 25)  # several windows per collection
    backup = tmp_path / "backup"
    cli.ok("export", "--all", str(backup), "--quiet")
    with LocalKeenServer(clock=lambda: NOW, db=str(tmp_path / "copy.db")) as copy:
        result = cli.ok("import", str(backup), server=copy)
        assert "purchases: 80 read, 80 accepted, 0 refused" in result.err
        assert "sign_ups: 30 read, 30 accepted" in result.err
        assert ("definitions: 1 access keys created, 1 datasets, 1 saved queries"
                in result.err)
        assert answers(copy) == answers(server)
        again = cli.ok("import", str(backup), "--quiet", server=copy)
        assert "1 access keys already there" in again.err
        assert answers(copy) == answers(server)
        keys = copy.client.list_access_keys()
        assert [(k["name"], k["permitted"]) for k in keys] == [("reader", ["queries", "schema"])]
        assert keys[0]["options"]["queries"]["filters"][0]["property_value"] == "pro"
    # the file database keeps it all: a new server process on it answers the same
    with LocalKeenServer(clock=lambda: NOW, db=str(tmp_path / "copy.db")) as reopened:
        assert answers(reopened) == answers(server)


def test_import_refuses_a_directory_that_is_not_an_export(cli: Cli, tmp_path: Any) -> None:
    result = cli("import", str(tmp_path))
    assert result.code == 2 and "manifest.json" in result.err


def test_import_refuses_a_manifest_pointing_outside_its_directory(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"x": 1}\n')
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "manifest.json").write_text(json.dumps({
        "format": "keen-export", "version": 1,
        "collections": [{"name": "x", "file": "../secret.jsonl", "events": 1}]}))
    result = cli("import", str(backup))
    assert result.code == 2 and "outside" in result.err
    assert server.client.get_all_collections() == []


def test_lost_answers_and_failed_batches_then_a_rerun_store_each_event_once(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    events = [{"n": i, "user": {"id": f"u{i % 13}"}, "keen": {
        "timestamp": f"2026-03-10T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"}}
        for i in range(1200)]
    path = write_jsonl(tmp_path / "e.jsonl", events)
    # the server stores the first batch but the answer is lost: the batch is sent again
    server.faults.drop_next(1, after_processing=True)
    cli.ok("import", "a", path, "--quiet")
    assert server.faults.injected == 1
    assert server.client.count("a", timeframe=TF) == 1200
    # batches refused with 503 and not retried: reported, then a re-run completes the import
    server.faults.fail_next(2, status=503)
    failed = cli("import", "b", path, "--retries", "0", "--quiet")
    assert failed.code == 1 and "ServiceUnavailableError" in failed.err
    stored = server.client.count("b", timeframe=TF)
    assert 0 < stored < 1200 and f"{stored} accepted" in failed.err
    cli.ok("import", "b", path, "--quiet")
    assert server.client.count("b", timeframe=TF) == 1200
    assert server.client.count_unique("b", "n", timeframe=TF) == 1200
