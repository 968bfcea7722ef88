"""``keen export``: time windows under the extraction cap, boundaries, formats, --all."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from _cli_helpers import NOW, Cli, cli_fixture, load  # noqa: F401 (a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.cli._export import ExportError, export_windows, format_ms, parse_ms
from keen.server import LocalKeenServer, engine


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    with LocalKeenServer(clock=lambda: NOW) as server:
        yield server


class FakeStore:
    """A stand-in API over event timestamps (ms): count, and an extraction capped at ``cap``,
    with the timeframe rule start <= t < end."""

    def __init__(self, stamps: list[int], cap: int) -> None:
        self.events = sorted((t, i) for i, t in enumerate(stamps))
        self.cap = cap
        self.extractions = 0

    def count(self, window: tuple[int, int]) -> int:
        return sum(1 for t, _ in self.events if window[0] <= t < window[1])

    def extract(self, window: tuple[int, int]) -> list[tuple[int, int]]:
        self.extractions += 1
        return [e for e in self.events if window[0] <= e[0] < window[1]][:self.cap]


@settings(max_examples=60, deadline=None)
@given(stamps=st.lists(st.integers(0, 64), max_size=40), server_cap=st.integers(1, 8),
       believed_cap=st.sampled_from([1, 3, 8, 100_000]))
def test_windows_return_every_event_once_whatever_the_caps(
        stamps: list[int], server_cap: int, believed_cap: int) -> None:
    store = FakeStore(stamps, server_cap)
    crowded = max(Counter(stamps).values(), default=0)
    try:
        got = list(export_windows(store.count, store.extract, (0, 65), believed_cap))
    except ExportError as exc:
        # only when one millisecond holds more events than an extraction can return
        assert crowded > server_cap and "share the millisecond" in str(exc)
        return
    assert got == store.events  # each once, in time order, none lost at a boundary
    assert crowded <= server_cap


def test_iso_parsing_rounds_boundaries_like_the_server() -> None:
    assert format_ms(parse_ms("2026-03-11T15:30:00.123Z") or 0) == "2026-03-11T15:30:00.123Z"
    assert parse_ms("2026-03-11T16:30:00.1234+01:00") == parse_ms("2026-03-11T15:30:00.124Z")
    assert parse_ms("0001-01-01T00:00:00.000Z") is not None
    assert parse_ms("this_7_days") is None


def _at(ms: int) -> str:
    return format_ms(ms)


def test_export_splits_at_exact_event_timestamps_without_loss_or_repeat(
        cli: Cli, server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any) -> None:
    start = parse_ms((NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")) or 0
    # an 8 s window is cut at +4 s, then +2 s and +6 s...: put events exactly there
    offsets = [0, 1, 1999, 2000, 2000, 3999, 4000, 4000, 4000, 4001, 6000, 7999, 8000]
    events = [{"n": i, "keen": {"timestamp": _at(start + off)}} for i, off in enumerate(offsets)]
    server.client.add_events({"clicks": events})
    monkeypatch.setattr(engine, "MAX_EXTRACTION", 3)  # the server's cap, for this test
    timeframe = f"{_at(start)}..{_at(start + 8000)}"
    for limit in ("3", "100000"):  # the cap known, or learnt from a short extraction
        out = tmp_path / f"clicks-{limit}.jsonl"
        result = cli.ok("export", "clicks", "--timeframe", timeframe, "--window-limit", limit,
                        "--output", str(out))
        exported = [json.loads(line) for line in out.read_text().splitlines()]
        assert [e["n"] for e in exported] == list(range(12))  # +8000 is outside: end exclusive
        assert len({e["keen"]["id"] for e in exported}) == 12
        assert "clicks: exported 12 events" in result.err
        assert "12/12 events" in result.err  # progress on stderr
    crowded = [{"n": 100 + i, "keen": {"timestamp": _at(start + 5000)}} for i in range(4)]
    server.client.add_events({"clicks": crowded})
    too_many = cli("export", "clicks", "--timeframe", timeframe, "--quiet")
    assert too_many.code == 1 and "more than 3 events share the millisecond" in too_many.err


def test_relative_timeframes_and_all_time_export_the_same_events(
        cli: Cli, server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch) -> None:
    events = load(server, 40)
    server.client.add_event("purchases", {"price": 1, "keen": {
        "timestamp": "1999-12-31T23:59:59.999Z"}})
    monkeypatch.setattr(engine, "MAX_EXTRACTION", 7)
    week = cli.ok("export", "purchases", "--timeframe", "this_7_days", "--quiet")
    assert sorted(json.loads(x)["order_id"] for x in week.out.splitlines()) == sorted(
        e["order_id"] for e in events)
    everything = cli.ok("export", "purchases", "--quiet", "--filter", "price lt 50")
    got = [json.loads(x) for x in everything.out.splitlines()]
    assert len(got) == 1 + sum(1 for e in events if e["price"] < 50)
    assert got[0]["keen"]["timestamp"] == "1999-12-31T23:59:59.999Z"  # oldest first


def test_csv_export_has_a_column_per_schema_property(cli: Cli, server: LocalKeenServer) -> None:
    events = load(server, 5)
    out = cli.ok("export", "purchases", "--timeframe", "this_7_days", "--format", "csv",
                 "--quiet").out
    rows = list(csv.DictReader(io.StringIO(out)))
    schema = server.client.get_collection("purchases")["properties"]
    assert set(rows[0]) == set(schema)
    assert list(rows[0])[:3] == ["keen.created_at", "keen.id", "keen.timestamp"]
    by_id = {r["order_id"]: r for r in rows}
    for event in events:
        row = by_id[event["order_id"]]
        assert row["user.geo.city"] == event["user"]["geo"]["city"]
        assert json.loads(row["tags"]) == event["tags"]
        assert row["on_sale"] == ("true" if event["on_sale"] else "false")
        assert row["coupon"] == (event["coupon"] or "")


def test_export_all_writes_a_manifest_events_and_definitions(
        cli: Cli, server: LocalKeenServer, tmp_path: Any) -> None:
    load(server, 12)
    server.client.saved_queries.create("n", {"query": {
        "analysis_type": "count", "event_collection": "purchases", "timeframe": "this_7_days"}})
    server.client.create_access_key("reader", permitted=["queries"])
    target = tmp_path / "backup"
    result = cli.ok("export", "--all", str(target), "--quiet")
    manifest = json.loads((target / "manifest.json").read_text())
    assert {c["name"]: c["events"] for c in manifest["collections"]} == {
        "purchases": 12, "sign_ups": 30}
    for entry in manifest["collections"]:
        assert len((target / entry["file"]).read_text().splitlines()) == entry["events"]
    assert [q["query_name"] for q in json.loads((target / "saved_queries.json").read_text())] == [
        "n"]
    keys = json.loads((target / "access_keys.json").read_text())
    assert keys == [{"name": "reader", "is_active": True, "permitted": ["queries"],
                     "options": keys[0]["options"]}]  # no key value in the file
    assert all(server.master_key not in p.read_text() for p in target.rglob("*.json*"))
    assert "exported 2 collection(s), 1 saved queries" in result.err
    again = cli("export", "--all", str(target))
    assert again.code == 2 and "not empty" in again.err
    for extra in (["--format", "csv"], ["--filter", "price gt 1"], ["--output", "x"]):
        refused = cli("export", "--all", os.fspath(tmp_path / "new"), *extra)
        assert refused.code == 2 and f"{extra[0]} does not apply" in refused.err
    assert not (tmp_path / "new").exists()
    no_master = cli("export", "--all", os.fspath(tmp_path / "other"),
                    env={"KEEN_MASTER_KEY": ""})
    assert no_master.code == 1 and "KEEN_MASTER_KEY" in no_master.err
