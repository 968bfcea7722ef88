"""End to end: every analysis through the client and the module facade, over loopback HTTP.

The expected answers are computed by hand from the datasets of ``_e2e_helpers`` (prices 10,
20, 30, 40, 100 in the last three days before NOW, Wednesday 2026-03-11 15:30 UTC).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from _e2e_helpers import WEEK, Surface, serve_loaded, surface_for, where
from _engines import ENGINE_PARAMS

from keen import direction
from keen.server import LocalKeenServer


@pytest.fixture(scope="module", params=ENGINE_PARAMS, name="loaded")
def loaded_fixture(request: pytest.FixtureRequest) -> Iterator[LocalKeenServer]:
    """The datasets of ``_e2e_helpers`` on a server of each engine (tests must not change it)."""
    yield from serve_loaded(str(request.param))


@pytest.fixture(params=["client", "module"])
def api(request: pytest.FixtureRequest, loaded: LocalKeenServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Surface]:
    """A KeenClient, or the keen module configured by its settings, for the loaded server."""
    yield from surface_for(request.param, loaded, monkeypatch)


def test_simple_analyses(api: Surface) -> None:
    assert api.count("purchases", timeframe=WEEK) == 5
    assert api.sum("purchases", "price", timeframe=WEEK) == 200
    assert api.minimum("purchases", "price", timeframe=WEEK) == 10
    assert api.maximum("purchases", "price", timeframe=WEEK) == 100
    assert api.average("purchases", "price", timeframe=WEEK) == 40
    # nearest rank: the ceil(p/100 * 5)-th smallest of 10, 20, 30, 40, 100
    assert api.median("purchases", "price", timeframe=WEEK) == 30
    assert api.percentile("purchases", "price", 90, timeframe=WEEK) == 100
    assert api.percentile("purchases", "price", 40, timeframe=WEEK) == 20
    # population: deviations -30, -20, -10, 0, 60 -> variance 5000 / 5
    assert api.standard_deviation("purchases", "price", timeframe=WEEK) == pytest.approx(
        math.sqrt(1000))
    assert api.count_unique("purchases", "user.id", timeframe=WEEK) == 3
    assert api.select_unique("purchases", "user.email", timeframe=WEEK) == [
        "u1@example.com", "u2@example.com", "u3@example.com"]


def test_timeframes(api: Surface) -> None:
    assert api.count("purchases", timeframe="this_60_days") == 6  # with the old purchase
    assert api.count("purchases", timeframe="this_1_days") == 2
    assert api.count("purchases", timeframe="previous_1_days") == 1  # 2026-03-10 only
    assert api.count("purchases", timeframe="this_2_days") == 3
    assert api.count("purchases", timeframe={"start": "2026-03-09T00:00:00Z",
                                             "end": "2026-03-09T12:00:00Z"}) == 1  # end excluded
    assert api.count("purchases", timeframe={"start": "2026-03-09T00:00:00Z",
                                             "end": "2026-03-10T00:00:00Z"}) == 2


def test_timezone_moves_relative_timeframes(api: Surface) -> None:
    # NOW is 2026-03-12 00:30 in Tokyo: "yesterday" there is 03-10 15:00 .. 03-11 15:00 UTC
    assert api.count("purchases", timeframe="yesterday") == 1
    assert api.count("purchases", timeframe="yesterday", timezone="Asia/Tokyo") == 2
    assert api.count("purchases", timeframe="yesterday", timezone=9 * 3600) == 2
    assert api.count("purchases", timeframe="today", timezone="Asia/Tokyo") == 0
    # timezone=0 is UTC
    assert api.count("purchases", timeframe="today", timezone=0) == 2
    # weeks start on Sunday (03-08): the sign-ups of Sunday morning are in this week
    assert api.count("sign_ups", timeframe="this_week") == 4
    assert api.count("sign_ups", timeframe="previous_week") == 0


def test_daily_buckets_follow_daylight_saving_time(api: Surface) -> None:
    # Los Angeles moved to PDT on Sunday 2026-03-08: that local day lasts 23 hours
    buckets = api.count("purchases", timeframe={"start": "2026-03-07T08:00:00Z",
                                                "end": "2026-03-10T07:00:00Z"},
                        interval="daily", timezone="US/Pacific")
    assert [(b["timeframe"]["start"], b["timeframe"]["end"], b["value"]) for b in buckets] == [
        ("2026-03-07T08:00:00.000Z", "2026-03-08T08:00:00.000Z", 0),
        ("2026-03-08T08:00:00.000Z", "2026-03-09T07:00:00.000Z", 0),
        ("2026-03-09T07:00:00.000Z", "2026-03-10T07:00:00.000Z", 2)]


def test_filters(api: Surface) -> None:
    assert api.count("purchases", timeframe=WEEK, filters=[where("price", "gte", 30)]) == 3
    assert api.sum("purchases", "price", timeframe=WEEK,
                   filters=[where("country", "in", ["NL", "DE"])]) == 140
    assert api.count("purchases", timeframe=WEEK,
                     filters=[where("user.id", "eq", "u1"), where("price", "lt", 30)]) == 1
    assert api.count("purchases", timeframe=WEEK, filters=[where("coupon", "exists", True)]) == 0


def test_group_by_order_by_limit(api: Surface) -> None:
    assert api.count("purchases", timeframe=WEEK, group_by="country") == [
        {"country": "DE", "result": 1}, {"country": "NL", "result": 2},
        {"country": "US", "result": 2}]
    assert api.sum("purchases", "price", timeframe=WEEK, group_by="item.id") == [
        {"item.id": 1, "result": 30}, {"item.id": 2, "result": 70},
        {"item.id": 3, "result": 100}]
    assert api.sum("purchases", "price", timeframe=WEEK, group_by="item.id",
                   order_by={"property_name": "result", "direction": direction.DESCENDING},
                   limit=2) == [{"item.id": 3, "result": 100}, {"item.id": 2, "result": 70}]
    assert api.count("purchases", timeframe=WEEK, group_by=["country", "item.id"],
                     filters=[where("country", "eq", "US")]) == [
        {"country": "US", "item.id": 1, "result": 1},
        {"country": "US", "item.id": 2, "result": 1}]


def test_interval(api: Surface) -> None:
    assert api.count("purchases", timeframe="this_3_days", interval="daily") == [
        {"timeframe": {"start": "2026-03-09T00:00:00.000Z", "end": "2026-03-10T00:00:00.000Z"},
         "value": 2},
        {"timeframe": {"start": "2026-03-10T00:00:00.000Z", "end": "2026-03-11T00:00:00.000Z"},
         "value": 1},
        {"timeframe": {"start": "2026-03-11T00:00:00.000Z", "end": "2026-03-12T00:00:00.000Z"},
         "value": 2},
    ]
    grouped = api.count("purchases", timeframe="this_2_days", interval="daily",
                        group_by="country")
    assert [bucket["value"] for bucket in grouped] == [
        [{"country": "NL", "result": 1}],
        [{"country": "DE", "result": 1}, {"country": "US", "result": 1}]]


def test_all_keys_returns_the_whole_answer(api: Surface) -> None:
    answer = api.count("purchases", timeframe=WEEK, all_keys=True)
    assert isinstance(answer, dict)
    assert answer["result"] == 5


def test_extraction(api: Surface) -> None:
    events = api.extraction("purchases", timeframe=WEEK)
    assert [event["price"] for event in events] == [10, 20, 30, 40, 100]  # in time order
    assert events[0]["keen"]["timestamp"] == "2026-03-09T10:00:00.000Z"
    assert events[0]["user"] == {"id": "u1", "email": "u1@example.com"}
    latest = api.extraction("purchases", timeframe=WEEK, latest=2)
    assert [event["price"] for event in latest] == [40, 100]
    assert api.extraction("purchases", timeframe=WEEK, property_names=["price", "user.id"],
                          filters=[where("country", "eq", "NL")]) == [
        {"price": 10, "user": {"id": "u1"}}, {"price": 30, "user": {"id": "u1"}}]
    assert api.extraction("purchases", timeframe=WEEK, email="ada@example.com") == (
        "Processing. Check the specified email for the extraction results.")


def test_funnel(api: Surface) -> None:
    steps = [{"event_collection": "sign_ups", "actor_property": "user.id"},
             {"event_collection": "purchases", "actor_property": "user.id"},
             {"event_collection": "refunds", "actor_property": "user.id"}]
    assert api.funnel(steps, timeframe=WEEK) == [4, 3, 1]
    steps[2]["with_actors"] = True
    answer = api.funnel(steps, timeframe=WEEK, all_keys=True)
    assert answer["result"] == [4, 3, 1]
    assert [step["event_collection"] for step in answer["steps"]] == [
        "sign_ups", "purchases", "refunds"]
    assert answer["actors"][2] == ["u1"]
    # before the purchases: everyone signed up, nobody bought yet
    assert api.funnel(steps[:2], timeframe={"start": "2026-03-08T00:00:00Z",
                                            "end": "2026-03-09T00:00:00Z"}) == [4, 0]


def test_multi_analysis(api: Surface) -> None:
    analyses = {"total": {"analysis_type": "sum", "target_property": "price"},
                "buyers": {"analysis_type": "count_unique", "target_property": "user.id"},
                "n": {"analysis_type": "count"}}
    assert api.multi_analysis("purchases", analyses, timeframe=WEEK) == {
        "total": 200, "buyers": 3, "n": 5}
    assert api.multi_analysis("purchases", analyses, timeframe=WEEK, group_by="country",
                              filters=[where("price", "lt", 100)]) == [
        {"country": "NL", "total": 40, "buyers": 1, "n": 2},
        {"country": "US", "total": 60, "buyers": 2, "n": 2}]
    daily = api.multi_analysis("purchases", {"n": {"analysis_type": "count"}},
                               timeframe="this_2_days", interval="daily")
    assert [bucket["value"] for bucket in daily] == [{"n": 1}, {"n": 2}]



def test_more_shapes(api: Surface) -> None:
    assert api.percentile("purchases", "price", 0, timeframe=WEEK) == 10  # 0 is sent
    assert api.count("purchases", timeframe=WEEK, group_by="country", order_by=[
        {"property_name": "result", "direction": direction.DESCENDING},
        {"property_name": "country"}]) == [
        {"country": "NL", "result": 2}, {"country": "US", "result": 2},
        {"country": "DE", "result": 1}]
    assert api.select_unique("purchases", "country", timeframe=WEEK, group_by="item.id") == [
        {"item.id": 1, "result": ["NL", "US"]}, {"item.id": 2, "result": ["NL", "US"]},
        {"item.id": 3, "result": ["DE"]}]
    # every_2_days counts from the day boundary at the start: 03-08..03-10, 03-10..03-12
    assert [b["value"] for b in api.count("purchases", timeframe="this_4_days",
                                          interval="every_2_days")] == [2, 3]
    # with an interval, order_by and limit apply inside each bucket
    top = api.sum("purchases", "price", timeframe="this_2_days", interval="daily",
                  group_by="country", limit=1,
                  order_by={"property_name": "result", "direction": direction.DESCENDING})
    assert [b["value"] for b in top] == [[{"country": "NL", "result": 30}],
                                         [{"country": "DE", "result": 100}]]


def test_funnel_optional_and_inverted_steps(api: Surface) -> None:
    assert api.funnel([
        {"event_collection": "sign_ups", "actor_property": "user.id"},
        {"event_collection": "refunds", "actor_property": "user.id", "inverted": True},
        {"event_collection": "purchases", "actor_property": "user.id", "optional": True},
    ], timeframe=WEEK) == [4, 3, 2]  # u2, u3, u4 asked no refund; u2, u3 of them bought
