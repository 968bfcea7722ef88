"""What the ``keen`` command prints: a table by default, ``--json`` or ``--csv``.

* ``--json`` prints the API's answer as it came (indented).
* The table and ``--csv`` show the same rows and columns, built from the answer by
  :func:`result_table` (analyses) or by each resource command:

  - a single value: one ``result`` column;
  - a list of values (``select_unique``): one row per value;
  - ``group_by``: one row per group, a column per group property, then ``result`` (or one column
    per label for ``multi_analysis``);
  - ``interval``: one row per interval (``start``, ``end``); without groups a ``result`` column
    (or one per label), with groups one column per group (``PROPERTY=VALUE``, then ``/ LABEL`` for
    ``multi_analysis``). A group
    missing from an interval has no events there: the cell shows the analysis' value for no
    events (``0`` for counts and sums, empty otherwise);
  - ``funnel``: one row per step, with its share of the first step;
  - ``extraction``: one row per event, a column per (dotted) property.

Cells: ``null`` is shown as ``null`` in a table and left empty in CSV; booleans as ``true`` /
``false``; lists and objects as compact JSON.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

__all__ = ["Table", "cell_text", "emit", "flatten", "result_table", "write_csv", "write_table"]

Table = tuple[list[str], list[list[Any]]]

#: Value of an analysis over no events (the local server's choices, keen-api.md 8).
_EMPTY_VALUE = {"count": 0, "count_unique": 0, "sum": 0, "select_unique": []}
_MISSING = object()


def cell_text(value: Any, *, csv_cell: bool = False) -> str:
    """How one value is written in a cell."""
    if value is None:
        return "" if csv_cell else "null"
    if value is _MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def flatten(event: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}`` (lists stay values; an empty object stays ``{}``)."""
    flat: dict[str, Any] = {}
    for key, value in event.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _value_order(value: Any) -> tuple[int, Any]:
    """Null, booleans, numbers, strings, then the rest by their JSON text (the API's order)."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True))


def _group_label(item: Mapping[str, Any], group_by: Sequence[str]) -> str:
    return ", ".join(f"{name}={cell_text(item.get(name))}" for name in group_by)


def _group_names(items: Iterable[Mapping[str, Any]], group_by: Sequence[str],
                 values: Sequence[str]) -> list[str]:
    """The group properties of grouped rows: those asked for, else every key not a value."""
    if group_by:
        return list(group_by)
    names: dict[str, None] = {}
    for item in items:
        for key in item:
            if key not in values:
                names.setdefault(key, None)
    return list(names)


def _interval_table(result: list[Any], analysis: str, group_by: Sequence[str],
                    labels: Sequence[str]) -> Table:
    rows: list[list[Any]] = []
    values = [item.get("value") for item in result]
    first = next((v for v in values if v not in (None, [], {})), None)
    grouped = bool(group_by) if analysis != "select_unique" or first is None else (
        isinstance(first, list) and all(isinstance(i, Mapping) for i in first))
    if grouped and all(isinstance(v, list) or v is None for v in values):
        # interval + group_by: one column per group (x label for multi_analysis)
        value_keys = list(labels) or ["result"]
        groups = _group_names((g for v in values for g in (v or [])), group_by, value_keys)
        found: dict[str, tuple[Any, ...]] = {}
        cells: list[dict[tuple[str, str], Any]] = []
        for bucket in values:
            row: dict[tuple[str, str], Any] = {}
            for item in bucket or []:
                label = _group_label(item, groups)
                found.setdefault(label, tuple(_value_order(item.get(g)) for g in groups))
                for key in value_keys:
                    row[(label, key)] = item.get(key)
            cells.append(row)
        # columns in the order of the group values (as groups are listed without order_by)
        columns = [(label, key) for label in sorted(found, key=found.__getitem__)
                   for key in value_keys]
        names = [label if not labels else f"{label} / {key}" for label, key in columns]
        missing = _EMPTY_VALUE.get(analysis, _MISSING)
        for item, row in zip(result, cells):
            frame = item.get("timeframe") or {}
            rows.append([frame.get("start"), frame.get("end"),
                         *[row.get(column, missing) for column in columns]])
        return ["start", "end", *names], rows
    if isinstance(first, Mapping):  # multi_analysis + interval: one column per label
        names = list(labels) or list(first)
        for item in result:
            frame, value = item.get("timeframe") or {}, item.get("value") or {}
            rows.append([frame.get("start"), frame.get("end"), *[value.get(n) for n in names]])
        return ["start", "end", *names], rows
    for item in result:
        frame = item.get("timeframe") or {}
        rows.append([frame.get("start"), frame.get("end"), item.get("value")])
    return ["start", "end", "result"], rows


def _funnel_table(response: Mapping[str, Any]) -> Table:
    result = response.get("result") or []
    steps = response.get("steps") or [{} for _ in result]
    first = result[0] if result and isinstance(result[0], (int, float)) else None
    rows = []
    for number, (step, value) in enumerate(zip(steps, result), start=1):
        share = (f"{100 * value / first:.1f}%" if first and isinstance(value, (int, float))
                 else "")
        rows.append([number, step.get("event_collection"), step.get("actor_property"), value,
                     share])
    return ["step", "event_collection", "actor_property", "result", "of step 1"], rows


def _events_table(events: list[Any]) -> Table:
    flat = [flatten(event) if isinstance(event, Mapping) else {"value": event}
            for event in events]
    columns: dict[str, None] = {}
    for row in flat:
        for key in row:
            columns.setdefault(key, None)
    names = list(columns)
    return names, [[row.get(name, _MISSING) for name in names] for row in flat]


def result_table(analysis: str, response: Any, group_by: Sequence[str] = (),
                 labels: Sequence[str] = ()) -> Table:
    """The table of an analysis answer (the whole response, or its ``result``)."""
    if analysis == "funnel" and isinstance(response, Mapping):
        return _funnel_table(response)
    result = response.get("result") if isinstance(response, Mapping) else response
    if analysis == "extraction" and isinstance(result, list):
        return _events_table(result)
    if isinstance(result, Mapping):  # multi_analysis without groups or intervals
        names = list(labels) or list(result)
        return names, [[result.get(name) for name in names]]
    if not isinstance(result, list):
        return ["result"], [[result]]
    if result and all(isinstance(i, Mapping) and "timeframe" in i for i in result):
        return _interval_table(result, analysis, group_by, labels)
    if (result and all(isinstance(i, Mapping) for i in result)
            and (analysis != "select_unique" or group_by)):
        value_keys = list(labels) or ["result"]
        groups = _group_names(result, group_by, value_keys)
        names = [*groups, *value_keys]
        return names, [[item.get(name) for name in names] for item in result]
    return ["result"], [[value] for value in result]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_table(table: Table, out: IO[str]) -> None:
    """A plain-text table: a header, a rule, numbers aligned right."""
    headers, rows = table
    texts = [[cell_text(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] is _MISSING for r in rows)
               for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])
                 for i, text in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out.write(line(headers) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in texts:
        out.write(line(row) + "\n")


def write_csv(table: Table, out: IO[str]) -> None:
    """The same table as CSV (RFC 4180, a header row)."""
    headers, rows = table
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([cell_text(value, csv_cell=True) for value in row])


def write_json(value: Any, out: IO[str]) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def emit(fmt: str, response: Any, table: Table | None, out: IO[str] | None = None) -> None:
    """Print ``response`` as ``fmt`` says (``table``, ``json`` or ``csv``)."""
    stream = sys.stdout if out is None else out
    if fmt == "json" or table is None:
        write_json(response, stream)
    elif fmt == "csv":
        write_csv(table, stream)
    else:
        write_table(table, stream)
