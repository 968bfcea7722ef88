"""Shared pieces of the delivery tests: a scriptable stand-in for KeenApi, quick retry policies,
and readers of what a LocalKeenServer stored."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

from keen._delivery import BackgroundDelivery
from keen._delivery._strategy import QueuedPersistenceStrategy
from keen._retry import RetryPolicy
from keen.client import Event

#: Retry at once and forever (tests must not wait for real backoffs).
QUICK_RETRY = RetryPolicy(max_retries=10**9, deadline=float("inf"), backoff_base=0.005,
                          backoff_cap=0.02)


class FakeApi:
    """Records posted batch bodies and answers as ``script`` says.

    ``script`` is a list consumed one entry per request: an exception instance is raised, a
    callable ``f(batch) -> answer`` answers. When it is empty every event is stored (item
    results all successful) unless ``reject(event)`` says it is invalid. While ``failure`` is
    set, every request raises it. ``gate`` (when cleared) makes requests wait until it is set.
    """

    def __init__(self, script: list[Any] | None = None,
                 reject: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.script = list(script or [])
        self.reject = reject
        self.bodies: list[dict[str, list[dict[str, Any]]]] = []
        self.stored: list[tuple[str, dict[str, Any]]] = []
        self.failure: BaseException | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    write_key: str | None = "write key"

    def _get_write_key(self) -> str | None:
        return self.write_key

    def _get_master_key(self) -> str | None:
        return None

    def post_events_raw(self, body: bytes, *, idempotent: bool, retry: Any = None) -> Any:
        assert isinstance(body, bytes) and idempotent is True
        self.gate.wait(10)
        batch = json.loads(body)
        with self.lock:
            self.bodies.append(batch)
            step = self.script.pop(0) if self.script else None
        if self.failure is not None:
            raise self.failure
        if isinstance(step, BaseException):
            raise step
        if step is not None:
            return step(batch)
        answer: dict[str, list[dict[str, Any]]] = {}
        for collection, events in batch.items():
            results = answer[collection] = []
            for event in events:
                if self.reject is not None and self.reject(event):
                    results.append({"success": False, "error": {
                        "name": "InvalidPropertyNameError", "description": "bad name"}})
                else:
                    with self.lock:
                        self.stored.append((collection, event))
                    results.append({"success": True})
        return answer

    def stored_values(self, key: str = "n") -> list[Any]:
        with self.lock:
            return [event[key] for _collection, event in self.stored]


class Recorder:
    """An on_error callback that remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[tuple[str, dict[str, Any]]], BaseException]] = []
        self.lock = threading.Lock()

    def __call__(self, events: list[tuple[str, dict[str, Any]]], error: BaseException) -> None:
        with self.lock:
            self.calls.append((events, error))

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [event for events, _error in self.calls for event in events]

    def errors(self) -> list[BaseException]:
        with self.lock:
            return [error for _events, error in self.calls]


def strategy(api: Any, **options: Any) -> QueuedPersistenceStrategy:
    """A background strategy over ``api`` with quick retries (``options`` override)."""
    settings: dict[str, Any] = {"retry": QUICK_RETRY, "flush_interval": 0.02}
    settings.update(options)
    return QueuedPersistenceStrategy(api, BackgroundDelivery(**settings))


def add(target: QueuedPersistenceStrategy, collection: str, body: dict[str, Any]) -> None:
    """What KeenClient.add_event does with a strategy."""
    target.persist(Event("project", collection, body))


def check_counters(stats: dict[str, Any]) -> None:
    """Every event handed over is accounted for."""
    assert stats["queued"] == (stats["sent"] + stats["failed"] + stats["dropped"]
                               + stats["pending"]), stats


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling) for something with no event to wait on, e.g. another process's work."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.01)


def stored_events(server: Any, collection: str) -> list[dict[str, Any]]:
    """The event bodies a LocalKeenServer stored in ``collection``."""
    with server.storage.reading() as conn:
        rows = conn.execute(
            "SELECT body FROM events WHERE project = ? AND collection = ?",
            (server.project_id, collection),
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def assert_exactly_once(server: Any, collection: str, expected: Iterator[int] | range) -> None:
    """The server holds each expected ``n`` exactly once, and nothing else."""
    counts = Counter(event["n"] for event in stored_events(server, collection))
    duplicated = sorted(n for n, count in counts.items() if count > 1)
    assert not duplicated, f"stored more than once: {duplicated[:10]}"
    missing = sorted(set(expected) - set(counts))
    assert not missing, f"lost: {missing[:10]} ({len(missing)} in all)"
    unexpected = sorted(set(counts) - set(expected))
    assert not unexpected, f"never sent but stored: {unexpected[:10]}"


@contextmanager
def closing(target: QueuedPersistenceStrategy) -> Iterator[QueuedPersistenceStrategy]:
    try:
        yield target
    finally:
        target.close(0.5)


# ------------------------------------------------------------------ other processes

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def run_worker(mode: str, settings: dict[str, Any], **popen: Any) -> Any:
    """Start ``python tests/_delivery_helpers.py MODE SETTINGS`` (see ``_worker``)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = str(REPO / "tests" / "_delivery_helpers.py")
    return subprocess.Popen([sys.executable, script, mode, json.dumps(settings)], env=env,
                            **popen)


def _worker(mode: str, settings: dict[str, Any]) -> None:
    """What the subprocesses of the delivery tests do.

    ``produce``: add events n = start, start+1, ... forever, printing, once add_event
    returned, n, the time then and the time the call began (time.monotonic; the parent kills
    the process). ``drain``: open
    the client (leftovers are sent), flush, close, print the stats. ``exit``: add ``count``
    events and end without flushing. ``hold``: add ``count`` events, ``close`` the client if
    asked, print "ready" and live on until stdin closes. ``fork``: add events, fork, add other
    events in both processes, print both stats.
    """
    import logging
    import os
    import sys

    from keen._delivery import DurableDelivery

    if not settings.get("no_logging"):
        logging.basicConfig(level=logging.WARNING)  # (the application's choice: on stderr)
    delivery: BackgroundDelivery
    options = {"retry": QUICK_RETRY, "flush_interval": settings.get("flush_interval", 0.01),
               "batch_size": settings.get("batch_size", 50)}
    for name in ("exit_timeout", "block_timeout"):
        if name in settings:
            options[name] = settings[name]
    if settings.get("path"):
        delivery = DurableDelivery(path=settings["path"],
                                   durability=settings.get("durability", "group"), **options)
    else:
        delivery = BackgroundDelivery(**options)
    from keen.client import KeenClient

    client = KeenClient(settings["project_id"], write_key=settings["write_key"],
                        base_url=settings["url"], delivery=delivery)
    collection = settings["collection"]
    if mode == "produce":
        n = settings["start"]
        while True:
            began = time.monotonic()
            client.add_event(collection, {"n": n})
            print(n, time.monotonic(), began, flush=True)
            n += 1
    elif mode == "drain":
        for n in settings.get("extra", []):
            client.add_event(collection, {"n": n})
        ok = client.flush(20)
        print(json.dumps({"flushed": ok, "stats": client.stats()}), flush=True)
        client.close(1)
    elif mode == "hold":
        for n in range(settings["count"]):
            client.add_event(collection, {"n": n})
        if settings.get("close"):
            client.close(0.3)
        print("ready", flush=True)
        sys.stdin.readline()  # (until the parent closes our stdin, or kills us)
        os._exit(0)
    elif mode == "exit":
        for n in range(settings["count"]):
            client.add_event(collection, {"n": n})
        print("queued", flush=True)
    elif mode == "fork":
        for n in range(0, 100):
            client.add_event(collection, {"n": n})
        pid = os.fork()
        if pid == 0:
            for n in range(1000, 1050):
                client.add_event(collection, {"n": n})
            ok = client.flush(20)
            print(json.dumps({"who": "child", "flushed": ok, "stats": client.stats()}),
                  flush=True)
            client.close(1)
            os._exit(0)
        for n in range(100, 150):
            client.add_event(collection, {"n": n})
        ok = client.flush(20)
        os.waitpid(pid, 0)
        print(json.dumps({"who": "parent", "flushed": ok, "stats": client.stats()}),
              flush=True)
        client.close(1)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    import sys

    _worker(sys.argv[1], json.loads(sys.argv[2]))
