"""Values compare as JSON values everywhere identity matters (README: "How the local server
answers queries"): group_by, count_unique, select_unique, funnel actors and filters, over lists,
objects, ints and integral floats, booleans and strings holding NUL.

Each property compares the engine's answer with a brute-force reference written here, in
plain Python over the same events, that shares no code with the server.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest
from _engines import engine_fixture, open_store  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.server.engine import run_query
from keen.server.engines.base import EventStore as Storage

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)
TF = "this_1_days"
MISSING = object()
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# ------------------------------------------------------------------ the reference


def ref_key(value: Any) -> Any:
    """Identity of a JSON value: numbers by exact value (1 == 1.0, true is not 1), objects
    whatever their key order, strings whole."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", Fraction(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, list):
        return ("list", tuple(ref_key(item) for item in value))
    return ("obj", frozenset((key, ref_key(item)) for key, item in value.items()))


def canonical_shape(value: Any) -> bool:
    """True when a shown value is the documented representative: integral numbers as ints,
    object keys in sorted order, all the way down."""
    if isinstance(value, float):
        return not value.is_integer()
    if isinstance(value, list):
        return all(canonical_shape(item) for item in value)
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(canonical_shape(v) for v in value.values())
    return True


def ref_filter(event: dict[str, Any], operator: str, wanted: Any) -> bool:
    """README's filter semantics on property ``v``, written out."""
    value = event.get("v", MISSING)
    elements = [] if value is MISSING else [value, *(value if isinstance(value, list) else [])]
    if operator in ("eq", "ne", "in"):
        choices = wanted if operator == "in" else [wanted]
        if value is MISSING:
            hit = any(choice is None for choice in choices)
        else:
            hit = any(ref_key(e) == ref_key(c) for e in elements for c in choices)
        return hit != (operator == "ne")
    if value is MISSING:
        return operator == "not_contains"
    if operator in ("contains", "not_contains"):
        if isinstance(value, str):
            hit = isinstance(wanted, str) and wanted in value
        elif isinstance(value, list):
            hit = any(ref_key(e) == ref_key(wanted)
                      or (isinstance(e, str) and isinstance(wanted, str) and wanted in e)
                      for e in value)
        else:
            hit = False
        return hit != (operator == "not_contains")
    if operator == "regex":
        return any(isinstance(e, str) and re.search(wanted, e) is not None for e in elements)

    def ordered(e: Any) -> bool:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (e, wanted))
        if not numbers and not (isinstance(e, str) and isinstance(wanted, str)):
            return False
        return bool(e < wanted) if operator == "lt" else bool(e > wanted)

    return any(ordered(e) for e in elements)


# ------------------------------------------------------------------ values and events

STRINGS = st.sampled_from(["", "a", "b", "nul", "nul\x00byte", "a\x00", "\x00", "ab", "1"])
NUMBERS = st.one_of(
    st.integers(-2, 2),
    st.integers(-2, 2).map(float),  # the same values written as floats
    st.sampled_from([0.5, -1.5, 1e15, 1e15 + 0.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    ),
    max_leaves=6,
)
EVENT = st.fixed_dictionaries(
    {"step": st.sampled_from(["a", "b"])},
    optional={"v": VALUES},
)


def respell(value: Any) -> Any:
    """The same JSON value written differently: ints as floats, object members reversed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [respell(item) for item in value]
    if isinstance(value, dict):
        return {key: respell(value[key]) for key in reversed(list(value))}
    return value


# Events drawing from a small pool of values, some respelled: equal values in several spellings.
RESPELLABLE = st.one_of(
    st.lists(st.integers(-2, 2), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(-2, 2) | STRINGS,
                    min_size=2, max_size=3),
    VALUES,
)
SHARED = st.lists(RESPELLABLE, min_size=1, max_size=3).flatmap(lambda pool: st.lists(
    st.builds(
        lambda value, again, step: {"step": step, "v": respell(value) if again else value},
        st.sampled_from(pool), st.booleans(), st.sampled_from(["a", "b"])),
    min_size=1, max_size=12))
EVENTS = st.one_of(st.lists(EVENT, min_size=1, max_size=12), SHARED)


@pytest.fixture(name="store")
def store_fixture(engine: str) -> Iterator[Storage]:
    """An empty store of each engine (``tests/_engines.py``)."""
    with open_store(engine) as storage:
        yield storage


def load(storage: Storage, events: list[dict[str, Any]]) -> str:
    """Store ``events`` in a fresh collection (per example); returns its name."""
    storage.delete_events("p", "c", now=NOW)
    results = storage.insert_events("p", "c", events, now=NOW)
    assert all(r["success"] for r in results), results
    return "c"


def query(storage: Storage, analysis: str, **params: Any) -> Any:
    params = {"event_collection": "c", "timeframe": TF, **params}
    return run_query(storage, "p", analysis, params, now=NOW)["result"]


def present(events: list[dict[str, Any]]) -> list[Any]:
    return [e["v"] for e in events if e.get("v") is not None]


# ------------------------------------------------------------------ properties


@SETTINGS
@given(events=EVENTS)
def test_group_by_makes_one_group_per_json_value(store: Storage,
                                                 events: list[dict[str, Any]]) -> None:
    load(store, events)
    groups = query(store, "count", group_by="v")
    expected = Counter(ref_key(e.get("v")) for e in events)  # missing and null: one group
    assert Counter({ref_key(g["v"]): g["result"] for g in groups}) == expected
    assert len(groups) == len(expected)
    assert all(canonical_shape(g["v"]) for g in groups)


@SETTINGS
@given(events=EVENTS)
def test_count_unique_and_select_unique_count_each_json_value_once(
    store: Storage, events: list[dict[str, Any]]
) -> None:
    load(store, events)
    distinct = {ref_key(v) for v in present(events)}
    assert query(store, "count_unique", target_property="v") == len(distinct)
    unique = query(store, "select_unique", target_property="v")
    assert len(unique) == len(distinct)
    assert {ref_key(v) for v in unique} == distinct
    assert all(canonical_shape(v) for v in unique)


@SETTINGS
@given(events=EVENTS)
def test_funnel_actors_are_json_values(store: Storage, events: list[dict[str, Any]]) -> None:
    load(store, events)
    steps = [
        {"event_collection": "c", "actor_property": "v", "timeframe": TF,
         "filters": [{"property_name": "step", "operator": "eq", "property_value": name}],
         "with_actors": True}
        for name in ("a", "b")
    ]
    body = run_query(store, "p", "funnel", {"steps": steps}, now=NOW)
    did = [{ref_key(e["v"]) for e in events if e["step"] == name and e.get("v") is not None}
           for name in ("a", "b")]
    assert body["result"] == [len(did[0]), len(did[0] & did[1])]
    assert [{ref_key(a) for a in actors} for actors in body["actors"]] == [
        did[0], did[0] & did[1]]
    assert all(len(actors) == len(set(map(ref_key, actors))) for actors in body["actors"])


FILTERS = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne"]), VALUES),
    st.tuples(st.just("in"), st.lists(VALUES, max_size=3)),
    st.tuples(st.sampled_from(["contains", "not_contains"]), st.one_of(STRINGS, NUMBERS)),
    st.tuples(st.just("regex"), st.sampled_from(["e$", "^nul", "\x00", "a$", "^$", "\x00b"])),
    st.tuples(st.sampled_from(["lt", "gt"]), st.one_of(STRINGS, NUMBERS)),
)


@SETTINGS
@given(events=EVENTS, flt=FILTERS)
def test_filters_see_whole_strings_and_json_values(
    store: Storage, events: list[dict[str, Any]], flt: tuple[str, Any]
) -> None:
    load(store, events)
    operator, wanted = flt
    filters = [{"property_name": "v", "operator": operator, "property_value": wanted}]
    expected = sum(ref_filter(e, operator, wanted) for e in events)
    assert query(store, "count", filters=filters) == expected


# ------------------------------------------------------------------ the examples


def test_lists_and_objects_differing_only_in_spelling_are_one_value(store: Storage) -> None:
    load(store, [{"v": [1, 2]}, {"v": [1.0, 2]}, {"v": {"a": 1, "b": 2}},
                 {"v": {"b": 2, "a": 1.0}}, {"v": [True, 2]}, {"v": 1}, {"v": 1.0}])
    assert query(store, "count", group_by="v") == [
        {"v": 1, "result": 2}, {"v": [True, 2], "result": 1}, {"v": [1, 2], "result": 2},
        {"v": {"a": 1, "b": 2}, "result": 2}]  # sorted: booleans before numbers
    assert query(store, "count_unique", target_property="v") == 4
    shown = query(store, "select_unique", target_property="v")
    assert shown == [1, [True, 2], [1, 2], {"a": 1, "b": 2}]
    assert [type(x) for x in shown[2]] == [int, int]  # the representative: ints, sorted keys
    assert list(shown[3]) == ["a", "b"]


def test_a_string_holding_nul_is_compared_whole(store: Storage) -> None:
    load(store, [{"v": "nul\x00byte"}, {"v": "nul"}, {"v": ["x", "nul\x00byte"]}])

    def count(operator: str, value: Any) -> int:
        return int(query(store, "count", filters=[
            {"property_name": "v", "operator": operator, "property_value": value}]))

    assert count("eq", "nul") == 1
    assert count("in", ["nul"]) == 1
    assert count("ne", "nul") == 2
    assert count("eq", "nul\x00byte") == 2
    assert count("contains", "byte") == 2
    assert count("not_contains", "byte") == 1
    assert count("regex", "e$") == 2
    assert count("gt", "nul") == 2
    assert query(store, "count", group_by="v") == [
        {"v": "nul", "result": 1}, {"v": "nul\x00byte", "result": 1},
        {"v": ["x", "nul\x00byte"], "result": 1}]
    assert query(store, "select_unique", target_property="v") == [
        "nul", "nul\x00byte", ["x", "nul\x00byte"]]


def test_funnel_actors_spelled_differently_are_one_actor(store: Storage) -> None:
    load(store, [{"step": "a", "v": {"id": [1, 2], "org": "x"}},
                 {"step": "b", "v": {"org": "x", "id": [1.0, 2.0]}},
                 {"step": "a", "v": 7.0}, {"step": "b", "v": 7}])
    steps = [{"event_collection": "c", "actor_property": "v", "timeframe": TF,
              "filters": [{"property_name": "step", "operator": "eq", "property_value": s}],
              "with_actors": True} for s in ("a", "b")]
    body = run_query(store, "p", "funnel", {"steps": steps}, now=NOW)
    assert body["result"] == [2, 2]
    assert body["actors"][1] == [7, {"id": [1, 2], "org": "x"}]
    assert type(body["actors"][1][0]) is int


def test_sqlite_before_3_38_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``->`` the JSON text of a value is rebuilt from its type and value (the sqlite
    engine only)."""
    import keen.server.filters as filters

    monkeypatch.setattr(filters, "_HAS_ARROW", False)
    for test in (test_lists_and_objects_differing_only_in_spelling_are_one_value,
                 test_a_string_holding_nul_is_compared_whole,
                 test_funnel_actors_spelled_differently_are_one_actor):
        with open_store("sqlite") as store:
            test(store)
