"""``keen import``: events (and definitions) into a project, safe to run again.

``keen import COLLECTION FILE...`` sends the events of JSON-lines files (one event per line; a
file holding one JSON array works too; ``-`` is standard input). ``keen import DIR`` imports
what ``keen export --all DIR`` wrote: every collection of the manifest, then the saved queries,
cached datasets and access keys.

Events go through the library's batching delivery (``BackgroundDelivery``: batches to the bulk
endpoint; transient failures retried up to twice ``--retries`` times within a minute, after which
the batch is reported as not delivered, so an unreachable server ends the import with a report
rather than a hang). Each event carries a ``keen.uniqueness_token`` that
depends only on the event, so importing the same file again (after an interruption, or twice by
mistake) stores nothing twice:

* an event that has a ``keen.uniqueness_token`` keeps it;
* else, with a ``keen.id`` (an exported event), the token is the SHA-256 of that id;
* else the SHA-256 of the event's canonical JSON and of how many identical events came before
  it in this import (so two identical events in a file are both stored, once each).

``keen.id`` and ``keen.created_at`` are left out of what is sent (the server assigns them);
``keen.timestamp`` and every other property are kept. A line that is not a JSON object is
reported and skipped; events the API refuses are reported with the API's reason. The summary
counts events *accepted* (stored now, or by an earlier run of the same import) and refused; the
exit code is 1 when anything was refused or skipped.

Definitions: saved queries and datasets are created or replaced by name (the same definition
twice is harmless). An access key cannot be copied with its value: a key is created with the
same name, permissions and options, unless a key of that name already exists (then it is left
alone), so running the import again creates no duplicate. The new keys' values are not printed:
see ``keen access-keys list``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from keen import exceptions
from keen._delivery import BackgroundDelivery
from keen._encoding import validate_collection_name
from keen._retry import RetryPolicy
from keen.cli import _args
from keen.cli._export import MANIFEST_FORMAT
from keen.cli._settings import Settings, build_client
from keen.client import KeenClient

__all__ = ["ImportReport", "read_events", "register", "stable_token"]

#: keen.* properties the server assigns (sent back they would be ignored or refused).
_SERVER_ASSIGNED = ("id", "created_at")
#: Unusable lines listed in the summary at most (the rest are counted).
_PROBLEMS_SHOWN = 20
#: Events read between two progress lines.
_PROGRESS_EVERY = 10_000


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stable_token(event: Mapping[str, Any], seen: Counter[str]) -> str:
    """The uniqueness token of ``event`` (see the module docstring); ``seen`` counts the
    identical events met so far in this import."""
    meta = event.get("keen")
    meta = meta if isinstance(meta, Mapping) else {}
    token = meta.get("uniqueness_token")
    if isinstance(token, str) and token:
        return token
    event_id = meta.get("id")
    if isinstance(event_id, str) and event_id:
        basis = "keen.id\0" + event_id
    else:
        content = _canonical(event)
        seen[content] += 1
        basis = f"content\0{seen[content]}\0{content}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def prepared(event: Mapping[str, Any], seen: Counter[str]) -> dict[str, Any]:
    """The event to send: the server-assigned keen.* left out, a stable token added (a token
    the event has is kept as it is, even a malformed one: the library refuses it, and the
    import reports why)."""
    meta = event.get("keen")
    if meta is not None and not isinstance(meta, Mapping):
        return dict(event)  # refused by the library with its reason
    meta = dict(meta or {})
    if meta.get("uniqueness_token") is None:
        meta["uniqueness_token"] = stable_token(event, seen)
    for name in _SERVER_ASSIGNED:
        meta.pop(name, None)
    return {**event, "keen": meta}


def read_events(handle: IO[str], where: str,
                problems: list[str]) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines file (or a JSON array); unusable lines go to ``problems``."""
    first = ""
    while True:
        char = handle.read(1)
        if not char or not char.isspace():
            first = char
            break
    if first == "[":
        try:
            items = json.loads(first + handle.read())
        except ValueError as exc:
            problems.append(f"{where}: not valid JSON ({exc})")
            return
        for index, item in enumerate(items, start=1):
            if isinstance(item, dict):
                yield item
            else:
                problems.append(f"{where} item {index}: not a JSON object")
        return
    for number, line in enumerate(_lines(first, handle), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            item = json.loads(text)
        except ValueError as exc:
            problems.append(f"{where} line {number}: not valid JSON ({exc})")
            continue
        if isinstance(item, dict):
            yield item
        else:
            problems.append(f"{where} line {number}: not a JSON object")


def _lines(first: str, handle: IO[str]) -> Iterator[str]:
    head = first + handle.readline() if first else ""
    if head:
        yield head
    yield from handle


class ImportReport:
    """What happened to the events of one import (filled by the delivery's on_error)."""

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.reasons: Counter[tuple[str, str]] = Counter()
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def on_error(self, events: list[tuple[str, dict[str, Any]]], error: BaseException) -> None:
        reason = _reason(error)
        with self._lock:
            for collection, _body in events:
                self.refused[collection] += 1
                self.reasons[(collection, reason)] += 1

    def accepted(self, collection: str) -> int:
        return self.read[collection] - self.refused[collection]

    def write(self, out: IO[str]) -> None:
        for collection in sorted(self.read):
            out.write(f"{collection}: {self.read[collection]} read, "
                      f"{self.accepted(collection)} accepted, {self.refused[collection]} "
                      f"refused\n")
        for (collection, reason), count in sorted(self.reasons.items()):
            out.write(f"  refused in {collection}: {count} x {reason}\n")
        for problem in self.skipped[:_PROBLEMS_SHOWN]:
            out.write(f"  skipped: {problem}\n")
        if len(self.skipped) > _PROBLEMS_SHOWN:
            out.write(f"  ... and {len(self.skipped) - _PROBLEMS_SHOWN} more lines skipped\n")

    @property
    def failed(self) -> bool:
        return bool(sum(self.refused.values()) or self.skipped)


def _reason(error: BaseException) -> str:
    if isinstance(error, exceptions.KeenApiError):
        code = f"{error.error_code}: " if error.error_code else ""
        return " ".join(f"{code}{error.message}".split())
    return " ".join(f"{type(error).__name__}: {error}".split())


def _delivery(report: ImportReport, settings: Settings) -> BackgroundDelivery:
    # transient failures are retried a bounded number of times: an unreachable server ends
    # the import with a report instead of hanging on forever
    retry = RetryPolicy(max_retries=settings.retries * 2, deadline=60.0)
    return BackgroundDelivery(max_queue_size=20_000, block_timeout=3600.0, batch_size=500,
                              flush_interval=0.2, retry=retry, on_error=report.on_error,
                              exit_timeout=None)


def send_events(client: KeenClient, collection: str, events: Iterable[Mapping[str, Any]],
                report: ImportReport, progress: IO[str] | None) -> None:
    """Queue the events (the delivery sends them in batches)."""
    seen: Counter[str] = Counter()
    for event in events:
        report.read[collection] += 1
        try:
            client.add_event(collection, prepared(event, seen))
        except exceptions.InvalidEventError as exc:  # refused before sending: counted as such
            report.on_error([(collection, dict(event))], exc)
        if progress is not None and report.read[collection] % _PROGRESS_EVERY == 0:
            progress.write(f"{collection}: {report.read[collection]} events queued, "
                           f"{client.stats().get('sent')} sent\n")
            progress.flush()


def _open(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8")  # (closed by the caller)


def _import_files(client: KeenClient, collection: str, paths: list[str], report: ImportReport,
                  progress: IO[str] | None) -> None:
    for path in paths:
        handle = _open(path)
        try:
            send_events(client, collection, read_events(handle, path, report.skipped), report,
                        progress)
        finally:
            if handle is not sys.stdin:
                handle.close()


def _finish(client: KeenClient, report: ImportReport, progress: IO[str] | None) -> None:
    while not client.flush(timeout=1.0):
        if progress is not None:
            stats = client.stats()
            progress.write(f"sending: {stats.get('sent')} sent, {stats.get('pending')} "
                           "pending\n")
            progress.flush()
    client.close()


def _load_manifest(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, "manifest.json")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except OSError as exc:
        raise _args.UsageError(f"{directory!r} is not a 'keen export --all' directory: cannot "
                               f"read manifest.json ({exc.strerror})") from None
    except ValueError as exc:
        raise _args.UsageError(f"{path!r} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _args.UsageError(f"{path!r} is not a keen export manifest")
    return manifest


def _inside(directory: str, relative: Any) -> str:
    """``directory/relative``, refusing a manifest entry that points outside the directory."""
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, str(relative)))
    if not isinstance(relative, str) or os.path.commonpath([root, path]) != root:
        raise _args.UsageError(f"manifest.json names a file outside {directory!r}: "
                               f"{relative!r}")
    return path


def _read_json_list(directory: str, name: str) -> list[Any]:
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    if not isinstance(value, list):
        raise _args.UsageError(f"{path!r} must hold a JSON list")
    return value


_SAVED_FIELDS = ("query_name", "refresh_rate", "query", "metadata")


def import_definitions(client: KeenClient, directory: str, out: IO[str]) -> list[str]:
    """Create the saved queries, datasets and access keys of an export; the failures."""
    failures: list[str] = []
    saved = _read_json_list(directory, "saved_queries.json")
    datasets = _read_json_list(directory, "datasets.json")
    keys = _read_json_list(directory, "access_keys.json")
    done = Counter[str]()
    for definition in saved:
        name = definition.get("query_name")
        body = {k: definition[k] for k in _SAVED_FIELDS if definition.get(k) is not None}
        body["query"] = {k: v for k, v in (body.get("query") or {}).items() if v is not None}
        try:
            client.saved_queries.create(name, body)
            done["saved queries"] += 1
        except exceptions.KeenApiError as exc:
            failures.append(f"saved query {name!r}: {_reason(exc)}")
    for definition in datasets:
        name = definition.get("dataset_name")
        query = {k: v for k, v in (definition.get("query") or {}).items()
                 if k != "project_id" and v is not None}
        try:
            client.cached_datasets.create(name, query, definition.get("index_by"),
                                          definition.get("display_name"))
            done["datasets"] += 1
        except exceptions.KeenApiError as exc:
            failures.append(f"dataset {name!r}: {_reason(exc)}")
    if keys:
        existing = {k.get("name") for k in client.list_access_keys()}
        for definition in keys:
            name = definition.get("name")
            if name in existing and name is not None:
                done["access keys already there"] += 1
                continue
            try:
                client.create_access_key(name, is_active=definition.get("is_active", True),
                                         permitted=definition.get("permitted") or [],
                                         options={k: v for k, v in (
                                             definition.get("options") or {}).items()
                                             if v is not None})
                existing.add(name)
                done["access keys created"] += 1
            except exceptions.KeenApiError as exc:
                failures.append(f"access key {name!r}: {_reason(exc)}")
    parts = [f"{count} {what}" for what, count in sorted(done.items())]
    out.write(f"definitions: {', '.join(parts) or 'none'}\n")
    for failure in failures:
        out.write(f"  refused: {failure}\n")
    return failures


def _run(args: argparse.Namespace, settings: Settings) -> int:
    report = ImportReport()
    progress = None if args.quiet else sys.stderr
    paths: list[str] = args.paths
    directory = None
    if len(paths) == 1 and os.path.isdir(paths[0]):
        directory = paths[0]
        manifest = _load_manifest(directory)
        jobs = [(c["name"], [_inside(directory, c["file"])])
                for c in manifest.get("collections", [])]
    elif len(paths) >= 2:
        collection, files = paths[0], paths[1:]
        for path in files:
            if path != "-" and not os.path.isfile(path):
                raise _args.UsageError(f"no such file: {path!r}")
        jobs = [(collection, files)]
    else:
        raise _args.UsageError("give COLLECTION FILE... or an export directory")
    for collection, _files in jobs:
        try:
            validate_collection_name(collection)
        except exceptions.InvalidEventError as exc:
            raise _args.UsageError(str(exc)) from None
    client = build_client(settings, delivery=_delivery(report, settings))
    try:
        for collection, files in jobs:
            _import_files(client, collection, files, report, progress)
        _finish(client, report, progress)
    finally:
        client.close()
    report.write(sys.stderr)
    failures: list[str] = []
    if directory is not None:
        with build_client(settings) as admin:
            failures = import_definitions(admin, directory, sys.stderr)
    return 1 if report.failed or failures else 0


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import", parents=parents, help="import events (and definitions) from files",
        description="Send events from JSON-lines files (write key) with uniqueness tokens "
                    "derived from each event, so an interrupted import can simply be run "
                    "again; or import a 'keen export --all' directory (write and master keys).",
        epilog="examples:\n  keen import purchases purchases.jsonl\n  keen import backup/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="COLLECTION FILE... | DIR",
                        help="a collection and its files ('-': stdin), or an export directory")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=_run)


