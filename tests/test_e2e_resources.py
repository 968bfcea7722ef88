"""End to end: saved queries, cached datasets, access keys and scoped keys.

Answers are computed by hand from the datasets of ``_e2e_helpers`` (purchases of u1: 10 on
03-09 and 30 on 03-10; u2: 20 on 03-09 and 100 on 03-11; u3: 40 on 03-11).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _e2e_helpers import (  # noqa: F401
    WEEK,
    Surface,
    client_with,
    load_dataset,
    loaded_fixture,
    serve_loaded,
    start_server,
    surface_for,
    where,
)

from keen import scoped_keys
from keen.exceptions import AuthenticationError, NotFoundError, ScopedKeyError
from keen.server import LocalKeenServer

COUNT_WEEK = {"analysis_type": "count", "event_collection": "purchases", "timeframe": WEEK}


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    """A server holding the datasets, for one test (these tests create and delete things)."""
    yield from serve_loaded()


@pytest.fixture(params=["client", "module"])
def api(request: pytest.FixtureRequest, server: LocalKeenServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Surface]:
    yield from surface_for(request.param, server, monkeypatch)


# -- saved queries ------------------------------------------------------------------------------

def test_saved_queries_lifecycle(server: LocalKeenServer) -> None:
    client = server.client
    created = client.saved_queries.create("week-count", {"refresh_rate": 0, "query": COUNT_WEEK})
    assert created["query_name"] == "week-count"
    assert created["query"]["analysis_type"] == "count"
    as_text = json.dumps({"refresh_rate": 0, "query": dict(
        COUNT_WEEK, analysis_type="sum", target_property="price")})
    client.saved_queries.create("week-revenue", as_text)

    assert sorted(q["query_name"] for q in client.saved_queries.all()) == [
        "week-count", "week-revenue"]
    assert client.saved_queries.get("week-revenue")["query"]["target_property"] == "price"
    assert client.saved_queries.results("week-count")["result"] == 5
    assert client.saved_queries.results("week-revenue")["result"] == 200

    # update(): only what is given changes; the query and its filters are kept
    client.saved_queries.update("week-revenue", {"refresh_rate": 14400})
    client.saved_queries.update("week-revenue", {"query": {"filters": [where("country", "eq",
                                                                              "US")]}})
    definition = client.saved_queries.get("week-revenue")
    assert definition["refresh_rate"] == 14400
    assert definition["query"]["target_property"] == "price"
    assert client.saved_queries.results("week-revenue")["result"] == 60

    # update_full(): the whole definition is replaced (the filters are gone)
    client.saved_queries.update_full("week-revenue", {"refresh_rate": 0, "query": dict(
        COUNT_WEEK, analysis_type="maximum", target_property="price")})
    assert client.saved_queries.get("week-revenue")["refresh_rate"] == 0
    assert client.saved_queries.results("week-revenue")["result"] == 100

    assert client.saved_queries.delete("week-revenue") is True
    with pytest.raises(NotFoundError):
        client.saved_queries.get("week-revenue")
    assert [q["query_name"] for q in client.saved_queries.all()] == ["week-count"]


def test_saved_query_results_need_only_the_read_key(server: LocalKeenServer) -> None:
    server.client.saved_queries.create("week-count", {"refresh_rate": 0, "query": COUNT_WEEK})
    reader = client_with(server, read_key=server.read_key)
    assert reader.saved_queries.results("week-count")["result"] == 5


# -- cached datasets ----------------------------------------------------------------------------

def test_cached_datasets(server: LocalKeenServer) -> None:
    client = server.client
    daily = dict(COUNT_WEEK, interval="daily")
    created = client.cached_datasets.create("by-user", daily, "user.id", "Purchases by user")
    assert created["dataset_name"] == "by-user"
    assert created["index_by"] == ["user.id"]
    client.cached_datasets.create("by-user-country", dict(daily, analysis_type="sum",
                                                          target_property="price"),
                                  ["user.id", "country"], "Revenue by user and country")
    client.cached_datasets.create("c-total", daily, "country", "By country")

    reader = client_with(server, read_key=server.read_key)
    assert reader.cached_datasets.get("by-user")["display_name"] == "Purchases by user"
    result = reader.cached_datasets.results("by-user", "u1", "this_3_days")["result"]
    assert [(bucket["timeframe"]["start"], bucket["value"]) for bucket in result] == [
        ("2026-03-09T00:00:00.000Z", 1), ("2026-03-10T00:00:00.000Z", 1),
        ("2026-03-11T00:00:00.000Z", 0)]
    result = reader.cached_datasets.results(
        "by-user-country", {"user.id": "u2", "country": "DE"},
        {"start": "2026-03-10T00:00:00Z", "end": "2026-03-12T00:00:00Z"})["result"]
    assert [bucket["value"] for bucket in result] == [0, 100]

    first = reader.cached_datasets.all(limit=2)
    assert [d["dataset_name"] for d in first["datasets"]] == ["by-user", "by-user-country"]
    assert first["count"] == 3
    assert first["next_page_url"]
    second = reader.cached_datasets.all(limit=2, after_name="by-user-country")
    assert [d["dataset_name"] for d in second["datasets"]] == ["c-total"]
    assert second["next_page_url"] is None
    assert len(reader.cached_datasets.all()["datasets"]) == 3

    assert client.cached_datasets.delete("c-total") is True
    with pytest.raises(NotFoundError):
        reader.cached_datasets.get("c-total")
    assert reader.cached_datasets.all()["count"] == 2


# -- access keys --------------------------------------------------------------------------------

def test_access_key_lifecycle(api: Surface, server: LocalKeenServer) -> None:
    key = api.create_access_key("reporting", permitted=["queries"], options={
        "queries": {"filters": [where("country", "eq", "NL")]}})
    secret = key["key"]
    assert key["name"] == "reporting"
    assert key["is_active"] is True
    as_reader = client_with(server, read_key=secret, write_key=secret)
    assert as_reader.count("purchases", timeframe=WEEK) == 2  # the key's filter applies
    with pytest.raises(AuthenticationError):  # not permitted to write
        as_reader.add_event("purchases", {"price": 1})

    assert [k["name"] for k in api.list_access_keys()] == ["reporting"]
    assert api.get_access_key(secret)["permitted"] == ["queries"]

    assert api.update_access_key_name(secret, "reporting-eu")["name"] == "reporting-eu"
    assert api.add_access_key_permissions(secret, ["writes", "queries"])["permitted"] == [
        "queries", "writes"]
    as_reader.add_event("purchases", {"price": 1, "country": "NL"})
    assert as_reader.count("purchases", timeframe=WEEK) == 3
    changed = api.remove_access_key_permissions(secret, ["writes"])
    assert changed["permitted"] == ["queries"]
    assert changed["name"] == "reporting-eu"  # the rest is kept
    with pytest.raises(AuthenticationError):
        as_reader.add_event("purchases", {"price": 1})
    assert api.update_access_key_permissions(secret, ["queries", "schema"])["permitted"] == [
        "queries", "schema"]
    assert as_reader.get_collection("purchases")["properties"]["price"] == "num"

    assert api.update_access_key_options(secret, {})["options"].get("queries") in (None, {})
    assert as_reader.count("purchases", timeframe=WEEK) == 6  # no filter any more
    full = api.update_access_key_full(secret, "ops", True, ["queries"], {
        "queries": {"filters": [where("country", "eq", "US")]}})
    assert (full["name"], full["permitted"]) == ("ops", ["queries"])
    assert as_reader.count("purchases", timeframe=WEEK) == 2

    api.revoke_access_key(secret)
    assert api.get_access_key(secret)["is_active"] is False
    with pytest.raises(AuthenticationError) as refused:
        as_reader.count("purchases", timeframe=WEEK)
    assert refused.value.status_code == 401
    api.unrevoke_access_key(secret)
    assert api.get_access_key(secret)["is_active"] is True
    assert as_reader.count("purchases", timeframe=WEEK) == 2

    assert api.delete_access_key(secret) is True
    with pytest.raises(NotFoundError):
        api.get_access_key(secret)
    with pytest.raises(AuthenticationError):
        as_reader.count("purchases", timeframe=WEEK)
    assert api.list_access_keys() == []


def test_access_key_autofill(server: LocalKeenServer) -> None:
    key = server.client.create_access_key("web", permitted=["writes"], options={
        "writes": {"autofill": {"source": "web"}}})
    client_with(server, write_key=key["key"]).add_event("clicks", {"source": "mine", "n": 1})
    [event] = server.client.extraction("clicks", timeframe="today")
    assert (event["source"], event["n"]) == ("web", 1)


# -- scoped keys ---------------------------------------------------------------------------------

def test_read_scoped_key_with_filters(server: LocalKeenServer) -> None:
    scoped = scoped_keys.encrypt(server.master_key, {
        "allowed_operations": ["read"], "filters": [where("user.id", "eq", "u2")]}).decode()
    assert scoped_keys.decrypt(server.master_key, scoped)["allowed_operations"] == ["read"]
    reader = client_with(server, read_key=scoped)
    assert reader.count("purchases", timeframe=WEEK) == 2
    assert reader.sum("purchases", "price", timeframe=WEEK) == 120
    assert reader.count("purchases", timeframe=WEEK, group_by="country") == [
        {"country": "DE", "result": 1}, {"country": "US", "result": 1}]
    assert reader.sum("purchases", "price", timeframe=WEEK,
                      filters=[where("price", "lt", 50)]) == 20


def test_write_scoped_key_cannot_query(server: LocalKeenServer) -> None:
    scoped = scoped_keys.encrypt(server.master_key, {"allowed_operations": ["write"]}).decode()
    both = client_with(server, write_key=scoped, read_key=scoped)
    both.add_event("sign_ups", {"user": {"id": "u5"}})
    assert server.client.count("sign_ups", timeframe="today") == 1
    with pytest.raises(AuthenticationError):
        both.count("sign_ups", timeframe="today")


def test_scoped_key_of_another_master_key_is_refused(server: LocalKeenServer) -> None:
    other_master = "0" * 64
    scoped = scoped_keys.encrypt(other_master, {"allowed_operations": ["read"]}).decode()
    with pytest.raises(ScopedKeyError):
        scoped_keys.decrypt(server.master_key, scoped)
    with pytest.raises(AuthenticationError) as refused:
        client_with(server, read_key=scoped).count("purchases", timeframe=WEEK)
    assert refused.value.status_code == 401


def test_dataset_indexed_by_a_number(server: LocalKeenServer) -> None:
    client = server.client
    client.cached_datasets.create("by-item", dict(COUNT_WEEK, interval="daily"), "item.id",
                                  "Purchases by item")
    result = client.cached_datasets.results("by-item", 3, "this_1_days")["result"]
    assert [bucket["value"] for bucket in result] == [1]  # the purchase of item 3 on 03-11


def test_dataset_index_value_that_looks_like_json(server: LocalKeenServer) -> None:
    client = server.client
    client.add_events({"visits": [{"user": {"id": "[bot]"}}, {"user": {"id": '"q"'}}]})
    client.cached_datasets.create("visits-by-user", {
        "analysis_type": "count", "event_collection": "visits", "timeframe": WEEK,
        "interval": "daily"}, "user.id", "Visits by user")
    for user in ("[bot]", '"q"'):
        result = client.cached_datasets.results("visits-by-user", user, "this_1_days")
        assert [bucket["value"] for bucket in result["result"]] == [1], user


def test_access_key_dataset_and_saved_query_restrictions(server: LocalKeenServer) -> None:
    client = server.client
    daily = dict(COUNT_WEEK, interval="daily")
    client.cached_datasets.create("by-user", daily, "user.id", "By user")
    client.cached_datasets.create("by-country", daily, "country", "By country")
    client.saved_queries.create("open", {"refresh_rate": 0, "query": COUNT_WEEK})
    client.saved_queries.create("secret", {"refresh_rate": 0, "query": COUNT_WEEK})
    key = client.create_access_key("partner", permitted=["datasets", "saved_queries"], options={
        "datasets": {"operations": ["read", "list", "retrieve"],
                     "allowed": {"by-user": {"index_by": {"user.id": ["u1"]}}}},
        "saved_queries": {"allowed": ["open"], "filters": [where("country", "eq", "NL")]}})
    partner = client_with(server, read_key=key["key"])
    result = partner.cached_datasets.results("by-user", "u1", "this_3_days")["result"]
    assert [bucket["value"] for bucket in result] == [1, 1, 0]
    assert [d["dataset_name"] for d in partner.cached_datasets.all()["datasets"]] == ["by-user"]
    assert partner.saved_queries.results("open")["result"] == 2  # the key's filter applies
    for refused in (lambda: partner.cached_datasets.results("by-user", "u2", "this_3_days"),
                    lambda: partner.cached_datasets.get("by-country"),
                    lambda: partner.saved_queries.results("secret"),
                    lambda: partner.count("purchases", timeframe=WEEK)):
        with pytest.raises(AuthenticationError):
            refused()
