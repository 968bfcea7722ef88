"""Smoke checks: the keen client against LocalKeenServer, end to end over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import requests

from keen import scoped_keys
from keen.client import KeenClient
from keen.exceptions import AuthenticationError, NotFoundError, ServerError
from keen.server import LocalKeenServer

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
TIMEFRAME = "this_10_years"


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    with LocalKeenServer(clock=lambda: NOW) as running:
        yield running


def test_events_and_queries(server: LocalKeenServer) -> None:
    client = server.client
    client.add_event("purchases", {"item": "a", "price": 2})
    client.add_event("purchases", {"item": "b", "price": 4},
                     timestamp=datetime(2026, 3, 1, tzinfo=timezone.utc))
    result = client.add_events({"purchases": [{"item": "b", "price": 6}]})
    assert result == {"purchases": [{"success": True}]}
    assert client.count("purchases", timeframe=TIMEFRAME) == 3
    assert client.sum("purchases", "price", timeframe=TIMEFRAME) == 12
    assert client.count("purchases", timeframe=TIMEFRAME, group_by="item") == [
        {"item": "a", "result": 1}, {"item": "b", "result": 2}]
    assert client.median("purchases", "price", timeframe=TIMEFRAME) == 4
    assert len(client.extraction("purchases", timeframe=TIMEFRAME)) == 3
    assert client.get_collection("purchases")["properties"]["price"] == "num"
    assert client.delete_events("purchases", timeframe=TIMEFRAME,
                                filters=[{"property_name": "item", "operator": "eq",
                                          "property_value": "a"}])
    assert client.count("purchases", timeframe=TIMEFRAME) == 2


def test_image_beacon_url_records_the_event(server: LocalKeenServer) -> None:
    url = server.client.generate_image_beacon("views", {"page": "/a+b?"})
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert server.client.count("views", timeframe=TIMEFRAME) == 1


def test_saved_queries_and_datasets(server: LocalKeenServer) -> None:
    client = server.client
    client.add_event("purchases", {"customer": "c1", "price": 3})
    client.saved_queries.create("total", {"refresh_rate": 0, "query": {
        "analysis_type": "count", "event_collection": "purchases", "timeframe": TIMEFRAME}})
    assert client.saved_queries.results("total")["result"] == 1
    client.saved_queries.update("total", {"refresh_rate": 14_400})
    assert client.saved_queries.get("total")["refresh_rate"] == 14_400
    client.cached_datasets.create("daily", {"analysis_type": "count",
                                            "event_collection": "purchases",
                                            "timeframe": "this_7_days", "interval": "daily"},
                                  "customer", "Daily")
    results = client.cached_datasets.results("daily", "c1", "this_1_days")
    assert results["result"][0]["value"] == 1
    assert client.saved_queries.delete("total")
    with pytest.raises(NotFoundError):
        client.saved_queries.get("total")


def test_access_and_scoped_keys(server: LocalKeenServer) -> None:
    client = server.client
    created = client.create_access_key("writer", permitted=["writes"])
    writer = KeenClient(server.project_id, write_key=created["key"], base_url=server.url)
    writer.add_event("c", {"a": 1})
    client.revoke_access_key(created["key"])
    with pytest.raises(AuthenticationError):
        writer.add_event("c", {"a": 2})
    client.add_event("c", {"a": 2})
    scoped = scoped_keys.encrypt(server.master_key, {
        "allowed_operations": ["read"],
        "filters": [{"property_name": "a", "operator": "eq", "property_value": 2}]})
    reader = KeenClient(server.project_id, read_key=scoped.decode(), base_url=server.url)
    assert reader.count("c", timeframe=TIMEFRAME) == 1


def test_client_sees_injected_faults(server: LocalKeenServer) -> None:
    server.faults.fail_next(1, 500)
    with pytest.raises(ServerError):
        server.client.count("c", timeframe=TIMEFRAME)
    assert server.client.count("c", timeframe=TIMEFRAME) == 0
