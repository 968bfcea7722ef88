"""``keen collections|saved-queries|datasets|access-keys|scoped-key|delete-events``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _cli_helpers import NOW, Cli, cli_fixture, load, no_key_in  # noqa: F401 (a fixture)

from keen.server import LocalKeenServer

TF = "this_7_days"


@pytest.fixture(name="loaded")
def loaded_fixture() -> Iterator[tuple[LocalKeenServer, list[dict[str, Any]]]]:
    with LocalKeenServer(clock=lambda: NOW) as server:
        yield server, load(server, 30)


@pytest.fixture(name="server")
def server_fixture(loaded: tuple[LocalKeenServer, list[dict[str, Any]]]) -> LocalKeenServer:
    return loaded[0]


@pytest.fixture(name="events")
def events_fixture(loaded: tuple[LocalKeenServer, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return loaded[1]


def how_many(events: list[dict[str, Any]], **where: str) -> int:
    """The brute-force count of events whose dotted properties have these values."""
    def value(event: dict[str, Any], path: str) -> Any:
        for part in path.split("__"):
            event = event[part]
        return event
    return sum(1 for e in events if all(value(e, k) == v for k, v in where.items()))


def lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[2:]]


def test_collections_list_and_schema(cli: Cli, server: LocalKeenServer) -> None:
    assert lines(cli.ok("collections", "list").out) == [
        [c["name"], str(len(c["properties"]))] for c in server.client.get_all_collections()]
    schema = dict(lines(cli.ok("collections", "show", "purchases").out))
    assert schema["user.geo.city"] == "string" and schema["price"] == "num"
    assert schema["tags"] == "list" and schema["keen.timestamp"] == "datetime"
    missing = cli("collections", "show", "nope")
    assert missing.code == 1 and "HTTP 404" in missing.err


def test_saved_query_lifecycle(cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    query = {"analysis_type": "sum", "event_collection": "purchases",
             "target_property": "quantity", "timeframe": TF, "group_by": "user.plan"}
    path = tmp_path / "q.json"
    path.write_text(json.dumps(query))  # the bare query is accepted too
    cli.ok("saved-queries", "create", "plan-qty", "--file", str(path))
    assert lines(cli.ok("saved-queries", "list").out) == [
        ["plan-qty", "sum", "purchases", "0"]]
    shown = json.loads(cli.ok("saved-queries", "show", "plan-qty", "--json").out)
    assert shown["query"]["target_property"] == "quantity"
    results = cli.ok("saved-queries", "results", "plan-qty")
    expected = server.client.sum("purchases", "quantity", timeframe=TF, group_by="user.plan")
    assert lines(results.out) == [[g["user.plan"], str(g["result"])] for g in expected]
    # --merge changes only what the file gives
    cli.ok("saved-queries", "update", "plan-qty", "--merge", "--file",
           '{"query": {"target_property": "price"}, "refresh_rate": 14400}')
    updated = server.client.saved_queries.get("plan-qty")
    assert updated["query"]["target_property"] == "price"
    assert updated["query"]["group_by"] == "user.plan" and updated["refresh_rate"] == 14400
    # without --merge the file is the whole definition
    cli.ok("saved-queries", "update", "plan-qty", "--file",
           json.dumps({"query": {"analysis_type": "count", "event_collection": "sign_ups",
                                 "timeframe": TF}}))
    assert cli.ok("saved-queries", "results", "plan-qty").out.split()[-1] == str(
        server.client.count("sign_ups", timeframe=TF))
    cli.ok("saved-queries", "delete", "plan-qty")
    assert server.client.saved_queries.all() == []
    assert cli("saved-queries", "delete", "plan-qty").code == 1


def test_dataset_lifecycle(cli: Cli, server: LocalKeenServer) -> None:
    definition = {"display_name": "Orders by user", "index_by": "user.id",
                  "query": {"analysis_type": "count", "event_collection": "purchases",
                            "timeframe": TF, "interval": "daily"}}
    cli.ok("datasets", "create", "orders", "--file", json.dumps(definition))
    listed = lines(cli.ok("datasets", "list").out)
    assert listed[0][:1] == ["orders"] and "purchases" in listed[0]
    assert json.loads(cli.ok("datasets", "show", "orders", "--json").out)["index_by"] == [
        "user.id"]
    results = cli.ok("datasets", "results", "orders", "--index-by", "u3", "--timeframe", TF,
                     "--json")
    expected = server.client.count("purchases", timeframe=TF, interval="daily",
                                   filters=[{"property_name": "user.id", "operator": "eq",
                                             "property_value": "u3"}])
    assert [b["value"] for b in json.loads(results.out)["result"]] == [
        b["value"] for b in expected]
    cli.ok("datasets", "delete", "orders")
    assert server.client.cached_datasets.all()["datasets"] == []
    bad = cli("datasets", "create", "x", "--file", '{"display_name": "x"}')
    assert bad.code == 2 and "index_by" in bad.err


def test_access_key_lifecycle(cli: Cli, server: LocalKeenServer,
                              events: list[dict[str, Any]]) -> None:
    created = json.loads(cli.ok("access-keys", "create", "--name", "dash",
                                "--permitted", "queries,schema", "--json").out)
    key = created["key"]
    assert created["permitted"] == ["queries", "schema"] and created["is_active"] is True
    assert lines(cli.ok("access-keys", "list").out) == [[key, "dash", "true",
                                                         '["queries","schema"]']]
    cli.ok("access-keys", "update", key, "--name", "board",
           "--options", '{"queries": {"filters": [{"property_name": "user.plan", '
                        '"operator": "eq", "property_value": "pro"}]}}')
    current = server.client.get_access_key(key)
    assert current["name"] == "board" and current["permitted"] == ["queries", "schema"]
    # the new key works, with its filter applied
    pro = cli.ok("count", "purchases", "--timeframe", TF, "--read-key", key, "--json")
    assert json.loads(pro.out)["result"] == how_many(events, user__plan="pro") > 0
    cli.ok("access-keys", "revoke", key)
    assert server.client.get_access_key(key)["is_active"] is False
    assert cli("count", "purchases", "--timeframe", TF, "--read-key", key).code == 1
    cli.ok("access-keys", "unrevoke", key)
    assert server.client.get_access_key(key)["is_active"] is True
    cli.ok("access-keys", "delete", key)
    assert server.client.list_access_keys() == []
    no_master = cli("access-keys", "list", env={"KEEN_MASTER_KEY": ""})
    assert no_master.code == 1 and "KEEN_MASTER_KEY" in no_master.err


def test_scoped_key_encrypt_then_decrypt_and_use(cli: Cli, server: LocalKeenServer,
                                                 events: list[dict[str, Any]]) -> None:
    scoped = cli.ok("scoped-key", "encrypt", "--allowed-operations", "read",
                    "--filter", "user.geo.country eq FR").out.strip()
    options = json.loads(cli.ok("scoped-key", "decrypt", scoped).out)
    assert options == {"allowed_operations": ["read"], "filters": [
        {"property_name": "user.geo.country", "operator": "eq", "property_value": "FR"}]}
    counted = cli.ok("count", "purchases", "--timeframe", TF, "--read-key", scoped, "--json")
    assert json.loads(counted.out)["result"] == how_many(events, user__geo__country="FR") > 0
    wrong = cli("scoped-key", "decrypt", scoped, "--master-key", "A" * 64)
    assert wrong.code == 1 and "cannot be decrypted" in wrong.err
    assert no_key_in(server, wrong.err)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_events_asks_refuses_without_a_terminal_and_deletes_with_yes(
        cli: Cli, server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch,
        events: list[dict[str, Any]]) -> None:
    total = len(events)
    free, pro = how_many(events, user__plan="free"), how_many(events, user__plan="pro")

    def count() -> int:
        return int(server.client.count("purchases", timeframe=TF))

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    refused = cli("delete-events", "purchases", "--filter", "user.plan eq free")
    assert refused.code == 2 and "--yes" in refused.err and count() == total
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    declined = cli("delete-events", "purchases", "--filter", "user.plan eq free")
    assert declined.code == 1
    assert f"Delete the {free} events of 'purchases'" in declined.err
    assert count() == total
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    cli.ok("delete-events", "purchases", "--filter", "user.plan eq free")
    assert count() == total - free
    cli.ok("delete-events", "purchases", "--filter", "user.plan eq pro", "--yes",
           env={"KEEN_READ_KEY": ""})
    assert count() == total - free - pro


def _examples() -> list[str]:
    """The example command lines of every subcommand's --help."""
    from keen.cli import build_parser

    found = []
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop(0)
        for action in parser._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                parsers.extend(dict.fromkeys(choices.values()))
        text = (parser.epilog or "").replace("\\\n", " ")
        found += [line.strip() for line in text.splitlines() if line.strip().startswith("keen ")]
    return list(dict.fromkeys(found))


def test_the_examples_in_the_help_run(cli: Cli, tmp_path: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    monkeypatch.chdir(tmp_path)
    cli.ok("export", "purchases", "--output", "purchases.jsonl")  # what the import example reads
    runnable = [e for e in _examples()
                if not any(s in e for s in ("KEY", "steps.json", ">", "&&"))]
    assert len(runnable) >= 10
    for example in runnable:
        argv = shlex.split(example)[1:]
        result = cli(*argv)
        assert result.code == 0, (example, result.err)
