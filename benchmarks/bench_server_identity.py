"""Benchmark: what exact value identity costs the local server (issue 7, section 2).

Group keys, distinct values and funnel actors are compared as JSON values (``[1, 2]`` is
``[1.0, 2]``, object members in any order) and string filters see strings whole, NUL included.
This measures four questions over N realistic events (a dozen properties, nested objects, a
list, high- and low-cardinality values) against a floor: the SQL a competent engineer would
write by hand for the same question, keyed on SQLite's JSON text (``->``) and
``json_extract``, which is right only when every value is spelled one way, as in this data.
Both must give the same answer; they run interleaved in one process (ours, floor, floor,
ours, ...) and the medians are compared as floor/ours (1.0 = as fast as raw SQLite).

    python benchmarks/bench_server_identity.py                 # 200,000 events
    python benchmarks/bench_server_identity.py --events 50000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keen.server.engine import run_query
from keen.server.storage import Storage

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
TF = "this_30_days"
BATCH = 5_000
WHERE = "project = 'bench' AND collection = 'visits'"


def build(path: str, count: int) -> None:
    rng = random.Random(7)
    start = NOW - timedelta(days=20)
    with Storage(path) as storage:
        for offset in range(0, count, BATCH):
            batch = []
            for i in range(offset, min(offset + BATCH, count)):
                user = rng.randrange(20_000)
                batch.append({
                    "user": {"id": user, "email": f"user{user}@example.com",
                             "country": rng.choice(("US", "FR", "DE", "JP", "BR"))},
                    "item": {"sku": f"sku-{rng.randrange(40)}", "size": rng.choice((1, 2, 3))},
                    "tags": sorted(rng.sample(("new", "sale", "gift", "eco", "bulk"), 2)),
                    "platform": rng.choice(("ios", "android", "web")),
                    "step": rng.choice(("view", "cart", "buy")),
                    "price": rng.randint(1, 500), "quantity": rng.randint(1, 5),
                    "referrer": rng.choice(("ads", "mail", None)),
                    "session": f"s{i}", "ok": rng.random() < 0.9,
                    "keen": {"timestamp": (start + timedelta(
                        seconds=i * 20 * 86_400 // count)).isoformat()},
                })
            storage.insert_events("bench", "visits", batch, now=NOW)


def canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)


def questions(storage: Storage, raw: sqlite3.Connection) -> dict[str, tuple[
        Callable[[], Any], Callable[[], Any]]]:
    def ours(analysis: str, **params: Any) -> Any:
        query = {"event_collection": "visits", "timeframe": TF, **params}
        return run_query(storage, "bench", analysis, query, now=NOW)

    def floor(sql: str) -> list[Any]:
        return raw.execute(sql).fetchall()

    return {
        "group_by an object (item)": (
            lambda: {json.dumps(g["item"], sort_keys=True): g["result"]
                     for g in ours("count", group_by="item")["result"]},
            lambda: {canonical(k): n for k, n in floor(
                f"SELECT body -> '$.item', count(*) FROM events WHERE {WHERE} GROUP BY 1")}),
        "count_unique of a list (tags)": (
            lambda: ours("count_unique", target_property="tags")["result"],
            lambda: floor(f"SELECT count(DISTINCT body -> '$.tags') FROM events "
                          f"WHERE {WHERE}")[0][0]),
        "contains filter, select_unique": (
            lambda: ours("select_unique", target_property="user.country", filters=[
                {"property_name": "user.email", "operator": "contains",
                 "property_value": "r1"}])["result"],
            lambda: sorted(v for (v,) in floor(
                f"SELECT DISTINCT json_extract(body, '$.user.country') FROM events "
                f"WHERE {WHERE} AND instr(json_extract(body, '$.user.email'), 'r1') > 0"))),
        "funnel of user objects (2 steps)": (
            lambda: ours("funnel", steps=[
                {"event_collection": "visits", "actor_property": "user", "timeframe": TF,
                 "filters": [{"property_name": "step", "operator": "eq",
                              "property_value": s}]} for s in ("view", "buy")])["result"],
            lambda: [floor(f"SELECT count(DISTINCT body -> '$.user') FROM events "
                           f"WHERE {WHERE} AND json_extract(body, '$.step') = 'view'")[0][0],
                     floor(f"SELECT count(*) FROM (SELECT body -> '$.user' FROM events "
                           f"WHERE {WHERE} AND json_extract(body, '$.step') = 'view' "
                           f"INTERSECT SELECT body -> '$.user' FROM events "
                           f"WHERE {WHERE} AND json_extract(body, '$.step') = 'buy')")[0][0]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.db")
        build(path, args.events)
        print(f"{args.events:,} events; median of {args.runs} runs, interleaved")
        with Storage(path) as storage, closing(sqlite3.connect(path)) as raw:
            for name, (ours, floor) in questions(storage, raw).items():
                times: dict[str, list[float]] = {"ours": [], "floor": []}
                answers: dict[str, Any] = {}
                for index in range(args.runs):
                    order = (("ours", ours), ("floor", floor))
                    for label, run in order if index % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        answers[label] = run()
                        times[label].append(time.perf_counter() - started)
                if answers["ours"] != answers["floor"]:
                    raise SystemExit(f"{name}: ours {answers['ours']!r} != floor "
                                     f"{answers['floor']!r}")
                mine, bare = statistics.median(times["ours"]), statistics.median(times["floor"])
                print(f"  {name:34s} ours {mine * 1000:7.0f} ms  floor {bare * 1000:7.0f} ms  "
                      f"floor/ours {bare / mine:4.2f}")


if __name__ == "__main__":
    main()
