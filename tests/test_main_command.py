"""The README's main command, ``python -m keen``, runs the tour against the embedded server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keen
from keen.__main__ import main
from keen.server import LocalKeenServer


def _command(*args: str, **keen_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    env.update(keen_env)
    return subprocess.run([sys.executable, "-m", "keen", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _run_tour(*args: str, **keen_env: str) -> dict[str, str]:
    done = _command(*args, **keen_env)
    assert done.returncode == 0, done.stderr
    where = keen_env.get("KEEN_BASE_URL") or "the embedded Keen server at http://127.0.0.1:"
    assert f"talking to {where}" in done.stdout
    answers = {}
    for line in done.stdout.splitlines()[1:-1]:
        label, _, value = line.partition("  ")
        answers[label.strip()] = value.strip()
    return answers


def test_main_command_sends_events_and_prints_every_answer() -> None:
    answers = _run_tour()
    assert answers["add_events({...})"] == (
        '{"purchases": [{"success": true}, {"success": true}, {"success": true}], '
        '"sign_ups": [{"success": true}, {"success": true}]}'
    )
    assert answers["add_event with keen.timestamp, read back"] == '["2012-07-06T02:09:10.141Z"]'
    expected = {
        "count('purchases')": "3",
        "sum('purchases', 'price')": "31",
        "minimum('purchases', 'price')": "5",
        "maximum('purchases', 'price')": "20",
        "median('purchases', 'price')": "6",
        "percentile('purchases', 'price', 90)": "20",
        "count_unique('purchases', 'user.id')": "2",
        "select_unique('purchases', 'user.email')": '["lloyd@example.com", "one@example.com"]',
        "sum('purchases', 'price', group_by='item.id')": (
            '[{"item.id": 7, "result": 20}, {"item.id": 123, "result": 11}]'
        ),
        "count('purchases', group_by, order_by, limit=5)": (
            '[{"item.id": 123, "result": 2}, {"item.id": 7, "result": 1}]'
        ),
        "funnel([sign_ups, purchases])": "[3, 2]",
        "funnel(..., all_keys=True) keys": '["result", "steps"]',
        "saved_queries.results('cheap-purchases')": "2",
        "count('purchases') with a scoped key for u1": "2",
        "delete_events('backfill')": "true",
    }
    for label, value in expected.items():
        assert answers[label] == value, label
    assert float(answers["average('purchases', 'price')"]) == 31 / 3
    properties = answers["get_collection('purchases') properties"]
    assert '"item.id"' in properties and '"keen.timestamp"' in properties
    assert float(answers["standard_deviation('purchases', 'price')"]) > 0


def test_against_a_configured_server_the_tour_deletes_only_what_it_created() -> None:
    july_2012 = {"start": "2012-07-06T00:00:00Z", "end": "2012-07-07T00:00:00Z"}
    with LocalKeenServer() as server:
        client = server.client
        client.add_event("backfill", {"keen": {"timestamp": "2012-07-06T05:00:00Z"}, "mine": 1})
        mine = {"refresh_rate": 0, "query": {"analysis_type": "count",
                                             "event_collection": "purchases",
                                             "timeframe": "this_1_days"}}
        client.saved_queries.create("cheap-purchases", mine)
        client.add_event("purchases", {"price": 1000, "mine": 2})
        answers = _run_tour("--write", **server.environment())
        assert answers["add_event with keen.timestamp, read back"] == (
            '["2012-07-06T02:09:10.141Z"]')
        assert answers["count('purchases')"] == "3"  # its own events only, not the user's
        assert answers["sum('purchases', 'price')"] == "31"
        assert [e["mine"] for e in client.extraction("backfill", timeframe=july_2012)] == [1]
        assert [q["query_name"] for q in client.saved_queries.all()] == ["cheap-purchases"]
        # issue 8: what it wrote, it cleaned up (a second run used to go from 3 to 9)
        assert server.storage.count_events(server.project_id, "sign_ups") == 0
        assert server.storage.count_events(server.project_id, "purchases") == 1


def test_against_a_configured_server_it_writes_nothing_without_write() -> None:
    with LocalKeenServer() as server:
        server.client.add_event("purchases", {"price": 1})
        done = _command(**server.environment())
        assert done.returncode == 0, done.stderr
        assert '["purchases"]' in done.stdout and "--write" in done.stdout
        for collection in ("sign_ups", "purchases", "backfill"):
            expected = 1 if collection == "purchases" else 0
            assert server.storage.count_events(server.project_id, collection) == expected
        assert server.client.saved_queries.all() == []


def test_write_against_a_configured_server_needs_the_master_key() -> None:
    with LocalKeenServer() as server:
        environment = server.environment()
        del environment["KEEN_MASTER_KEY"]
        done = _command("--write", **environment)
        assert done.returncode == 2
        assert "--write needs KEEN_MASTER_KEY" in done.stderr
        assert server.storage.count_events(server.project_id, "sign_ups") == 0


def test_an_unreachable_server_is_one_line_unless_asked() -> None:
    with LocalKeenServer() as server:
        environment = server.environment()
    # the server is stopped: nothing listens on its port any more
    done = _command(**environment)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("python -m keen: cannot reach the Keen API at "
                                  + environment["KEEN_BASE_URL"])
    assert "KEEN_BASE_URL" in done.stderr
    traced = _command("--traceback", **environment)
    assert traced.returncode == 1 and "Traceback (most recent call last)" in traced.stderr


def test_a_wrong_key_is_one_line() -> None:
    with LocalKeenServer() as server:
        environment = {**server.environment(), "KEEN_READ_KEY": "wrong"}
        done = _command(**environment)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "refused the key (401" in done.stderr and "wrong" not in done.stderr


def test_help_describes_the_command_and_version_names_it() -> None:
    shown = _command("--help")
    assert shown.returncode == 0
    for words in ("--write", "--traceback", "--version", "KEEN_BASE_URL", "local server"):
        assert words in shown.stdout
    version = _command("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"keen {keen.__version__}"


def test_in_process_run_restores_the_module_settings(capsys: object) -> None:
    before = (keen.project_id, keen.write_key, keen.base_url)
    assert main([]) == 0
    assert (keen.project_id, keen.write_key, keen.base_url) == before
    assert keen._client is None


def test_with_a_subcommand_it_is_the_keen_command() -> None:
    with LocalKeenServer() as server:
        server.client.add_events({"purchases": [{"price": 5}, {"price": 7}]})
        done = _command("sum", "purchases", "--target-property", "price",
                        "--timeframe", "this_1_days", "--json", **server.environment())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": 12}
