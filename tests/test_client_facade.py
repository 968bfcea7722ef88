"""The module facade: live settings, KEEN_* environment, the default client and its reset."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from _client_helpers import Recorder, install_recorder, recorder_fixture  # noqa: F401 (a fixture)

import keen
from keen.client import KeenClient
from keen.exceptions import DeliveryClosedError, InvalidEnvironmentError

SETTINGS = ("project_id", "write_key", "read_key", "master_key", "base_url", "delivery")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in SETTINGS:
        monkeypatch.setattr(keen, name, None)
        monkeypatch.delenv(f"KEEN_{name.upper()}", raising=False)
    keen.reset_client()
    yield
    keen.reset_client()


def test_missing_project_id(recorder: Recorder) -> None:
    with pytest.raises(InvalidEnvironmentError, match="KEEN_PROJECT_ID"):
        keen.add_event("c", {"a": 1})
    assert recorder.sent == []


def test_settings_from_environment(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEN_PROJECT_ID", "ENVPID")
    monkeypatch.setenv("KEEN_READ_KEY", "ENVRK")
    monkeypatch.setenv("KEEN_BASE_URL", "http://env-host")
    assert keen.count("c") == 1
    assert recorder.last.url == "http://env-host/3.0/projects/ENVPID/queries/count?event_collection=c"
    assert recorder.last.headers["Authorization"] == "ENVRK"


def test_module_global_wins_over_environment(recorder: Recorder,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEN_PROJECT_ID", "ENVPID")
    monkeypatch.setenv("KEEN_WRITE_KEY", "ENVWK")
    keen.write_key = "GLOBALWK"
    keen.add_event("c", {"a": 1})
    assert recorder.last.headers["Authorization"] == "GLOBALWK"
    assert "/projects/ENVPID/" in recorder.last.url


def test_default_client_is_built_once_and_rebuilt_on_change(recorder: Recorder) -> None:
    keen.project_id, keen.write_key = "P", "W1"
    keen._initialize_client_from_environment()
    first = keen._client
    assert isinstance(first, KeenClient)
    keen.add_event("c", {})
    assert keen._client is first
    keen.write_key = "W2"
    keen.add_event("c", {})
    assert keen._client is not first
    assert [s.headers["Authorization"] for s in recorder.sent] == ["W1", "W2"]


def test_a_client_put_in_place_by_the_application_is_used() -> None:
    double = mock.Mock(spec=KeenClient)
    double.count.return_value = 42
    keen._client = double
    keen.project_id = "changing settings does not replace it"
    assert keen.count("c", timeframe="this_day") == 42
    double.count.assert_called_once_with(
        event_collection="c", timeframe="this_day", timezone=None, interval=None, filters=None,
        group_by=None, order_by=None, max_age=None, limit=None, all_keys=False)


def test_reset_client_drops_the_default_client(recorder: Recorder) -> None:
    keen.project_id, keen.write_key = "P", "W"
    keen.add_event("c", {})
    assert keen._client is not None
    keen.reset_client()
    assert keen._client is None
    keen.add_event("c", {})
    assert keen._client is not None


def test_flush_and_stats_without_a_client() -> None:
    assert keen.flush() is True
    assert keen.stats() == {}


@pytest.mark.parametrize("name", [n for n in keen.__all__
                                  if hasattr(KeenClient, n) and callable(getattr(keen, n))
                                  and n not in ("flush", "stats")])
def test_module_function_mirrors_the_client_method(name: str) -> None:
    function, method = getattr(keen, name), getattr(KeenClient, name)
    assert function.__doc__ == method.__doc__.replace(":param event_body:", ":param body:")
    expected = [p.replace(name="body") if p.name == "event_body" else p
                for p in list(inspect.signature(method).parameters.values())[1:]]
    actual = list(inspect.signature(function).parameters.values())
    assert [(p.name, p.kind, p.default) for p in actual] == [
        (p.name, p.kind, p.default) for p in expected]


def test_module_function_binds_arguments_like_a_function() -> None:
    with pytest.raises(TypeError):
        keen.count()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        keen.count("c", nonsense=1)  # type: ignore[call-arg]


def test_body_keyword_of_0_7_0(recorder: Recorder) -> None:
    keen.project_id, keen.write_key = "P", "W"
    keen.add_event(event_collection="c", body={"a": 1})
    assert recorder.last.json() == {"a": 1}
    assert keen.generate_image_beacon("c", body={"a": 1}).startswith(
        "https://api.keen.io/3.0/projects/P/events/c?api_key=W&data=")


def test_delivery_setting_builds_a_queued_client(recorder: Recorder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    keen.project_id, keen.write_key = "P", "W"
    monkeypatch.setenv("KEEN_DELIVERY", "background")
    keen.add_event("c", {"n": 1})
    assert keen.flush(timeout=10) is True
    assert keen.stats()  # the queued strategy reports counters
    (sent,) = recorder.sent
    assert (sent.method, sent.path) == ("POST", "/3.0/projects/P/events")
    (event,) = sent.json()["c"]
    assert event["n"] == 1 and event["keen"]["uniqueness_token"]
    client = keen._client
    monkeypatch.delenv("KEEN_DELIVERY")
    keen.add_event("c", {"n": 2})  # setting changed: a direct client now
    assert keen._client is not client
    assert recorder.last.path == "/3.0/projects/P/events/c"


def test_a_call_holding_a_client_replaced_by_another_thread_still_delivers(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting changed (and used) by another thread closes the queued client it replaces;
    a facade call that had already picked up that client sends through the new one."""
    keen.project_id, keen.write_key, keen.delivery = "P", "W", "background"
    keen.add_event("c", {"n": 0})
    real_event = keen.client.Event

    def other_thread_acts_now(*args: Any, **kwargs: Any) -> keen.client.Event:
        monkeypatch.setattr(keen.client, "Event", real_event)
        keen.read_key = "R2"
        keen.add_event("c", {"n": 1})  # rebuilds the default client, closing the old one
        return real_event(*args, **kwargs)

    monkeypatch.setattr(keen.client, "Event", other_thread_acts_now)
    keen.add_event("c", {"n": 2})
    assert keen.flush(timeout=10) is True
    assert sorted(e["n"] for s in recorder.sent for e in s.json()["c"]) == [0, 1, 2]


def test_a_closed_client_put_in_place_by_the_application_still_raises() -> None:
    client = KeenClient("P", write_key="W", delivery="background")
    client.close()
    keen._client = client
    with pytest.raises(DeliveryClosedError):
        keen.add_event("c", {})


def test_reset_by_another_thread_while_the_client_is_replaced(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    keen.project_id, keen.read_key, keen.delivery = "P", "R", "background"
    keen._initialize_client_from_environment()
    replaced = keen._client
    assert replaced is not None
    # closing the replaced client is when another thread gets to call reset_client()
    monkeypatch.setattr(replaced, "close", lambda timeout=None: keen.reset_client())
    keen.read_key = "R2"
    assert keen.count("c") == 1
    assert recorder.last.headers["Authorization"] == "R2"


def test_reset_client_drops_but_does_not_close_a_client_put_in_place_by_the_application(
        recorder: Recorder) -> None:
    keen.project_id, keen.write_key = "P", "W"
    keen.add_event("c", {})
    built = keen._client
    assert built is not None

    class Double:
        """A hand-written test double: only what the code under test calls."""

        def add_event(self, *args: Any, **kwargs: Any) -> None:
            pass

    keen._client = Double()  # type: ignore[assignment]
    closed = []
    built.close = lambda timeout=None: closed.append(True)  # type: ignore[method-assign]
    keen.reset_client()
    assert keen._client is None
    assert closed == [True]  # the one the module built (and the double replaced) is closed
