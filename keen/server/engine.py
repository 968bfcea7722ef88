"""The query engine of the local Keen server: every analysis of keen-api.md sections 7-12.

``run_query`` turns the parameters of one query into the primitives of an
:class:`~keen.server.engines.base.EventStore` (the timeframe, interval buckets, filters and
group_by are resolved here; aggregation happens inside the engine's database), then shapes the
response body. The group lists of a simple analysis whose groups the engine gives already
ordered and rendered (``EventStore.ordered_groups``) are written as JSON text
(``keen.server._json.JsonText``, one string per group) rather than a dict per group; other
queries are shaped from ``aggregate``'s dicts. Either way the answer's text is the same.
The engine answers its own errors: a statement past the query's deadline is a 503
``QueryTimeoutError``, a query too large for the database a 400 ``QueryTooComplexError``.

Choices where keen-api.md leaves room ([INF] points); timeframe, timezone and interval rules are in
:mod:`keen.server.timeframes`, filter rules in :mod:`keen.server.filters`:

* A ``timeframe`` is required (400 ``TimeframeDefinitionError`` when missing or invalid), for
  every analysis and every funnel step (a root ``timeframe`` serves steps without one).
* An unknown analysis type is ``404 ResourceNotFoundError``.
* Other bad parameters are 400 with ``error_code`` ``MissingParameterError`` (a required
  parameter is absent), ``InvalidParameterError`` (wrong type or value), ``InvalidFilterError``,
  ``InvalidTimezoneError``, ``InvalidIntervalError``, or ``InvalidPropertyNameForGeoFilter``.
* Results on no matching events: ``count``, ``count_unique`` and ``sum`` give ``0``;
  ``minimum``, ``maximum``, ``average``, ``median``, ``percentile`` and ``standard_deviation``
  give ``null``; ``select_unique`` gives ``[]``. Empty interval buckets are present with those
  values (``0`` for a count); with group_by an empty bucket has ``"value": []`` and a bucket only
  lists the groups that have events in it.
* Numeric analyses ignore values that are not numbers (booleans are not numbers).
  ``count_unique`` and ``select_unique`` ignore missing and null values. Values are compared as
  JSON values here and in group_by and funnel actors (``filters.canonical_json``): ``1`` and
  ``1.0`` are one value, ``1``, ``true`` and ``"1"`` are three, ``[1, 2]`` and ``[1.0, 2]``
  are one, objects with the same members in another order are one, strings compare whole (NUL
  included). The value shown is the canonical representative (integral numbers as ints,
  object members sorted by key), whichever event it came from. Integral results are ints
  (``15`` not ``15.0``).
* ``standard_deviation`` is the **population** standard deviation.
* ``median`` and ``percentile`` are nearest-rank: the ``ceil(p/100 * n)``-th smallest value
  (at least the first); median is percentile 50, so median(10, 20) is 10.
* ``select_unique`` values are sorted (null < booleans < numbers < strings < lists < objects;
  lists element by element, objects by canonical text, see ``sort_key``).
* group_by: one key per property with its full dotted name; null and missing share the ``null``
  group; a list value is one group as a whole (``["a", "b"]`` and ``["a"]`` are two groups, the
  elements are not split out); groups are sorted ascending by their values (null first, see
  ``sort_key``) unless ``order_by`` says otherwise.
  ``order_by`` needs ``group_by``, its ``property_name`` must be ``result`` or a group_by
  property (in multi_analysis: an analysis label), ``direction`` ``ASC`` (default) or ``DESC``;
  ``limit`` (a positive integer) needs ``order_by``. With an interval, ordering and limit apply
  inside each bucket.
* Extraction: events in ascending timestamp order; ``latest`` keeps the N most recent (still
  ascending); at most ``MAX_EXTRACTION`` events. With ``email`` nothing runs and nothing is sent:
  the answer is the API's "Processing" message. ``property_names`` keeps only those dotted
  paths, nested back into objects.
* Funnel: each step counts the distinct actors (``actor_property`` present and not null) who did
  the step's event and were in the previous non-optional step's set; ``inverted`` keeps the
  previous actors who did *not* do it; ``optional`` steps are counted but do not narrow later
  steps. No ordering in time between steps. The first step cannot be optional or inverted.
  ``steps`` echoes every step with defaults (``timeframe``/``timezone`` the effective ones).
  ``actors`` (when any step asks ``with_actors``) lists each such step's actors, sorted.
* ``max_age`` is accepted and ignored (every query is computed fresh).
* Memory: counts, sums, averages and the like aggregate inside SQLite while rows stream past, so
  memory does not depend on the number of stored events; median, percentile and select_unique
  sort inside SQLite (spilling to temporary files), and so do funnels (each step's distinct
  actors are a temporary table); extractions hold their (capped) result in memory.
* ``include_metadata``: ``execution_metadata`` with ``events_scanned`` (events of the collection
  in the timeframe, before filters), ``properties_per_event`` (properties in the collection's
  schema), their product and ``total_processing_time`` in seconds. With a key that carries
  filters (scoped or access key) the events are those the key may read and the properties
  those of these events, so the metadata reveals nothing about the others.
* Limits (:mod:`keen.server.limits`): a query's parameters nest at most ``MAX_NESTING`` deep
  and hold no lone surrogates; at most ``MAX_FILTERS`` filters, ``MAX_OR_NESTING`` levels of
  ``or``, ``MAX_IN_VALUES`` ``in`` values, ``MAX_GROUP_BY`` group_by properties,
  ``MAX_FUNNEL_STEPS`` funnel steps and ``MAX_ANALYSES`` analyses (400); a query runs at most
  ``Storage.query_time_limit`` seconds (503 ``QueryTimeoutError``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import groupby, starmap
from operator import itemgetter
from typing import Any, TypeVar

from keen.server import _engine_sql as sql
from keen.server import limits
from keen.server._errors import QueryError, bad_request
from keen.server._events import property_paths
from keen.server._json import JsonText, encode_value, plain
from keen.server.engines.base import EventStore as Storage  # any engine of the server
from keen.server.filters import MISSING, normalize_filters, sort_key, value_at
from keen.server.timeframes import (
    format_timestamp,
    interval_buckets,
    resolve_timeframe,
    to_micros,
)

__all__ = ["ANALYSES", "QueryError", "dataset_results", "decode_query_params", "run_query"]

SIMPLE_ANALYSES = frozenset({
    "count", "count_unique", "sum", "minimum", "maximum", "average", "median", "percentile",
    "standard_deviation", "select_unique",
})
ANALYSES = SIMPLE_ANALYSES | {"extraction", "funnel", "multi_analysis"}
MAX_EXTRACTION = 100_000
EMAIL_EXTRACTION_RESULT = "Processing. Check the specified email for the extraction results."

_EMPTY: dict[str, Any] = {"count": 0, "count_unique": 0, "sum": 0}
# Analyses whose groups are not only those aggregate() finds (groups without a usable value
# are added from group_universe), so they take the dict path of _shape.
_UNIVERSE = frozenset({"median", "percentile", "select_unique"})
_RENDER_CHUNK = 10_000  # group items rendered between two deadline checks
_GROUP_KEYS = ("group_by", "order_by", "limit")

Key = tuple[int, tuple[Any, ...]]
_T = TypeVar("_T")
_U = TypeVar("_U")


# ------------------------------------------------------------------------- parameters

def _missing(name: str, what: str) -> QueryError:
    return bad_request("MissingParameterError", f"The {what} requires the {name!r} parameter.")


def _invalid(message: str) -> QueryError:
    return bad_request("InvalidParameterError", message)


def _text_param(params: Mapping[str, Any], name: str, what: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _missing(name, what)
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string, not {value!r}.")
    return value


def _positive_int(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(f"{name} must be a positive integer, not {value!r}.")
    return value


def _percentile(params: Mapping[str, Any], what: str) -> float:
    value = params.get("percentile")
    if value is None:
        raise _missing("percentile", what)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise _invalid(f"percentile must be a number between 0 and 100, not {value!r}.")
    return float(value)


def _group_by(params: Mapping[str, Any]) -> list[str]:
    value = params.get("group_by")
    if value is None or value == []:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _invalid("group_by must be a property name or a list of property names.")
    if len(names) > limits.MAX_GROUP_BY:
        raise _invalid(f"group_by lists {len(names)} properties; at most "
                       f"{limits.MAX_GROUP_BY} are allowed.")
    return list(names)


def _order_by(params: Mapping[str, Any], allowed: Sequence[str]) -> list[tuple[str, bool]]:
    """``[(property_name, descending), ...]`` checked against ``allowed`` names."""
    value = params.get("order_by")
    if value is None:
        if params.get("limit") is not None:
            raise _invalid("limit can only be used together with order_by.")
        return []
    if not params.get("group_by"):
        raise _invalid("order_by can only be used together with group_by.")
    items = value if isinstance(value, list) else [value]
    order: list[tuple[str, bool]] = []
    for item in items:
        spec = {"property_name": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or set(spec) - {"property_name", "direction"}:
            raise _invalid(
                'order_by entries are {"property_name": ..., "direction": "ASC" | "DESC"}.'
            )
        name = spec.get("property_name")
        direction = spec.get("direction", "ASC")
        if name not in allowed:
            raise _invalid(
                f"order_by property_name {name!r} must be one of: {', '.join(allowed)}."
            )
        if not isinstance(direction, str) or direction.upper() not in ("ASC", "DESC"):
            raise _invalid(f"order_by direction must be ASC or DESC, not {direction!r}.")
        if any(name == seen for seen, _ in order):
            raise _invalid(f"order_by names {name!r} more than once.")
        order.append((str(name), direction.upper() == "DESC"))
    return order


def _scope(
    storage: Storage,
    project_id: str,
    params: Mapping[str, Any],
    extra_filters: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    what: str,
    allow_interval: bool = True,
) -> sql.Scope:
    collection = _text_param(params, "event_collection", what)
    start, end = resolve_timeframe(params.get("timeframe"), params.get("timezone"), now)
    interval = params.get("interval")
    if interval is not None and not allow_interval:
        raise _invalid(f"The {what} does not support interval.")
    buckets = None if interval is None else interval_buckets(
        start, end, interval, params.get("timezone")
    )
    filters = normalize_filters(params.get("filters")) + normalize_filters(list(extra_filters))
    limits.check_filter_counts(filters)
    return sql.Scope(
        project_id, collection, to_micros(start), to_micros(end), buckets, filters,
        _group_by(params),
    )


# ------------------------------------------------------------------------- results

def _number(value: Any) -> Any:
    """Integral floats as ints; everything else unchanged."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _finish(analysis: str, raw: Any) -> Any:
    """The result of one analysis for one (bucket, group) from its raw SQL value."""
    if raw is None:
        return [] if analysis == "select_unique" else _EMPTY.get(analysis)
    if analysis == "select_unique":
        return sorted(raw, key=sort_key)
    return _number(raw)


class _Analysis:
    """One analysis of a query: its type, target and percentile (and label in multi_analysis)."""

    def __init__(self, analysis: str, spec: Mapping[str, Any], what: str) -> None:
        self.analysis = analysis
        self.target = None if analysis == "count" else _text_param(spec, "target_property", what)
        self.percentile = _percentile(spec, what) if analysis == "percentile" else None

    def run(self, storage: Storage, scope: sql.Scope) -> dict[Key, Any]:
        found = storage.aggregate(scope, self.analysis, self.target, self.percentile)
        if scope.group_by and self.analysis in ("median", "percentile", "select_unique"):
            # Groups whose events hold no usable value still appear, with an empty result.
            for key in storage.group_universe(scope) - set(found):
                found[key] = None
        return {key: _finish(self.analysis, value) for key, value in found.items()}


def _group_items(
    scope: sql.Scope,
    bucket: int,
    groups: set[tuple[Any, ...]],
    labelled: Mapping[str, dict[Key, Any]],
    analyses: Mapping[str, _Analysis],
    order: _Order,
) -> list[dict[str, Any]]:
    """The group_by list of one bucket: ``{<group props>..., <label>: value, ...}`` items."""
    decoded = {group: [sql.decode_group_value(key) for key in group] for group in groups}
    ordered = sorted(groups, key=lambda group: [sort_key(value) for value in decoded[group]])
    items = []
    for index, group in enumerate(ordered):
        if index % 1000 == 999:
            limits.check_deadline()
        item: dict[str, Any] = dict(zip(scope.group_by, decoded[group]))
        for label, found in labelled.items():
            value = found.get((bucket, group))
            item[label] = _finish(analyses[label].analysis, None) if value is None else value
        items.append(item)
    for name, descending in reversed(order.keys):
        items.sort(key=lambda entry: sort_key(entry.get(name)), reverse=descending)
    return items if order.limit is None else items[:order.limit]


class _Order:
    """Checked ``order_by`` (``[(name, descending)]``) and ``limit`` of a query."""

    def __init__(self, params: Mapping[str, Any], allowed: Sequence[str]) -> None:
        self.keys = _order_by(params, allowed)
        self.limit = _positive_int(params, "limit")


def _shape(
    scope: sql.Scope,
    labelled: Mapping[str, dict[Key, Any]],
    analyses: Mapping[str, _Analysis],
    order: _Order,
    *,
    single: bool,
) -> Any:
    """The ``result`` of keen-api.md 7.12 (``single``) or of a multi_analysis (section 11)."""
    groups_by_bucket: dict[int, set[tuple[Any, ...]]] = {}
    for found in labelled.values():
        for bucket, group in found:
            groups_by_bucket.setdefault(bucket, set()).add(group)

    def value(bucket: int) -> Any:
        if scope.group_by:
            groups = groups_by_bucket.get(bucket, set())
            return _group_items(scope, bucket, groups, labelled, analyses, order)
        plain = {
            label: found.get((bucket, ()), _finish(analyses[label].analysis, None))
            for label, found in labelled.items()
        }
        return plain["result"] if single else plain

    if scope.buckets is None:
        return value(0)
    return [
        {"timeframe": {"start": format_timestamp(lo), "end": format_timestamp(hi)},
         "value": value(index)}
        for index, (lo, hi) in enumerate(scope.buckets)
    ]


def _simple(
    storage: Storage, project_id: str, analysis: str, params: Mapping[str, Any],
    extra: Sequence[Mapping[str, Any]], now: datetime,
) -> tuple[dict[str, Any], sql.Scope]:
    what = f"{analysis} analysis"
    scope = _scope(storage, project_id, params, extra, now, what=what)
    spec = _Analysis(analysis, params, what)
    order = _Order(params, ["result", *scope.group_by])
    rendered = _rendered_groups(storage, scope, {"result": spec}, order)
    if rendered is not None:
        return {"result": rendered}, scope
    labelled = {"result": spec.run(storage, scope)}
    return {"result": _shape(scope, labelled, {"result": spec}, order, single=True)}, scope


def _rendered_groups(
    storage: Storage, scope: sql.Scope, analyses: Mapping[str, _Analysis], order: _Order,
) -> Any:
    """The ``result`` of a simple analysis (one label, ``result``) or a multi_analysis with
    group_by, its group lists rendered as JSON text from the engine's ``ordered_groups`` (no
    dict per group, no decoding of group keys), or written whole by its ``joined_groups``
    (counts in the groups' order: no tuple per group either); None when the engine cannot
    order this scope's groups, or the query needs what only ``_shape`` does (median,
    percentile and select_unique add groups without values; ordering by a group property
    compares decoded values; a group_by property named like a label, or twice, merges item
    members). Same items, order and text as ``_shape`` gives."""
    labels = list(analyses)
    names = [*scope.group_by, *labels]
    if (not scope.group_by or len(set(names)) != len(names)
            or any(spec.analysis in _UNIVERSE for spec in analyses.values())
            or any(name not in analyses for name, _ in order.keys)):
        return None
    asked = [(spec.analysis, spec.target, spec.percentile) for spec in analyses.values()]
    kinds = [spec.analysis for spec in analyses.values()]
    # One item from one row: {"<property>":<key text>,...,"<label>":<value text>,...}, the
    # bucket left out: the texts around the keys' and values' texts.
    pieces = ["{" + encode_value(names[0]) + ":",
              *("," + encode_value(name) + ":" for name in names[1:]), "}"]
    if not order.keys and order.limit is None and set(kinds) == {"count"}:
        joined = storage.joined_groups(scope, asked, pieces)
        if joined is not None:
            limits.check_deadline()  # (a late answer is not finished: as render's chunks)
            return _per_bucket(scope, lambda bucket: JsonText(f"[{joined.get(bucket, '')}]"))
    rows = storage.ordered_groups(scope, asked)
    if rows is None:
        return None
    # row[i] after the i-th piece (the bucket, row[0], left out); braces in a name are literal
    literal = [piece.replace("{", "{{").replace("}", "}}") for piece in pieces]
    item = ("".join(f"{text}{{{index}}}" for index, text in enumerate(literal[:-1], 1))
            + literal[-1]).format
    width = len(scope.group_by) + 1  # where the values start in a row

    def finish(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row[:width], *map(_finish, kinds, row[width:]))

    def encode(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row[:width], *map(_value_text, row[width:]))

    def finish_and_encode(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row[:width], *map(_value_text, map(_finish, kinds, row[width:])))

    def render(found: list[tuple[Any, ...]]) -> JsonText:
        if order.keys or order.limit is not None:
            found = _in_chunks(found, finish)
            for name, descending in reversed(order.keys):  # stable: ties keep group order
                limits.check_deadline()
                position = width + labels.index(name)
                found.sort(key=lambda row: sort_key(row[position]), reverse=descending)
            if order.limit is not None:
                found = found[:order.limit]
            found = _in_chunks(found, encode)
        elif kinds != ["count"]:  # (raw counts are ints, whose text is their str: as they are)
            found = _in_chunks(found, finish_and_encode)
        items: list[str] = []
        for start in range(0, len(found), _RENDER_CHUNK):
            limits.check_deadline()
            items += starmap(item, found[start:start + _RENDER_CHUNK])
        return JsonText("[" + ",".join(items) + "]")

    by_bucket = {bucket: list(found) for bucket, found in groupby(rows, key=itemgetter(0))}
    return _per_bucket(scope, lambda bucket: render(by_bucket.get(bucket, [])))


def _per_bucket(scope: sql.Scope, render: Callable[[int], JsonText]) -> Any:
    """The ``result`` of a grouped answer from the rendered group list of each bucket (0
    without an interval)."""
    if scope.buckets is None:
        return render(0)
    return [
        {"timeframe": {"start": format_timestamp(lo), "end": format_timestamp(hi)},
         "value": render(index)}
        for index, (lo, hi) in enumerate(scope.buckets)
    ]


def _value_text(value: Any) -> str:
    """``encode_value(value)``, without its detour for the usual ints and finite floats."""
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return encode_value(value)


def _in_chunks(rows: list[_T], function: Callable[[_T], _U]) -> list[_U]:
    """``function`` of every row, looking at the query's deadline every ``_RENDER_CHUNK``."""
    done: list[_U] = []
    for start in range(0, len(rows), _RENDER_CHUNK):
        limits.check_deadline()
        done += map(function, rows[start:start + _RENDER_CHUNK])
    return done


def _multi(
    storage: Storage, project_id: str, params: Mapping[str, Any],
    extra: Sequence[Mapping[str, Any]], now: datetime,
) -> tuple[dict[str, Any], sql.Scope]:
    what = "multi_analysis"
    scope = _scope(storage, project_id, params, extra, now, what=what)
    raw = params.get("analyses")
    if not isinstance(raw, dict) or not raw:
        raise _missing("analyses", what)
    if len(raw) > limits.MAX_ANALYSES:
        raise _invalid(f"analyses holds {len(raw)} analyses; at most {limits.MAX_ANALYSES} "
                       "are allowed.")
    analyses: dict[str, _Analysis] = {}
    for label, spec in raw.items():
        kind = spec.get("analysis_type") if isinstance(spec, dict) else None
        if not isinstance(kind, str) or kind not in SIMPLE_ANALYSES:
            raise _invalid(
                f"analyses[{label!r}] needs an analysis_type among "
                f"{', '.join(sorted(SIMPLE_ANALYSES))}."
            )
        if label in scope.group_by:
            raise _invalid(f"The analysis label {label!r} collides with a group_by property.")
        analyses[label] = _Analysis(kind, spec, f"{kind} analysis {label!r}")
    order = _Order(params, [*analyses, *scope.group_by])
    rendered = _rendered_groups(storage, scope, analyses, order)
    if rendered is not None:
        return {"result": rendered}, scope
    labelled = {label: spec.run(storage, scope) for label, spec in analyses.items()}
    return {"result": _shape(scope, labelled, analyses, order, single=False)}, scope


# ------------------------------------------------------------------------- extraction

def _property_names(params: Mapping[str, Any]) -> list[str] | None:
    value = params.get("property_names")
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _invalid("property_names must be a property name or a list of them.")
    if len(names) > limits.MAX_PROPERTY_NAMES:
        raise _invalid(f"property_names lists {len(names)} names; at most "
                       f"{limits.MAX_PROPERTY_NAMES} are allowed.")
    return list(names)


def _project(event: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Only the dotted ``names`` of ``event``, nested back into objects."""
    out: dict[str, Any] = {}
    for name in names:
        value = value_at(event, name)
        if value is MISSING:
            continue
        *parents, leaf = name.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out



def _extraction(
    storage: Storage, project_id: str, params: Mapping[str, Any],
    extra: Sequence[Mapping[str, Any]], now: datetime,
) -> tuple[dict[str, Any], sql.Scope]:
    what = "extraction"
    for name in _GROUP_KEYS:
        if params.get(name) is not None:
            raise _invalid(f"The extraction does not support {name}.")
    scope = _scope(storage, project_id, params, extra, now, what=what, allow_interval=False)
    latest = _positive_int(params, "latest")
    names = _property_names(params)
    email = params.get("email")
    if email is not None:
        if not isinstance(email, str) or "@" not in email:
            raise _invalid(f"email must be an e-mail address, not {email!r}.")
        return {"result": EMAIL_EXTRACTION_RESULT}, scope
    limit = min(latest or MAX_EXTRACTION, MAX_EXTRACTION)
    events = []
    with storage.event_bodies(scope, newest_first=latest is not None, limit=limit) as bodies:
        for body in bodies:
            events.append(json.loads(body))
            if len(events) % 1000 == 0:
                limits.check_deadline()
    if latest is not None:
        events.reverse()
    if names is not None:
        projected = []
        for index, event in enumerate(events):
            if index % 1000 == 999:
                limits.check_deadline()
            projected.append(_project(event, names))
        events = projected
    return {"result": events}, scope


# ------------------------------------------------------------------------- funnel

_STEP_FLAGS = ("optional", "inverted", "with_actors")


def _funnel(
    storage: Storage, project_id: str, params: Mapping[str, Any],
    extra: Sequence[Mapping[str, Any]], now: datetime,
) -> tuple[dict[str, Any], sql.Scope | None]:
    steps = params.get("steps")
    if not isinstance(steps, list) or not steps:
        raise _missing("steps", "funnel")
    if len(steps) > limits.MAX_FUNNEL_STEPS:
        raise _invalid(f"The funnel has {len(steps)} steps; at most {limits.MAX_FUNNEL_STEPS} "
                       "are allowed.")
    echoes: list[dict[str, Any]] = []
    scopes: list[sql.Scope] = []
    for index, step in enumerate(steps):
        what = f"funnel step {index + 1}"
        if not isinstance(step, dict):
            raise _invalid(f"{what} must be an object.")
        echo: dict[str, Any] = {
            "event_collection": _text_param(step, "event_collection", what),
            "actor_property": _text_param(step, "actor_property", what),
            "filters": step.get("filters") if step.get("filters") is not None else [],
            "timeframe": step.get("timeframe", params.get("timeframe")),
            "timezone": step.get("timezone", params.get("timezone")),
        }
        for flag in _STEP_FLAGS:
            flag_value = step.get(flag, False)
            if not isinstance(flag_value, bool):
                raise _invalid(f"{what}: {flag} must be true or false.")
            echo[flag] = flag_value
        if index == 0 and (echo["optional"] or echo["inverted"]):
            raise _invalid("The first funnel step cannot be optional or inverted.")
        scopes.append(_scope(storage, project_id, echo, extra, now, what=what,
                             allow_interval=False))
        echoes.append(echo)
    counts: list[int] = []
    actors: list[list[Any] | None] = []
    previous: str | None = None
    with storage.actor_sets() as sets:
        for echo, scope in zip(echoes, scopes):
            limits.check_deadline()
            did = sets.did(scope, echo["actor_property"])
            current = did if previous is None else sets.combine(
                previous, did, inverted=echo["inverted"])
            counts.append(sets.count(current))
            actors.append(
                sorted(map(sql.decode_group_value, sets.actors(current)), key=sort_key)
                if echo["with_actors"] else None
            )
            if not echo["optional"]:
                previous = current
    body: dict[str, Any] = {"result": counts, "steps": echoes}
    if any(echo["with_actors"] for echo in echoes):
        body["actors"] = actors
    return body, None


# ------------------------------------------------------------------------- entry points

def run_query(
    storage: Storage,
    project_id: str,
    analysis_type: str,
    params: Mapping[str, Any],
    *,
    now: datetime,
    extra_filters: Sequence[Mapping[str, Any]] = (),
    rendered: bool = False,
) -> dict[str, Any]:
    """Run one query; returns the whole response body (``{"result": ...}``, plus ``steps`` and
    ``actors`` for funnels and ``execution_metadata`` when asked).

    ``params`` hold native JSON values (decode GET strings with ``decode_query_params``);
    ``extra_filters`` (from a scoped or access key) are AND-ed with the query's filters (in a
    funnel, with every step's). With ``rendered`` the body may hold ``keen.server._json.JsonText``
    parts (group lists rendered as JSON text), to be written with ``keen.server._json.encode``;
    without, every value is a plain JSON value. Raises ``QueryError``.
    """
    started = time.perf_counter()
    if analysis_type not in ANALYSES:
        raise QueryError(
            404, "ResourceNotFoundError",
            f"Unknown analysis type {analysis_type!r}; use one of {', '.join(sorted(ANALYSES))}.",
        )
    if not isinstance(params, Mapping):
        raise _invalid("Query parameters must be a JSON object.")
    limits.check_json(dict(params), "query")
    runner = {
        "extraction": _extraction, "funnel": _funnel, "multi_analysis": _multi,
    }.get(analysis_type)
    try:
        with limits.query_deadline(storage.query_time_limit):
            if runner is not None:
                body, scope = runner(storage, project_id, params, extra_filters, now)
            else:
                body, scope = _simple(storage, project_id, analysis_type, params,
                                      extra_filters, now)
            if params.get("include_metadata") is True:
                body["execution_metadata"] = _metadata(
                    storage, scope, extra_filters, time.perf_counter() - started)
    except RecursionError:  # only values stored before the nesting limit can be this deep
        raise bad_request(limits.TOO_COMPLEX,
                          "A value this query compares is nested too deeply (stored before "
                          f"the limit of {limits.MAX_NESTING} levels); delete those events or "
                          "query another property.") from None
    return body if rendered else plain(body)


def _metadata(
    storage: Storage, scope: sql.Scope | None, key_filters: Sequence[Mapping[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    """Execution metadata. For a key with filters (scoped or access key) every figure counts
    only the events that key can read, so the metadata says nothing about the others."""
    scanned = per_event = 0
    if scope is not None:
        restriction = normalize_filters(list(key_filters))
        visible = sql.Scope(scope.project_id, scope.collection, scope.start, scope.end,
                            filters=restriction)
        found = storage.aggregate(visible, "count", None, None)
        scanned = int(sum(found.values()))
        if restriction:
            paths: set[str] = set()
            with storage.event_bodies(visible, newest_first=False, limit=None) as bodies:
                for index, text in enumerate(bodies):
                    paths.update(property_paths(json.loads(text)))
                    if index % 1000 == 999:
                        limits.check_deadline()
            per_event = len(paths)
        else:
            schema = storage.collection(scope.project_id, scope.collection)
            per_event = len(schema["properties"]) if schema else 0
    return {
        "events_scanned": scanned,
        "properties_per_event": per_event,
        "total_properties_scanned": scanned * per_event,
        "total_processing_time": round(elapsed, 6),
    }


# JSON-valued parameters (GET sends them JSON-encoded); the first group may also be bare strings.
_JSON_OR_TEXT = frozenset({"timeframe", "group_by", "property_names", "index_by", "order_by"})
_JSON_ONLY = frozenset({"filters", "steps", "analyses"})
_NUMBERS = frozenset({"percentile", "latest", "limit", "max_age"})
_BOOLEANS = frozenset({"include_metadata"})
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


def decode_query_params(raw: Mapping[str, str]) -> dict[str, Any]:
    """GET query-string values to native values (keen-api.md 2.3).

    ``filters``, ``steps`` and ``analyses`` must be JSON; ``timeframe``, ``group_by``,
    ``property_names``, ``index_by`` and ``order_by`` are JSON when they look like JSON (start
    with ``[``, ``{`` or ``"``) and bare strings otherwise; ``percentile``, ``latest``, ``limit``,
    ``max_age`` and a numeric ``timezone`` become numbers; ``include_metadata`` a boolean.
    Everything else stays a string. Raises ``QueryError`` (400) for malformed JSON.
    """
    decoded: dict[str, Any] = {}
    for name, text in raw.items():
        value: Any = text
        stripped = text.strip()
        if name in _JSON_ONLY or (name in _JSON_OR_TEXT and stripped[:1] in ("[", "{", '"')):
            try:
                value = json.loads(stripped)
            except (ValueError, RecursionError):
                error = "TimeframeDefinitionError" if name == "timeframe" else (
                    "InvalidFilterError" if name == "filters" else "InvalidParameterError")
                raise bad_request(error, f"The {name} parameter is not valid JSON.") from None
        elif name in _NUMBERS or name == "timezone":
            if _NUMBER_RE.fullmatch(stripped):
                number = float(stripped)
                value = int(number) if number.is_integer() and "." not in stripped \
                    and "e" not in stripped.lower() else number
        elif name in _BOOLEANS:
            lowered = stripped.lower()
            value = True if lowered == "true" else False if lowered == "false" else text
        decoded[name] = value
    return decoded


# ------------------------------------------------------------------------- datasets

def _index_filters(index_by: Any, value: Any) -> list[dict[str, Any]]:
    """``eq`` filters pinning each index_by property to its value."""
    props = [index_by] if isinstance(index_by, str) else list(index_by or [])
    if not props or not all(isinstance(p, str) for p in props):
        raise bad_request("InvalidDatasetQueryError", "The dataset has no valid index_by.")
    if isinstance(value, Mapping):
        missing = [p for p in props if p not in value]
        if missing:
            raise _invalid(f"index_by needs a value for {', '.join(missing)}.")
        values = [value[p] for p in props]
    elif isinstance(value, list):
        values = value
    else:
        values = [value]
    if len(values) != len(props):
        raise _invalid(f"index_by needs one value per index property ({', '.join(props)}).")
    return [
        {"property_name": p, "operator": "eq", "property_value": v}
        for p, v in zip(props, values)
    ]


def dataset_results(
    storage: Storage,
    project_id: str,
    definition: Mapping[str, Any],
    index_by_value: Any,
    timeframe: Any,
    *,
    now: datetime,
    rendered: bool = False,
) -> dict[str, Any]:
    """Results of a cached dataset, computed on demand (keen-api.md 14.4): the dataset's query
    restricted to ``index_by`` = the given value(s) and to ``timeframe`` (clipped to the
    dataset's own timeframe; the whole of it when None), shaped like an interval query.

    ``index_by_value``: a mapping property -> value, a list in index_by order, or one value.
    """
    query = definition.get("query")
    if not isinstance(query, Mapping):
        raise bad_request("InvalidDatasetQueryError", "The dataset has no query.")
    analysis = query.get("analysis_type")
    if analysis not in SIMPLE_ANALYSES and analysis != "multi_analysis":
        raise bad_request(
            "InvalidDatasetQueryError", f"Datasets cannot hold a {analysis!r} query."
        )
    tz = query.get("timezone")
    start, end = resolve_timeframe(query.get("timeframe"), tz, now)
    if timeframe is not None:
        sub_start, sub_end = resolve_timeframe(timeframe, tz, now)
        start, end = max(start, sub_start), max(min(end, sub_end), max(start, sub_start))
    params = dict(query)
    params["timeframe"] = {"start": start.isoformat(), "end": end.isoformat()}
    params["filters"] = list(query.get("filters") or []) + _index_filters(
        definition.get("index_by"), index_by_value
    )
    return run_query(storage, project_id, str(analysis), params, now=now, rendered=rendered)
