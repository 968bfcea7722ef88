"""Sequential requests per second to the local server on one kept-alive connection, side by side
with the same requests each on a new connection (issue 7, item 1).

The server runs in its own process (``python -m keen.server --port 0``, in memory). This process
sends the same sequence of small requests, one after the other, alternating a one-event write
(``POST /events/<collection>``) and a ``count`` query (``GET /queries/count``), in two ways:

* kept-alive: one ``requests.Session``, so every request reuses one TCP connection (what
  ``KeenClient`` does);
* new connection: a fresh ``requests.Session`` per request, closed after it (connect, request,
  close: what a client without pooling pays).

Rounds are interleaved (kept-alive, new, new, kept-alive, ...) and the median requests/s of each
is reported with the ratio kept-alive/new. Kept-alive must be the faster: a ratio below 1.0 means
the server stalls on kept-alive connections (the small-write / delayed-ACK interaction that once
cost ~44 ms per request), and the script exits with status 1.

    python benchmarks/bench_server_keepalive.py [--requests 400] [--rounds 4]

``measure()`` is also called by ``bench_server_ingest.py`` so the keep-alive figure is printed
beside the ingest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keen.server.config import DEV_PROJECT_ID, DEV_READ_KEY, DEV_WRITE_KEY  # noqa: E402

COLLECTION = "page_views"


def _event(i: int) -> bytes:
    """A realistic small event: a dozen properties, nested objects, varied cardinality."""
    return json.dumps({
        "user": {"id": f"u{i % 997}", "plan": "pro" if i % 3 else "free",
                 "location": {"country": ["US", "FR", "JP"][i % 3], "city": f"c{i % 41}"}},
        "page": f"/p/{i % 50}", "referrer": "https://example.com/", "duration_ms": i % 1000,
        "tags": ["a", "b"], "ab_test": "b" if i % 2 else "a", "session": f"s{i}",
        "keen": {"timestamp": f"2026-03-{1 + i % 28:02d}T12:00:00.000Z"},
    }).encode()


def _sequence(url: str, n: int) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    base = f"{url}/3.0/projects/{DEV_PROJECT_ID}"
    write = {"Authorization": DEV_WRITE_KEY, "Content-Type": "application/json"}
    read = {"Authorization": DEV_READ_KEY}
    count = (f"{base}/queries/count?event_collection={COLLECTION}"
             "&timeframe=this_10_years")
    return [("POST", f"{base}/events/{COLLECTION}", _event(i), write) if i % 2 == 0
            else ("GET", count, None, read) for i in range(n)]


def _kept_alive(sequence: list[tuple[str, str, bytes | None, dict[str, str]]]) -> float:
    with requests.Session() as session:
        started = time.perf_counter()
        for method, url, body, headers in sequence:
            response = session.request(method, url, data=body, headers=headers, timeout=30)
            response.raise_for_status()
        return len(sequence) / (time.perf_counter() - started)


def _new_connections(sequence: list[tuple[str, str, bytes | None, dict[str, str]]]) -> float:
    started = time.perf_counter()
    for method, url, body, headers in sequence:
        with requests.Session() as session:
            response = session.request(method, url, data=body, headers=headers, timeout=30)
            response.raise_for_status()
    return len(sequence) / (time.perf_counter() - started)


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen([sys.executable, "-m", "keen.server", "--port", "0"],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            return process, line.split("listening on ", 1)[1].strip()
    raise RuntimeError("the local server did not start")


def measure(url: str, n: int = 400, rounds: int = 4) -> tuple[float, float]:
    """Median requests/s (kept-alive, new connection) against the server at ``url``."""
    sequence = _sequence(url, n)
    _kept_alive(sequence[:20])  # warm up: creates the collection's tables
    kept: list[float] = []
    new: list[float] = []
    for index in range(rounds):  # kept, new, new, kept, ...
        order = (kept, new) if index % 2 == 0 else (new, kept)
        for rates in order:
            rates.append((_kept_alive if rates is kept else _new_connections)(sequence))
    return statistics.median(kept), statistics.median(new)


def report(kept: float, new: float) -> str:
    return (f"sequential requests on one kept-alive connection: {kept:,.0f} req/s "
            f"({1000 / kept:.2f} ms each)\n"
            f"the same requests, one new connection each:      {new:,.0f} req/s "
            f"({1000 / new:.2f} ms each)\n"
            f"ratio kept-alive/new: {kept / new:.2f} "
            f"({'OK: kept-alive is faster' if kept > new else 'STALL: kept-alive is slower'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each (interleaved)")
    args = parser.parse_args()
    process, url = start_server()
    try:
        kept, new = measure(url, args.requests, args.rounds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(report(kept, new))
    return 0 if kept > new else 1


if __name__ == "__main__":
    sys.exit(main())
