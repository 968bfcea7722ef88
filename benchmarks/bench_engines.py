"""Benchmark: the local server's engines against DuckDB over a plain table, same questions.

Generates N realistic events (default 1,000,000: ten properties, nested objects, a list, a
timestamp spread over 90 days, low- and high-cardinality strings, 100,000 users), then:

* ingest: posts them over HTTP in batches of 5,000 (``POST /events``, bodies
  encoded beforehand) to ``python -m keen.server --engine ENGINE --db FILE`` in a child
  process; reports events/s;
* baseline: loads the same events as newline-delimited JSON into a DuckDB table with typed
  columns (``read_json``: nested objects become STRUCTs), in this process;
* queries: every shape of issue 10, each asked of the server over HTTP and of the plain table
  in SQL, interleaved (ours, baseline, baseline, ours, ...), median of ``--runs``; the answers
  must agree (percentiles within one price step: the server is nearest-rank, DuckDB's
  ``quantile_disc`` not quite), so both sides do the same work.
  What each side is timed for: ours, the whole request as a client sees it (the server's
  work, the answer sent over HTTP, ``requests`` decoding its JSON) and the same Python object
  the baseline gives built from it (a group_by's ``{value: count}`` dict, a funnel's list);
  the baseline, DuckDB's statement in this process, its rows fetched into Python and that
  object built. The server also orders a group_by's groups (the API's answer is ordered; a
  dict needs no order, so the baseline does not) and keeps more than the plain table does
  (``keen.id``, ``keen.created_at``, insertion order, the JSON body);
* disk: the server's database file against the plain table's;
* memory: the server process's peak resident set (VmHWM) after everything.

The machine may be shared: read the ratios (ours/baseline, measured side by side), not the
absolute times.

    python benchmarks/bench_engines.py                       # duckdb engine, 1,000,000 events
    python benchmarks/bench_engines.py --events 200000 --runs 3
    python benchmarks/bench_engines.py --engine sqlite --events 100000
    python benchmarks/bench_engines.py --events 200000 --ingest-only   # the ingest figure only
    python benchmarks/bench_engines.py --events 200000 --ingest-only --clients 2   # two at once
    python benchmarks/bench_engines.py --events 200000 --ingest-only --back-to-back  # no pauses
    python benchmarks/bench_engines.py --keep /tmp/bench1m --only group_by   # iterate on queries

``--keep DIR`` keeps both databases in DIR and, when DIR already holds them (from an earlier
run with the same ``--events`` and ``--engine``), skips ingest and loading: only the queries
run again. ``--only TEXT`` runs the query shapes whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import requests

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROJECT, READ, WRITE, MASTER = "bench", "r" * 32, "w" * 32, "m" * 32
NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=90)
TIMEFRAME = {"start": START.isoformat(), "end": NOW.isoformat()}
COUNTRIES = ["US", "FR", "DE", "JP", "BR", "IN", "GB", "CA", "MX", "ES",
             "IT", "NL", "SE", "PL", "KR", "AU", "AR", "ZA", "NG", "EG"]
SOURCES = ["google", "bing", "direct", "email", "ads", "twitter", "fb", "other"]
TAGS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
BATCH = 5_000


def generate(count: int, rng: random.Random) -> list[dict[str, Any]]:
    span = 90 * 86_400 * 10**6
    events = []
    for _ in range(count):
        stamp = START + timedelta(microseconds=rng.randrange(span))
        events.append({
            "keen": {"timestamp": stamp.isoformat()},
            "user": {"id": f"u{rng.randrange(100_000)}", "country": rng.choice(COUNTRIES),
                     "plan": rng.choice(("free", "pro", "team"))},
            "platform": rng.choice(("ios", "android", "web")),
            "price": round(rng.uniform(1, 500), 2),
            "quantity": rng.randint(1, 10),
            "session_id": f"{rng.getrandbits(64):016x}",
            "page": f"/p/{rng.randrange(1000)}",
            "referrer": {"source": rng.choice(SOURCES), "campaign": f"c{rng.randrange(100_000)}"},
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "ok": rng.random() < 0.9,
        })
    return events


# ------------------------------------------------------------------------- the server


class Server:
    """``python -m keen.server`` in a child process."""

    def __init__(self, engine: str, db: str) -> None:
        env = {**os.environ, "PYTHONPATH": REPO}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keen.server", "--port", "0", "--engine", engine, "--db", db,
             "--project-id", PROJECT, "--read-key", READ, "--write-key", WRITE,
             "--master-key", MASTER],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].strip()
                break
        else:
            raise SystemExit(f"the server did not start: {self.process.stderr.read()}")  # type: ignore[union-attr]
        self.session = requests.Session()

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def post_raw(self, path: str, body: bytes, session: Any = None) -> Any:
        answer = (session or self.session).post(
            f"{self.url}/3.0/projects/{PROJECT}{path}", data=body,
            headers={"Authorization": WRITE, "Content-Type": "application/json"}, timeout=600)
        assert answer.status_code in (200, 201), answer.text[:500]
        return answer.json()

    def query(self, analysis: str, **params: Any) -> Any:
        body = {"event_collection": "purchases", "timeframe": TIMEFRAME, **params}
        answer = self.session.post(f"{self.url}/3.0/projects/{PROJECT}/queries/{analysis}",
                                   json=body, headers={"Authorization": READ}, timeout=600)
        assert answer.status_code == 200, answer.text[:500]
        return answer.json()

    def stop(self) -> None:
        self.session.close()
        self.process.terminate()
        self.process.communicate(timeout=120)


def ingest(server: Server, count: int, source: str, clients: int = 1,
           back_to_back: bool = False) -> float:
    """Post ``count`` generated events in batches and write them to ``source`` as
    newline-delimited JSON for the baseline; returns events/s. One client: only the requests
    are timed (each body is generated just before it is posted, the server idle meanwhile).
    ``clients`` > 1 or ``back_to_back``: every body is generated first, then that many
    threads, each on its own keep-alive connection, post them (taking the next body as each
    finishes, so one client posts them one after the other without a pause), timed from the
    first request to the last answer."""
    rng = random.Random(7)
    bodies = []
    spent = 0.0
    with open(source, "w") as handle:
        for offset in range(0, count, BATCH):
            events = generate(min(BATCH, count - offset), rng)
            body = json.dumps({"purchases": events}).encode()
            handle.writelines(json.dumps(event) + "\n" for event in events)
            if clients > 1 or back_to_back:
                bodies.append(body)
                continue
            started = time.perf_counter()
            answer = server.post_raw("/events", body)["purchases"]
            spent += time.perf_counter() - started
            assert all(item["success"] for item in answer), answer[:3]
    if clients == 1 and not back_to_back:
        return count / spent
    work = iter(bodies)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def client() -> None:
        session = requests.Session()
        try:
            while True:
                with lock:
                    body = next(work, None)
                if body is None:
                    return
                answer = server.post_raw("/events", body, session)["purchases"]
                assert all(item["success"] for item in answer), answer[:3]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = time.perf_counter() - started
    if failures:
        raise failures[0]
    stored = server.query("count")["result"]
    assert stored == count, (stored, count)
    return count / spent


# ------------------------------------------------------------------------- the baseline


def plain_table(source: str, folder: str) -> tuple[Any, float, int]:
    """A DuckDB file with the events of ``source`` as a typed table ``plain`` (plus ``ts`` in
    UTC microseconds); returns the connection, the load time and the file size."""
    path = os.path.join(folder, "plain.duckdb")
    con = duckdb.connect(path)
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE plain AS SELECT *, "
        "epoch_us(CAST(CAST(keen.timestamp AS VARCHAR) AS TIMESTAMPTZ)) AS ts "
        f"FROM read_json('{source}', format = 'newline_delimited')")
    con.execute("CHECKPOINT")
    loaded = time.perf_counter() - started
    os.remove(source)
    return con, loaded, os.path.getsize(path)


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


WHERE = f"ts >= {_micros(START)} AND ts < {_micros(NOW)}"


def shapes(server: Server, con: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any],
                                                    Callable[[Any, Any], bool]]]:
    """(name, ours, baseline, same_answer) for every query shape of issue 10."""

    def sql(text: str) -> Callable[[], Any]:
        return lambda: con.execute(text).fetchall()

    def groups(prop: str) -> Callable[[], Any]:
        return lambda: {item[prop]: item["result"]
                        for item in server.query("count", group_by=prop)["result"]}

    def equal(a: Any, b: Any) -> bool:
        return bool(a == b)

    def close(a: Any, b: Any) -> bool:
        return bool(abs(a - b) <= 1e-6 * max(1.0, abs(b)))

    def rank_close(a: Any, b: Any) -> bool:
        return bool(abs(a - b) <= 0.5)

    ios = [{"property_name": "platform", "operator": "eq", "property_value": "ios"}]
    expensive = [{"property_name": "price", "operator": "gt", "property_value": 400}]
    steps = [
        {"event_collection": "purchases", "actor_property": "user.id", "timeframe": TIMEFRAME},
        {"event_collection": "purchases", "actor_property": "user.id", "timeframe": TIMEFRAME,
         "filters": ios},
        {"event_collection": "purchases", "actor_property": "user.id", "timeframe": TIMEFRAME,
         "filters": expensive},
    ]
    funnel_sql = (
        f"WITH s1 AS (SELECT DISTINCT user.id AS u FROM plain WHERE {WHERE}), "
        f"s2 AS (SELECT u FROM s1 INTERSECT SELECT DISTINCT user.id FROM plain "
        f"WHERE {WHERE} AND platform = 'ios'), "
        f"s3 AS (SELECT u FROM s2 INTERSECT SELECT DISTINCT user.id FROM plain "
        f"WHERE {WHERE} AND price > 400) "
        "SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2), (SELECT count(*) FROM s3)")
    return [
        ("count with a filter",
         lambda: server.query("count", filters=ios)["result"],
         lambda: sql(f"SELECT count(*) FROM plain WHERE {WHERE} AND platform = 'ios'")()[0][0],
         equal),
        ("count, group_by low cardinality", groups("user.country"),
         lambda: dict(sql(f"SELECT user.country, count(*) FROM plain WHERE {WHERE} "
                          "GROUP BY 1")()), equal),
        ("count, group_by 100k values", groups("referrer.campaign"),
         lambda: dict(sql(f"SELECT referrer.campaign, count(*) FROM plain WHERE {WHERE} "
                          "GROUP BY 1")()), equal),
        ("sum", lambda: server.query("sum", target_property="price")["result"],
         lambda: sql(f"SELECT sum(price) FROM plain WHERE {WHERE}")()[0][0], close),
        ("average", lambda: server.query("average", target_property="price")["result"],
         lambda: sql(f"SELECT avg(price) FROM plain WHERE {WHERE}")()[0][0], close),
        ("percentile 90",
         lambda: server.query("percentile", target_property="price", percentile=90)["result"],
         lambda: sql(f"SELECT quantile_disc(price, 0.9) FROM plain WHERE {WHERE}")()[0][0],
         rank_close),
        ("median", lambda: server.query("median", target_property="price")["result"],
         lambda: sql(f"SELECT quantile_disc(price, 0.5) FROM plain WHERE {WHERE}")()[0][0],
         rank_close),
        ("count_unique, high cardinality",
         lambda: server.query("count_unique", target_property="user.id")["result"],
         lambda: sql(f"SELECT count(DISTINCT user.id) FROM plain WHERE {WHERE}")()[0][0],
         equal),
        ("count, interval daily over 90 days",
         lambda: [b["value"] for b in server.query("count", interval="daily")["result"]],
         lambda: [n for _, n in sql(
             f"SELECT ts // 86400000000 AS d, count(*) FROM plain WHERE {WHERE} "
             "GROUP BY d ORDER BY d")()], equal),
        ("funnel of 3 steps, 100k actors",
         lambda: server.query("funnel", steps=steps)["result"],
         lambda: list(sql(funnel_sql)()[0]), equal),
        ("extraction of 10,000 events",
         lambda: len(server.query("extraction", latest=10_000)["result"]),
         lambda: len([json.loads(row[0]) for row in sql(
             f"SELECT to_json(p) FROM plain AS p WHERE {WHERE} "
             "ORDER BY ts DESC LIMIT 10000")()]), equal),
    ]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = function()
    return time.perf_counter() - started, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", default="duckdb", choices=("duckdb", "sqlite"))
    parser.add_argument("--dir", default=None, help="where to put the databases (temp dir)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the databases in DIR; reuse them when DIR holds them")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help="only the query shapes whose name contains TEXT")
    parser.add_argument("--ingest-only", action="store_true",
                        help="stop after the ingest figure (no baseline, no queries)")
    parser.add_argument("--clients", type=int, default=1, metavar="N",
                        help="post from N connections at once (events/s over the whole run)")
    parser.add_argument("--back-to-back", action="store_true",
                        help="one client posts bodies generated beforehand without a pause "
                             "between requests (events/s over the whole run)")
    args = parser.parse_args()
    print(f"{args.events:,} events, engine {args.engine}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.keep is not None:
        os.makedirs(args.keep, exist_ok=True)
    with (tempfile.TemporaryDirectory(dir=args.dir) if args.keep is None
          else contextlib.nullcontext(args.keep)) as folder:
        db = os.path.join(folder, f"keen.{args.engine}")
        plain_path = os.path.join(folder, "plain.duckdb")
        reuse = args.keep is not None and os.path.exists(db) and os.path.exists(plain_path)
        server = Server(args.engine, db)
        try:
            if reuse:
                count = server.query("count")["result"]
                if count != args.events:
                    raise SystemExit(f"{folder} holds {count:,} events, not {args.events:,}")
                con = duckdb.connect(plain_path)
                plain_size = os.path.getsize(plain_path)
                print(f"reusing the databases of {folder} (no ingest)")
            else:
                source = os.path.join(folder, "events.ndjson")
                rate = ingest(server, args.events, source, args.clients, args.back_to_back)
                print(f"ingest over HTTP, batches of {BATCH:,}, {args.clients} client(s)"
                      f"{', back to back' if args.back_to_back else ''}: {rate:,.0f} events/s")
                if args.ingest_only:
                    return
                con, loaded, plain_size = plain_table(source, folder)
                print(f"baseline: DuckDB read_json into a typed table: "
                      f"{args.events / loaded:,.0f} events/s")
            fixed = statistics.median(timed(lambda: server.query(
                "count", event_collection="nothing"))[0] for _ in range(9))
            print(f"one query over HTTP on an empty collection: {fixed * 1000:.1f} ms")
            print(f"{'query':<38}{'ours':>10}{'DuckDB':>10}{'ratio':>9}")
            for name, ours, baseline, same in shapes(server, con):
                if args.only not in name:
                    continue
                times: dict[str, list[float]] = {"ours": [], "base": []}
                answers: dict[str, Any] = {}
                for index in range(args.runs):
                    order = (("ours", ours), ("base", baseline))
                    for label, function in order if index % 2 == 0 else order[::-1]:
                        elapsed, answers[label] = timed(function)
                        times[label].append(elapsed)
                if not same(answers["ours"], answers["base"]):
                    raise SystemExit(f"{name}: different answers\n{str(answers)[:2000]}")
                mine, theirs = statistics.median(times["ours"]), statistics.median(times["base"])
                print(f"{name:<38}{mine:>9.3f}s{theirs:>9.3f}s{mine / theirs:>8.1f}x")
            peak = server.peak_rss_mib()
        finally:
            server.stop()
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                   if f.startswith("keen."))
        print(f"on disk: ours {size / 2**20:,.1f} MiB, DuckDB plain table "
              f"{plain_size / 2**20:,.1f} MiB, ratio {size / plain_size:.1f}x")
        print(f"server peak resident memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
