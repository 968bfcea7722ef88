"""Query parameters: their prose, their order, and their wire encoding, each written once.

``wire_params`` turns the values a caller gave into the query-string values keen 0.7.0 sent:
same names, same order, structured values JSON-encoded (``order_by`` always as a list). A
parameter is sent when it is not None -- ``timezone=0``, ``percentile=0``, ``latest=0`` and
``max_age=0`` are real values. ``post_body`` gives the same query as a JSON body (native values),
for queries too long for a GET URL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, Callable

from keen import direction
from keen._encoding import dumps
from keen.exceptions import InvalidQueryError

__all__ = ["PARAM_DOCS", "WIRE_ORDER", "json_text", "post_body", "require", "string_list",
           "validate_query", "wire_params"]


def _raw(value: Any) -> Any:
    return value


def _json_if_dict(value: Any) -> Any:
    return dumps(value) if isinstance(value, Mapping) else value


def _json_if_list(value: Any) -> Any:
    return dumps(list(value)) if isinstance(value, (list, tuple)) else value


def _json_list(value: Any) -> str:
    return dumps(list(value) if isinstance(value, (list, tuple)) else [value])


#: name -> wire encoder, in the order 0.7.0 put parameters in the query string.
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "event_collection": _raw,
    "timeframe": _json_if_dict,
    "timezone": _raw,
    "interval": _raw,
    "filters": dumps,
    "group_by": _json_if_list,
    "order_by": _json_list,
    "limit": _raw,
    "target_property": _raw,
    "latest": _raw,
    "email": _raw,
    "analyses": dumps,
    "steps": dumps,
    "property_names": dumps,
    "percentile": _raw,
    "max_age": _raw,
}
WIRE_ORDER = tuple(_ENCODERS)

#: Parameters whose wire value may be JSON text (decoded again for a POST body).
_JSON_VALUED = frozenset({"timeframe", "filters", "group_by", "order_by", "analyses", "steps",
                          "property_names"})

#: One line of prose per parameter; the method docstrings are built from this table.
PARAM_DOCS: dict[str, str] = {
    "event_collection": "the name of the event collection to query, e.g. ``\"purchases\"``",
    "target_property": "the property the analysis runs on, e.g. ``\"price\"``",
    "percentile": "the percentile to compute, 0 to 100 with up to two decimals, e.g. ``99.99``",
    "timeframe": "a relative timeframe (``\"previous_7_days\"``) or a dict "
                 "``{\"start\": iso8601, \"end\": iso8601}``",
    "timezone": "offset in seconds (``-28800``) or a zone name (``\"US/Pacific\"``) for "
                "relative timeframes and intervals",
    "interval": "split the result into buckets: ``\"daily\"``, ``\"hourly\"``, "
                "``\"every_6_hours\"``...",
    "filters": "a list of ``{\"property_name\", \"operator\", \"property_value\"}`` dicts, "
               "all of which must match",
    "group_by": "a property name, or a list of names, to group the result by",
    "order_by": "a ``{\"property_name\": \"result\", \"direction\": keen.direction.DESCENDING}`` "
                "dict or a list of them; needs ``group_by``",
    "max_age": "accept a cached result up to this many seconds old",
    "limit": "return only this many groups (a positive int); needs ``order_by``",
    "latest": "extraction: return only the most recent N events",
    "email": "extraction: e-mail the result to this address instead of returning it",
    "property_names": "extraction: the list of properties to return",
    "steps": "funnel: a list of step dicts (``event_collection``, ``actor_property``...)",
    "analyses": "multi-analysis: a dict of label -> ``{\"analysis_type\", \"target_property\"}``",
    "all_keys": "return the API's whole response dict instead of only its ``result``",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _name_problem(name: str, value: Any) -> str | None:
    if isinstance(value, str) and value:
        return None
    return f"{name} must be a non-empty string, not {_shown(value)}"


def _timeframe_problem(name: str, value: Any) -> str | None:
    if isinstance(value, (str, Mapping)):
        return None
    return (f"timeframe must be a string such as 'this_7_days' or a dict with 'start' and "
            f"'end', not {_shown(value)}")


def _dict_list_problem(name: str, value: Any, what: str, empty_ok: bool) -> str | None:
    if not isinstance(value, (list, tuple)) or (not value and not empty_ok):
        article = "a" if empty_ok else "a non-empty"
        return f"{name} must be {article} list of {what} dicts, not {type(value).__name__}"
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            return f"{name}[{index}] must be a dict, not {type(item).__name__}"
    return None


def _analyses_problem(name: str, value: Any) -> str | None:
    if isinstance(value, Mapping) and value:
        return None
    return (f"analyses must be a non-empty dict of label -> analysis dict, "
            f"not {type(value).__name__}")


#: Checks of the values callers give (the API would refuse these, less clearly).
_CHECKS: dict[str, Callable[[str, Any], str | None]] = {
    "event_collection": _name_problem,
    "target_property": _name_problem,
    "timeframe": _timeframe_problem,
    "filters": lambda name, value: _dict_list_problem(name, value, "filter", True),
    "steps": lambda name, value: _dict_list_problem(name, value, "step", False),
    "analyses": _analyses_problem,
}


def wire_params(**values: Any) -> dict[str, Any]:
    """The query-string values for the given parameters (None means "not given").

    InvalidQueryError, naming the parameter, for a value of the wrong kind.
    """
    params: dict[str, Any] = {}
    for name, encode in _ENCODERS.items():
        value = values.get(name)
        if value is not None:
            check = _CHECKS.get(name)
            problem = None if check is None else check(name, value)
            if problem is not None:
                raise InvalidQueryError(problem + ".")
            try:
                params[name] = encode(value)
            except (TypeError, ValueError) as exc:
                raise InvalidQueryError(f"{name} cannot be encoded as JSON: {exc}") from None
    return params


def json_text(name: str, value: Any) -> str:
    """``value`` as JSON text (a string is taken as JSON text already); InvalidQueryError
    naming ``name`` when it cannot be encoded."""
    if isinstance(value, str):
        return value
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidQueryError(f"{name} cannot be encoded as JSON: {exc}") from None


def require(what: str, arguments: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """InvalidQueryError when one of ``names`` (required by ``what``) is None."""
    for name in names:
        if name in arguments and arguments[name] is None:
            raise InvalidQueryError(f"{what}() requires {name}; it cannot be None.")


def string_list(name: str, value: Any) -> list[str]:
    """``value`` as a list of strings (a list or tuple of them); InvalidQueryError otherwise."""
    if not isinstance(value, (list, tuple)):
        raise InvalidQueryError(f"{name} must be a list of strings, not {type(value).__name__}.")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidQueryError(
                f"{name}[{index}] must be a string, not {type(item).__name__}.")
    return list(value)


def post_body(params: Mapping[str, Any]) -> str:
    """The JSON body carrying the same query as the GET ``params`` (keen-api.md 2.3)."""
    body: dict[str, Any] = {}
    for name, value in params.items():
        if name in _JSON_VALUED and isinstance(value, str) and value[:1] in ("{", "["):
            # JSON text becomes the value it encodes, as the API reads it from a query string;
            # a plain string that is not JSON (even one starting with a bracket) stays a string
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        body[name] = value
    return dumps(body)


def _order_by_problem(order_by: Any) -> str | None:
    if not isinstance(order_by, list):
        return "order_by must be a dict or a list of dicts"
    for item in order_by:
        if not isinstance(item, Mapping):
            return (f"order_by entries must be dicts like {{'property_name': 'result', "
                    f"'direction': 'DESC'}}, not {item!r}")
        if not item.get("property_name"):
            return f"order_by entry {item!r} has no property_name"
        if "direction" in item and not direction.is_valid_direction(item["direction"]):
            return (f"order_by direction {item['direction']!r} is not "
                    f"{direction.ASCENDING!r} or {direction.DESCENDING!r}")
        extra = sorted(set(item) - {"property_name", "direction"})
        if extra:
            return f"order_by entry has unknown keys {extra}"
    return None


def validate_query(params: Mapping[str, Any]) -> None:
    """Raise InvalidQueryError for a malformed ``order_by`` / ``limit`` (as 0.7.0 checked)."""
    order_by = params.get("order_by")
    if order_by is not None:
        try:
            decoded = json.loads(order_by) if isinstance(order_by, str) else order_by
        except ValueError:
            raise InvalidQueryError(f"order_by is not JSON: {order_by!r}.") from None
        problem = _order_by_problem(decoded)
        if problem is None and params.get("group_by") in (None, "", "[]"):
            problem = "order_by needs group_by"
        if problem is not None:
            raise InvalidQueryError(problem + ".")
    limit = params.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidQueryError(f"limit must be a positive int, not {limit!r}.")
        if order_by is None:
            raise InvalidQueryError("limit needs order_by.")
