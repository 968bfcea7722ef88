"""One test (at least) per 0.7.0 bug listed in compat-0.7.md; each fails on 0.7.0's behaviour."""

from __future__ import annotations

import base64
import datetime
import decimal
import inspect
import json
import uuid
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests
from _client_helpers import Recorder, install_recorder, make_client, recorder_fixture  # noqa: F401 (a fixture)

import keen
from keen import persistence_strategies, scoped_keys
from keen.client import Event, KeenClient
from keen.exceptions import (
    BadRequestError,
    InvalidEnvironmentError,
    KeenApiError,
    ScopedKeyError,
)

WIRE = json.loads((Path(__file__).parent / "data" / "wire_0_7_0.json").read_text())


# 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("write_key", ["WK", b"WK"])
def test_1_image_beacon_works_with_a_str_key(write_key: Any) -> None:
    url = make_client(write_key=write_key).generate_image_beacon(
        "my coll", {"a": 1}, timestamp=datetime.datetime(2020, 1, 2))
    prefix, data = url.split("&data=")
    assert prefix == "http://h/3.0/projects/PID/events/my%20coll?api_key=WK"
    assert json.loads(base64.b64decode(data)) == {
        "a": 1, "keen": {"timestamp": "2020-01-02T00:00:00"}}
    # same data as 0.7.0 produced for the same event
    assert data == WIRE["beacon"]["returned"].split("&data=")[1]


def test_1_image_beacon_without_write_key_is_a_clear_error() -> None:
    with pytest.raises(InvalidEnvironmentError, match="write key"):
        make_client(read_key="RK").generate_image_beacon("c", {"a": 1})


# 2 ------------------------------------------------------------------------------------------
def test_2_rich_values_in_events_are_encoded(recorder: Recorder) -> None:
    pacific = datetime.timezone(datetime.timedelta(hours=-8))
    make_client().add_event("c", {
        "aware": datetime.datetime(2024, 5, 1, 4, 0, tzinfo=pacific),
        "naive": datetime.datetime(2024, 5, 1, 12, 30),
        "day": datetime.date(2024, 5, 1),
        "price": decimal.Decimal("9.99"),
        "qty": decimal.Decimal("3"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"b", "a"},
        "pair": (1, 2),
    })
    assert recorder.last.json() == {
        "aware": "2024-05-01T12:00:00+00:00",
        "naive": "2024-05-01T12:30:00",
        "day": "2024-05-01",
        "price": 9.99,
        "qty": 3,
        "id": "12345678-1234-5678-1234-567812345678",
        "tags": ["a", "b"],
        "pair": [1, 2],
    }


def test_2_rich_values_in_batches_are_encoded(recorder: Recorder) -> None:
    make_client().add_events({"c": [{"when": datetime.date(2024, 1, 1)}]})
    assert recorder.last.json() == {"c": [{"when": "2024-01-01"}]}


def test_2_any_mapping_is_an_event_body(recorder: Recorder) -> None:
    """Event bodies are typed Mapping: a read-only or custom mapping is sent like a dict."""
    make_client().add_event("c", MappingProxyType({"a": MappingProxyType({"b": 1})}))
    assert recorder.last.json() == {"a": {"b": 1}}


# 3 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [{"unexpected": "shape"}, {"message": "only a message"},
                                  {"error_code": "OnlyCode"}, [1, 2]])
def test_3_error_body_without_message_or_code_is_a_keen_api_error(
        recorder: Recorder, body: Any) -> None:
    recorder.answer = lambda request: (400, body)
    with pytest.raises(BadRequestError) as caught:
        make_client().count("c")
    assert caught.value.status_code == 400
    assert "400" in str(caught.value)


# 4 ------------------------------------------------------------------------------------------
def test_4_falsy_parameters_are_sent(recorder: Recorder) -> None:
    c = make_client()
    c.percentile("c", "p", 0, timezone=0, max_age=0)
    assert recorder.last.query == [("event_collection", "c"), ("timezone", "0"),
                                   ("target_property", "p"), ("percentile", "0"),
                                   ("max_age", "0")]
    c.extraction("c", latest=0)
    assert ("latest", "0") in recorder.last.query
    c.delete_events("c", timezone=0)
    assert recorder.last.query == [("timezone", "0")]


def test_4_none_still_means_not_given(recorder: Recorder) -> None:
    make_client().count("c", timeframe=None, timezone=None, max_age=None)
    assert recorder.last.query == [("event_collection", "c")]


# 5 ------------------------------------------------------------------------------------------
def test_5_module_median_sends_limit(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keen, "_client", make_client())
    keen.median("c", "p", group_by="g", order_by={"property_name": "result"}, limit=3)
    assert ("limit", "3") in recorder.last.query


def test_5_client_minimum_sends_order_by(recorder: Recorder) -> None:
    make_client().minimum("p", "price", timeframe="this_1_days", group_by="g",
                     order_by={"property_name": "result"}, limit=2)
    assert recorder.last.url == (
        "http://h/3.0/projects/PID/queries/minimum?event_collection=p&timeframe=this_1_days"
        "&group_by=g&order_by=%5B%7B%22property_name%22%3A+%22result%22%7D%5D&limit=2"
        "&target_property=price")


# 6 ------------------------------------------------------------------------------------------
def test_6_settings_changed_after_first_call_take_effect(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEEN_PROJECT_ID", "KEEN_WRITE_KEY", "KEEN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keen, "project_id", "P1")
    monkeypatch.setattr(keen, "write_key", "K1")
    monkeypatch.setattr(keen, "base_url", "http://h")
    keen.reset_client()
    try:
        keen.add_event("c", {"n": 1})
        monkeypatch.setattr(keen, "write_key", "K2")
        keen.add_event("c", {"n": 2})
        monkeypatch.setattr(keen, "project_id", "P2")
        keen.add_event("c", {"n": 3})
        monkeypatch.setattr(keen, "write_key", None)
        monkeypatch.setenv("KEEN_WRITE_KEY", "K3")
        keen.add_event("c", {"n": 4})
    finally:
        keen.reset_client()
    assert [(s.path, s.headers["Authorization"]) for s in recorder.sent] == [
        ("/3.0/projects/P1/events/c", "K1"), ("/3.0/projects/P1/events/c", "K2"),
        ("/3.0/projects/P2/events/c", "K2"), ("/3.0/projects/P2/events/c", "K3")]


# 7 ------------------------------------------------------------------------------------------
def test_7_collection_names_are_escaped(recorder: Recorder) -> None:
    c = make_client()
    name = "a/b?c#d%e f"
    c.add_event(name, {"x": 1})
    c.get_collection(name)
    c.delete_events(name)
    c.count(name)
    escaped = "/3.0/projects/PID/events/a%2Fb%3Fc%23d%25e%20f"
    assert [s.path for s in recorder.sent[:3]] == [escaped] * 3
    assert recorder.sent[3].query == [("event_collection", name)]
    assert "%2Fb%3Fc%23d%25e%20f?" in c.generate_image_beacon(name, {})


# 8 ------------------------------------------------------------------------------------------
def test_8_listing_datasets_uses_the_read_key(recorder: Recorder) -> None:
    make_client().cached_datasets.all()
    assert recorder.last.headers["Authorization"] == "RK"
    with pytest.raises(InvalidEnvironmentError, match="read key"):
        make_client(master_key="MK").cached_datasets.all()
    assert len(recorder.sent) == 1


# 9 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("master", [
    "24077ACBCB198BAAA2110EDDB673282F8E34909FD823A15C55A6253A664BE368",
    "2e79c6ec1d0145be8891bf668599c79a"])
def test_9_wrong_master_key_raises_a_clear_error(master: str) -> None:
    scoped = scoped_keys.encrypt(master, {"allowed_operations": ["read"]})
    wrong = master[:-1] + ("0" if master[-1] != "0" else "1")
    with pytest.raises(ScopedKeyError, match="cannot be decrypted") as caught:
        scoped_keys.decrypt(wrong, scoped)
    assert isinstance(caught.value, ValueError)
    assert wrong not in str(caught.value) and master not in str(caught.value)


# 10 -----------------------------------------------------------------------------------------
def _public_callables() -> list[Any]:
    import keen.api
    import keen.cached_datasets
    import keen.client
    import keen.saved_queries
    import keen.utilities
    found = [getattr(keen, n) for n in keen.__all__ if callable(getattr(keen, n))]
    for cls in (keen.client.KeenClient, keen.api.KeenApi, keen.saved_queries.SavedQueriesInterface,
                keen.cached_datasets.CachedDatasetsInterface):
        found += [m for n, m in vars(cls).items() if callable(m) and not n.startswith("__")]
    found += [keen.utilities.headers, keen.utilities.requires_key]
    return found


def test_10_no_mutable_default_arguments() -> None:
    for function in _public_callables():
        for parameter in inspect.signature(function).parameters.values():
            assert not isinstance(parameter.default, (list, dict, set)), (function, parameter)


def test_10_no_switch_generator_raising_stop_iteration() -> None:
    import keen.utilities
    assert not hasattr(keen.utilities, "switch")


def test_10_access_key_defaults_are_not_shared(recorder: Recorder) -> None:
    c = make_client()
    c.create_access_key("a")
    c.create_access_key("b")
    assert [s.json()["permitted"] for s in recorder.sent] == [[], []]


# 11 -----------------------------------------------------------------------------------------
def test_11_proxies_and_tls_settings_of_a_given_session_are_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class Adapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(kwargs)
            response = requests.Response()
            response.status_code, response._content = 200, b'{"result": 5}'
            return response

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.proxies = {"https": "http://proxy.corp:3128"}
    session.verify = False
    session.cert = ("/client.pem", "/client.key")
    session.mount("https://", Adapter())
    assert KeenClient("PID", read_key="RK", session=session).count("c") == 5
    assert seen[0]["proxies"]["https"] == "http://proxy.corp:3128"
    assert seen[0]["verify"] is False
    assert seen[0]["cert"] == ("/client.pem", "/client.key")


def test_11_default_session_uses_requests_defaults() -> None:
    api = KeenClient("PID").api
    assert type(api.session.get_adapter("https://api.keen.io")) is requests.adapters.HTTPAdapter
    assert api.session.verify is True


# 12 -----------------------------------------------------------------------------------------
def test_12_no_stub_persistence_strategies_are_advertised() -> None:
    assert not hasattr(persistence_strategies, "RedisPersistenceStrategy")
    assert not hasattr(persistence_strategies, "FilePersistenceStrategy")


# 13 -----------------------------------------------------------------------------------------
def test_13_custom_strategy_with_only_persist_handles_add_events() -> None:
    class Collect(persistence_strategies.BasePersistenceStrategy):
        def __init__(self) -> None:
            self.events: list[Event] = []

        def persist(self, event: Event) -> None:
            self.events.append(event)

    strategy = Collect()
    c = KeenClient("PID", write_key="WK", persistence_strategy=strategy)
    result = c.add_events({"a": [{"x": 1}, {"x": 2}], "b": [{"y": 1}]})
    assert result == {"a": [{"success": True}] * 2, "b": [{"success": True}]}
    assert [(e.event_collection, e.event_body) for e in strategy.events] == [
        ("a", {"x": 1}), ("a", {"x": 2}), ("b", {"y": 1})]
    assert c.flush() is True and c.stats() == {}


# 14 -----------------------------------------------------------------------------------------
def test_14_very_long_query_is_posted(recorder: Recorder) -> None:
    ids = [f"user-{n:05d}" for n in range(600)]
    c = make_client()
    assert c.count("c", filters=[{"property_name": "id", "operator": "in",
                                  "property_value": ids}]) == 1
    assert recorder.last.method == "POST"
    assert recorder.last.json()["filters"][0]["property_value"] == ids


@pytest.mark.parametrize(("value", "method"), [("\U0001f600" * 320, "GET"),
                                               ("\U0001f600" * 340, "POST")],
                         ids=["3850-chars", "4090-chars"])
def test_14_url_length_counts_percent_encoded_utf8(recorder: Recorder, value: str,
                                                   method: str) -> None:
    """One emoji is 12 characters in the URL (4 UTF-8 bytes, each as %XX)."""
    make_client().count_unique("c", value)
    assert recorder.last.method == method
    if method == "GET":
        assert 3800 < len(recorder.last.url) <= 4000
    else:
        assert recorder.last.json()["target_property"] == value


def test_keen_api_error_keeps_api_error_dict(recorder: Recorder) -> None:
    body = {"message": "bad", "error_code": "X", "stacktrace_id": "s1", "unique_id": "u1"}
    recorder.answer = lambda request: (400, body)
    with pytest.raises(KeenApiError) as caught:
        make_client().count("c")
    assert caught.value.api_error == body
    # issue 8: one line (0.7.0's text spanned five, with a stray leading space)
    assert str(caught.value) == (
        "400 X: bad (GET http://h/3.0/projects/PID/queries/count; stacktrace_id s1; "
        "unique_id u1). " + BadRequestError.hint)
