"""Ingest throughput of the local server through the HTTP batch endpoint into a file database,
side by side with a floor in the same run.

Ours: the server runs in its own process (``python -m keen.server --db <tmp file> --port 0``).
Floor: a bare standard-library server in its own process (``http.server.ThreadingHTTPServer``,
HTTP/1.1 keep-alive) that reads the body, parses the JSON and inserts every event (its JSON text
and its ``keen.timestamp``) with one ``sqlite3`` ``executemany`` per batch into a file database in
WAL mode with ``synchronous=NORMAL``, answering a fixed JSON. It does none of the server's work
beyond that (no keys, validation, enrichment, uniqueness tokens or schema inference), so it is
the cost of "HTTP + JSON + SQLite" alone.

This process posts the same pre-encoded batches to both from several threads over pooled
keep-alive connections, in interleaved rounds (ours, floor, floor, ours, ...), and reports the
median events/s of each, the ratio ours/floor and whether ours meets the target of
>= 20,000 events/s. Every round appends to the same two databases, whose row counts are checked
at the end, so both sides provably stored the same events. Last, it prints the keep-alive
figure of ``bench_server_keepalive.py`` measured on a fresh in-memory server (sequential small
requests on one kept-alive connection against new connections).

    python benchmarks/bench_server_ingest.py [--events 200000] [--batch 5000] [--threads 2]
                                             [--rounds 2] [--engine sqlite|duckdb]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keen.server.config import DEV_PROJECT_ID, DEV_WRITE_KEY  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_server_keepalive as keepalive  # noqa: E402

TARGET = 20_000
COLLECTION = "purchases"
WARM_UP = 10  # events posted to each server before timing (creates tables), not timed


def make_batch(collection: str, size: int, offset: int) -> bytes:
    """A realistic batch body: small events with a nested object, a list and a timestamp."""
    events = [
        {"user": {"id": f"u{(offset + i) % 997}", "plan": "pro" if i % 3 else "free"},
         "price": (offset + i) % 100 / 4, "tags": ["a", "b"], "page": f"/p/{i % 50}",
         "keen": {"timestamp": f"2026-03-{1 + (offset + i) % 28:02d}T12:00:00.000Z"}}
        for i in range(size)
    ]
    return json.dumps({collection: events}).encode()


# ---------------------------------------------------------------------------- the floor server

def serve_floor(db: str) -> None:
    """Run the floor server on a free loopback port until killed (prints its URL first)."""
    conn = sqlite3.connect(db, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (ts TEXT NOT NULL, body TEXT NOT NULL)")
    lock = threading.Lock()  # one writer connection, as SQLite allows one writer at a time
    answer = b'{"created": true}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock, conn:  # one transaction per batch
                for events in body.values():
                    conn.executemany(
                        "INSERT INTO events (ts, body) VALUES (?, ?)",
                        [(event["keen"]["timestamp"], json.dumps(event)) for event in events],
                    )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            """Silent, like ours."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"floor listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# ---------------------------------------------------------------------------- the client side

def start_server(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a server process and return it with the URL it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True,
                               env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            return process, line.split("listening on ", 1)[1].strip()
    raise RuntimeError(f"{command} did not start")


def ours_ok(response: requests.Response) -> bool:
    return response.ok and all(item["success"] for item in response.json()[COLLECTION])


def floor_ok(response: requests.Response) -> bool:
    return response.ok and response.json() == {"created": True}


class Target:
    """One server under test: where to post and how to recognise a stored batch."""

    def __init__(self, name: str, url: str, ok: Callable[[requests.Response], bool]) -> None:
        self.name, self.url, self.ok = name, url, ok
        self.rates: list[float] = []


def run_round(target: Target, bodies: list[list[bytes]], headers: dict[str, str]) -> float:
    """Post every thread's batches at once; returns the elapsed seconds."""
    failures: list[str] = []

    def post_all(thread_bodies: list[bytes]) -> None:
        with requests.Session() as session:
            for body in thread_bodies:
                response = session.post(target.url, data=body, headers=headers, timeout=120)
                if not target.ok(response):
                    failures.append(response.text[:200])

    threads = [threading.Thread(target=post_all, args=(b,)) for b in bodies]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{target.name}: {len(failures)} batch(es) failed, first: {failures[0]}")
    return elapsed


def stored(db: str) -> int:
    if not os.path.exists(db) and os.path.exists(db + ".duckdb"):
        db += ".duckdb"
    if db.endswith(".duckdb"):  # the duckdb engine's database (--engine duckdb)
        import duckdb

        with duckdb.connect(db, read_only=True) as con:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per round")
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each (interleaved)")
    parser.add_argument("--engine", default="sqlite", choices=("sqlite", "duckdb"),
                        help="the local server's engine")
    parser.add_argument("--floor-server", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        serve_floor(args.floor_server)
        return

    batches_per_thread = max(1, args.events // (args.batch * args.threads))
    bodies = [[make_batch(COLLECTION, args.batch, (t * batches_per_thread + b) * args.batch)
               for b in range(batches_per_thread)] for t in range(args.threads)]
    total = batches_per_thread * args.batch * args.threads
    headers = {"Authorization": DEV_WRITE_KEY, "Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        ours_db = "ours.duckdb" if args.engine == "duckdb" else "ours.db"
        dbs = {"ours": os.path.join(tmp, ours_db), "floor": os.path.join(tmp, "floor.db")}
        commands = {"ours": ["-m", "keen.server", "--port", "0", "--db", dbs["ours"],
                             "--engine", args.engine],
                    "floor": [__file__, "--floor-server", dbs["floor"]]}
        processes: list[subprocess.Popen[str]] = []
        try:
            targets = {}
            for name, command in commands.items():
                process, url = start_server(command)
                processes.append(process)
                path = f"/3.0/projects/{DEV_PROJECT_ID}/events" if name == "ours" else "/events"
                targets[name] = Target(name, url + path, ours_ok if name == "ours" else floor_ok)
            ours, floor = targets["ours"], targets["floor"]
            for target in (ours, floor):
                response = requests.post(target.url, data=make_batch(COLLECTION, WARM_UP, 0),
                                         headers=headers, timeout=60)
                assert target.ok(response), response.text[:200]
            for index in range(args.rounds):  # ours, floor, floor, ours, ours, floor, ...
                for target in (ours, floor) if index % 2 == 0 else (floor, ours):
                    target.rates.append(total / run_round(target, bodies, headers))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
        for name, db in dbs.items():
            count = stored(db)
            assert count == WARM_UP + args.rounds * total, f"{name} stored {count} events"
    # The keep-alive figure of bench_server_keepalive.py, on a fresh in-memory server.
    process, url = keepalive.start_server()
    try:
        kept, new = keepalive.measure(url, n=200, rounds=2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    ours_rate, floor_rate = statistics.median(ours.rates), statistics.median(floor.rates)
    print(f"ingest of {total:,} events per round ({args.threads} threads x {batches_per_thread} "
          f"batches of {args.batch}), median of {args.rounds} interleaved rounds each:")
    print(f"  ours   {ours_rate:>9,.0f} events/s  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in ours.rates)})")
    print(f"  floor  {floor_rate:>9,.0f} events/s  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in floor.rates)})")
    print(f"  ratio ours/floor {ours_rate / floor_rate:.2f}; ours "
          f"{'meets' if ours_rate >= TARGET else 'is BELOW'} the {TARGET:,} events/s target")
    print("small requests one after the other (bench_server_keepalive.py):")
    print("\n".join(f"  {line}" for line in keepalive.report(kept, new).splitlines()))


if __name__ == "__main__":
    main()
