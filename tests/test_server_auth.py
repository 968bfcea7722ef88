"""Keys and permissions of the local server: master/read/write, access keys, scoped keys."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import requests
from _server_helpers import REPO, Api, api_fixture, each_engine_server_fixture, error_of  # noqa: F401

from keen import scoped_keys

WRITE, QUERY, SCHEMA, ADMIN = "write", "query", "schema", "admin"
OPERATIONS = (WRITE, QUERY, SCHEMA, ADMIN)
OK = {WRITE: 201, QUERY: 200, SCHEMA: 200, ADMIN: 200}
DENIED = (401, "InvalidApiKeyError")
ADMIN_ONLY = (401, "AdminOnlyEndpointError")


def attempt(api: Api, operation: str, key: str | None) -> requests.Response:
    """One request per kind of endpoint, with ``key`` in the Authorization header."""
    if operation == WRITE:
        return api.post("/events/auth_test", key, body={"n": 1})
    if operation == QUERY:
        return api.get("/queries/count", key,
                       params={"event_collection": "auth_test", "timeframe": "this_1_days"})
    if operation == SCHEMA:
        return api.get("/events", key)
    return api.get("/keys", key)


def check(api: Api, key: str | None, allowed: set[str], *, valid: bool = True) -> None:
    for operation in OPERATIONS:
        response = attempt(api, operation, key)
        if operation in allowed:
            assert response.status_code == OK[operation], (operation, response.text)
        elif operation == ADMIN and valid:
            assert error_of(response) == ADMIN_ONLY, operation
        else:
            assert error_of(response) == DENIED, operation


def scoped(api: Api, **options: object) -> str:
    return scoped_keys.encrypt(api.server.master_key, options).decode()


KEYS: dict[str, tuple[Callable[[Api], str], set[str]]] = {
    "master": (lambda a: a.server.master_key, set(OPERATIONS)),
    "read": (lambda a: str(a.server.read_key), {QUERY, SCHEMA}),
    "write": (lambda a: str(a.server.write_key), {WRITE}),
    "access writes": (lambda a: a.create_key(permitted=["writes"]), {WRITE}),
    "access queries": (lambda a: a.create_key(permitted=["queries"]), {QUERY}),
    "access schema": (lambda a: a.create_key(permitted=["schema"]), {SCHEMA}),
    "access all": (lambda a: a.create_key(permitted=["writes", "queries", "saved_queries",
                                                     "cached_queries", "datasets", "schema"]),
                   {WRITE, QUERY, SCHEMA}),
    "scoped read": (lambda a: scoped(a, allowed_operations=["read"]), {QUERY, SCHEMA}),
    "scoped write": (lambda a: scoped(a, allowed_operations=["write"]), {WRITE}),
    "scoped both": (lambda a: scoped(a, allowed_operations=["read", "write"]),
                    {WRITE, QUERY, SCHEMA}),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_permission_matrix(api: Api, kind: str) -> None:
    make_key, allowed = KEYS[kind]
    check(api, make_key(api), allowed)


@pytest.mark.parametrize("key", [None, "", "nope", "AB" * 32, "ab" * 48])
def test_missing_unknown_and_undecryptable_keys_are_refused(api: Api, key: str | None) -> None:
    # "AB"*32 looks like an access key, "ab"*48 like a scoped key that does not decrypt
    check(api, key, set(), valid=False)


def test_scoped_key_of_another_master_key_is_refused(api: Api) -> None:
    other = scoped_keys.encrypt("F" * 64, {"allowed_operations": ["read"]}).decode()
    assert error_of(attempt(api, QUERY, other)) == DENIED


def test_key_in_query_parameter(api: Api) -> None:
    params = {"api_key": api.server.read_key, "event_collection": "c", "timeframe": "this_1_days"}
    assert api.get("/queries/count", params=params).status_code == 200


def test_authorization_header_wins_over_query_parameter(api: Api) -> None:
    params = {"api_key": api.server.read_key, "event_collection": "c", "timeframe": "this_1_days"}
    response = api.get("/queries/count", api.server.write_key, params=params)
    assert error_of(response) == DENIED


def test_unknown_project_is_404_before_the_key_is_checked(api: Api) -> None:
    other = Api(api.server, project_id="ffffffffffffffffffffffff")
    assert error_of(other.post("/events/c", "wrong", body={"a": 1})) == (
        404, "ResourceNotFoundError")


def test_revoked_access_key_is_refused_until_unrevoked(api: Api) -> None:
    key = api.create_key(name="w", permitted=["writes"])
    master = api.server.master_key
    assert api.post(f"/keys/{key}/revoke", master).json()["is_active"] is False
    assert error_of(attempt(api, WRITE, key)) == DENIED
    assert api.post(f"/keys/{key}/unrevoke", master).json()["is_active"] is True
    assert attempt(api, WRITE, key).status_code == 201


def test_deleted_access_key_is_refused(api: Api) -> None:
    key = api.create_key(permitted=["writes"])
    assert api.delete(f"/keys/{key}", api.server.master_key).status_code == 204
    assert error_of(attempt(api, WRITE, key)) == DENIED


def test_access_key_query_filters_are_and_ed_onto_queries(api: Api) -> None:
    api.write("purchases", {"customer": "a", "price": 1}, {"customer": "a", "price": 3},
              {"customer": "b", "price": 5})
    key = api.create_key(permitted=["queries"], options={"queries": {"filters": [
        {"property_name": "customer", "operator": "eq", "property_value": "a"}]}})
    assert api.count("purchases", key) == 2
    price_filter = [{"property_name": "price", "operator": "gt", "property_value": 2}]
    assert api.count("purchases", key, filters=price_filter) == 1
    assert api.count("purchases") == 3


def test_scoped_key_filters_are_and_ed_onto_queries(api: Api) -> None:
    api.write("purchases", {"customer": "a"}, {"customer": "b"}, {"customer": "b"})
    key = scoped(api, allowed_operations=["read"], filters=[
        {"property_name": "customer", "operator": "eq", "property_value": "b"}])
    assert api.count("purchases", key) == 2
    response = api.get("/queries/count", params={
        "api_key": key, "event_collection": "purchases", "timeframe": "this_10_years"})
    assert response.json()["result"] == 2


def test_access_key_autofill_is_merged_into_written_events(api: Api) -> None:
    key = api.create_key(permitted=["writes"], options={"writes": {"autofill": {
        "customer": {"id": "c-1"}}}})
    response = api.post("/events/orders", key, body={"customer": {"name": "Ada"}, "n": 1})
    assert response.status_code == 201
    result = api.post("/queries/extraction", api.server.read_key,
                      body={"event_collection": "orders", "timeframe": "this_10_years"}).json()
    assert result["result"][0]["customer"] == {"id": "c-1", "name": "Ada"}


def _saved(api: Api, name: str, refresh_rate: int = 0) -> None:
    body = {"refresh_rate": refresh_rate,
            "query": {"analysis_type": "count", "event_collection": "purchases",
                      "timeframe": "this_10_years"}}
    assert api.put(f"/queries/saved/{name}", api.server.master_key, body=body).status_code == 201


def test_access_key_saved_query_allow_block_and_filters(api: Api) -> None:
    api.write("purchases", {"customer": "a"}, {"customer": "b"})
    for name in ("open", "secret", "other"):
        _saved(api, name)
    key = api.create_key(permitted=["saved_queries"], options={"saved_queries": {
        "allowed": ["open", "secret"], "blocked": ["secret"],
        "filters": [{"property_name": "customer", "operator": "eq", "property_value": "a"}]}})
    response = api.get("/queries/saved/open/result", key)
    assert response.status_code == 200
    assert response.json()["result"] == 1
    assert error_of(api.get("/queries/saved/secret/result", key)) == DENIED
    assert error_of(api.get("/queries/saved/other/result", key)) == DENIED
    assert api.get("/queries/saved/open/result", api.server.read_key).json()["result"] == 2
    # results only: the definitions stay master-only
    assert error_of(api.get("/queries/saved/open", key)) == ADMIN_ONLY


def test_cached_queries_permission_reads_only_cached_queries(api: Api) -> None:
    _saved(api, "cached", refresh_rate=14_400)
    _saved(api, "plain")
    key = api.create_key(permitted=["cached_queries"])
    assert api.get("/queries/saved/cached/result", key).status_code == 200
    assert error_of(api.get("/queries/saved/plain/result", key)) == DENIED


def _dataset(api: Api, name: str) -> None:
    body = {"display_name": name, "index_by": "customer",
            "query": {"analysis_type": "count", "event_collection": "purchases",
                      "timeframe": "this_30_days", "interval": "daily"}}
    assert api.put(f"/datasets/{name}", api.server.master_key, body=body).status_code == 201


def test_access_key_dataset_operations_allowed_blocked_and_index(api: Api) -> None:
    for name in ("ds_a", "ds_b", "ds_c"):
        _dataset(api, name)
    key = api.create_key(permitted=["datasets"], options={"datasets": {
        "operations": ["list", "retrieve"],
        "allowed": {"ds_a": {"index_by": {"customer": ["c1"]}}, "ds_b": {}},
        "blocked": ["ds_b"]}})
    listing = api.get("/datasets", key).json()
    assert [d["dataset_name"] for d in listing["datasets"]] == ["ds_a"]
    ok = api.get("/datasets/ds_a/results", key,
                 params={"index_by": "c1", "timeframe": "this_2_days"})
    assert ok.status_code == 200, ok.text
    assert error_of(api.get("/datasets/ds_a/results", key,
                            params={"index_by": "c2", "timeframe": "this_2_days"})) == DENIED
    assert error_of(api.get("/datasets/ds_b/results", key,
                            params={"index_by": "c1", "timeframe": "this_2_days"})) == DENIED
    assert error_of(api.get("/datasets/ds_c/results", key,
                            params={"index_by": "c1", "timeframe": "this_2_days"})) == DENIED
    assert error_of(api.get("/datasets/ds_a", key)) == DENIED  # "read" not in operations


def test_scoped_key_with_filters_cannot_read_datasets(api: Api) -> None:
    _dataset(api, "ds")
    plain = scoped(api, allowed_operations=["read"])
    filtered = scoped(api, allowed_operations=["read"], filters=[
        {"property_name": "customer", "operator": "eq", "property_value": "a"}])
    assert api.get("/datasets/ds", plain).status_code == 200
    assert error_of(api.get("/datasets/ds", filtered)) == DENIED


def test_importing_the_server_does_not_import_pycryptodome() -> None:
    code = ("import sys, keen.server, keen.server.app, keen.testing; "
            "from keen.server import LocalKeenServer; "
            "print('Crypto' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(REPO), timeout=60, check=True).stdout
    assert out.strip() == "False"


def test_keys_never_appear_in_debug_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    key = api.create_key(permitted=["queries"])
    with caplog.at_level("DEBUG", logger="keen"):
        api.get(f"/keys/{key}", api.server.master_key)
        api.get("/queries/count", params={"api_key": api.server.read_key,
                                          "event_collection": "c", "timeframe": "this_1_days"})
        api.post("/events/c", "not-a-key", body={"a": json.dumps({"x": 1})})
    text = caplog.text
    assert "/keys/<key>" in text
    for secret in (key, api.server.read_key, api.server.master_key):
        assert str(secret) not in text
