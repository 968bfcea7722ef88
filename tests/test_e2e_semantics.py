"""End to end over loopback HTTP: the documented semantics of README's "How the local server
answers queries" for each class of issue 7 section 2 (JSON identity of lists and objects,
strings holding NUL, calendar buckets after a skipped midnight, four-digit years, ``in`` on
timestamps), against every engine."""

from __future__ import annotations

import json
from typing import Any

from _server_helpers import Api, api_fixture, each_engine_server_fixture  # noqa: F401

ALL_TIME = {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"}


def post_query(api: Api, analysis: str, **params: Any) -> Any:
    body = {"timeframe": ALL_TIME, **params}
    response = api.post(f"/queries/{analysis}", api.server.read_key, body=body)
    assert response.status_code == 200, response.text
    return response.json()


def get_query(api: Api, analysis: str, **params: Any) -> Any:
    encoded = {name: value if isinstance(value, str) else json.dumps(value)
               for name, value in {"timeframe": ALL_TIME, **params}.items()}
    response = api.get(f"/queries/{analysis}", api.server.read_key, params=encoded)
    assert response.status_code == 200, response.text
    return response.json()


def test_equal_lists_and_objects_are_one_group_value_and_actor(api: Api) -> None:
    api.write("signups", {"user": [1, 2]}, {"user": {"a": 1, "b": 2}}, {"user": "u"})
    api.write("buys", {"user": [1.0, 2]}, {"user": {"b": 2, "a": 1.0}}, {"user": [1, 2.0]})
    grouped = post_query(api, "count", event_collection="buys", group_by="user")["result"]
    assert grouped == [{"user": [1, 2], "result": 2}, {"user": {"a": 1, "b": 2}, "result": 1}]
    assert post_query(api, "count_unique", event_collection="buys",
                      target_property="user")["result"] == 2
    assert get_query(api, "select_unique", event_collection="buys",
                     target_property="user")["result"] == [[1, 2], {"a": 1, "b": 2}]
    steps = [{"event_collection": c, "actor_property": "user", "with_actors": True}
             for c in ("signups", "buys")]
    funnel = post_query(api, "funnel", steps=steps)
    assert funnel["result"] == [3, 2]
    assert funnel["actors"][1] == [[1, 2], {"a": 1, "b": 2}]


def test_filters_see_strings_past_a_nul(api: Api) -> None:
    api.write("notes", {"s": "nul\u0000byte"}, {"s": "nul"})

    def count(operator: str, value: Any) -> int:
        filters = [{"property_name": "s", "operator": operator, "property_value": value}]
        by_post = post_query(api, "count", event_collection="notes", filters=filters)
        by_get = get_query(api, "count", event_collection="notes", filters=filters)
        assert by_post == by_get
        return int(by_post["result"])

    assert count("eq", "nul") == 1
    assert count("contains", "byte") == 1
    assert count("regex", "e$") == 1
    assert count("in", ["nul", "other"]) == 1
    assert count("eq", "nul\u0000byte") == 1
    grouped = post_query(api, "count", event_collection="notes", group_by="s")["result"]
    assert grouped == [{"s": "nul", "result": 1}, {"s": "nul\u0000byte", "result": 1}]


def test_havana_days_keep_local_midnights_after_the_skipped_one(api: Api) -> None:
    # 00:30 local on each day from 2026-03-07 to 03-16: 05:30Z before the change, 04:30Z after
    events = [{"keen": {"timestamp": f"2026-03-{day:02d}T00:30:00"
                        + ("-05:00" if day < 8 else "-04:00")}} for day in range(7, 17)]
    events[1]["keen"]["timestamp"] = "2026-03-08T01:30:00-04:00"  # 00:30 does not exist
    api.write("visits", *events)
    buckets = post_query(api, "count", event_collection="visits", interval="daily",
                         timezone="America/Havana",
                         timeframe={"start": "2026-03-07T05:00:00Z",
                                    "end": "2026-03-17T04:00:00Z"})["result"]
    assert [b["timeframe"]["start"] for b in buckets] == [
        "2026-03-07T05:00:00.000Z", "2026-03-08T05:00:00.000Z",
        *[f"2026-03-{day:02d}T04:00:00.000Z" for day in range(9, 17)]]
    assert [b["value"] for b in buckets] == [1] * 10


def test_years_before_1000_are_shown_with_four_digits_and_read_back(api: Api) -> None:
    api.write("ancient", {"keen": {"timestamp": "0999-12-31T23:59:59.999Z"}, "n": 1})
    extracted = post_query(api, "extraction", event_collection="ancient")["result"]
    stamp = extracted[0]["keen"]["timestamp"]
    assert stamp == "0999-12-31T23:59:59.999Z"
    grouped = post_query(api, "count", event_collection="ancient",
                         group_by="keen.timestamp")["result"]
    assert grouped == [{"keen.timestamp": stamp, "result": 1}]
    buckets = post_query(api, "count", event_collection="ancient", interval="yearly",
                         timeframe={"start": "0998-06-01T00:00:00Z",
                                    "end": "1001-01-01T00:00:00Z"})["result"]
    assert [b["timeframe"]["start"] for b in buckets] == [
        "0998-06-01T00:00:00.000Z", "0999-01-01T00:00:00.000Z", "1000-01-01T00:00:00.000Z"]
    assert [b["value"] for b in buckets] == [0, 1, 0]
    # everything shown is accepted back: as a timeframe, a filter value and a new event
    assert post_query(api, "count", event_collection="ancient",
                      timeframe=buckets[1]["timeframe"])["result"] == 1
    assert post_query(api, "count", event_collection="ancient", filters=[
        {"property_name": "keen.timestamp", "operator": "eq", "property_value": stamp},
    ])["result"] == 1
    api.write("ancient", {"keen": {"timestamp": stamp}, "n": 2})


def test_in_on_keen_timestamp_is_eq_against_each_value(api: Api) -> None:
    api.write("clicks", {"keen": {"timestamp": "2026-03-08T10:00:00Z"}},
              {"keen": {"timestamp": "2026-03-08T12:00:00Z"}})

    def count(operator: str, value: Any) -> int:
        filters = [{"property_name": "keen.timestamp", "operator": operator,
                    "property_value": value}]
        return int(get_query(api, "count", event_collection="clicks",
                             filters=filters)["result"])

    assert count("eq", "2026-03-08T11:00:00+01:00") == 1
    assert count("in", ["2026-03-08T11:00:00+01:00"]) == 1
    assert count("in", ["2026-03-08T11:00:00+01:00", "2026-03-08T04:00:00-08:00"]) == 2
    assert count("ne", "2026-03-08T11:00:00+01:00") == 1
