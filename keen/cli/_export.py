"""``keen export``: a whole collection (or a whole project) to files, however large.

One extraction returns at most :data:`MAX_EXTRACTION` events (keen-api.md 12 and 17), so a
collection is exported in time windows, each small enough for one extraction:

1. The timeframe is made absolute once (``START..END`` or ``{"start", "end"}`` as given; a
   relative one such as ``this_30_days`` is resolved by the server, from the bounds of a yearly
   ``count`` over it, so every window uses the same "now"). Without ``--timeframe`` the export
   covers all time: ``0001-01-01T00:00:00.000Z`` to ``9999-12-31T23:59:59.999Z`` (an event
   stamped in the very last millisecond of the year 9999 is the only one left out).
2. A window is counted; an empty one is skipped; one with fewer events than the cap is
   extracted; a window with as many events as the cap or more is cut in two halves at a
   millisecond boundary, left half first (so the output is in time order). An extraction that
   brings back fewer events than the count said means the server caps lower than we thought:
   the cap is lowered to that and the window is cut again, so nothing is lost whatever the
   server's cap.
3. Windows run from start (inclusive) to end (exclusive), the API's rule for timeframes
   (keen-api.md 7.3), and keen.timestamp has millisecond precision: every event falls in
   exactly one window, including one stamped exactly on a boundary. More events than the cap
   within one millisecond cannot be split by time: the export stops with an error saying so.

Events that arrive during an export are included only if they fall in a window not yet read.
Progress goes to standard error (``--quiet`` to silence it).

``--format jsonl`` writes one event per line, as the API returned it (what ``keen import``
reads). ``--format csv`` writes one column per property of the collection's schema (dotted
paths; lists and objects as JSON); a property absent from the schema is an error rather than a
dropped value.

``keen export --all DIR`` writes ``DIR/manifest.json``, one ``DIR/events/NAME.jsonl`` per
collection (``NAME`` percent-encoded), and the definitions of the saved queries
(``saved_queries.json``), cached datasets (``datasets.json``) and access keys
(``access_keys.json``: name, permissions, options and state; the key values themselves are
secrets and are not written, and a key cannot be recreated with the same value anyway). It needs
the read and master keys.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Callable
from urllib.parse import quote

from keen.cli import _args, _output
from keen.cli._analyses import add_scope_arguments
from keen.cli._args import ALL_TIME
from keen.cli._resources import all_datasets
from keen.cli._settings import Settings, build_client
from keen.client import KeenClient

__all__ = ["ALL_TIME", "MAX_EXTRACTION", "ExportError", "export_windows", "register"]

#: The API's cap on the events one extraction returns.
MAX_EXTRACTION = 100_000
MANIFEST_FORMAT = "keen-export"
MANIFEST_VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
                  r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?")

Window = tuple[int, int]


class ExportError(Exception):
    """The export cannot go on (the message says why)."""


def parse_ms(text: str) -> int | None:
    """Milliseconds since 1970 of an ISO-8601 text, rounded up to a whole millisecond (so a
    boundary keeps the events the API would keep); None when it is not ISO-8601."""
    match = _ISO.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int(((fraction or "") + "000000")[:6])
    extra = 1 if (fraction or "")[6:].strip("0") else 0  # sub-microsecond digits: round up
    try:
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), micros, tzinfo=timezone.utc)
    except ValueError:
        return None
    if offset and offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    total = (value - _EPOCH) // timedelta(microseconds=1) + extra
    return -(-total // 1000)


def format_ms(ms: int) -> str:
    """The API's timestamp text for milliseconds since 1970."""
    v = _EPOCH + timedelta(milliseconds=ms)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:"
            f"{v.second:02d}.{v.microsecond // 1000:03d}Z")


def window_timeframe(window: Window) -> dict[str, str]:
    return {"start": format_ms(window[0]), "end": format_ms(window[1])}


def export_windows(
    count: Callable[[Window], int],
    extract: Callable[[Window], list[Any]],
    window: Window,
    cap: int = MAX_EXTRACTION,
    on_window: Callable[[Window, int], None] | None = None,
) -> Iterator[Any]:
    """Every event of ``window`` (milliseconds, start inclusive, end exclusive), in windows
    of fewer than ``cap`` events, earliest window first (see the module docstring)."""
    if cap < 1:
        raise ValueError("cap must be 1 or more")
    stack = [window]
    while stack:
        start, end = stack.pop()
        if end <= start:
            continue
        expected = count((start, end))
        if expected <= 0:
            continue
        narrowest = end - start == 1
        if expected < cap or narrowest:
            events = extract((start, end))
            got = len(events)
            if 0 < got < expected:  # the server caps extractions lower than we thought
                cap = min(cap, got)
            elif got < cap or (narrowest and got == expected):
                if on_window is not None:
                    on_window((start, end), got)
                yield from events
                continue
        if narrowest:
            raise ExportError(
                f"more than {cap} events share the millisecond {format_ms(start)}: one "
                "extraction cannot return them all, and a timeframe cannot split them")
        middle = start + (end - start) // 2
        stack.append((middle, end))
        stack.append((start, middle))


class CollectionExport:
    """Exports one collection through a client (read key)."""

    def __init__(self, client: KeenClient, collection: str, *, timezone: Any = None,
                 filters: list[dict[str, Any]] | None = None, cap: int = MAX_EXTRACTION,
                 progress: IO[str] | None = None) -> None:
        self.client = client
        self.collection = collection
        self.timezone = timezone
        self.filters = filters
        self.cap = cap
        self.progress = progress
        self.total = 0
        self.done = 0

    def _count(self, window: Window) -> int:
        return int(self.client.count(self.collection, timeframe=window_timeframe(window),
                                     filters=self.filters))

    def _extract(self, window: Window) -> list[Any]:
        events = self.client.extraction(self.collection, timeframe=window_timeframe(window),
                                        filters=self.filters)
        return list(events)

    def resolve(self, timeframe: Any) -> Window:
        """The absolute window of ``timeframe`` (None: all time), and the expected total."""
        timeframe = ALL_TIME if timeframe is None else timeframe
        if isinstance(timeframe, Mapping):
            start, end = parse_ms(timeframe.get("start", "")), parse_ms(timeframe.get("end", ""))
            if start is not None and end is not None:
                if end <= start:
                    raise _args.UsageError("--timeframe: the end must come after the start")
                return start, end
        buckets = self.client.count(self.collection, timeframe=timeframe, timezone=self.timezone,
                                    filters=self.filters, interval="yearly")
        if not isinstance(buckets, list) or not buckets:
            raise ExportError(f"the server did not resolve the timeframe {timeframe!r}")
        first = parse_ms(buckets[0]["timeframe"]["start"])
        last = parse_ms(buckets[-1]["timeframe"]["end"])
        if first is None or last is None:
            raise ExportError("the server answered timeframe bounds that are not ISO-8601")
        return first, last

    def _report(self, window: Window, got: int) -> None:
        self.done += got
        if self.progress is not None:
            total = max(self.total, self.done)
            self.progress.write(f"{self.collection}: {self.done}/{total} events "
                                f"(to {format_ms(window[1])})\n")
            self.progress.flush()

    def events(self, timeframe: Any) -> Iterator[Any]:
        window = self.resolve(timeframe)
        self.total = self._count(window)
        return export_windows(self._count, self._extract, window, self.cap, self._report)


def _csv_columns(client: KeenClient, collection: str) -> list[str]:
    schema = client.get_collection(collection)
    names = sorted((schema or {}).get("properties") or {})
    return [n for n in names if n.startswith("keen.")] + [n for n in names
                                                           if not n.startswith("keen.")]


def write_events(events: Iterator[Any], fmt: str, out: IO[str],
                 columns: list[str] | None = None) -> int:
    """Write the events as JSON lines or CSV; their number."""
    written = 0
    if fmt == "csv":
        header = list(columns or [])
        known = set(header)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for event in events:
            flat = _output.flatten(event)
            unknown = sorted(set(flat) - known)
            if unknown:
                raise ExportError(f"an event has properties missing from the collection's "
                                  f"schema ({', '.join(unknown[:5])}); export as jsonl instead")
            writer.writerow([_output.cell_text(flat[name], csv_cell=True) if name in flat
                             else "" for name in header])
            written += 1
        return written
    for event in events:
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        written += 1
    return written


def _progress(args: argparse.Namespace) -> IO[str] | None:
    return None if args.quiet else sys.stderr


def _export_one(args: argparse.Namespace, settings: Settings) -> int:
    timeframe = _args.parse_timeframe(args.timeframe)
    with build_client(settings) as client:
        job = CollectionExport(client, args.collection, timezone=_args.parse_timezone(
            args.timezone), filters=_args.parse_filters(args.filters), cap=args.window_limit,
            progress=_progress(args))
        columns = _csv_columns(client, args.collection) if args.format == "csv" else None
        events = job.events(timeframe)
        if args.output in (None, "-"):
            written = write_events(events, args.format, sys.stdout, columns)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as handle:
                written = write_events(events, args.format, handle, columns)
    if not args.quiet:
        print(f"{args.collection}: exported {written} events", file=sys.stderr)
    return 0


def _write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _key_definition(key: Mapping[str, Any]) -> dict[str, Any]:
    return {field: key.get(field) for field in ("name", "is_active", "permitted", "options")}


def _export_all(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.all
    if os.path.isdir(directory) and os.listdir(directory):
        raise _args.UsageError(f"--all: {directory!r} is not empty; export into a new or empty "
                               "directory")
    for given, flag in ((args.filters, "--filter"), (args.format != "jsonl", "--format"),
                        (args.output, "--output")):
        if given:
            raise _args.UsageError(f"--all writes whole collections as JSON lines into DIR: "
                                   f"{flag} does not apply")
    timeframe = _args.parse_timeframe(args.timeframe)
    os.makedirs(os.path.join(directory, "events"), exist_ok=True)
    with build_client(settings) as client:
        # definitions first: a missing master key fails before any long export
        saved = client.saved_queries.all()
        keys = [_key_definition(k) for k in client.list_access_keys()]
        datasets = all_datasets(client)
        _write_json(os.path.join(directory, "saved_queries.json"), saved)
        _write_json(os.path.join(directory, "datasets.json"), datasets)
        _write_json(os.path.join(directory, "access_keys.json"), keys)
        collections = []
        for schema in client.get_all_collections():
            name = schema["name"]
            relative = f"events/{quote(name, safe='')}.jsonl"
            job = CollectionExport(client, name, timezone=_args.parse_timezone(args.timezone),
                                   cap=args.window_limit, progress=_progress(args))
            with open(os.path.join(directory, relative), "w", encoding="utf-8") as handle:
                written = write_events(job.events(timeframe), "jsonl", handle)
            collections.append({"name": name, "file": relative, "events": written})
            if not args.quiet:
                print(f"{name}: exported {written} events", file=sys.stderr)
    _write_json(os.path.join(directory, "manifest.json"), {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "project_id": settings.project_id,
        "exported_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timeframe": timeframe if timeframe is not None else ALL_TIME,
        "collections": collections,
        "saved_queries": len(saved), "datasets": len(datasets), "access_keys": len(keys)})
    print(f"exported {len(collections)} collection(s), {len(saved)} saved queries, "
          f"{len(datasets)} datasets and {len(keys)} access keys to {directory}",
          file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.all is not None:
        if args.collection is not None:
            raise _args.UsageError("give a collection or --all DIR, not both")
        return _export_all(args, settings)
    if args.collection is None:
        raise _args.UsageError("give the collection to export, or --all DIR")
    return _export_one(args, settings)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export", parents=parents, help="export a collection (or a whole project) to files",
        description="Stream every event of a collection (read key), splitting the timeframe "
                    "so that no extraction hits the API's cap; or copy a whole project with "
                    "--all DIR (read and master keys).",
        epilog="examples:\n  keen export purchases --timeframe this_30_days > purchases.jsonl\n"
               "  keen export purchases --format csv --output purchases.csv\n"
               "  keen export --all backup/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("collection", nargs="?", help="the collection to export")
    parser.add_argument("--all", metavar="DIR", help="export every collection and the "
                        "definitions of saved queries, datasets and access keys into DIR")
    add_scope_arguments(parser, timeframe_required=False)
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                        help="one JSON event per line (default), or CSV")
    parser.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--window-limit", type=_args.positive_int, default=MAX_EXTRACTION,
                        metavar="N",
                        help=f"events one extraction may return (default: the API's cap, "
                             f"{MAX_EXTRACTION})")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=_run)
