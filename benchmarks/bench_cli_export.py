"""Benchmark: ``keen export`` of a collection larger than one extraction may return.

Stores N realistic purchases (default 200,000, a dozen properties, nested objects) in an
in-memory local server whose extraction cap is lowered to ``--cap`` (default 20,000), then
exports them as JSON lines to an in-memory buffer:

* ours: ``keen.cli._export.CollectionExport`` over ``this_30_days``: it resolves the timeframe,
  counts windows and halves them until each holds fewer events than the cap, then extracts each.
* floor: what a person who already knew where to cut would do: the same number of extraction
  requests over windows chosen in advance from the stored timestamps (each just under the cap),
  written the same way. No counting, no searching.

Both must write the same events (checked). The runs alternate (ours, floor, floor, ours...) and
the medians are reported with their ratio floor/ours (1.0: the search for windows costs
nothing). ``--no-nagle`` turns Nagle's algorithm off in the local server's handler: as shipped,
every request after the first on a kept-alive connection waits ~40 ms for a delayed ACK, which
dominates an export made of many requests (see the cli11 report).

    python benchmarks/bench_cli_export.py
    python benchmarks/bench_cli_export.py --events 50000 --cap 5000 --runs 3 --no-nagle
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keen.cli._export import CollectionExport, format_ms, parse_ms, write_events
from keen.server import LocalKeenServer, _http_server, engine

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
CITIES = ["Paris", "Lyon", "Tempe", "Tucson", "Osaka", "Lagos", "Lima", "Oslo"]


def purchase(i: int, start: datetime, spacing: float) -> dict[str, Any]:
    return {
        "order_id": f"o-{i:08d}", "price": round(5 + (i * 37 % 2000) / 8, 2),
        "quantity": 1 + i % 4, "on_sale": i % 5 == 0, "coupon": None if i % 3 else f"C{i % 7}",
        "tags": ["gift"] if i % 6 == 0 else ["self", f"t{i % 3}"],
        "item": {"id": i % 997, "name": f"item {i % 997}", "category": ["books", "games"][i % 2]},
        "user": {"id": f"u{i % 50021}", "plan": ["free", "pro", "team"][i % 3],
                 "geo": {"city": CITIES[i % 8], "country": "FR" if i % 8 < 2 else "US"}},
        "session": {"id": f"s-{i * 7919 % 100003}", "referrer": None if i % 4 else "search"},
        "keen": {"timestamp": (start + timedelta(seconds=spacing * i)).isoformat()},
    }


def timed(run: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    written = run()
    return time.perf_counter() - started, written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cap", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-nagle", action="store_true")
    args = parser.parse_args()
    if args.no_nagle:
        _http_server._Handler.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    engine.MAX_EXTRACTION = args.cap  # type: ignore[misc]
    start = NOW - timedelta(days=20)
    spacing = 20 * 86400 / args.events
    with LocalKeenServer(clock=lambda: NOW) as server:
        client = server.make_client()
        for first in range(0, args.events, 5_000):
            batch = [purchase(i, start, spacing)
                     for i in range(first, min(first + 5_000, args.events))]
            client.add_events({"purchases": batch})
        client.count("purchases", timeframe="this_30_days")  # (warm the connection)
        all_ms = sorted(parse_ms(purchase(i, start, spacing)["keen"]["timestamp"]) or 0
                        for i in range(args.events))
        per = args.cap - 1  # windows known in advance, each just under the cap
        cuts = [all_ms[0]] + [all_ms[i] for i in range(per, len(all_ms), per)] + [
            all_ms[-1] + 1]
        windows = list(zip(cuts, cuts[1:]))

        def ours() -> int:
            out = io.StringIO()
            job = CollectionExport(client, "purchases", cap=args.cap)
            return write_events(job.events("this_30_days"), "jsonl", out)

        def floor() -> int:
            out = io.StringIO()
            written = 0
            for a, b in windows:
                events = client.extraction("purchases", timeframe={
                    "start": format_ms(a), "end": format_ms(b)})
                for event in events:
                    out.write(json.dumps(event, separators=(",", ":")) + "\n")
                written += len(events)
            return written

        times: dict[str, list[float]] = {"ours": [], "floor": []}
        order = ["ours", "floor", "floor", "ours"] * args.runs
        for name in order[: 2 * args.runs]:
            seconds, written = timed(ours if name == "ours" else floor)
            assert written == args.events, (name, written)
            times[name].append(seconds)
    ours_s, floor_s = statistics.median(times["ours"]), statistics.median(times["floor"])
    print(f"{args.events} events, extraction cap {args.cap}, {len(windows)} floor windows, "
          f"nagle {'off' if args.no_nagle else 'on (as shipped)'}")
    print(f"ours  {ours_s:.2f} s  ({args.events / ours_s:,.0f} events/s)")
    print(f"floor {floor_s:.2f} s  ({args.events / floor_s:,.0f} events/s)")
    print(f"floor/ours {floor_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
