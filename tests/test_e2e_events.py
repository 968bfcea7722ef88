"""End to end: sending events, image beacons, deleting events and collection schemas.

Each test gets an empty server (clock pinned to NOW, Wednesday 2026-03-11 15:30 UTC) and runs
against a KeenClient and against the keen module facade.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from _e2e_helpers import (  # noqa: F401
    TIMEOUT,
    WEEK,
    Surface,
    fresh_fixture,
    point_module_at,
    surface_for,
    where,
)

import keen
from keen.server import LocalKeenServer


@pytest.fixture(params=["client", "module"])
def api(request: pytest.FixtureRequest, fresh: LocalKeenServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Surface]:
    """A KeenClient, or the keen module configured by its settings, for an empty server."""
    yield from surface_for(request.param, fresh, monkeypatch)


def test_add_event_then_query(api: Surface) -> None:
    assert api.add_event("sign_ups", {"username": "lloyd", "referred_by": "harry"}) is None
    api.add_event("sign_ups", {"username": "harry"})
    assert api.count("sign_ups", timeframe="today") == 2
    assert api.select_unique("sign_ups", "username", timeframe="today") == ["harry", "lloyd"]


def test_add_event_with_a_timestamp(api: Surface) -> None:
    api.add_event("sign_ups", {"username": "a"},
                  timestamp=datetime(2026, 3, 10, 9, 0, tzinfo=timezone(timedelta(hours=2))))
    api.add_event("sign_ups", {"username": "b"}, timestamp=datetime(2026, 3, 9, 23, 30))  # UTC
    api.add_event("sign_ups", {"username": "c"})  # now
    assert api.count("sign_ups", timeframe="yesterday") == 1
    assert api.count("sign_ups", timeframe="this_3_days") == 3
    events = api.extraction("sign_ups", timeframe="this_3_days")
    assert [(e["username"], e["keen"]["timestamp"]) for e in events] == [
        ("b", "2026-03-09T23:30:00.000Z"), ("a", "2026-03-10T07:00:00.000Z"),
        ("c", "2026-03-11T15:30:00.000Z")]


def test_add_event_with_python_values(api: Surface) -> None:
    ref = uuid.UUID("12345678-1234-5678-1234-567812345678")
    api.add_event("orders", {
        "paid_at": datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 3, 1), "amount": Decimal("12.50"), "units": Decimal("3"),
        "ref": ref, "tags": {"b", "a"}, "pair": (1, 2)})
    [event] = api.extraction("orders", timeframe="today")
    assert event["paid_at"] == "2026-03-01T10:00:00+00:00"
    assert event["day"] == "2026-03-01"
    assert event["amount"] == 12.5
    assert event["units"] == 3
    assert event["ref"] == "12345678-1234-5678-1234-567812345678"
    assert event["tags"] == ["a", "b"]
    assert event["pair"] == [1, 2]
    assert api.sum("orders", "amount", timeframe="today") == 12.5


def test_add_events_reports_refused_events_as_data(api: Surface) -> None:
    answer = api.add_events({
        "sign_ups": [{"username": "nameuser1"}, {"username": "nameuser2", "an.invalid.name": 1}],
        "purchases": [{"price": 5}, {"price": 6}],
    })
    assert answer["purchases"] == [{"success": True}, {"success": True}]
    assert answer["sign_ups"][0] == {"success": True}
    refused = answer["sign_ups"][1]
    assert refused["success"] is False
    assert refused["error"]["name"] == "InvalidPropertyNameError"
    assert "an.invalid.name" in refused["error"]["description"]
    assert api.count("sign_ups", timeframe="today") == 1
    assert api.sum("purchases", "price", timeframe="today") == 11


def test_image_beacon_records_the_event_when_fetched(api: Surface) -> None:
    url = api.generate_image_beacon("views", {"page": "/a b?c=d&e", "n": 1},
                                    timestamp=datetime(2026, 3, 10, 12, tzinfo=timezone.utc))
    assert api.count("views", timeframe=WEEK) == 0  # nothing sent yet
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF8")
    [event] = api.extraction("views", timeframe=WEEK)
    assert event["page"] == "/a b?c=d&e"
    assert event["keen"]["timestamp"] == "2026-03-10T12:00:00.000Z"


def test_delete_events(api: Surface) -> None:
    api.add_events({"sign_ups": [
        {"username": "Bob", "keen": {"timestamp": "2026-03-11T01:00:00Z"}},
        {"username": "Bob", "keen": {"timestamp": "2026-03-01T01:00:00Z"}},
        {"username": "Ann", "keen": {"timestamp": "2026-03-11T02:00:00Z"}}]})
    assert api.delete_events("sign_ups", timeframe="today",
                             filters=[where("username", "eq", "Bob")]) is True
    assert api.select_unique("sign_ups", "username", timeframe="this_30_days") == ["Ann", "Bob"]
    assert api.count("sign_ups", timeframe="this_30_days") == 2
    assert api.delete_events("sign_ups", filters=[where("username", "eq", "Bob")]) is True
    assert api.extraction("sign_ups", timeframe="this_30_days", property_names=["username"]) \
        == [{"username": "Ann"}]
    assert api.delete_events("sign_ups") is True
    assert api.count("sign_ups", timeframe="this_30_days") == 0


def test_collection_schemas(api: Surface) -> None:
    api.add_event("purchases", {"price": 5, "item": {"name": "x", "tags": ["a"]}, "ok": True})
    api.add_event("sign_ups", {"username": "ada"})
    schema = api.get_collection("purchases")
    assert schema["properties"] == {
        "price": "num", "item.name": "string", "item.tags": "list", "ok": "bool",
        "keen.timestamp": "datetime", "keen.created_at": "datetime", "keen.id": "string"}
    everything = api.get_all_collections()
    assert [collection["name"] for collection in everything] == ["purchases", "sign_ups"]
    assert everything[1]["properties"]["username"] == "string"


def test_facade_takes_the_0_7_argument_name_and_follows_setting_changes(
        fresh: LocalKeenServer, monkeypatch: pytest.MonkeyPatch) -> None:
    module = next(surface_for("module", fresh, monkeypatch))
    try:
        module.add_event("sign_ups", body={"username": "ada"})
        assert keen.count("sign_ups", timeframe="today") == 1
        keen.read_key = "wrong"  # the next call uses the new setting
        with pytest.raises(keen.exceptions.AuthenticationError):
            keen.count("sign_ups", timeframe="today")
        keen.read_key = fresh.read_key
        assert keen.count("sign_ups", timeframe="today") == 1
    finally:
        keen.reset_client()


def test_uniqueness_token_and_awkward_collection_names(api: Surface) -> None:
    for n in (1, 2):
        api.add_event("a/b c?#%", {"n": n, "keen": {"uniqueness_token": "order-1"}})
    assert api.count("a/b c?#%", timeframe="today") == 1
    assert api.extraction("a/b c?#%", timeframe="today")[0]["n"] == 1
    assert api.get_collection("a/b c?#%")["name"] == "a/b c?#%"


def test_oversize_event_is_refused(api: Surface) -> None:
    with pytest.raises(keen.exceptions.PayloadTooLargeError) as refused:
        api.add_event("big", {"chunks": ["x" * 9000] * 110})
    assert refused.value.status_code == 413
    assert api.count("big", timeframe="today") == 0


def test_facade_reads_the_environment(fresh: LocalKeenServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    point_module_at(fresh, monkeypatch)
    for name in ("project_id", "write_key", "read_key", "base_url"):
        monkeypatch.setattr(keen, name, None)
    for variable, value in fresh.environment().items():
        monkeypatch.setenv(variable, value)
    try:
        keen.add_event("sign_ups", {"username": "ada"})
        assert keen.count("sign_ups", timeframe="today") == 1
    finally:
        keen.reset_client()


def test_a_lost_answer_is_retried_only_when_that_cannot_store_twice(
        fresh: LocalKeenServer) -> None:
    client = fresh.client
    tokens = [{"n": n, "keen": {"uniqueness_token": f"order-{n}"}} for n in (1, 2)]
    fresh.faults.drop_next(1, after_processing=True)  # stored, but the answer is lost
    assert client.add_events({"orders": tokens}) == {
        "orders": [{"success": True}, {"success": True}]}  # retried: safe with tokens
    assert client.count("orders", timeframe="today") == 2
    fresh.faults.drop_next(1, after_processing=True)
    with pytest.raises(keen.exceptions.KeenConnectionError) as lost:
        client.add_event("clicks", {"n": 1})  # no token: a retry could store it twice
    assert lost.value.request_sent is True
    assert client.count("clicks", timeframe="today") == 1
    fresh.faults.fail_next(2, status=503, retry_after=0)
    assert client.count("clicks", timeframe="today") == 1  # reads retry
