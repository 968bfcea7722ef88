"""End to end: what a user sees when something is wrong, and long queries.

Refusals by the server arrive as ``KeenApiError`` subclasses carrying the status and the API's
``error_code``; missing keys are caught before any request is sent.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from _e2e_helpers import (  # noqa: F401
    WEEK,
    Surface,
    client_with,
    loaded_fixture,
    point_module_at,
    surface_for,
    where,
)

import keen
from keen import NO_RETRY
from keen.client import KeenClient
from keen.exceptions import (
    AuthenticationError,
    BadRequestError,
    InvalidEnvironmentError,
    InvalidQueryError,
    KeenConnectionError,
    NotFoundError,
)
from keen.server import LocalKeenServer


@pytest.fixture(params=["client", "module"])
def api(request: pytest.FixtureRequest, loaded: LocalKeenServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Surface]:
    yield from surface_for(request.param, loaded, monkeypatch)


def test_wrong_read_key(loaded: LocalKeenServer) -> None:
    wrong = "f" * 64
    with pytest.raises(AuthenticationError) as refused:
        client_with(loaded, read_key=wrong).count("purchases", timeframe=WEEK)
    assert refused.value.status_code == 401
    assert refused.value.error_code == "InvalidApiKeyError"
    assert refused.value.message
    assert wrong not in str(refused.value)


def test_wrong_write_and_master_keys(loaded: LocalKeenServer) -> None:
    with pytest.raises(AuthenticationError) as refused:
        client_with(loaded, write_key="nope").add_event("purchases", {"price": 1})
    assert refused.value.status_code == 401
    with pytest.raises(AuthenticationError):
        client_with(loaded, write_key="nope").add_events({"purchases": [{"price": 1}]})
    with pytest.raises(AuthenticationError) as refused:  # a read key is not a master key
        client_with(loaded, master_key=loaded.read_key).delete_events("purchases")
    assert refused.value.status_code == 401
    assert refused.value.error_code
    assert loaded.client.count("purchases", timeframe=WEEK) == 5  # nothing written or deleted


def test_missing_resources(loaded: LocalKeenServer) -> None:
    client = loaded.client
    for call in (lambda: client.saved_queries.get("nope"),
                 lambda: client.saved_queries.results("nope"),
                 lambda: client.saved_queries.delete("nope"),
                 lambda: client.cached_datasets.get("nope"),
                 lambda: client.get_access_key("nope")):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert missing.value.status_code == 404
        assert missing.value.error_code


def test_bad_queries(api: Surface) -> None:
    with pytest.raises(BadRequestError) as bad:
        api.count("purchases", timeframe="this_fortnight")
    assert bad.value.status_code == 400
    assert bad.value.error_code == "TimeframeDefinitionError"
    with pytest.raises(BadRequestError) as bad:
        api.count("purchases")  # a timeframe is required
    assert bad.value.error_code == "TimeframeDefinitionError"
    with pytest.raises(BadRequestError) as bad:
        api.count("purchases", timeframe=WEEK, timezone="Mars/Olympus_Mons")
    assert bad.value.status_code == 400
    with pytest.raises(BadRequestError):
        api.count("purchases", timeframe=WEEK, interval="fortnightly")
    with pytest.raises(BadRequestError):
        api.count("purchases", timeframe=WEEK, filters=[where("price", "about", 3)])
    with pytest.raises(InvalidQueryError):  # limit without order_by: refused before sending
        api.count("purchases", timeframe=WEEK, group_by="country", limit=2)


def test_long_query_goes_as_post_with_the_same_answer(loaded: LocalKeenServer) -> None:
    session = requests.Session()
    methods: list[str] = []
    session.hooks["response"].append(lambda response, *a, **k: methods.append(
        response.request.method))
    client = client_with(loaded, read_key=loaded.read_key, session=session)
    short = [where("user.id", "in", ["u1", "u3"])]
    long = [where("user.id", "in", ["u1", "u3", *(f"nobody-{n}" for n in range(3000))])]
    assert client.sum("purchases", "price", timeframe=WEEK, filters=short) == 80
    assert client.sum("purchases", "price", timeframe=WEEK, filters=long) == 80
    assert client.count("purchases", timeframe=WEEK, filters=long, group_by="user.id") == [
        {"user.id": "u1", "result": 2}, {"user.id": "u3", "result": 1}]
    assert methods == ["GET", "POST", "POST"]


MASTER_ONLY: list[tuple[str, Callable[[KeenClient], Any]]] = [
    ("delete_events", lambda c: c.delete_events("purchases")),
    ("saved_queries.all", lambda c: c.saved_queries.all()),
    ("saved_queries.create", lambda c: c.saved_queries.create("q", {"query": {}})),
    ("saved_queries.update", lambda c: c.saved_queries.update("q", {"refresh_rate": 0})),
    ("saved_queries.delete", lambda c: c.saved_queries.delete("q")),
    ("cached_datasets.create", lambda c: c.cached_datasets.create("d", {}, "x", "D")),
    ("cached_datasets.delete", lambda c: c.cached_datasets.delete("d")),
    ("create_access_key", lambda c: c.create_access_key("k")),
    ("list_access_keys", lambda c: c.list_access_keys()),
    ("update_access_key_name", lambda c: c.update_access_key_name("k", "n")),
    ("add_access_key_permissions", lambda c: c.add_access_key_permissions("k", ["writes"])),
    ("revoke_access_key", lambda c: c.revoke_access_key("k")),
    ("delete_access_key", lambda c: c.delete_access_key("k")),
]
READ_ONLY: list[tuple[str, Callable[[KeenClient], Any]]] = [
    ("count", lambda c: c.count("purchases", timeframe=WEEK)),
    ("funnel", lambda c: c.funnel([{"event_collection": "a", "actor_property": "b"}],
                                  timeframe=WEEK)),
    ("get_collection", lambda c: c.get_collection("purchases")),
    ("get_all_collections", lambda c: c.get_all_collections()),
    ("saved_queries.results", lambda c: c.saved_queries.results("q")),
    ("cached_datasets.all", lambda c: c.cached_datasets.all()),
    ("cached_datasets.results", lambda c: c.cached_datasets.results("d", "x", WEEK)),
]
WRITE_ONLY: list[tuple[str, Callable[[KeenClient], Any]]] = [
    ("add_event", lambda c: c.add_event("purchases", {"price": 1})),
    ("add_events", lambda c: c.add_events({"purchases": [{"price": 1}]})),
    ("generate_image_beacon", lambda c: c.generate_image_beacon("purchases", {"price": 1})),
]


@pytest.mark.parametrize(("name", "call", "keys"), [
    *((name, call, ("write_key", "read_key")) for name, call in MASTER_ONLY),
    *((name, call, ("write_key", "master_key")) for name, call in READ_ONLY),
    *((name, call, ("read_key", "master_key")) for name, call in WRITE_ONLY),
])
def test_missing_key_is_refused_before_any_request(
        loaded: LocalKeenServer, name: str, call: Callable[[KeenClient], Any],
        keys: tuple[str, ...]) -> None:
    # even with the other two keys (the master key included) the weakest key that works is
    # required; a queued fault would be consumed by any request that reached the server
    client = client_with(loaded, **{key: getattr(loaded, key) for key in keys})
    loaded.faults.fail_next(1, status=500)
    try:
        with pytest.raises(InvalidEnvironmentError):
            call(client)
        assert loaded.faults.pending == 1, f"{name} sent a request"
    finally:
        loaded.faults.clear()


def test_module_without_settings(loaded: LocalKeenServer,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    point_module_at(loaded, monkeypatch)
    try:
        keen.read_key = None
        with pytest.raises(InvalidEnvironmentError):
            keen.count("purchases", timeframe=WEEK)
        keen.project_id = None
        with pytest.raises(InvalidEnvironmentError):
            keen.add_event("purchases", {"price": 1})
    finally:
        keen.reset_client()
    assert loaded.client.count("purchases", timeframe=WEEK) == 5


def test_access_key_secret_not_in_log_lines(loaded: LocalKeenServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    client = loaded.client
    secret = client.create_access_key("logged", permitted=["queries"])["key"]
    try:
        with caplog.at_level(logging.DEBUG, logger="keen"):
            client.get_access_key(secret)
            client.revoke_access_key(secret)
        assert caplog.records  # the requests were logged...
        assert secret not in caplog.text  # ...without the key
    finally:
        client.delete_access_key(secret)


def test_access_key_secret_not_in_transport_errors(loaded: LocalKeenServer) -> None:
    client = loaded.make_client(retry=NO_RETRY)
    secret = client.create_access_key("dropped", permitted=["queries"])["key"]
    try:
        loaded.faults.drop_next(1)
        with pytest.raises(KeenConnectionError) as dropped:
            client.get_access_key(secret)
        assert secret not in str(dropped.value)
        assert secret not in repr(dropped.value)
        printed = "".join(traceback.format_exception(
            type(dropped.value), dropped.value, dropped.value.__traceback__))
        assert "<redacted>" in printed
        assert secret not in printed  # the chained cause hides it too
    finally:
        loaded.faults.clear()
        client.delete_access_key(secret)
        client.close()
