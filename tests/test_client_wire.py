"""Every public function sends the request keen 0.7.0 sent (tests/data/wire_0_7_0.json).

The fixture was recorded from keen 0.7.0 (HTTPAdapter.send intercepted) with the calls listed
in CASES below, made with the same arguments here. Differences that are deliberate are applied
to the expected requests in ``_expected``: the Keen-Sdk version, the finite timeout that
saved-query and dataset requests now carry (0.7.0 sent them with no timeout at all), the
read key for listing datasets (bug 8), and the User-Agent, which names this library, its
version and the Python running it (issue 8) where 0.7.0 sent requests' default.
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from _client_helpers import Recorder, install_recorder, recorder_fixture  # noqa: F401 (a fixture)
from requests.utils import default_user_agent

import keen
from keen.api import USER_AGENT
from keen.client import KeenClient

WIRE = json.loads((Path(__file__).parent / "data" / "wire_0_7_0.json").read_text())

F = [{"property_name": "a b", "operator": "eq", "property_value": "x/y&z"}]
TF = {"start": "2015-07-01T07:00:00.000Z", "end": "2015-08-01T07:00:00.000Z"}

CASES: dict[str, Callable[[Any], Any]] = {
    "add_event": lambda c: c.add_event("my coll", {"a": 1, "keen": {"addons": []}},
                                       timestamp=datetime.datetime(2020, 1, 2, 3, 4, 5)),
    "add_event_plain": lambda c: c.add_event("purchases", {"a": 1, "b": "\u00e9"}),
    "add_events": lambda c: c.add_events({"a": [{"x": 1}], "b": [{"y": "z"}]}),
    "count": lambda c: c.count("purchases", timeframe=TF, timezone="US/Pacific", interval="daily",
                               filters=F, group_by=["item.id", "store.city"],
                               order_by={"property_name": "result", "direction": "DESC"},
                               max_age=300, limit=5),
    "count_min": lambda c: c.count("purchases", timeframe="this_7_days"),
    "count_groupstr": lambda c: c.count("purchases", timeframe="this_7_days", group_by="a",
                                        order_by=[{"property_name": "result"}]),
    "sum": lambda c: c.sum("p", "price", timeframe="this_1_days", filters=F),
    "maximum": lambda c: c.maximum("p", "price", timeframe="this_1_days"),
    "average": lambda c: c.average("p", "price", timeframe="this_1_days"),
    "median": lambda c: c.median("p", "price", timeframe="this_1_days"),
    "percentile": lambda c: c.percentile("p", "price", 99.5, timeframe="this_1_days",
                                         timezone=-28800),
    "count_unique": lambda c: c.count_unique("p", "u", timeframe="this_1_days"),
    "select_unique": lambda c: c.select_unique("p", "u", timeframe="this_1_days"),
    "extraction": lambda c: c.extraction("p", timeframe="this_1_days", filters=F, latest=10,
                                         email="a@b.c", property_names=["a", "b"]),
    "funnel": lambda c: c.funnel([{"event_collection": "s", "actor_property": "u"},
                                  {"event_collection": "p", "actor_property": "u"}],
                                 timeframe="this_1_days", timezone=3600, max_age=100,
                                 all_keys=True),
    "multi_analysis": lambda c: c.multi_analysis(
        "p", {"total": {"analysis_type": "sum", "target_property": "price"}},
        timeframe="this_1_days", interval="daily", timezone="UTC", filters=F, group_by="g",
        order_by={"property_name": "result"}, max_age=5, limit=3),
    "delete_events": lambda c: c.delete_events("my coll", timeframe="this_1_days", timezone=5,
                                               filters=F),
    "get_collection": lambda c: c.get_collection("my coll"),
    "get_all_collections": lambda c: c.get_all_collections(),
    "create_access_key": lambda c: c.create_access_key(
        "n", is_active=False, permitted=["queries"], options={"queries": {"filters": []}}),
    "create_access_key_default": lambda c: c.create_access_key("n"),
    "list_access_keys": lambda c: c.list_access_keys(),
    "get_access_key": lambda c: c.get_access_key("K"),
    "update_access_key_name": lambda c: c.update_access_key_name("K", "new"),
    "update_access_key_permissions": lambda c: c.update_access_key_permissions("K", ["writes"]),
    "update_access_key_options": lambda c: c.update_access_key_options(
        "K", {"writes": {"autofill": {"a": 1}}}),
    "update_access_key_full": lambda c: c.update_access_key_full("K", "n", True, ["writes"], {}),
    "revoke_access_key": lambda c: c.revoke_access_key("K"),
    "unrevoke_access_key": lambda c: c.unrevoke_access_key("K"),
    "delete_access_key": lambda c: c.delete_access_key("K"),
    "sq_all": lambda c: c.saved_queries.all(),
    "sq_get": lambda c: c.saved_queries.get("q"),
    "sq_results": lambda c: c.saved_queries.results("q"),
    "sq_create": lambda c: c.saved_queries.create("q", {"refresh_rate": 0, "query": {
        "analysis_type": "count", "event_collection": "c", "timeframe": "this_1_days"}}),
    "sq_create_str": lambda c: c.saved_queries.create("q", '{"refresh_rate": 0}'),
    "sq_update_full": lambda c: c.saved_queries.update_full("q", {"refresh_rate": 0}),
    "sq_update": lambda c: c.saved_queries.update("q", {
        "refresh_rate": 14400, "query": {"timeframe": "this_2_days"},
        "metadata": {"visualization": {"chart_type": "metric"}}}),
    "sq_delete": lambda c: c.saved_queries.delete("q"),
    "cd_all": lambda c: c.cached_datasets.all(),
    "cd_get": lambda c: c.cached_datasets.get("d"),
    "cd_create": lambda c: c.cached_datasets.create("d", {
        "analysis_type": "count", "event_collection": "c", "timeframe": "this_1_days",
        "interval": "daily"}, "user.id", "My DS"),
    "cd_results": lambda c: c.cached_datasets.results("d", "u1", "this_1_days"),
    "cd_results_json": lambda c: c.cached_datasets.results("d", {"a": "b", "c": 1}, TF),
    "cd_delete": lambda c: c.cached_datasets.delete("d"),
}

#: 0.7.0 sent these without any timeout; they now use the client's get timeout (305 s).
_NOW_WITH_TIMEOUT = ("sq_", "cd_")
#: Recorded cases deliberately not compared here (bugs, tested in test_client_bugs.py).
_BUGGY = {"minimum", "beacon"}


def _expected(name: str) -> list[dict[str, Any]]:
    out = []
    for request in WIRE[name]["requests"]:
        request = dict(request)
        headers = dict(request["headers"])
        headers["Keen-Sdk"] = f"python-{keen.__version__}"
        assert headers["User-Agent"] == default_user_agent()  # what 0.7.0 sent ...
        headers["User-Agent"] = USER_AGENT  # ... replaced on purpose (issue 8)
        request["headers"] = headers
        if name.startswith(_NOW_WITH_TIMEOUT):
            request["timeout"] = 305
        if name == "cd_all":  # bug 8: 0.7.0 checked for the read key but sent the master key
            headers["Authorization"] = "RK"
        out.append(request)
    return out


def _as_recorded(recorder: Recorder) -> list[dict[str, Any]]:
    return [{"method": s.method, "url": s.url, "headers": s.headers, "body": s.body,
             "timeout": s.timeout} for s in recorder.sent]


def fixture_client() -> KeenClient:
    return KeenClient("PID", write_key="WK", read_key="RK", master_key="MK",
                      base_url="http://h")


def test_every_recorded_case_is_replayed() -> None:
    assert set(WIRE) - _BUGGY == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_client_sends_what_0_7_0_sent(name: str, recorder: Recorder) -> None:
    CASES[name](fixture_client())
    assert _as_recorded(recorder) == _expected(name)


FACADE_CASES = [n for n in CASES if not n.startswith(("sq_", "cd_"))]


@pytest.mark.parametrize("name", FACADE_CASES)
def test_module_functions_send_what_0_7_0_sent(name: str, recorder: Recorder,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for setting, value in [("project_id", "PID"), ("write_key", "WK"), ("read_key", "RK"),
                           ("master_key", "MK"), ("base_url", "http://h")]:
        monkeypatch.setattr(keen, setting, value)
    keen.reset_client()
    try:
        CASES[name](keen)
    finally:
        keen.reset_client()
    assert _as_recorded(recorder) == _expected(name)


def test_query_results_and_all_keys(recorder: Recorder) -> None:
    client = fixture_client()
    assert client.count("c", timeframe="this_1_days") == 1
    assert client.count("c", timeframe="this_1_days", all_keys=True) == {"result": 1}
    assert client.extraction("c", all_keys=True) == {"result": 1}
    assert client.multi_analysis("c", {"n": {"analysis_type": "count"}}, all_keys=True) == {
        "result": 1}


def test_standard_deviation_on_client_and_module(recorder: Recorder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = fixture_client()
    assert client.standard_deviation("p", "price", timeframe="this_1_days", timezone=0) == 1
    monkeypatch.setattr(keen, "_client", client)
    assert keen.standard_deviation("p", "price", timeframe="this_1_days") == 1
    first, second = recorder.sent
    assert first.url == ("http://h/3.0/projects/PID/queries/standard_deviation?"
                         "event_collection=p&timeframe=this_1_days&timezone=0"
                         "&target_property=price")
    assert first.headers["Authorization"] == "RK"
    assert second.method == "GET"


def _long_filters(value_length: int) -> list[dict[str, Any]]:
    return [{"property_name": "user.id", "operator": "in", "property_value": ["x" * value_length]}]


def test_long_query_is_sent_as_post_with_json_body(recorder: Recorder) -> None:
    client = fixture_client()
    filters = _long_filters(4000)
    result = client.count("purchases", timeframe=TF, filters=filters, group_by=["a", "b"],
                          order_by={"property_name": "result"}, limit=2, timezone=0)
    assert result == 1
    sent = recorder.last
    assert sent.method == "POST"
    assert sent.url == "http://h/3.0/projects/PID/queries/count"
    assert sent.headers["Authorization"] == "RK"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {"event_collection": "purchases", "timeframe": TF, "timezone": 0,
                           "filters": filters, "group_by": ["a", "b"],
                           "order_by": [{"property_name": "result"}], "limit": 2}


def test_query_at_the_length_limit_stays_a_get(recorder: Recorder) -> None:
    client = fixture_client()
    base = "http://h/3.0/projects/PID/queries/count?event_collection=p&filters="
    # find the longest value whose GET URL still fits in 4,000 characters
    encoded_overhead = len(requests.Request("GET", "http://h/3.0/projects/PID/queries/count",
                                            params={"event_collection": "p",
                                                    "filters": json.dumps(_long_filters(0))})
                           .prepare().url or "")
    length = 4000 - encoded_overhead
    client.count("p", filters=_long_filters(length))
    assert recorder.last.method == "GET"
    assert len(recorder.last.url) == 4000
    assert recorder.last.url.startswith(base)
    client.count("p", filters=_long_filters(length + 1))
    assert recorder.last.method == "POST"


def test_dataset_listing_pages(recorder: Recorder) -> None:
    client = fixture_client()
    client.cached_datasets.all(limit=10, after_name="DATASET_NAME_10")
    client.cached_datasets.all(after_name="b")
    first, second = recorder.sent
    assert first.url == "http://h/3.0/projects/PID/datasets?limit=10&after_name=DATASET_NAME_10"
    assert first.headers["Authorization"] == "RK"
    assert second.url == "http://h/3.0/projects/PID/datasets?after_name=b"


def test_given_session_carries_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they override session.verify
        monkeypatch.delenv(name, raising=False)
    rec = Recorder()
    session = requests.Session()
    session.headers["X-Proxy-Auth"] = "corp"
    session.verify = "/etc/ssl/corp-ca.pem"

    class Adapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            assert kwargs["verify"] == "/etc/ssl/corp-ca.pem"
            return rec.send(self, request, **kwargs)

    session.mount("http://", Adapter())
    client = KeenClient("PID", write_key="WK", read_key="RK", base_url="http://h",
                        session=session)
    client.add_event("c", {"a": 1})
    assert client.count("c") == 1
    assert client.api.session is session
    assert [s.headers["X-Proxy-Auth"] for s in rec.sent] == ["corp", "corp"]
    client.close()
    assert session.adapters  # a session the caller gave is not closed by the client


def test_partial_access_key_updates_keep_the_rest(recorder: Recorder) -> None:
    client = fixture_client()
    client.add_access_key_permissions("K", ["writes", "queries", "writes"])
    client.remove_access_key_permissions("K", ["queries"])
    added, removed = recorder.sent[1].json(), recorder.sent[3].json()
    assert added == {"name": "n", "is_active": True, "permitted": ["queries", "writes"],
                     "options": {"writes": None}}
    assert removed == {"name": "n", "is_active": True, "permitted": [],
                       "options": {"writes": None}}
    assert [s.method for s in recorder.sent] == ["GET", "POST", "GET", "POST"]


def test_user_agent_names_the_library_its_version_and_python(recorder: Recorder) -> None:
    fixture_client().count("c", timeframe="this_1_days")
    agent = recorder.last.headers["User-Agent"]
    assert agent.startswith(f"keen-python/{keen.__version__} ")
    assert platform.python_version() in agent and "python-requests/" in agent
