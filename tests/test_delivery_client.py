"""Background delivery as users switch it on: KeenClient(delivery=...) and the keen module."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from _delivery_helpers import assert_exactly_once, stored_events

import keen
from keen._delivery import BackgroundDelivery
from keen.server import LocalKeenServer


@pytest.fixture
def server() -> Iterator[LocalKeenServer]:
    with LocalKeenServer() as running:
        yield running


def test_leaving_the_with_block_delivers_what_is_queued(server: LocalKeenServer) -> None:
    with server.make_client(delivery=BackgroundDelivery(flush_interval=60)) as client:
        for n in range(50):
            client.add_event("visits", {"n": n})
        answer = client.add_events({"visits": [{"n": 50}, {"n": 51}]})
        assert answer == {"visits": [{"queued": True}, {"queued": True}]}
    assert_exactly_once(server, "visits", range(52))


def test_the_timestamp_argument_becomes_keen_timestamp(server: LocalKeenServer) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    with server.make_client(delivery="background") as client:
        client.add_event("visits", {"n": 1}, timestamp=when)
        assert client.flush(10)
    [event] = stored_events(server, "visits")
    assert event["keen"]["timestamp"].startswith("2024-05-01T12:30:00")


def test_the_module_setting_switches_the_default_client(server: LocalKeenServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [("project_id", server.project_id), ("write_key", server.write_key),
                        ("base_url", server.url), ("delivery", "background")]:
        monkeypatch.setattr(keen, name, value)
    keen.reset_client()
    try:
        for n in range(20):
            keen.add_event("visits", {"n": n})
        assert keen.flush(10)
        stats = keen.stats()
        assert stats["sent"] == stats["queued"] == 20
    finally:
        keen.reset_client()
    assert_exactly_once(server, "visits", range(20))
