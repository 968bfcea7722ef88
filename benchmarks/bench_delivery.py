"""Benchmark of event delivery: direct (synchronous) vs background vs durable.

Run: ``python benchmarks/bench_delivery.py`` (``--quick`` for smaller counts).

The Keen API is played by a stand-in HTTP server in another process that answers every batch
with one success per event and stores nothing (so the figures measure the client). Reported:

* the median cost of one ``add_event`` call on the caller's thread (validation and encoding
  included; for direct delivery that includes the HTTP round trip);
* events delivered per second, from the first ``add_event`` until ``flush()`` returned, next to
  synchronous ``add_event`` and synchronous ``add_events`` (batches of 500) of the same events;
* a burst of 100,000 events with default ``BackgroundDelivery()`` settings, delivered completely;
* recovery after an outage: 20,000 events queued while the stand-in is down (5 s: its process
  is stopped, so connections are refused), then restarted on the same port answering its first
  11 requests with 503 and ``Retry-After: 1``; reported is the time from the moment it answers
  2xx again (its 11th refusal) until ``flush()`` returned with everything delivered, and the time
  from its restart to the client's first try.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keen._delivery import BackgroundDelivery, DurableDelivery
from keen.client import KeenClient

PROJECT = "5eb1f5c3d3a2b40001e0a1b2"
COLLECTION = "bench"


# ------------------------------------------------------------------ the stand-in server


class _Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one answer, not two packets waiting on a delayed ACK
    received = 0
    lock = threading.Lock()
    cache: ClassVar[dict[int, bytes]] = {}
    #: refuse this many requests first (503, with Retry-After when retry_after is set)
    refuse = 0
    retry_after: str | None = None
    refused = 0
    first_request_at: float | None = None
    healthy_since: float | None = None  # when the last refusal was answered

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            if _Answers.first_request_at is None:
                _Answers.first_request_at = time.time()
            refuse = _Answers.refused < _Answers.refuse
            if refuse:
                _Answers.refused += 1
        if refuse:
            self.send_response(503)
            if self.retry_after is not None:
                self.send_header("Retry-After", self.retry_after)
            payload = b'{"message": "overloaded", "error_code": "ServiceUnavailable"}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            with self.lock:
                if _Answers.refused == _Answers.refuse:
                    _Answers.healthy_since = time.time()
            return
        if self.path.endswith("/events"):
            count = body.count(b'"n": ')  # every benchmark event has an "n" property
            answer = self.cache.get(count)
            if answer is None:
                answer = self.cache[count] = json.dumps(
                    {COLLECTION: [{"success": True}] * count}).encode()
            status = 200
        else:
            count, answer, status = 1, b'{"created": true}', 201
        with self.lock:
            _Answers.received += count
        self._reply(status, answer)

    def do_GET(self) -> None:
        with self.lock:
            self._reply(200, json.dumps({
                "received": _Answers.received, "refused": _Answers.refused,
                "first_request_at": _Answers.first_request_at,
                "healthy_since": _Answers.healthy_since,
            }).encode())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int = 0, refuse: int = 0, retry_after: str | None = None) -> None:
    _Answers.refuse, _Answers.retry_after = refuse, retry_after
    server = ThreadingHTTPServer(("127.0.0.1", port), _Answers)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def start_stand_in(*options: str) -> tuple[subprocess.Popen[str], str]:
    """The stand-in server in a process of its own, and its URL."""
    process = subprocess.Popen([sys.executable, __file__, "--serve", *options],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{int(process.stdout.readline())}"


def stop_stand_in(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(10)


def counts(url: str) -> dict[str, Any]:
    import requests

    answer: dict[str, Any] = requests.get(url + "/count", timeout=10).json()
    return answer


def received(url: str) -> int:
    return int(counts(url)["received"])


# ------------------------------------------------------------------ measurements


def event(n: int) -> dict[str, Any]:
    return {"n": n, "user": {"id": f"u{n % 1000}", "plan": "pro"}, "action": "click",
            "price": 9.99, "tags": ["a", "b"]}


def client_for(url: str, delivery: Any = None) -> KeenClient:
    return KeenClient(PROJECT, write_key="bench-write-key", base_url=url, delivery=delivery)


def median_call_us(client: KeenClient, count: int) -> float:
    """Median time of add_event; each event is built just before (and dropped after) its call,
    as an application does (a list of them all kept alive would slow the garbage collector)."""
    clock = time.perf_counter_ns
    add = client.add_event
    samples = []
    for n in range(count):
        body = event(n)
        start = clock()
        add(COLLECTION, body)
        samples.append(clock() - start)
    return statistics.median(samples) / 1000


def delivered_per_second(url: str, delivery: Any, count: int) -> tuple[float, dict[str, Any]]:
    """Events/s from the first add_event until flush() returned (all confirmed)."""
    client = client_for(url, delivery)
    events = [event(n) for n in range(count)]
    before = received(url)
    start = time.perf_counter()
    for body in events:
        client.add_event(COLLECTION, body)
    assert client.flush(300), client.stats()
    seconds = time.perf_counter() - start
    stats = client.stats()
    client.close(5)
    assert stats["sent"] == count and received(url) - before >= count, stats
    return count / seconds, stats


def sync_add_event_per_second(url: str, count: int) -> float:
    client = client_for(url)
    start = time.perf_counter()
    for n in range(count):
        client.add_event(COLLECTION, event(n))
    return count / (time.perf_counter() - start)


def sync_add_events_per_second(url: str, count: int, batch: int = 500) -> tuple[float, float]:
    """(events/s, microseconds per event on the caller's thread) for add_events batches."""
    client = client_for(url)
    events = [event(n) for n in range(count)]
    start = time.perf_counter()
    for first in range(0, count, batch):
        client.add_events({COLLECTION: events[first:first + batch]})
    seconds = time.perf_counter() - start
    return count / seconds, seconds / count * 1e6


def recovery_after_outage(count: int, outage: float) -> tuple[int, float, float, float]:
    """(events, outage s, restart -> first try s, healthy -> all delivered s)."""
    stand_in, url = start_stand_in()
    port = url.rsplit(":", 1)[1]
    client = client_for(url, BackgroundDelivery())
    try:
        client.add_event(COLLECTION, event(0))
        assert client.flush(30), client.stats()
        stop_stand_in(stand_in)  # the outage: connections refused
        for n in range(1, count + 1):
            client.add_event(COLLECTION, event(n))
        time.sleep(outage)
        stand_in, url = start_stand_in("--port", port, "--refuse", "11", "--retry-after", "1")
        restarted = time.time()
        assert client.flush(600), client.stats()
        delivered = time.time()
        seen = counts(url)
        assert seen["received"] == count and seen["refused"] == 11, seen
    finally:
        client.close(5)
        stop_stand_in(stand_in)
    return count, outage, seen["first_request_at"] - restarted, delivered - seen["healthy_since"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--refuse", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--retry-after", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.port, options.refuse, options.retry_after)
        return
    scale = 10 if options.quick else 1
    stand_in, url = start_stand_in()
    try:
        run(url, scale)
    finally:
        stop_stand_in(stand_in)


def run(url: str, scale: int) -> None:
    workdir = tempfile.mkdtemp(prefix="keen-bench-")
    rows: list[tuple[str, str, str]] = []

    def durable(name: str, durability: str = "group") -> DurableDelivery:
        return DurableDelivery(path=os.path.join(workdir, name), durability=durability)

    # 1. cost of one add_event on the caller's thread
    direct_cost = median_call_us(client_for(url), 2000 // scale)
    rows.append(("add_event, direct (synchronous)", f"{direct_cost:.1f} µs", "median per call"))
    for label, delivery in [
        ("background, sender idle meanwhile",
         BackgroundDelivery(batch_size=100_000, flush_interval=60)),
        ("background", BackgroundDelivery()),
        ("durable, group commit", durable("cost-group.sqlite3")),
        ("durable, durability='process'", durable("cost-proc.sqlite3", "process")),
    ]:
        client = client_for(url, delivery)
        cost = median_call_us(client, 50_000 // scale)
        client.close(30)
        rows.append((f"add_event, {label}", f"{cost:.2f} µs", "median per call"))
    per_second, per_event = sync_add_events_per_second(url, 100_000 // scale)
    rows.append(("add_events (synchronous, 500 per call)", f"{per_event:.2f} µs", "per event"))

    # 2. delivered per second, including the final flush
    count = 100_000 // scale
    rows.append(("direct add_event", f"{sync_add_event_per_second(url, 3000 // scale):,.0f}/s",
                 "delivered"))
    rows.append(("direct add_events (500 per call)", f"{per_second:,.0f}/s", "delivered"))
    for label, delivery in [
        ("background", BackgroundDelivery(flush_interval=0.05)),
        ("durable, group commit", durable("rate-group.sqlite3")),
        ("durable, durability='process'", durable("rate-proc.sqlite3", "process")),
    ]:
        rate, _stats = delivered_per_second(url, delivery, count)
        rows.append((f"{label} add_event + flush", f"{rate:,.0f}/s", f"{count:,} events"))
    full_count = 5000 // scale
    rate, _stats = delivered_per_second(url, durable("rate-full.sqlite3", "full"), full_count)
    rows.append(("durable, durability='full' add_event + flush", f"{rate:,.0f}/s",
                 f"{full_count:,} events (one fsync each)"))

    # 3. a burst with default settings
    burst = 100_000
    rate, stats = delivered_per_second(url, BackgroundDelivery(), burst)
    rows.append(("burst, BackgroundDelivery() defaults", f"{rate:,.0f}/s",
                 f"{stats['sent']:,}/{burst:,} delivered, {stats['dropped']} dropped"))

    # 4. recovery after an outage (a stand-in of its own, stopped and restarted)
    queued, outage, first_try, recovery = recovery_after_outage(20_000 // scale,
                                                                5.0 if scale == 1 else 2.0)
    rows.append(("recovery: healthy again -> all delivered", f"{recovery:.2f} s",
                 f"{queued:,} events queued in a {outage:g} s outage, then 11 x 503 "
                 "Retry-After: 1"))
    rows.append(("recovery: restarted -> first try", f"{first_try:.2f} s",
                 "(the backoff cap: 5 s at most)"))

    width = max(len(row[0]) for row in rows)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; stand-in server: {url}")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()
