"""Bad input: a clear error of the documented type, naming the problem, before any request."""

from __future__ import annotations

import datetime
from typing import Any, Callable

import pytest
from _client_helpers import Recorder, install_recorder, make_client, recorder_fixture  # noqa: F401 (a fixture)

from keen.client import KeenClient
from keen.exceptions import (
    BaseKeenClientError,
    InvalidEnvironmentError,
    InvalidEventError,
    InvalidPersistenceStrategyError,
    InvalidProjectIdError,
    InvalidQueryError,
)


@pytest.mark.parametrize("project_id", [None, "", 42, b"pid", ["p"]])
def test_project_id_must_be_a_non_empty_string(project_id: Any) -> None:
    with pytest.raises(InvalidProjectIdError) as caught:
        KeenClient(project_id)
    assert caught.value.project_id == project_id
    assert isinstance(caught.value, ValueError)
    assert repr(project_id) in str(caught.value)


def test_persistence_strategy_must_be_a_strategy() -> None:
    with pytest.raises(InvalidPersistenceStrategyError, match="BasePersistenceStrategy"):
        KeenClient("PID", persistence_strategy=object())  # type: ignore[arg-type]


MISSING_KEY: list[tuple[str, dict[str, str], Callable[[KeenClient], Any]]] = [
    ("write key", {"read_key": "RK", "master_key": "MK"}, lambda c: c.add_event("c", {})),
    ("write key", {"master_key": "MK"}, lambda c: c.add_events({"c": [{}]})),
    ("read key", {"write_key": "WK", "master_key": "MK"}, lambda c: c.count("c")),
    ("read key", {"master_key": "MK"}, lambda c: c.get_all_collections()),
    ("read key", {"master_key": "MK"}, lambda c: c.saved_queries.results("q")),
    ("master key", {"read_key": "RK", "write_key": "WK"}, lambda c: c.delete_events("c")),
    ("master key", {"read_key": "RK"}, lambda c: c.saved_queries.all()),
    ("master key", {"read_key": "RK"}, lambda c: c.cached_datasets.create("d", {}, "i", "D")),
    ("master key", {"read_key": "RK"}, lambda c: c.list_access_keys()),
    ("master key", {"read_key": "RK"}, lambda c: c.update_access_key_name("K", "n")),
]


@pytest.mark.parametrize(("needed", "keys", "call"), MISSING_KEY)
def test_missing_key_is_reported_before_any_request(recorder: Recorder, needed: str,
                                                    keys: dict[str, str],
                                                    call: Callable[[KeenClient], Any]) -> None:
    with pytest.raises(InvalidEnvironmentError, match=needed):
        call(make_client(**keys))
    assert recorder.sent == []


def test_missing_key_message_mentions_least_privilege(recorder: Recorder) -> None:
    with pytest.raises(InvalidEnvironmentError, match="least privilege"):
        make_client(master_key="MK").count("c")


BAD_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("order_by needs group_by", {"order_by": {"property_name": "result"}}),
    ("direction", {"group_by": "g", "order_by": {"property_name": "result", "direction": "UP"}}),
    ("unknown keys", {"group_by": "g", "order_by": {"property_name": "result", "x": 1}}),
    ("no property_name", {"group_by": "g", "order_by": {"direction": "ASC"}}),
    ("must be dicts", {"group_by": "g", "order_by": ["result"]}),
    ("limit must be a positive int", {"group_by": "g", "order_by": {"property_name": "result"},
                                      "limit": 0}),
    ("limit must be a positive int", {"group_by": "g", "order_by": {"property_name": "result"},
                                      "limit": "5"}),
    ("limit must be a positive int", {"group_by": "g", "order_by": {"property_name": "result"},
                                      "limit": True}),
    ("limit needs order_by", {"group_by": "g", "limit": 5}),
]


@pytest.mark.parametrize(("problem", "params"), BAD_QUERIES)
def test_malformed_order_by_and_limit(recorder: Recorder, problem: str,
                                      params: dict[str, Any]) -> None:
    with pytest.raises(InvalidQueryError, match=problem) as caught:
        make_client().count("c", **params)
    assert isinstance(caught.value, ValueError)  # 0.7.0 raised ValueError
    assert recorder.sent == []


BAD_EVENTS: list[tuple[str, Callable[[KeenClient], Any]]] = [
    ("must be a dict, not list", lambda c: c.add_event("c", [1, 2])),
    ("must be a dict, not str", lambda c: c.add_event("c", "{}")),
    ("non-empty string", lambda c: c.add_event("", {})),
    ("non-empty string", lambda c: c.add_event(None, {})),
    ("a.b\\[1\\] is of type object", lambda c: c.add_event("c", {"a": {"b": [1, object()]}})),
    ("x is nan", lambda c: c.add_event("c", {"x": float("nan")})),
    (r"a\.b\[0\] is of type complex", lambda c: c.add_event("c", {"a": {"b": {1j}}})),
    ("contains itself", lambda c: c.add_event("c", _self_containing())),
    ("'keen' property must be a dict",
     lambda c: c.add_event("c", {"keen": 5}, timestamp=datetime.datetime(2020, 1, 1))),
    ("dict of collection name", lambda c: c.add_events([{"a": 1}])),
    (r"events\['c'\] must be a list", lambda c: c.add_events({"c": {"a": 1}})),
    (r"events\['c'\]\[1\] must be a dict", lambda c: c.add_events({"c": [{}, "x"]})),
    ("non-empty string", lambda c: c.add_events({"": [{}]})),
    (r"name in a URL must be a string, not \['a'\]", lambda c: c.get_collection(["a"])),
    (r"name in a URL must be a string, not \{'q': 1\}",
     lambda c: c.saved_queries.get({"q": 1})),
    (r"c\[0\]\.when is of type object", lambda c: c.add_events({"c": [{"when": object()}]})),
]


def _self_containing() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["me"] = loop
    return loop


@pytest.mark.parametrize(("problem", "call"), BAD_EVENTS)
def test_bad_events_are_refused_before_sending(recorder: Recorder, problem: str,
                                               call: Callable[[KeenClient], Any]) -> None:
    with pytest.raises(InvalidEventError, match=problem) as caught:
        call(make_client())
    assert isinstance(caught.value, (ValueError, BaseKeenClientError))
    assert recorder.sent == []


def test_bad_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        KeenClient("PID", base_url="")


def test_requires_key_decorator_still_guards_methods() -> None:
    from keen.api import KeenApi
    from keen.utilities import KeenKeys, requires_key

    class Api(KeenApi):
        @requires_key(KeenKeys.MASTER)
        def admin(self) -> str:
            return "ran"

    assert Api("PID", master_key="MK").admin() == "ran"
    with pytest.raises(InvalidEnvironmentError, match="master key"):
        Api("PID", read_key="RK").admin()


def test_timestamp_does_not_modify_the_callers_event(recorder: Recorder) -> None:
    body = {"a": 1, "keen": {"addons": [{"name": "keen:ip_to_geo"}]}}
    make_client().add_event("c", body, timestamp=datetime.datetime(2021, 3, 4, 5, 6, 7))
    assert body == {"a": 1, "keen": {"addons": [{"name": "keen:ip_to_geo"}]}}
    assert recorder.last.json() == {"a": 1, "keen": {"addons": [{"name": "keen:ip_to_geo"}],
                                                     "timestamp": "2021-03-04T05:06:07"}}


BAD_ARGUMENTS: list[tuple[str, Callable[[KeenClient], Any]]] = [
    ("event_collection must be a non-empty string, not 5", lambda c: c.count(5)),
    ("event_collection must be a non-empty string, not ''", lambda c: c.count("")),
    (r"sum\(\) requires target_property; it cannot be None", lambda c: c.sum("c", None)),
    ("target_property must be a non-empty string", lambda c: c.median("c", "")),
    (r"percentile\(\) requires percentile", lambda c: c.percentile("c", "p", None)),
    (r"funnel\(\) requires steps", lambda c: c.funnel(None)),
    ("steps must be a non-empty list of step dicts, not list", lambda c: c.funnel([])),
    (r"steps\[1\] must be a dict, not str", lambda c: c.funnel([{}, "s"])),
    ("analyses must be a non-empty dict", lambda c: c.multi_analysis("c", ["sum"])),
    ("filters must be a list of filter dicts, not dict",
     lambda c: c.count("c", filters={"property_name": "a"})),
    (r"filters\[0\] must be a dict, not str", lambda c: c.count("c", filters=["a eq 1"])),
    ("filters must be a list", lambda c: c.delete_events("c", filters="a")),
    ("timeframe must be a string .* or a dict", lambda c: c.count("c", timeframe=7)),
    ("index_by cannot be encoded as JSON",
     lambda c: c.cached_datasets.results("d", object(), "this_1_days")),
    ("timeframe cannot be encoded as JSON",
     lambda c: c.cached_datasets.results("d", "u", {"start": object()})),
    ("limit must be a positive int, not 0", lambda c: c.cached_datasets.all(limit=0)),
    ("saved_query cannot be encoded as JSON", lambda c: c.saved_queries.create("q", object())),
    ("saved_query_attributes must be a dict, not list",
     lambda c: c.saved_queries.update("q", ["refresh_rate"])),
    ("permissions must be a list of strings, not str",
     lambda c: c.add_access_key_permissions("K", "queries")),
    ("permissions must be a list of strings, not str",
     lambda c: c.update_access_key_permissions("K", "writes")),
    (r"permissions\[1\] must be a string, not int",
     lambda c: c.remove_access_key_permissions("K", ["queries", 1])),
    ("permitted must be a list of strings, not str",
     lambda c: c.create_access_key("n", permitted="queries")),
    ("options cannot be encoded as JSON",
     lambda c: c.update_access_key_options("K", {"queries": object()})),
    ("access key definition cannot be encoded as JSON",
     lambda c: c.create_access_key("n", options={"queries": object()})),
    ("access key name must be a non-empty string", lambda c: c.create_access_key(None)),
]


@pytest.mark.parametrize(("problem", "call"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_sending(recorder: Recorder, problem: str,
                                                  call: Callable[[KeenClient], Any]) -> None:
    with pytest.raises(InvalidQueryError, match=problem) as caught:
        call(make_client())
    assert isinstance(caught.value, ValueError)
    assert recorder.sent == []


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"get_timeout": "soon"}, "get_timeout must be"),
    ({"post_timeout": -1}, "post_timeout must be"),
    ({"get_timeout": (3, 5, 7)}, "get_timeout must be"),
    ({"get_timeout": True}, "get_timeout must be"),
    ({"retry": 3}, "retry must be a keen.RetryPolicy"),
])
def test_bad_client_settings_are_refused_when_the_client_is_made(arguments: dict[str, Any],
                                                                 problem: str) -> None:
    with pytest.raises((ValueError, TypeError), match=problem):
        KeenClient("PID", **arguments)


def test_good_timeouts_are_accepted() -> None:
    for timeout in (305, 2.5, (3.05, 60), (None, 60), [1, 2], None):
        KeenClient("PID", get_timeout=timeout, post_timeout=timeout)
