"""Shared pieces of the end-to-end tests (tests/test_e2e_*.py).

Every test there drives the public client (a ``KeenClient`` or the ``keen`` module facade)
against a ``LocalKeenServer`` on loopback, with the server's clock pinned to ``NOW`` so that
relative timeframes give answers computed by hand from the small datasets below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from types import ModuleType
from typing import Any, Union

import pytest

import keen
from keen.client import KeenClient
from keen.server import LocalKeenServer

#: "now" for every server of these tests: Wednesday 2026-03-11 15:30 UTC.
NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
#: 2026-03-05 00:00 UTC .. 2026-03-12 00:00 UTC: holds PURCHASES, not OLD_PURCHASE.
WEEK = "this_7_days"
TIMEOUT = 10  # seconds, for every raw HTTP call of these tests

_SETTINGS = ("project_id", "write_key", "read_key", "master_key", "base_url", "delivery")


def _purchase(price: int, item: int, user: str, country: str, when: str) -> dict[str, Any]:
    return {"price": price, "item": {"id": item},
            "user": {"id": user, "email": f"{user}@example.com"}, "country": country,
            "keen": {"timestamp": when}}


#: Five purchases in the last three days (prices 10, 20, 30, 40, 100: sum 200, mean 40).
PURCHASES = [
    _purchase(10, 1, "u1", "NL", "2026-03-09T10:00:00Z"),
    _purchase(20, 1, "u2", "US", "2026-03-09T12:00:00Z"),
    _purchase(30, 2, "u1", "NL", "2026-03-10T08:00:00Z"),
    _purchase(40, 2, "u3", "US", "2026-03-11T09:00:00Z"),
    _purchase(100, 3, "u2", "DE", "2026-03-11T14:00:00Z"),
]
#: A purchase five weeks before NOW: only long timeframes see it.
OLD_PURCHASE = _purchase(1000, 9, "u9", "FR", "2026-02-01T00:00:00Z")
#: Four users signed up; three of them (u1, u2, u3) bought something; u1 asked for a refund.
SIGN_UPS = [{"user": {"id": u}, "keen": {"timestamp": "2026-03-08T10:00:00Z"}}
            for u in ("u1", "u2", "u3", "u4")]
REFUNDS = [{"user": {"id": "u1"}, "keen": {"timestamp": "2026-03-11T10:00:00Z"}}]


def load_dataset(client: KeenClient) -> None:
    """Store the datasets above through the batch endpoint (all must succeed)."""
    answer = client.add_events({"purchases": [*PURCHASES, OLD_PURCHASE],
                                "sign_ups": SIGN_UPS, "refunds": REFUNDS})
    assert all(item == {"success": True} for items in answer.values() for item in items)


def start_server(engine: str = "sqlite") -> LocalKeenServer:
    return LocalKeenServer(clock=lambda: NOW, engine=engine).start()


@pytest.fixture(scope="module", name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    """A server for one test module, clock pinned to NOW, empty."""
    server = start_server()
    try:
        yield server
    finally:
        server.close()


def serve_loaded(engine: str = "sqlite") -> Iterator[LocalKeenServer]:
    """A running server holding the datasets above, closed when the generator ends."""
    server = start_server(engine)
    try:
        load_dataset(server.client)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module", name="loaded")
def loaded_fixture() -> Iterator[LocalKeenServer]:
    """A server for one test module holding the datasets above (tests must not change it)."""
    yield from serve_loaded()


@pytest.fixture(name="fresh")
def fresh_fixture() -> Iterator[LocalKeenServer]:
    """An empty server for one test, clock pinned to NOW."""
    server = start_server()
    try:
        yield server
    finally:
        server.close()


Surface = Union[KeenClient, ModuleType]


def point_module_at(server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The ``keen`` module configured through its attributes to use ``server``.

    The ``KEEN_*`` environment is emptied and every setting is restored by ``monkeypatch``;
    the default client is reset now and must be reset by the caller afterwards.
    """
    for name in _SETTINGS:
        monkeypatch.delenv(f"KEEN_{name.upper()}", raising=False)
        monkeypatch.setattr(keen, name, None)
    monkeypatch.setattr(keen, "_client", None)
    keen.reset_client()
    keen.project_id = server.project_id
    keen.write_key = server.write_key
    keen.read_key = server.read_key
    keen.master_key = server.master_key
    keen.base_url = server.url
    return keen


def surface_for(kind: str, server: LocalKeenServer,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Surface]:
    """Yield the client or the configured module (for a parametrized fixture)."""
    if kind == "client":
        with server.make_client() as client:
            yield client
        return
    module = point_module_at(server, monkeypatch)
    try:
        yield module
    finally:
        keen.reset_client()


def where(prop: str, operator: str, value: Any) -> dict[str, Any]:
    """One filter."""
    return {"property_name": prop, "operator": operator, "property_value": value}


def client_with(server: LocalKeenServer, **options: Any) -> KeenClient:
    """A client for ``server`` with only the keys (and options) given."""
    return KeenClient(server.project_id, base_url=server.url, **options)
