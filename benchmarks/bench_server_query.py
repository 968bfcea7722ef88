"""Benchmark: a count with one filter and a group_by over many stored events (issue 3, item 10).

Builds a file database of N events (default 1,000,000) through ``Storage.insert_events``, then
times ``run_query("count", filters=[platform eq ios], group_by="user.country")`` (median of a
few runs, in a fresh process) and measures memory during the first query: Python allocations
(tracemalloc peak) and the growth of the process's peak RSS. Runs the same on a database ten
times smaller to show that memory does not grow with the number of stored events.
Target: under 2 s for 1,000,000 events, memory flat.

Floor, in the same process and on the same database: the SQL a competent engineer would write
by hand for this exact question over the same table (``FLOOR_SQL``: ``json_extract`` of the
group and filter properties, no handling of other JSON types, lists or missing values), run
through a plain ``sqlite3`` connection and timed the same way (median of the same number of
runs, interleaved with ours: ours, floor, floor, ours, ...). Both answers must be equal, so the
two cannot be doing different work. The ratio floor/ours is 1.0 when we are as fast as raw
SQLite.

    python benchmarks/bench_server_query.py            # 1,000,000 and 100,000 events
    python benchmarks/bench_server_query.py --events 200000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keen.server.engine import run_query
from keen.server.storage import Storage
from keen.server.timeframes import resolve_timeframe, to_micros

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
COUNTRIES = ["US", "FR", "DE", "JP", "BR", "IN", "GB", "CA", "MX", "ES"]
QUERY: dict[str, Any] = {
    "event_collection": "purchases",
    "timeframe": "this_30_days",
    "filters": [{"property_name": "platform", "operator": "eq", "property_value": "ios"}],
    "group_by": "user.country",
}
BATCH = 5_000
FLOOR_SQL = (
    "SELECT json_extract(body, '$.user.country'), count(*) FROM events "
    "WHERE project = ? AND collection = ? AND ts >= ? AND ts < ? "
    "AND json_extract(body, '$.platform') = 'ios' GROUP BY 1"
)


def build(path: str, count: int) -> float:
    """Fill a database with ``count`` purchases spread over 20 days; returns events/s."""
    rng = random.Random(7)
    start = NOW - timedelta(days=20)
    started = time.perf_counter()
    with Storage(path) as storage:
        for offset in range(0, count, BATCH):
            batch = []
            for i in range(offset, min(offset + BATCH, count)):
                stamp = start + timedelta(seconds=i * 20 * 86_400 // count)
                batch.append({
                    "user": {"id": i % 50_000, "country": rng.choice(COUNTRIES)},
                    "price": rng.randint(1, 500),
                    "platform": rng.choice(("ios", "android", "web")),
                    "keen": {"timestamp": stamp.isoformat()},
                })
            storage.insert_events("bench", "purchases", batch, now=NOW)
    return count / (time.perf_counter() - started)


def _rss_mib() -> float:
    """Current resident set size (Linux), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str, runs: int) -> dict[str, Any]:
    """Run in a fresh process (so its peak RSS says something): memory of our first (cold)
    query, then the median times of ``runs`` more of ours and of the floor, interleaved."""
    start, end = resolve_timeframe(QUERY["timeframe"], None, NOW)
    floor_params = ("bench", QUERY["event_collection"], to_micros(start), to_micros(end))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_start = _rss_mib()
    with Storage(path) as storage, closing(sqlite3.connect(path)) as raw:
        tracemalloc.start()
        started = time.perf_counter()
        result = run_query(storage, "bench", "count", QUERY, now=NOW)
        cold = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        rss_delta = _rss_mib() - rss_start

        def ours() -> dict[Any, int]:
            found = run_query(storage, "bench", "count", QUERY, now=NOW)["result"]
            return {item["user.country"]: item["result"] for item in found}

        def floor() -> dict[Any, int]:
            return dict(raw.execute(FLOOR_SQL, floor_params).fetchall())

        times: dict[Callable[[], dict[Any, int]], list[float]] = {ours: [], floor: []}
        answers = {}
        for index in range(runs):  # ours, floor, floor, ours, ours, floor, ...
            for contender in (ours, floor) if index % 2 == 0 else (floor, ours):
                started = time.perf_counter()
                answers[contender] = contender()
                times[contender].append(time.perf_counter() - started)
    assert answers[ours] == answers[floor], (answers[ours], answers[floor])
    return {"median": statistics.median(times[ours]), "floor": statistics.median(times[floor]),
            "cold": cold, "py_peak": peak / 2**20, "rss_growth": rss_growth / 1024,
            "rss_delta": rss_delta, "groups": len(result["result"]),
            "matched": sum(answers[floor].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to build the databases (temp dir)")
    parser.add_argument("--measure", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for count in (args.events // 10, args.events):
            path = os.path.join(folder, f"bench-{count}.db")
            rate = build(path, count)
            child = subprocess.run(
                [sys.executable, __file__, "--measure", path, "--runs", str(args.runs)],
                capture_output=True, text=True, timeout=600, check=False,
            )
            if child.returncode != 0:  # e.g. ours and the floor answered differently
                raise SystemExit(f"measuring {count:,} events failed:\n{child.stderr}")
            figures = json.loads(child.stdout)
            size = os.path.getsize(path) / 2**20
            print(f"{count:>9,} events  build {rate:>7,.0f} ev/s  db {size:6.1f} MiB  "
                  f"python peak {figures['py_peak']:5.2f} MiB  "
                  f"peak RSS growth {figures['rss_growth']:5.1f} MiB  "
                  f"RSS after - before {figures['rss_delta']:5.1f} MiB  groups {figures['groups']}")
            print(f"{'':>16}median of {args.runs}: ours {figures['median'] * 1000:6.0f} ms "
                  f"(cold {figures['cold'] * 1000:6.0f} ms)  "
                  f"floor {figures['floor'] * 1000:6.0f} ms  "
                  f"floor/ours {figures['floor'] / figures['median']:4.2f}  "
                  f"(same answer: {figures['matched']:,} events counted)"
                  + (f"  target < 2 s: {'met' if figures['median'] < 2 else 'MISSED'}"
                     if count >= 1_000_000 else ""))

if __name__ == "__main__":
    main()
