"""Funnels of the local server (keen-api.md section 10) against hand-computed answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401 (a fixture)

from keen.server.engine import QueryError, run_query
from keen.server.engines.base import EventStore as Storage

NOW = datetime(2015, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def storage(engine: str) -> Iterator[Storage]:
    with open_store(engine) as store:
        store.insert_events("p", "signed up", [{"user": {"id": u}} for u in "abcd"], now=NOW)
        store.insert_events("p", "signed up", [{"user": {"id": None}}, {}], now=NOW)
        # a different actor property name in the second step
        store.insert_events("p", "viewed", [{"visitor": {"guid": g}} for g in "abcb"], now=NOW)
        store.insert_events("p", "purchased", [{"user": {"id": u}} for u in "ae"], now=NOW)
        store.insert_events("p", "purchased", [
            {"user": {"id": "b"}, "keen": {"timestamp": "2015-02-01T00:00:00Z"}}], now=NOW)
        yield store


def step(collection: str, actor: str = "user.id", **extra: Any) -> dict[str, Any]:
    return {"event_collection": collection, "actor_property": actor, **extra}


def funnel(storage: Storage, steps: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    params.setdefault("timeframe", "this_7_days")
    return run_query(storage, "p", "funnel", {"steps": steps, **params}, now=NOW)


def test_each_step_keeps_the_actors_of_the_previous_one(storage: Storage) -> None:
    body = funnel(storage, [step("signed up"), step("viewed", "visitor.guid"),
                            step("purchased")])
    assert body["result"] == [4, 3, 1]  # {a,b,c,d} -> {a,b,c} -> {a}
    assert "actors" not in body


def test_steps_are_echoed_with_defaults(storage: Storage) -> None:
    body = funnel(storage, [step("signed up"), step("purchased", timeframe="this_60_days")],
                  timezone="UTC")
    assert body["steps"] == [
        {"event_collection": "signed up", "actor_property": "user.id", "filters": [],
         "timeframe": "this_7_days", "timezone": "UTC", "optional": False, "inverted": False,
         "with_actors": False},
        {"event_collection": "purchased", "actor_property": "user.id", "filters": [],
         "timeframe": "this_60_days", "timezone": "UTC", "optional": False, "inverted": False,
         "with_actors": False},
    ]
    # the step's own timeframe reaches b's purchase in February
    assert body["result"] == [4, 2]


def test_inverted_steps_keep_actors_who_did_not_do_it(storage: Storage) -> None:
    body = funnel(storage, [step("signed up"), step("purchased", inverted=True,
                                                    with_actors=True)])
    assert body["result"] == [4, 3]
    assert body["actors"] == [None, ["b", "c", "d"]]


def test_optional_steps_are_counted_but_do_not_narrow_later_steps(storage: Storage) -> None:
    only_b = [{"property_name": "visitor.guid", "operator": "eq", "property_value": "b"}]
    body = funnel(storage, [
        step("signed up", with_actors=True),
        step("viewed", "visitor.guid", optional=True, filters=only_b),
        step("purchased", with_actors=True),
    ])
    assert body["result"] == [4, 1, 1]
    assert body["actors"] == [["a", "b", "c", "d"], None, ["a"]]


def test_key_filters_apply_to_every_step(storage: Storage) -> None:
    key_filter = [{"property_name": "user.id", "operator": "ne", "property_value": "a"}]
    body = run_query(storage, "p", "funnel", {"timeframe": "this_7_days", "steps": [
        step("signed up"), step("purchased")]}, now=NOW, extra_filters=key_filter)
    assert body["result"] == [3, 0]


@pytest.mark.parametrize(
    ("steps", "params", "code"),
    [
        (None, {}, "MissingParameterError"),
        ([], {}, "MissingParameterError"),
        ([step("signed up", inverted=True)], {}, "InvalidParameterError"),
        ([step("signed up", optional=True)], {}, "InvalidParameterError"),
        ([step("signed up", optional="yes")], {}, "InvalidParameterError"),
        ([{"event_collection": "signed up"}], {}, "MissingParameterError"),
        ([step("signed up")], {"timeframe": None}, "TimeframeDefinitionError"),
        (["signed up"], {}, "InvalidParameterError"),
    ],
)
def test_bad_funnels_are_400(
    storage: Storage, steps: Any, params: dict[str, Any], code: str
) -> None:
    with pytest.raises(QueryError) as info:
        funnel(storage, steps, **params)
    assert (info.value.status, info.value.error_code) == (400, code)


def test_actors_compare_as_json_values_and_leave_no_tables_behind(
    engine: str, tmp_path: Path
) -> None:
    """1 and 1.0 are one actor, "1" and true others; on a file database, run twice on the same
    pooled connection, the funnel's temporary actor tables are gone afterwards."""
    with open_store(engine, str(tmp_path / "funnel.db")) as store:
        store.insert_events("p", "a", [{"u": 1}, {"u": "1"}, {"u": True}, {"u": 2}], now=NOW)
        store.insert_events("p", "b", [{"u": 1.0}, {"u": 2.5}], now=NOW)
        for _ in range(2):
            body = funnel(store, [step("a", "u"), step("b", "u", with_actors=True),
                                  step("b", "u", inverted=True, with_actors=True)])
            assert body["result"] == [4, 1, 0]
            assert body["actors"] == [None, [1], []]
        if engine == "sqlite":  # DuckDB's temporary tables go with the funnel's own cursor
            with store.reading() as conn:  # type: ignore[attr-defined]
                assert conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0


def test_an_actor_written_as_an_integer_and_as_a_float_is_one_actor(engine: str) -> None:
    """In one collection 1 and 1.0 are one actor (the DuckDB engine keeps them in two typed
    columns, and counts each step's distinct values once they are one number), repeated
    values and all; "1" and true stay others."""
    with open_store(engine) as store:
        store.insert_events("p", "a", [{"u": u} for u in (1, 1.0, 1, 2.5, 2.5, "1", True, 1.0)],
                            now=NOW)
        body = funnel(store, [step("a", "u", with_actors=True),
                              step("a", "u", with_actors=True)])
    assert body["result"] == [4, 4]
    assert body["actors"] == [[True, 1, 2.5, "1"]] * 2


def test_actors_meet_across_collections_whatever_each_collection_stores(engine: str) -> None:
    """The same actor strings meet across steps when one collection only ever held strings
    in the actor property (typed columns in the DuckDB engine) and the other also held a null
    and a list (the JSON body)."""
    odd = ["é\"/\\", "\u2028", "\x7f", "😀", "a\nb", "<>&'", "1"]
    with open_store(engine) as store:
        store.insert_events("p", "a", [{"u": u} for u in odd], now=NOW)
        store.insert_events("p", "b", [{"u": u} for u in odd] + [{"u": None}, {"u": [1]}],
                            now=NOW)
        body = funnel(store, [step("a", "u"), step("b", "u", with_actors=True)])
    assert body["result"] == [7, 7]
    assert body["actors"][1] == sorted(odd)
