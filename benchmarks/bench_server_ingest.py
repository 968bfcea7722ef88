"""Ingest throughput of the local server through the HTTP batch endpoint into a file database.

The server runs in its own process (``python -m keen.server --db <tmp file> --port 0``); this
process posts pre-encoded batches from several threads over pooled keep-alive connections and
reports events/s (target: >= 20,000 events/s).

    python benchmarks/bench_server_ingest.py [--events 200000] [--batch 5000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keen.server.config import DEV_PROJECT_ID, DEV_WRITE_KEY  # noqa: E402


def make_batch(collection: str, size: int, offset: int) -> bytes:
    """A realistic batch body: small events with a nested object, a list and a timestamp."""
    events = [
        {"user": {"id": f"u{(offset + i) % 997}", "plan": "pro" if i % 3 else "free"},
         "price": (offset + i) % 100 / 4, "tags": ["a", "b"], "page": f"/p/{i % 50}",
         "keen": {"timestamp": f"2026-03-{1 + (offset + i) % 28:02d}T12:00:00.000Z"}}
        for i in range(size)
    ]
    return json.dumps({collection: events}).encode()


def start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen([sys.executable, "-m", "keen.server", "--port", "0", "--db", db],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            return process, line.split("listening on ", 1)[1].strip()
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    batches_per_thread = max(1, args.events // (args.batch * args.threads))
    bodies = [[make_batch("purchases", args.batch, (t * batches_per_thread + b) * args.batch)
               for b in range(batches_per_thread)] for t in range(args.threads)]
    total = batches_per_thread * args.batch * args.threads
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(os.path.join(tmp, "bench.db"))
        endpoint = f"{url}/3.0/projects/{DEV_PROJECT_ID}/events"
        headers = {"Authorization": DEV_WRITE_KEY, "Content-Type": "application/json"}
        failures: list[str] = []

        def post_all(thread_bodies: list[bytes]) -> None:
            with requests.Session() as session:
                for body in thread_bodies:
                    response = session.post(endpoint, data=body, headers=headers, timeout=120)
                    items = response.json()["purchases"] if response.ok else []
                    if not response.ok or not all(item["success"] for item in items):
                        failures.append(response.text[:200])

        try:
            # warm-up (creates tables, schema rows), not timed
            requests.post(endpoint, data=make_batch("purchases", 10, 0), headers=headers,
                          timeout=60).raise_for_status()
            threads = [threading.Thread(target=post_all, args=(b,)) for b in bodies]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
    if failures:
        raise SystemExit(f"{len(failures)} batch(es) failed, first: {failures[0]}")
    rate = total / elapsed
    print(f"ingested {total} events in {args.threads} threads x {batches_per_thread} batches of "
          f"{args.batch}: {elapsed:.2f} s, {rate:,.0f} events/s "
          f"({'meets' if rate >= 20_000 else 'BELOW'} the 20,000 events/s target)")


if __name__ == "__main__":
    main()
