"""The DuckDB engine's fast lane for ``POST /events`` (``DuckDBStore.insert_batch``) stores
exactly what the exact Python lane (``insert_events``) stores, and gives the batch to the Python
lane whenever in doubt: hostile bodies get the sqlite engine's answers (which never takes it)."""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from _server_helpers import NOW, Api

pytest.importorskip("duckdb")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.server import LocalKeenServer
from keen.server.engine import run_query
from keen.server.engines import _duckdb_batch
from keen.server.engines.duckdb import DuckDBStore

NOW_DT = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)


_SPEED_RULES = {name: getattr(_duckdb_batch, name)
                for name in ("_SMALL", "_EVENTS_PER_SHAPE", "_EVENTS_FIXED")}


@pytest.fixture(autouse=True)
def _every_batch_may_take_the_fast_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' bodies are small and have few events per shape: the speed rules would send
    them all to the Python lane; here only exactness decides (but where a test puts them
    back)."""
    for name in _SPEED_RULES:
        monkeypatch.setattr(_duckdb_batch, name, 0)


# ---------------------------------------------------------------------------- the stored state

def _tagged(value: Any) -> Any:
    """A JSON value where 1 and 1.0 (and True) differ, for strict comparison."""
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if isinstance(value, float):
        return ("f", math.copysign(1, value), value)
    return (type(value).__name__, value)


def _state(store: DuckDBStore) -> dict[str, Any]:
    """Everything an engine stored, with keen.id (random) checked and left out."""
    con = store._con
    typed = con.execute("SELECT project, collection, path, id, kinds FROM typed_columns "
                        "ORDER BY ALL").fetchall()
    columns = {f"p{column}_{kind}": path for _, _, path, column, kinds in typed
               for kind in kinds if kind in "sifb"}
    names = [row[0] for row in con.execute("DESCRIBE events").fetchall()]
    rows = []
    for row in con.execute("SELECT * FROM events ORDER BY seq").fetchall():
        record = dict(zip(names, row))
        values = {(columns[name], name[-1]): value for name, value in record.items()
                  if name in columns and value is not None}
        body = json.loads(record["body"])
        keen_id = values.pop(("keen.id", "s"), None) or body["keen"].pop("id")
        assert len(keen_id) == 24 and int(keen_id, 16) >= 0
        rows.append({"project": record["project"], "collection": record["collection"],
                     "ts": record["ts"], "seq": record["seq"], "token": record["token"],
                     "body": _tagged(body),
                     "typed": {key: _tagged(value) for key, value in values.items()}})
    return {
        "events": rows, "typed_columns": typed,
        "properties": con.execute("SELECT * FROM properties ORDER BY ALL").fetchall(),
        "tokens": con.execute("SELECT * FROM tokens ORDER BY ALL").fetchall(),
    }


def _answers(store: DuckDBStore, collection: str, paths: list[str]) -> list[Any]:
    def ask(analysis: str, **params: Any) -> Any:
        query = {"event_collection": collection, "timeframe": {
            "start": "1000-01-01T00:00:00Z", "end": "9000-01-01T00:00:00Z"}, **params}
        return run_query(store, "p", analysis, query, now=NOW_DT)["result"]  # type: ignore[arg-type]

    answers = [ask("count")]
    for path in paths[:3]:
        answers.append(ask("count", group_by=path))
        answers.append(ask("count", filters=[{"property_name": path, "operator": "exists",
                                              "property_value": True}]))
    events = ask("extraction")
    for event in events:
        event["keen"].pop("id")
    answers.append(_tagged(events))
    return answers


def _both(batches: list[str]) -> tuple[DuckDBStore, DuckDBStore, list[Any], list[Any], int]:
    """Each body through the fast lane (the Python lane when not taken, as the server does) in
    one store and through the Python lane in another; their answers; batches taken."""
    fast, exact = DuckDBStore(), DuckDBStore()
    fast_answers, exact_answers = [], []
    for text in batches:
        answer = fast.insert_batch("p", text, now=NOW_DT)
        if answer is None:
            answer = {name: fast.insert_events("p", name, events, now=NOW_DT)
                      for name, events in json.loads(text).items()}
        fast_answers.append(answer)
        exact_answers.append({name: exact.insert_events("p", name, events, now=NOW_DT)
                              for name, events in json.loads(text).items()})
    return fast, exact, fast_answers, exact_answers, fast.batches_taken


def _same(batches: list[str], collections: list[str], paths: list[str]) -> int:
    fast, exact, fast_answers, exact_answers, taken = _both(batches)
    try:
        assert fast_answers == exact_answers
        assert _state(fast) == _state(exact)
        for name in collections:
            assert _answers(fast, name, paths) == _answers(exact, name, paths)
    finally:
        fast.close()
        exact.close()
    return taken


# ---------------------------------------------------------------------------- ordinary batches

def _realistic(rng: random.Random, count: int) -> list[dict[str, Any]]:
    events = []
    for index in range(count):
        event: dict[str, Any] = {
            "user": {"id": f"u{rng.randrange(50)}", "country": rng.choice(["FR", "DE", "JP"]),
                     "plan": rng.choice(["free", "pro", None])},
            "price": rng.choice([round(rng.uniform(1, 500), 2), rng.randrange(100)]),
            "tags": rng.sample(["a", "b", "c"], rng.randint(0, 2)),
            "items": [{"sku": f"s{rng.randrange(9)}", "n": rng.randrange(5)}] * rng.randint(0, 2),
            "ok": rng.random() < 0.5, "note": "caf\u00e9 \"quoted\" \\ back\nslash \U0001f600",
        }
        if index % 3:
            event["keen"] = {"timestamp": rng.choice([
                "2026-03-01T10:11:12.123456+00:00", "2026-03-01T10:11:12Z",
                "2026-03-01T10:11:12.5-05:30", "2026-03-01T10:11:12"])}
        if index % 4 == 0:
            event.setdefault("keen", {})["uniqueness_token"] = f"t{rng.randrange(5)}"
        if index % 5 == 0:
            event["referrer"] = {"source": "ads", "campaign": None}
        events.append(event)
    return events


def test_an_ordinary_batch_takes_the_fast_lane_and_stores_what_the_python_lane_stores() -> None:
    rng = random.Random(3)
    first = {"buys": _realistic(rng, 300), "visits": _realistic(rng, 50), "empty": []}
    second = {"buys": _realistic(rng, 200)}  # new kinds, tokens already stored
    batches = [json.dumps(first), json.dumps(second, ensure_ascii=False, indent=1)]
    taken = _same(batches, ["buys", "visits"], ["user.country", "price", "referrer.campaign"])
    assert taken == 2


def test_properties_past_the_typed_columns_stay_in_the_body_as_in_the_python_lane() -> None:
    rng = random.Random(5)  # 64 typed properties a collection: the others stay in the JSON
    events = [{f"p{index}": rng.choice([rng.random() * 10**rng.randrange(-2, 12),
                                        rng.randrange(-99, 99), f"s{index}", True])
               for index in range(70)} for _ in range(40)]
    assert _same([json.dumps({"wide": events})], ["wide"], ["p0", "p65", "p69"]) == 1


# ---------------------------------------------------------------------------- random batches

_NAMES = st.sampled_from(["a", "b", "user", "Prix \u00e9", "x/y", "t~1", 'q"', "n"])
_SAFE_TEXT = st.text(st.sampled_from(list("abc XYZ019_-\u00e9\u4e2d\U0001f600\"\\\n\t/")),
                     max_size=12)
_STAMPS = st.sampled_from([
    "2026-03-01T10:11:12.123456+00:00", "2026-03-01T10:11:12Z", "1969-12-31T23:59:59.9995Z",
    "2026-03-01T10:11:12.5-05:30", "2026-03-01T10:11:12", "1500-06-30T00:00:00.001+14:00",
])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**14), 10**14), _SAFE_TEXT,
    st.floats(-1e14, 1e14).filter(lambda f: "e" not in repr(f)),
)
_LISTS = st.one_of(st.lists(st.integers(-5, 5), max_size=3), st.lists(_SAFE_TEXT, max_size=3),
                   st.lists(st.fixed_dictionaries({"k": st.integers(0, 3), "v": _SAFE_TEXT}),
                            max_size=2))


def _objects(depth: int, min_size: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    value = st.one_of(_SCALARS, _LISTS) if depth == 0 else st.one_of(
        _SCALARS, _LISTS, _objects(depth - 1, min_size=0))
    return st.dictionaries(_NAMES, value, min_size=min_size, max_size=4)


_KEEN = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "timestamp": st.one_of(st.none(), _STAMPS),
    "uniqueness_token": st.sampled_from(["t1", "t2", "t\u00e9"]),
    "addons": st.just([{"name": "x"}]),
}))


@st.composite
def _events(draw: Any) -> dict[str, Any]:
    event = draw(_objects(2))
    keen = draw(_KEEN)
    if keen is not None or draw(st.booleans()):
        event["keen"] = keen
    return event


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_events(), min_size=1, max_size=6), min_size=1, max_size=2))
def test_random_ordinary_batches_take_the_fast_lane_and_store_the_same(
        lists: list[list[dict[str, Any]]]) -> None:
    batches = [json.dumps({"c": events}, ensure_ascii=index % 2 == 0)
               for index, events in enumerate(lists)]
    assert _same(batches, ["c"], ["a", "b", "user"]) == len(batches)


_ANY_SCALAR = st.one_of(
    _SCALARS, st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**64), 2**64), st.sampled_from(["${keen.ip}", "1e5"]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(
    st.sampled_from(["a", "b", "$c", "d.e", "", "keen"]),
    st.one_of(_ANY_SCALAR, st.lists(_ANY_SCALAR, max_size=2), st.just({}),
              st.dictionaries(st.sampled_from(["a", "$b", "timestamp"]), _ANY_SCALAR,
                              max_size=2)),
    max_size=4), min_size=1, max_size=6))
def test_random_unusual_batches_store_and_answer_as_the_python_lane(
        events: list[dict[str, Any]]) -> None:
    _same([json.dumps({"c": events})], ["c"], ["a", "b"])


# ---------------------------------------------------------------------------- hostile bodies

@pytest.fixture(name="apis", scope="module")
def apis_fixture() -> Iterator[tuple[Api, Api]]:
    with LocalKeenServer(clock=lambda: NOW, engine="sqlite") as lite, \
            LocalKeenServer(clock=lambda: NOW, engine="duckdb") as duck:
        yield Api(lite), Api(duck)


_ORDINARY = '{"a": 1, "keen": {"timestamp": "2026-03-01T00:00:00Z"}}'
HOSTILE = {
    "nan": '{"c": [{"a": NaN}, ' + _ORDINARY + "]}",
    "infinity": '{"c": [{"a": [1, -Infinity]}]}',
    "lowercase inf": '{"c": [{"a": inf}]}',
    "trailing comma in list": '{"c": [{"a": 1},]}',
    "trailing comma in object": '{"c": [{"a": 1,}]}',
    "duplicate keys": '{"c": [{"a": 1, "a": 2}, {"a": 3}]}',
    "duplicate keys of two kinds": '{"c": [{"a": 1, "a": "x"}]}',
    "duplicate nested keys": '{"c": [{"a": {"b": 1, "b": 2}}]}',
    "duplicate keys in a list": '{"c": [{"l": [{"k": 1, "k": 2}]}]}',
    "duplicate collection": '{"c": [{"a": 1}], "c": [{"a": 2}]}',
    "1e400": '{"c": [{"a": 1e400}, {"a": [1e400]}]}',
    "2**63": '{"c": [{"a": 9223372036854775808}, {"a": [9223372036854775808]}]}',
    "-2**63-1": '{"c": [{"a": -9223372036854775809}]}',
    "lone surrogate": '{"c": [{"a": "\\ud800"}, {"\\udc00": 1}]}',
    "nul": '{"c": [{"a": "x\\u0000y"}]}',
    "nesting 101": '{"c": [' + '{"a": ' * 100 + "1" + "}" * 100 + "]}",
    "nesting 3,000 (its shape is too deep for Python)":
        '{"c": [{"a": ' + "[" * 3_000 + "]" * 3_000 + "}]}",
    "nesting 100,000": '{"c": [{"a": ' + "[" * 100_000 + "]" * 100_000 + "}]}",
    "nesting 101 in lists": '{"c": [{"a": ' + "[" * 100 + "]" * 100 + "}]}",
    "long string": '{"c": [{"a": "' + "x" * 10_000 + '"}, {"a": "' + "y" * 9_999 + '"}]}',
    "bad names in a list of objects": ('{"c": [{"l": [{"$n": 1}]}, {"l": [{"a.b": 1}]}, '
                                       '{"l": [{"": 1}]}, {"l": [{"' + "n" * 256 + '": 1}]}]}'),
    "keen as a list": '{"c": [{"keen": []}, {"keen": "x"}]}',
    "bad timestamps": ('{"c": [{"keen": {"timestamp": "2026-02-30T00:00:00Z"}}, '
                       '{"keen": {"timestamp": "yesterday"}}, {"keen": {"timestamp": 5}}, '
                       '{"keen": {"timestamp": "2026-03-01T24:00:00"}}, '
                       '{"keen": {"timestamp": "9999-12-31T23:00:00-05:00"}}]}'),
    "an event over MAX_EVENT_BYTES as sent, small once parsed": (
        '{"c": [{"a": 1' + " " * 900_001 + "}, " + ", ".join([_ORDINARY] * 3000) + "]}"),
    "token of 65": '{"c": [{"keen": {"uniqueness_token": "' + "t" * 65 + '"}}]}',
    "token not a string": '{"c": [{"keen": {"uniqueness_token": 5}}]}',
    "mixed batch": ('{"c": [' + _ORDINARY + ', {"$bad": 1}, 5, ' + _ORDINARY + "], "
                    '"d": [' + _ORDINARY + "]}"),
    "empty objects": '{"c": [{"a": {}}, {"keen": {}}]}',
    # the text check runs inside the statement that parses: also for a body without events,
    # after whitespace and at the end of the body
    "trailing comma after an empty list": '{"c": [], }',
    "trailing comma at the end": '{"c": [{"a": 1}] ,\n}',
    "NaN after whitespace": '{"c": [{"a":\n\t NaN}]}',
    "exponent after whitespace in a list": '{"c": [{"a": [1,\n 2E+3]}]}',
    "an empty list then events": '{"c": [], "d": [' + _ORDINARY + "]}",
    "an empty list then a value that is not a list": '{"c": [], "d": 5}',
    "not an object": '[{"a": 1}]',
    "a list that is not": '{"c": {"a": 1}}',
    "bad collection name": '{"$c": [{"a": 1}]}',
    "extra data": '{"c": [{"a": 1}]} x',
    "placeholder": '{"c": [{"ip": "${keen.ip}"}]}',
    # shapes that differ only in what their lists hold are read by one SELECT (``_alike``);
    # a list of mixed kinds takes the Python lane
    "lists of every kind": ('{"c": [{"l": [], "n": 1}, {"l": ["a"], "n": 2}, {"l": [1], "n": 3}, '
                            '{"l": [1.5], "n": 4}, {"l": [true], "n": 5}, {"l": [null], "n": 6}, '
                            '{"l": [[1]], "n": 8}, {"l": [{"x": 1}], "n": 9}, '
                            '{"l": [], "n": 1.5}, {"l": ["b"], "n": "x"}, {"l": [], "n": null}]}'),
    "lists of mixed kinds": '{"c": [{"l": ["a", 1]}, {"l": []}]}',
}
# Every doubtful value after each character a value can follow (each character has a pattern
# of its own, ``_DOUBT``), and as a whole event.
_DOUBTFUL = {"NaN": "NaN", "-Infinity": "-Infinity", "an exponent": "1.5e3",
             "20 digits": "12345678901234567890", "-20 digits": "-12345678901234567890"}
_PLACES = {"a colon": '{"c": [{"a": %s}]}',
           "a comma in an object": '{"c": [{"a": 1,\n "b": %s}]}',
           "a list's opening": '{"c": [{"a": [ %s]}]}',
           "a comma in a list": '{"c": [{"a": [1,%s]}]}',
           "the collection's list": '{"c": [%s]}'}
HOSTILE.update({f"{kind} after {place}": form % value for kind, value in _DOUBTFUL.items()
                for place, form in _PLACES.items()})


@pytest.fixture(name="parts_api", scope="module")
def parts_api_fixture() -> Iterator[Api]:
    """A duckdb server whose store has two threads to read parts with, whatever the CPUs."""
    workers = _duckdb_batch.WORKERS
    _duckdb_batch.WORKERS = 2
    try:
        server = LocalKeenServer(clock=lambda: NOW, engine="duckdb").start()
    finally:
        _duckdb_batch.WORKERS = workers
    try:
        yield Api(server)
    finally:
        server.stop()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_batch_gets_the_sqlite_engines_answers(apis: tuple[Api, Api],
                                                         name: str) -> None:
    _hostile(apis, name, "h")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_batch_cut_into_parts_gets_the_sqlite_engines_answers(
        apis: tuple[Api, Api], parts_api: Api, name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bodies, cut into parts of as few as 8 characters wherever they can be."""
    monkeypatch.setattr(_duckdb_batch, "_PART", 8)
    monkeypatch.setattr(_duckdb_batch.Pace, "cut", lambda self: True)
    _hostile((apis[0], parts_api), name, "hp")


def _hostile(apis: tuple[Api, Api], name: str, prefix: str) -> None:
    body = HOSTILE[name]
    collection = f"{prefix}{sorted(HOSTILE).index(name)}"
    body = body.replace('"c"', f'"{collection}"', 1).replace('"d"', f'"{collection}d"', 1)
    answers = []
    for api in apis:
        response = api.post("/events", api.server.write_key, data=body.encode(),
                             headers={"Content-Type": "application/json"})
        assert response.status_code < 500, response.text
        stored = api.post("/queries/extraction", api.server.read_key, body={
            "event_collection": collection, "timeframe": {
                "start": "1000-01-01T00:00:00Z", "end": "9000-01-01T00:00:00Z"}})
        events = stored.json().get("result", [])
        for event in events:
            event["keen"].pop("id")
        answers.append((response.status_code, response.json(), _tagged(events)))
    assert answers[0] == answers[1]


def _with_optional(rng: random.Random, optional: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "keen": {"timestamp": f"2026-03-{rng.randint(1, 28):02d}T10:00:00Z"},
        "user": {"id": f"u{rng.randrange(1000)}", "plan": rng.choice(["free", "pro"])},
        "price": round(rng.uniform(1, 500), 2), "quantity": rng.randint(1, 10),
        "tags": rng.sample("abcdef", rng.randint(1, 3)), "ok": rng.random() < 0.9,
        "page": f"/p/{rng.randrange(100)}", "platform": rng.choice(["ios", "web"])}
    for key in ["page", "platform", "ok", "quantity", "price"][:optional]:
        if rng.random() < 0.5:
            del event[key]
    return event


@pytest.mark.parametrize(("count", "optional", "taken"), [
    (40, 0, 0),      # a small body (under _SMALL bytes)
    (600, 0, 1),     # one shape for 600 events
    (600, 3, 0),     # ~8 shapes for 600 events: the Python lane is quicker
    (3000, 3, 1),    # ~8 shapes for 3,000 events
])
def test_the_lane_is_chosen_by_size_and_shapes_and_both_store_the_same(
        count: int, optional: int, taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _SPEED_RULES.items():
        monkeypatch.setattr(_duckdb_batch, name, value)
    rng = random.Random(count + optional)
    body = json.dumps({"c": [_with_optional(rng, optional) for _ in range(count)]})
    assert (len(body) < _duckdb_batch._SMALL) == (count == 40)
    assert _same([body], ["c"], ["user.plan", "price", "platform"]) == taken


# ---------------------------------------------------------------------------- two at once

@pytest.mark.parametrize("in_parts", [False, True])
def test_batches_posted_at_once_are_each_stored_whole_in_order_and_the_first_token_wins(
        in_parts: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads post batches at the same moment (they are parsed concurrently, outside the
    store's lock): each batch's events get consecutive seq numbers in the batch's order, no
    event is stored twice, a uniqueness token shared by both threads' batches is kept once
    (from the batch stored first), and the typed columns each adds are as if the batches had
    come one after the other, in the order they were stored (replayed on the Python lane).
    ``in_parts``: bodies of one collection, each read in parts when a thread of the store's
    pool is free."""
    if in_parts:
        _read_in_parts(monkeypatch)
    rng = random.Random(17)

    def batch(thread: int, index: int) -> str:
        events = [{"thread": thread, "batch": index, "i": i,
                   f"only_{thread}_{index % 3}": rng.choice([i, f"v{i}", i / 2]),
                   "user": {"id": f"u{rng.randrange(9)}"},
                   **({"keen": {"uniqueness_token": f"t{rng.randrange(40)}"}} if i % 4 else {})}
                  for i in range(40)]
        return json.dumps({"c": events} if in_parts else {"c": events, "d": events[:6]})

    bodies = [[batch(thread, index) for index in range(6)] for thread in range(2)]
    store = DuckDBStore()
    barrier = threading.Barrier(2, timeout=60)
    answers: dict[tuple[int, int], Any] = {}

    def post(thread: int) -> None:
        for index, body in enumerate(bodies[thread]):
            barrier.wait()
            answers[thread, index] = store.insert_batch("p", body, now=NOW_DT)

    threads = [threading.Thread(target=post, args=(thread,)) for thread in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert store.batches_taken == 12 and len(answers) == 12
    exact = DuckDBStore()
    try:
        stored = [(row["typed"]["thread", "i"][1], row["typed"]["batch", "i"][1])
                  for row in _state(store)["events"]]  # in seq order
        runs = [key for position, key in enumerate(stored)
                if position == 0 or stored[position - 1] != key]
        assert sorted(runs) == sorted(answers)  # each batch in one run of seq numbers
        for thread, index in runs:  # the order they were stored in, on the Python lane
            body = json.loads(bodies[thread][index])
            assert answers[thread, index] == {
                name: exact.insert_events("p", name, events, now=NOW_DT)
                for name, events in body.items()}
        assert _state(store) == _state(exact)
    finally:
        store.close()
        exact.close()


def test_closing_the_store_while_a_batch_is_being_read_interrupts_it_and_stores_nothing(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch is read outside the store's lock, in parts at once, each on a cursor of its own;
    ``close`` (DuckDB refuses to close a connection whose cursor is running) interrupts them and
    waits: the batch is not stored, the store closes, and what was stored before is there when
    it opens again."""
    readings = _read_in_parts(monkeypatch, workers=1)
    started: list[str] = []
    reading = threading.Event()  # both parts being read

    def endless_read(con: Any, table: str, text: str) -> Any:
        started.append(table)
        if len(started) == 2:
            reading.set()
        return con.execute("SELECT count(*) FROM range(1000000000000)").fetchall()

    path = str(tmp_path / "k.duckdb")
    store = DuckDBStore(path)
    body = json.dumps({"c": _realistic(random.Random(2), 50)})
    assert store.insert_batch("p", body, now=NOW_DT) is not None
    stored = store._con.execute("SELECT count(*) FROM events").fetchone()
    monkeypatch.setattr(_duckdb_batch, "_parse", endless_read)
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(
        store.insert_batch("p", body, now=NOW_DT)))
    thread.start()
    assert reading.wait(timeout=30)
    store.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and answers == [None]
    assert len(started) == 2 and readings[-1] == 2  # (not read again whole once closed)
    with pytest.raises(RuntimeError, match="closed"):
        store.insert_batch("p", body, now=NOW_DT)
    with DuckDBStore(path) as again:
        assert again._con.execute("SELECT count(*) FROM events").fetchone() == stored


# ---------------------------------------------------------------------------- bodies in parts

def _read_in_parts(monkeypatch: pytest.MonkeyPatch, workers: int = 2) -> list[int]:
    """Stores made from now on read a body of one collection in up to ``workers + 1`` parts
    at once, whatever the machine's CPUs, parts being as small as 1,000 characters; the list
    returned gets the number of parts of each reading in parts (``_run``: of their events,
    then of the rows to store; a body read whole again after its parts is not one)."""
    monkeypatch.setattr(_duckdb_batch, "WORKERS", workers)
    monkeypatch.setattr(_duckdb_batch, "_PART", 1_000)
    monkeypatch.setattr(_duckdb_batch.Pace, "cut", lambda self: True)
    readings: list[int] = []
    run = _duckdb_batch._run

    def counted(store: Any, cursors: list[Any], work: Any) -> Any:
        readings.append(len(cursors))
        return run(store, cursors, work)

    monkeypatch.setattr(_duckdb_batch, "_run", counted)
    return readings


def _calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    method = getattr(_duckdb_batch._Collection, name)

    def spy(self: Any, *args: Any) -> Any:
        calls.append(1)
        return method(self, *args)

    monkeypatch.setattr(_duckdb_batch._Collection, name, spy)
    return calls


def test_a_body_read_in_parts_stores_what_the_python_lane_stores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large body of one collection is cut into parts read at once; the events of each are
    numbered after those of the parts before, and read into the rows to store beside the
    others once the collection's typed columns are known (its first batch is read into them
    under the lock, as a property getting its first typed column is); what is stored and the
    answers are the Python lane's, tokens (repeated across parts) included."""
    readings = _read_in_parts(monkeypatch)
    staged, unstaged = _calls(monkeypatch, "_insert_staged"), _calls(monkeypatch, "_insert")
    rng = random.Random(11)
    bodies = [json.dumps({"buys": _realistic(rng, count)}, ensure_ascii=False, indent=indent)
              for count, indent in ((300, None), (240, 1), (301, None))]
    taken = _same(bodies, ["buys"], ["user.country", "price", "note"])
    assert taken == 3
    # each body cut in 3 parts (read twice: their events, then the rows to store)
    assert readings == [3, 3, 3, 3, 3]
    assert len(unstaged) == 1 and len(staged) == 2


def test_a_property_given_its_first_typed_column_meanwhile_is_read_under_the_lock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows to store are read with the typed columns known when the body is read; a
    property that held only nulls so far gets its first typed column while the batch is stored,
    so the batch is read again under the lock, and stores what the Python lane stores."""
    _read_in_parts(monkeypatch)
    staged, unstaged = _calls(monkeypatch, "_insert_staged"), _calls(monkeypatch, "_insert")
    rng = random.Random(5)
    first = [{**event, "later": None} for event in _realistic(rng, 200)]
    second = [{**event, "later": f"v{index}"} for index, event in enumerate(_realistic(rng, 200))]
    assert _same([json.dumps({"c": first}), json.dumps({"c": second})], ["c"], ["later"]) == 2
    assert len(staged) == 0 and len(unstaged) == 2


# bodies whose cuts fall inside an event (a list of objects opening as the events do), or in a
# second collection's list: their parts are not bodies of the collection, so each is read whole
_NESTED = {"c": [{"id": index, "children": [{"id": child} for child in range(30)]}
                 for index in range(40)]}
_TWO = {"c": [{"id": index, "x": "x" * 40} for index in range(10)],
        "d": [{"id": index, "x": "y" * 40} for index in range(200)]}


@pytest.mark.parametrize("body", [_NESTED, _TWO], ids=["cut inside an event", "two lists"])
def test_a_body_cut_where_no_event_ends_is_read_whole(
        body: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    readings = _read_in_parts(monkeypatch)
    assert _same([json.dumps(body)], list(body), ["id"]) == 1
    assert readings == [3]  # read in parts, then whole (not by _run), not into rows to store


def test_a_body_is_cut_only_into_as_many_parts_as_there_are_cpus_no_batch_uses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two CPUs: while another batch is being read or stored, a body is read whole (each
    request gets a CPU); alone, in two parts; and while another batch has the pool's thread,
    whole rather than wait for it."""
    readings = _read_in_parts(monkeypatch, workers=1)
    store = DuckDBStore()
    body = json.dumps({"c": _realistic(random.Random(4), 100)})
    try:
        with store._batch():
            assert store.insert_batch("p", body, now=NOW_DT) is not None
        assert store.insert_batch("p", body, now=NOW_DT) is not None
        with store._helpers(1) as taken:
            assert taken == 1
            assert store.insert_batch("p", body, now=NOW_DT) is not None
    finally:
        store.close()
    # whole; then in parts (their events, the rows to store); then whole
    assert readings == [1, 2, 2, 1]


def test_the_tables_a_batch_is_read_into_are_dropped_once_it_is_answered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _read_in_parts(monkeypatch)
    store = DuckDBStore()
    try:
        for seed in range(3):
            body = json.dumps({"c": _realistic(random.Random(seed), 200)})
            assert store.insert_batch("p", body, now=NOW_DT) is not None
        assert store._housekeeper is not None
        store._housekeeper.submit(lambda: None).result(timeout=60)  # (one thread: after the drops)
        assert store._con.execute("SELECT count(*) FROM duckdb_tables() "
                                  "WHERE database_name = ?", [store.scratch]).fetchone() == (0,)
    finally:
        store.close()


def test_bodies_are_cut_in_parts_while_that_has_been_the_quicker_way_lately() -> None:
    """Each way is tried first; then the quicker one lately (an average weighted to the newest
    batches) is taken, the other tried again every ``TRY`` batches: when other work takes the
    CPUs and parts get slower, bodies are read whole, until parts are quicker again."""
    pace = _duckdb_batch.Pace()
    cut_seconds, whole_seconds = 1.0, 2.0  # per character: parts twice as quick

    def run(batches: int) -> list[bool]:
        ways = []
        for _ in range(batches):
            cut = pace.cut()
            pace.took(cut, cut_seconds if cut else whole_seconds)
            ways.append(cut)
        return ways

    assert run(2) == [True, False]
    ways = run(pace.TRY * 12)
    assert ways.count(False) == 3  # parts, but for a try every 4 TRY batches (far slower)
    cut_seconds = 1.8  # a little quicker only: tried every TRY batches
    ways = run(pace.TRY * 4)
    assert ways[-pace.TRY * 2:].count(False) == 2
    cut_seconds = 3.0  # the CPUs are taken: parts are now slower
    ways = run(pace.TRY * 8)
    assert ways[-pace.TRY * 4:].count(True) == 1 and ways[-1] is False  # whole, but for tries
    cut_seconds = 1.0
    ways = run(pace.TRY * 16)
    assert ways[-pace.TRY * 4:].count(False) == 1  # parts again once tries find them quicker


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_events(), min_size=2, max_size=8), min_size=1, max_size=2),
       st.integers(0, 2))
def test_random_batches_cut_anywhere_store_what_the_python_lane_stores(
        lists: list[list[dict[str, Any]]], spaces: int) -> None:
    """Bodies cut into parts as small as 40 characters (so that cuts fall between events,
    inside events whose nested objects open as the events do, or in a second collection's
    list) store and answer as the Python lane, whatever the cuts."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _read_in_parts(monkeypatch)
        monkeypatch.setattr(_duckdb_batch, "_PART", 40)
        batches = [json.dumps({"c": events, **({"d": events[:1]} if index else {})},
                              indent=spaces or None)
                   for index, events in enumerate(lists)]
        _same(batches, ["c", "d"], ["a", "b", "user"])


def test_a_database_file_named_as_the_shared_database_opens_and_reads_in_parts(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database shared by a batch's parts is attached under a name other than the file's
    own (``keen_scratch.duckdb`` is a database named ``keen_scratch``)."""
    readings = _read_in_parts(monkeypatch)
    path = str(tmp_path / "keen_scratch.duckdb")
    body = json.dumps({"c": _realistic(random.Random(6), 100)})
    with DuckDBStore(path) as store:
        assert store.insert_batch("p", body, now=NOW_DT) is not None
        stored = store._con.execute("SELECT count(*) FROM events").fetchone()
    assert readings[0] == 3
    with DuckDBStore(path) as again:
        assert again._con.execute("SELECT count(*) FROM events").fetchone() == stored
