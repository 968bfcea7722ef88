"""Parameter encoding: one function, ``is not None``, 0.7.0's order, and GET == POST content."""

from __future__ import annotations

import json
from typing import Any

from _client_helpers import install_recorder
from hypothesis import given, settings
from hypothesis import strategies as st

from keen import _params
from keen.client import KeenClient

scalars = st.one_of(st.none(), st.integers(-10**6, 10**6), st.text(max_size=12),
                    st.just(0), st.just(""), st.booleans())
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
filters = st.lists(st.fixed_dictionaries({"property_name": st.text(min_size=1, max_size=8),
                                          "operator": st.sampled_from(["eq", "ne", "in"]),
                                          "property_value": json_values}), max_size=3)
PARAMS = {
    "event_collection": st.none() | st.text(min_size=1, max_size=10),
    "timeframe": st.none() | st.just("this_7_days") | st.fixed_dictionaries(
        {"start": st.just("2024-01-01T00:00:00Z"), "end": st.just("2024-02-01T00:00:00Z")}),
    "timezone": st.none() | st.integers(-43200, 43200) | st.just("US/Pacific"),
    "interval": st.none() | st.just("daily"),
    "filters": st.none() | filters,
    "group_by": st.none() | st.text(min_size=1, max_size=6) | st.lists(
        st.text(min_size=1, max_size=6), min_size=1, max_size=3),
    "order_by": st.none() | st.fixed_dictionaries({"property_name": st.just("result")}),
    "limit": st.none() | st.integers(1, 100),
    "target_property": st.none() | st.text(min_size=1, max_size=6),
    "latest": st.none() | st.integers(0, 100),
    "email": st.none() | st.just("a@example.com"),
    "analyses": st.none() | st.dictionaries(st.text(min_size=1, max_size=5),
                                            st.fixed_dictionaries({"analysis_type": st.just(
                                                "count")}), min_size=1, max_size=2),
    "steps": st.none() | st.lists(st.fixed_dictionaries(
        {"event_collection": st.text(min_size=1, max_size=5)}), min_size=1, max_size=2),
    "property_names": st.none() | st.lists(st.text(max_size=5), max_size=3),
    "percentile": st.none() | st.floats(0, 100, allow_nan=False) | st.just(0),
    "max_age": st.none() | st.integers(0, 1000),
}


@settings(max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries(PARAMS))
def test_sent_exactly_when_not_none_in_0_7_0_order(values: dict[str, Any]) -> None:
    wire = _params.wire_params(**values)
    assert list(wire) == [name for name in _params.WIRE_ORDER if values[name] is not None]


@settings(max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries(PARAMS))
def test_post_body_carries_the_native_values(values: dict[str, Any]) -> None:
    body = json.loads(_params.post_body(_params.wire_params(**values)))
    expected = {name: value for name, value in values.items() if value is not None}
    if "order_by" in expected:
        expected["order_by"] = [expected["order_by"]]  # always a list, as on GET
    assert body == expected


@settings(max_examples=100, deadline=None)
@given(values=st.fixed_dictionaries(PARAMS))
def test_get_values_are_json_for_structured_parameters(values: dict[str, Any]) -> None:
    wire = _params.wire_params(**values)
    for name in ("filters", "analyses", "steps", "property_names"):
        if values[name] is not None:
            assert json.loads(wire[name]) == values[name]
    if isinstance(values["group_by"], list):
        assert json.loads(wire["group_by"]) == values["group_by"]
    elif values["group_by"] is not None:
        assert wire["group_by"] == values["group_by"]
    if isinstance(values["timeframe"], dict):
        assert json.loads(wire["timeframe"]) == values["timeframe"]


def test_json_text_uses_the_default_separators() -> None:
    wire = _params.wire_params(filters=[{"a": 1, "b": [1, 2]}], group_by=("x", "y"))
    assert wire == {"filters": '[{"a": 1, "b": [1, 2]}]', "group_by": '["x", "y"]'}


def test_post_events_raw_sends_the_bytes_as_given(monkeypatch: Any) -> None:
    recorder = install_recorder(monkeypatch)
    api = KeenClient("PID", write_key="WK", base_url="http://h").api
    body = b'{"c": [{"keen": {"uniqueness_token": "t"}, "a": 1}]}'
    assert api.post_events_raw(body, idempotent=True) == {"c": [{"success": True}]}
    sent = recorder.last
    assert (sent.method, sent.url, sent.body) == ("POST", "http://h/3.0/projects/PID/events",
                                                  body.decode())
    assert sent.headers["Authorization"] == "WK"
    assert sent.headers["Content-Type"] == "application/json"
