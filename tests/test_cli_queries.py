"""``keen <analysis>``: every analysis, the three output formats, filters, and errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from _cli_helpers import NOW, Cli, cli_fixture, load, no_key_in  # noqa: F401 (a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.cli import build_parser, main
from keen.cli._args import parse_filter
from keen.server import LocalKeenServer

TF = "this_7_days"


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[LocalKeenServer, list[dict[str, Any]]]]:
    with LocalKeenServer(clock=lambda: NOW) as server:
        yield server, load(server)


@pytest.fixture(name="server")
def server_fixture(loaded: tuple[LocalKeenServer, list[dict[str, Any]]]) -> LocalKeenServer:
    return loaded[0]


@pytest.fixture(name="events")
def events_fixture(loaded: tuple[LocalKeenServer, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return loaded[1]


def table_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert set(lines[1]) <= {"-", " "}, out  # the rule under the header
    return [line.split() for line in [lines[0], *lines[2:]]]


def test_the_issue_example_count_by_group_and_day_with_a_filter(
        cli: Cli, events: list[dict[str, Any]]) -> None:
    result = cli.ok("count", "purchases", "--timeframe", TF, "--group-by", "item.id",
                    "--interval", "daily", "--filter", "price gte 10")
    rows = table_rows(result.out)
    header, body = rows[0], rows[1:]
    assert header[:2] == ["start", "end"]
    # one row per day of the timeframe, one column per group
    assert len(body) == 7
    assert header[2:] == [f"item.id={i}" for i in range(9)]
    # every cell is the brute-force count of that day and item
    truth = Counter((e["keen"]["timestamp"][:10], e["item"]["id"]) for e in events
                    if e["price"] >= 10)
    for row in body:
        day = row[0][:10]
        assert [int(v) for v in row[2:]] == [truth[(day, i)] for i in range(9)]
    assert sum(int(v) for row in body for v in row[2:]) == sum(truth.values())


@pytest.mark.parametrize("analysis", ["sum", "average", "median", "minimum", "maximum",
                                      "count_unique", "select_unique", "standard_deviation"])
def test_every_target_analysis_prints_the_api_answer_with_json(
        cli: Cli, server: LocalKeenServer, analysis: str) -> None:
    result = cli.ok(analysis, "purchases", "--target-property", "price", "--timeframe", TF,
                    "--group-by", "user.plan", "--json")
    expected = getattr(server.client, analysis)("purchases", "price", timeframe=TF,
                                                group_by="user.plan", all_keys=True)
    assert json.loads(result.out) == expected
    # and the table has one row per group with the same numbers
    rows = table_rows(cli.ok(analysis, "purchases", "--target-property", "price",
                             "--timeframe", TF, "--group-by", "user.plan").out)
    assert rows[0] == ["user.plan", "result"]
    assert [r[0] for r in rows[1:]] == [g["user.plan"] for g in expected["result"]]


def test_percentile_needs_its_flag_and_matches_nearest_rank(
        cli: Cli, events: list[dict[str, Any]]) -> None:
    missing = cli("percentile", "purchases", "--target-property", "price", "--timeframe", TF)
    assert missing.code == 2 and "--percentile" in missing.err
    result = cli.ok("percentile", "purchases", "--target-property", "price",
                    "--percentile", "90", "--timeframe", TF)
    prices = sorted(e["price"] for e in events)
    assert table_rows(result.out) == [["result"], [repr(prices[int(0.9 * len(prices)) - 1])]]


def test_csv_of_intervals_and_groups_fills_absent_groups_with_the_empty_value(
        cli: Cli) -> None:
    answer = json.loads(cli.ok("count", "purchases", "--timeframe", TF, "--interval", "daily",
                               "--group-by", "user.geo.country", "--json").out)
    rows = list(csv.reader(io.StringIO(cli.ok(
        "count", "purchases", "--timeframe", TF, "--interval", "daily",
        "--group-by", "user.geo.country", "--csv").out)))
    assert rows[0] == ["start", "end", "user.geo.country=FR", "user.geo.country=US"]
    assert len(rows) == 1 + len(answer["result"])
    for row, bucket in zip(rows[1:], answer["result"]):
        assert row[:2] == [bucket["timeframe"]["start"], bucket["timeframe"]["end"]]
        counts = {g["user.geo.country"]: g["result"] for g in bucket["value"]}
        assert row[2:] == [str(counts.get("FR", 0)), str(counts.get("US", 0))]


def test_filters_compact_and_json_forms_mean_the_same(cli: Cli, server: LocalKeenServer,
                                                      events: list[dict[str, Any]]) -> None:
    compact = cli.ok("count", "purchases", "--timeframe", TF, "--json",
                     "--filter", "user.geo.city eq Tucson", "--filter", "quantity in [1, 2]",
                     "--filter", "coupon eq null")
    as_json = cli.ok("count", "purchases", "--timeframe", TF, "--json", "--filter", json.dumps([
        {"property_name": "user.geo.city", "operator": "eq", "property_value": "Tucson"},
        {"property_name": "quantity", "operator": "in", "property_value": [1, 2]},
        {"property_name": "coupon", "operator": "eq", "property_value": None}]))
    truth = sum(1 for e in events if e["user"]["geo"]["city"] == "Tucson"
                and e["quantity"] in (1, 2) and e["coupon"] is None)
    assert truth > 0
    assert json.loads(compact.out) == json.loads(as_json.out) == {"result": truth}
    # a value that is JSON text in quotes stays a string; text with spaces is one value
    spaced = cli.ok("count", "purchases", "--timeframe", TF, "--filter", "item.name eq item 3",
                    "--json")
    assert json.loads(spaced.out)["result"] == sum(1 for e in events if e["item"]["id"] == 3)
    quoted = cli.ok("count", "purchases", "--timeframe", TF, "--filter", 'order_id eq "o-000003"',
                    "--json")
    assert json.loads(quoted.out)["result"] == 1


def test_order_by_and_limit_keep_the_top_groups(cli: Cli, events: list[dict[str, Any]]) -> None:
    rows = table_rows(cli.ok("sum", "purchases", "--target-property", "quantity",
                             "--timeframe", TF, "--group-by", "user.id",
                             "--order-by", "result:desc", "--limit", "3").out)
    totals = Counter()
    for e in events:
        totals[e["user"]["id"]] += e["quantity"]
    assert [int(r[1]) for r in rows[1:]] == sorted(totals.values(), reverse=True)[:3]


def test_funnel_steps_from_a_file_and_multi_analysis_from_json(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    steps = [{"event_collection": "sign_ups", "actor_property": "user.id"},
             {"event_collection": "purchases", "actor_property": "user.id",
              "filters": [{"property_name": "user.plan", "operator": "eq",
                           "property_value": "pro"}]}]
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(steps))
    rows = table_rows(cli.ok("funnel", "--timeframe", TF, "--steps", str(path)).out)
    expected = server.client.funnel(steps, timeframe=TF)
    assert [int(r[3]) for r in rows[1:]] == expected
    assert rows[1][:3] == ["1", "sign_ups", "user.id"] and rows[1][4] == "100.0%"
    analyses = {"revenue": {"analysis_type": "sum", "target_property": "price"},
                "orders": {"analysis_type": "count"}}
    result = cli.ok("multi-analysis", "purchases", "--timeframe", TF, "--analyses",
                    json.dumps(analyses), "--group-by", "item.category", "--csv")
    got = list(csv.DictReader(io.StringIO(result.out)))
    want = server.client.multi_analysis("purchases", analyses, timeframe=TF,
                                        group_by="item.category")
    assert [{k: str(v) for k, v in g.items()} for g in want] == got


def test_extraction_table_has_a_column_per_dotted_property(cli: Cli,
                                                          events: list[dict[str, Any]]) -> None:
    result = cli.ok("extraction", "purchases", "--timeframe", TF, "--latest", "2",
                    "--property-name", "order_id", "--property-name", "user.geo.city", "--csv")
    rows = list(csv.DictReader(io.StringIO(result.out)))
    newest = sorted(events, key=lambda e: e["keen"]["timestamp"])[-2:]
    assert rows == [{"order_id": e["order_id"], "user.geo.city": e["user"]["geo"]["city"]}
                    for e in newest]


def test_bad_input_is_one_line_and_exit_2_before_any_request(cli: Cli) -> None:
    closed = {"KEEN_BASE_URL": "http://127.0.0.1:9"}  # a request would fail differently
    for argv, needle in [
            (["count", "purchases", "--timeframe", TF, "--filter", "price gte"], "--filter"),
            (["count", "purchases", "--timeframe", TF, "--filter", "price about 3"],
             "unknown operator 'about'"),
            (["count", "purchases", "--timeframe", TF, "--filter", "{bad json"], "not valid JSON"),
            (["funnel", "--timeframe", TF, "--steps", "missing.json"], "neither JSON nor"),
            (["count", "purchases", "--timeframe", TF, "--limit", "3"], "limit needs order_by"),
            (["count", "purchases"], "--timeframe")]:
        result = cli(*argv, env=closed)
        assert result.code == 2, (argv, result)
        assert needle in result.err, (argv, result.err)
        assert result.out == ""
        assert result.err.count("\n") == 1


def test_missing_key_unreachable_server_and_api_errors_are_one_line(
        cli: Cli, server: LocalKeenServer) -> None:
    no_read = cli("count", "purchases", "--timeframe", TF, env={"KEEN_READ_KEY": ""})
    assert no_read.code == 1
    assert no_read.err.count("\n") == 1 and "KEEN_READ_KEY" in no_read.err
    assert "master key is set" in no_read.err  # the weakest key, not the master key
    down = cli("count", "purchases", "--timeframe", TF, "--retries", "0",
               "--base-url", "http://127.0.0.1:9")
    assert down.code == 1 and down.err.count("\n") == 1
    assert "could not reach http://127.0.0.1:9" in down.err
    refused = cli("count", "purchases", "--timeframe", "this_7_fortnights")
    assert refused.code == 1 and refused.err.count("\n") == 1
    assert "TimeframeDefinitionError" in refused.err
    wrong_key = cli("count", "purchases", "--timeframe", TF, "--read-key", "0" * 64)
    assert wrong_key.code == 1 and "HTTP 401" in wrong_key.err
    for result in (no_read, down, refused, wrong_key):
        assert no_key_in(server, result.out, result.err)
    traced = cli("count", "purchases", "--timeframe", "this_7_fortnights", "--traceback")
    assert "Traceback (most recent call last)" in traced.err
    assert traced.err.rstrip().splitlines()[-1].startswith("keen: error:")
    assert no_key_in(server, traced.err)


def test_flags_override_the_environment(cli: Cli, server: LocalKeenServer) -> None:
    bad_env = {"KEEN_PROJECT_ID": "0" * 24, "KEEN_READ_KEY": "nope"}
    assert cli("count", "purchases", "--timeframe", TF, env=bad_env).code == 1
    result = cli.ok("count", "purchases", "--timeframe", TF, "--project", server.project_id,
                    "--read-key", str(server.read_key), env=bad_env)
    assert table_rows(result.out)[1] == ["60"]


def test_version_and_help_of_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "keen 0.8.0"
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    seen = 0
    for name, sub in commands.items():
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        paths = [[name, action] for action in nested[0].choices] if nested else [[name]]
        for path in paths:
            assert main([*path, "--help"]) == 0
            text = capsys.readouterr().out
            assert text.startswith(f"usage: keen {sub.prog.split()[1]}"), path
            assert len(text.splitlines()) > 8, path
            seen += 1
    assert seen > 40
    assert main([]) == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)


@settings(max_examples=80, deadline=None)
@given(value=json_values, name=st.from_regex(r"[a-z_][a-z0-9_.]{0,12}", fullmatch=True),
       operator=st.sampled_from(["eq", "ne", "lt", "gte", "in", "contains"]))
def test_compact_filter_values_are_the_json_they_spell(value: Any, name: str,
                                                       operator: str) -> None:
    [parsed] = parse_filter(f"{name} {operator} {json.dumps(value)}")
    assert parsed == {"property_name": name, "operator": operator, "property_value": value}


@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1,
                    max_size=20).filter(lambda t: t.strip() == t and t[:1] not in "{["))
def test_compact_filter_text_that_is_not_json_is_kept_as_text(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        expected = text
    [parsed] = parse_filter(f"name eq {text}")
    assert parsed["property_value"] == expected


def test_the_console_script_and_python_m_keen_cli() -> None:
    found: Any = entry_points()
    group = (found.select(group="console_scripts") if hasattr(found, "select")  # 3.10+
             else found.get("console_scripts", []))
    scripts = {e.name: e.value for e in group}
    assert scripts.get("keen") == "keen.cli:main"
    done = subprocess.run([sys.executable, "-m", "keen.cli", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "keen 0.8.0"


def test_select_unique_by_interval_lists_each_bucket_values(cli: Cli,
                                                           server: LocalKeenServer) -> None:
    rows = list(csv.reader(io.StringIO(cli.ok(
        "select_unique", "purchases", "--target-property", "user.plan", "--timeframe", TF,
        "--interval", "daily", "--csv").out)))
    expected = server.client.select_unique("purchases", "user.plan", timeframe=TF,
                                           interval="daily")
    assert rows[0] == ["start", "end", "result"]
    assert [json.loads(r[2]) for r in rows[1:]] == [b["value"] for b in expected]
