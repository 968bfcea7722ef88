"""Memory and time of one batch request in the local server, side by side with a floor.

Ours: ``KeenApp.handle`` answers a ``POST /events`` batch in-process (the code behind the HTTP
framing: parse, validate, enrich, store into an in-memory database, answer per event).
Floor: ``json.loads`` of the same body, then ``json.dumps`` of an answer of the same shape (one
``{"success": true}`` per event): what any implementation of the API must at least allocate if
it parses the whole body at once.

For each body (realistic events of a dozen properties with nested objects and lists, and empty
events ``{}``: the worst case, four bytes of body per event, as many as a batch may hold) it
reports the peak of Python
allocations (``tracemalloc``) as a multiple of the body size, and the time per event (timed
without tracemalloc), for ours and the floor, and their ratio. SQLite's own memory (the stored
events) is not a Python allocation and is not counted.

    python benchmarks/bench_server_batch_memory.py [--size 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keen.server import LocalKeenServer  # noqa: E402
from keen.server.app import KeenApp  # noqa: E402
from keen.server.limits import MAX_BATCH_EVENTS  # noqa: E402
from keen.server.resources._base import Request  # noqa: E402

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)


def realistic(i: int) -> dict[str, Any]:
    return {"user": {"id": f"u-{i % 5000}", "plan": ["free", "pro"][i % 2], "age": 20 + i % 50},
            "page": f"/docs/{i % 300}", "referrer": "https://example.com/", "n": i,
            "tags": ["a", "b"], "ok": i % 3 == 0, "price": i * 0.25, "country": "FR",
            "session": f"s-{i:08d}", "screen": {"w": 1280, "h": 800},
            "keen": {"timestamp": f"2026-03-{1 + i % 10:02d}T12:00:00.000Z"}}


def body_of(kind: str, size: int) -> bytes:
    events: list[Any] = []
    length = 10
    while length < size and len(events) < MAX_BATCH_EVENTS:
        event = {} if kind == "empty" else realistic(len(events))
        events.append(event)
        length += len(json.dumps(event)) + 2
    return json.dumps({"c": events}).encode()


def ours(body: bytes) -> Callable[[], Any]:
    server = LocalKeenServer(clock=lambda: NOW)
    app = KeenApp(server.storage, server.projects, lambda: NOW, server.faults)

    def request(data: bytes) -> Request:
        return Request("POST", f"/3.0/projects/{server.project_id}/events",
                       headers={"authorization": str(server.write_key)}, body=data)

    app.handle(request(b'{"warm_up": [{}]}'))

    def run() -> Any:
        response = app.handle(request(body))
        assert response.status == 200, response.body[:200]
        return response
    return run


def floor(body: bytes) -> Callable[[], Any]:
    def run() -> bytes:
        batch = json.loads(body)
        answer = {name: [{"success": True} for _ in events] for name, events in batch.items()}
        return json.dumps(answer, separators=(",", ":")).encode()
    return run


def measure(make: Callable[[bytes], Callable[[], Any]], body: bytes) -> tuple[float, float]:
    """(peak allocations / body size, seconds) of one run each, on fresh state."""
    run = make(body)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    run = make(body)
    started = time.perf_counter()
    run()
    return peak / len(body), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="body size in bytes")
    args = parser.parse_args()
    print(f"{'body':<10} {'events':>8} {'':>6} {'peak/size':>10} {'us/event':>9}")
    for kind in ("realistic", "empty"):
        body = body_of(kind, args.size)
        count = len(next(iter(json.loads(body).values())))
        results = {name: measure(make, body) for name, make in (("ours", ours),
                                                                ("floor", floor))}
        for name, (ratio, seconds) in results.items():
            print(f"{kind:<10} {count:>8} {name:>6} {ratio:>9.1f}x {seconds / count * 1e6:>9.1f}")
        (ours_ratio, ours_time), (floor_ratio, floor_time) = results["ours"], results["floor"]
        print(f"{kind:<10} {'':>8} {'ratio':>6} {ours_ratio / floor_ratio:>9.2f}x "
              f"{ours_time / floor_time:>8.1f}x  (ours / floor)")


if __name__ == "__main__":
    main()
