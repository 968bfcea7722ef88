"""Peak Python memory and time of ``delete_property`` on a collection of realistic events.

For each engine it stores ``--events`` realistic events (a dozen properties, nested objects
and lists, high- and low-cardinality values) in an in-memory database, then deletes a nested
object property every event holds (``user``: its scalars have typed columns in the duckdb
engine) and a top-level string one (``page``), and reports the peak of Python allocations
during the delete (``tracemalloc``; the database's own memory is not a Python allocation and
is not counted), in MB and in bytes per event, and the time (timed without tracemalloc).
The event bodies are a few hundred bytes each, so a delete that held every matching body in
Python at once has a peak that grows with ``--events``; one that works in chunks does not.

    python benchmarks/bench_delete_property_memory.py [--events 200000] [--engines sqlite duckdb]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_server_batch_memory import NOW, realistic  # noqa: E402  (the same events)

from keen.server.engines import open_engine  # noqa: E402


def fill(engine: str, events: int) -> Any:
    store = open_engine(engine, None)
    for start in range(0, events, 50_000):
        store.insert_events("p", "c", (realistic(i) for i in range(start, min(events,
                                                                            start + 50_000))),
                            now=NOW)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--engines", nargs="+", default=["sqlite", "duckdb"])
    args = parser.parse_args()
    print(f"{args.events:,} events; peak Python allocations during delete_property")
    for engine in args.engines:
        for name in ("user", "page"):
            store = fill(engine, args.events)
            tracemalloc.start()
            changed = store.delete_property("p", "c", name)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            store.close()
            store = fill(engine, args.events)
            began = time.perf_counter()
            assert store.delete_property("p", "c", name) == changed == args.events
            took = time.perf_counter() - began
            store.close()
            print(f"  {engine:7} {name:5} peak {peak / 1e6:8.1f} MB "
                  f"({peak / args.events:7.1f} B/event)  time {took:6.2f} s")


if __name__ == "__main__":
    main()
