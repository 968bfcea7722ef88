"""Background delivery through a stand-in API: queueing, batching, retries, failures, counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from _delivery_helpers import (
    REPO,
    FakeApi,
    Recorder,
    add,
    check_counters,
    closing,
    strategy,
    wait_until,
)

from keen._delivery import BackgroundDelivery, DurableDelivery, _strategy, make_strategy, resolve
from keen._delivery._strategy import QueuedPersistenceStrategy
from keen._retry import RetryPolicy
from keen.exceptions import (
    AuthenticationError,
    DeliveryClosedError,
    EventRejectedError,
    InvalidDeliveryError,
    InvalidEnvironmentError,
    InvalidEventError,
    KeenConnectionError,
    NotDeliveredError,
    PayloadTooLargeError,
    QueueFullError,
    RateLimitError,
    ServerError,
)

# ------------------------------------------------------------------ the caller's side


def test_add_event_queues_and_flush_delivers_with_a_token_per_event() -> None:
    api = FakeApi()
    with closing(strategy(api)) as target:
        body = {"n": 1, "keen": {"timestamp": "2024-01-01T00:00:00"}}
        add(target, "clicks", body)
        add(target, "clicks", {"n": 2})
        assert target.flush(5)
    assert body == {"n": 1, "keen": {"timestamp": "2024-01-01T00:00:00"}}  # not modified
    events = [event for _collection, event in api.stored]
    assert [event["n"] for event in events] == [1, 2]
    tokens = [event["keen"]["uniqueness_token"] for event in events]
    assert len(set(tokens)) == 2 and all(0 < len(token) <= 64 for token in tokens)
    assert events[0]["keen"]["timestamp"] == "2024-01-01T00:00:00"


def test_a_token_set_by_the_user_is_kept() -> None:
    api = FakeApi()
    with closing(strategy(api)) as target:
        add(target, "clicks", {"n": 1, "keen": {"uniqueness_token": "mine"}})
        assert target.flush(5)
    assert api.stored[0][1]["keen"] == {"uniqueness_token": "mine"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"when": object()}, "when"),
        ({"keen": "not a dict"}, "'keen' property must be a dict"),
        ({"big": "x" * 900_001}, "at most 900000"),
        ({"ratio": float("nan")}, "ratio"),
        # tokens the API refuses, or that would not tell events apart (None, "")
        ({"keen": {"uniqueness_token": "x" * 65}}, "uniqueness_token.*at most 64"),
        ({"keen": {"uniqueness_token": 5}}, "uniqueness_token.*got int"),
        ({"keen": {"uniqueness_token": None}}, "uniqueness_token.*got NoneType"),
        ({"keen": {"uniqueness_token": ""}}, "uniqueness_token.*non-empty"),
    ],
)
def test_bad_events_raise_in_the_caller_and_queue_nothing(body: dict[str, Any],
                                                         words: str) -> None:
    api = FakeApi()
    with closing(strategy(api)) as target:
        with pytest.raises(InvalidEventError, match=words):
            add(target, "clicks", body)
        assert target.stats()["queued"] == 0
        assert target.flush(1)
    assert api.bodies == []


def test_add_events_checks_every_event_before_queueing_any() -> None:
    api = FakeApi()
    with closing(strategy(api)) as target:
        with pytest.raises(InvalidEventError):
            target.batch_persist({"a": [{"n": 1}], "b": [{"n": 2}, {"n": object()}]})
        with pytest.raises(InvalidEventError):
            target.batch_persist({"": [{"n": 1}]})
        for not_an_event in (5, "text", None, [1]):
            with pytest.raises(InvalidEventError, match="must be a dict"):
                target.batch_persist({"a": [not_an_event]})  # type: ignore[list-item]
        with pytest.raises(InvalidEventError, match="must be a list"):
            target.batch_persist({"a": {"n": 1}})  # type: ignore[dict-item]
        assert target.stats()["queued"] == 0
        answer = target.batch_persist({"a": [{"n": 1}, {"n": 2}], "b": [{"n": 3}]})
        assert answer == {"a": [{"queued": True}] * 2, "b": [{"queued": True}]}
        assert target.flush(5)
    assert sorted(api.stored_values()) == [1, 2, 3]


def test_a_client_without_a_write_key_refuses_events_at_once() -> None:
    api = FakeApi()
    api.write_key = None
    with closing(strategy(api)) as target:
        with pytest.raises(InvalidEnvironmentError, match="write key"):
            add(target, "clicks", {"n": 1})
        with pytest.raises(InvalidEnvironmentError, match="write key"):
            target.batch_persist({"clicks": [{"n": 1}]})
        assert target.stats()["queued"] == 0
    assert api.bodies == []


def test_use_after_close_is_an_error() -> None:
    target = strategy(FakeApi())
    target.close(1)
    target.close(1)  # twice is fine
    with pytest.raises(DeliveryClosedError):
        add(target, "clicks", {"n": 1})


# ------------------------------------------------------------------ batches


@pytest.mark.parametrize(("pad", "largest"), [(100, 7), (500, 3)])
def test_batches_respect_the_event_count_and_byte_limits(pad: int, largest: int) -> None:
    api = FakeApi()
    with closing(strategy(api, batch_size=7, max_batch_bytes=2000)) as target:
        api.gate.clear()  # let the queue fill up first
        for n in range(100):
            add(target, "c1" if n % 2 else "c2", {"n": n, "pad": "y" * pad})
        api.gate.set()
        assert target.flush(5)
    sizes = [sum(len(events) for events in body.values()) for body in api.bodies]
    assert max(sizes) == largest
    assert sorted(api.stored_values()) == list(range(100))


def test_events_of_several_collections_keep_their_order_within_each() -> None:
    api = FakeApi()
    with closing(strategy(api, batch_size=1000, flush_interval=5)) as target:
        target.batch_persist({"a": [{"n": n} for n in range(50)],
                              "b": [{"n": n} for n in range(50, 80)]})
        assert target.flush(5)
    assert [e["n"] for c, e in api.stored if c == "a"] == list(range(50))
    assert [e["n"] for c, e in api.stored if c == "b"] == list(range(50, 80))


def test_a_batch_refused_as_too_large_is_split_until_it_passes() -> None:
    def too_large_above(limit: int) -> Any:
        def answer(batch: dict[str, list[Any]]) -> Any:
            if sum(len(v) for v in batch.values()) > limit:
                raise PayloadTooLargeError({"message": "too large"}, 413)
            return {c: [{"success": True}] * len(v) for c, v in batch.items()}
        return answer

    api = FakeApi(script=[too_large_above(3)] * 50)
    with closing(strategy(api, batch_size=20, flush_interval=5)) as target:
        target.batch_persist({"c": [{"n": n} for n in range(20)]})
        assert target.flush(5)
        stats = target.stats()
    assert stats["sent"] == 20 and stats["failed"] == 0
    accepted = [body for body in api.bodies if sum(len(v) for v in body.values()) <= 3]
    assert sorted(e["n"] for body in accepted for e in body["c"]) == list(range(20))


def test_a_single_event_refused_as_too_large_is_reported_not_retried() -> None:
    errors = Recorder()
    api = FakeApi(script=[PayloadTooLargeError({"message": "too large"}, 413)])
    with closing(strategy(api, on_error=errors)) as target:
        add(target, "c", {"n": 1})
        assert target.flush(5)
        assert target.stats()["failed"] == 1
    assert len(api.bodies) == 1
    assert errors.events == [("c", api.bodies[0]["c"][0])]
    assert isinstance(errors.errors()[0], PayloadTooLargeError)


# ------------------------------------------------------------------ failures and retries


def test_events_the_server_rejects_go_to_on_error_and_are_not_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    errors = Recorder()
    api = FakeApi(reject=lambda event: event.get("bad", False))
    with closing(strategy(api, on_error=errors)) as target:
        target.batch_persist({"c": [{"n": 1}, {"n": 2, "bad": True}, {"n": 3}]})
        assert target.flush(5)
        stats = target.stats()
    assert len(api.bodies) == 1
    assert sorted(api.stored_values()) == [1, 3]
    assert stats["sent"] == 2 and stats["failed"] == 1 and stats["retried"] == 0
    [(events, error)] = errors.calls
    assert [event["n"] for _c, event in events] == [2]
    assert isinstance(error, EventRejectedError)
    assert error.error_code == "InvalidPropertyNameError"
    assert "not delivered" in caplog.text


@pytest.mark.parametrize("error", [
    ServerError({"message": "boom"}, 500),
    ServerError({"message": "busy"}, 503),
    RateLimitError({"message": "slow down"}, 429),
    KeenConnectionError("refused", request_sent=False),
])
def test_transient_failures_are_retried_until_delivered(error: Exception) -> None:
    api = FakeApi(script=[error, error, error])
    with closing(strategy(api)) as target:
        target.batch_persist({"c": [{"n": 1}, {"n": 2}]})
        assert target.flush(5)
        stats = target.stats()
    assert len(api.bodies) == 4
    assert sorted(api.stored_values()) == [1, 2]
    assert stats["retried"] == 6 and stats["sent"] == 2 and stats["failed"] == 0
    # the same events, with the same tokens, every time
    assert all(body == api.bodies[0] for body in api.bodies)


@pytest.mark.parametrize("retry_after", [0.25, 0.01])
def test_the_wait_before_a_retry_is_the_servers_retry_after(retry_after: float) -> None:
    # 0.01: shorter than the backoff (30 s here) would be: the server said when to come back
    api = FakeApi(script=[RateLimitError({"message": "wait"}, 429, retry_after=retry_after)])
    waits: list[float] = []
    slow = RetryPolicy(max_retries=10, deadline=float("inf"), backoff_base=30, backoff_cap=30)
    with closing(strategy(api, retry=slow)) as target:
        real_wait = target._sender._interrupt.wait

        def recording_wait(timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return real_wait(timeout)

        target._sender._interrupt.wait = recording_wait  # type: ignore[method-assign]
        add(target, "c", {"n": 1})
        assert target.flush(5)
    assert waits == [retry_after]


@pytest.mark.parametrize("error", [
    AuthenticationError({"message": "bad key"}, 401),
    ServerError({"message": "boom"}, 500),
])
def test_a_finite_retry_policy_or_a_permanent_error_fails_the_batch(error: Exception) -> None:
    errors = Recorder()
    api = FakeApi(script=[error] * 10)
    policy = RetryPolicy(max_retries=2, backoff_base=0.001, backoff_cap=0.001)
    with closing(strategy(api, retry=policy, on_error=errors)) as target:
        target.batch_persist({"c": [{"n": 1}, {"n": 2}]})
        assert target.flush(5)
        stats = target.stats()
    attempts = 1 if isinstance(error, AuthenticationError) else 3
    assert len(api.bodies) == attempts
    assert stats["failed"] == 2 and stats["sent"] == 0
    assert [event["n"] for _c, event in errors.events] == [1, 2]
    assert errors.errors() == [error]


def test_an_on_error_callback_that_raises_does_not_stop_delivery() -> None:
    def broken(events: Any, error: BaseException) -> None:
        raise RuntimeError("oops")

    api = FakeApi(reject=lambda event: event["n"] == 1)
    with closing(strategy(api, on_error=broken)) as target:
        add(target, "c", {"n": 1})
        assert target.flush(5)
        add(target, "c", {"n": 2})
        assert target.flush(5)
    assert api.stored_values() == [2]


# ------------------------------------------------------------------ overflow and counters


def _blocked(**options: Any) -> tuple[FakeApi, Any, Recorder]:
    api = FakeApi()
    api.gate.clear()
    errors = Recorder()
    target = strategy(api, max_queue_size=5, batch_size=1, on_error=errors, **options)
    return api, target, errors


def test_drop_newest_drops_what_arrives_at_a_full_queue() -> None:
    api, target, errors = _blocked(overflow="drop_newest")
    with closing(target):
        for n in range(10):
            add(target, "c", {"n": n})
        stats = target.stats()
        check_counters(stats)
        assert stats["dropped"] == 5 and stats["pending"] == 5
        assert [event["n"] for _c, event in errors.events] == [5, 6, 7, 8, 9]
        assert all(isinstance(error, QueueFullError) for error in errors.errors())
        api.gate.set()
        assert target.flush(5)
    assert sorted(api.stored_values()) == [0, 1, 2, 3, 4]


def test_drop_oldest_drops_the_longest_waiting_event() -> None:
    api, target, errors = _blocked(overflow="drop_oldest")
    with closing(target):
        add(target, "c", {"n": 0})
        # (the sender holds event 0 in flight at the gate; events 1.. wait in the queue)
        for n in range(1, 10):
            add(target, "c", {"n": n})
        stats = target.stats()
        check_counters(stats)
        assert stats["dropped"] == 5
        api.gate.set()
        assert target.flush(5)
    stored = sorted(api.stored_values())
    assert stored[-4:] == [6, 7, 8, 9]
    assert sorted(stored + [e["n"] for _c, e in errors.events]) == list(range(10))


def test_block_drops_after_the_timeout() -> None:
    api, target, errors = _blocked(overflow="block", block_timeout=0.05)
    with closing(target):
        for n in range(6):
            add(target, "c", {"n": n})
        assert target.stats()["dropped"] == 1
        assert [event["n"] for _c, event in errors.events] == [5]
        api.gate.set()
        assert target.flush(5)
    assert sorted(api.stored_values()) == [0, 1, 2, 3, 4]


def test_block_waits_until_there_is_room() -> None:
    api, target, errors = _blocked(overflow="block", block_timeout=30)
    with closing(target):
        for n in range(5):
            add(target, "c", {"n": n})
        done = threading.Event()

        def producer() -> None:
            add(target, "c", {"n": 5})  # the queue is full: this waits
            done.set()

        thread = threading.Thread(target=producer)
        thread.start()
        wait_until(lambda: bool(target._queue._progress._waiters))  # it waits for room
        check_counters(target.stats())  # the waiting event is in no counter yet
        assert target.stats()["queued"] == 5
        api.gate.set()
        assert done.wait(10)
        thread.join(10)
        assert target.flush(5)
        assert target.stats()["dropped"] == 0
    assert errors.calls == []
    assert sorted(api.stored_values()) == list(range(6))


def test_counters_account_for_every_event_with_many_producer_threads() -> None:
    errors = Recorder()
    script: list[Any] = [ServerError({"message": "x"}, 503)] * 5
    api = FakeApi(script=script, reject=lambda event: event["n"] % 97 == 0)
    target = strategy(api, max_queue_size=300, overflow="drop_oldest", batch_size=50,
                      on_error=errors)
    threads_count, per_thread = 8, 1500
    seen_stats: list[dict[str, Any]] = []

    def producer(base: int) -> None:
        for i in range(per_thread):
            add(target, "c", {"n": base + i})
            if i % 500 == 0:
                seen_stats.append(target.stats())

    with closing(target):
        threads = [threading.Thread(target=producer, args=(t * per_thread,))
                   for t in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert target.flush(10)
        stats = target.stats()
    total = threads_count * per_thread
    for seen in seen_stats:
        check_counters(seen)
    check_counters(stats)
    assert stats["queued"] == total and stats["pending"] == 0
    stored = api.stored_values()
    assert len(stored) == len(set(stored)) == stats["sent"]
    reported = [event["n"] for _c, event in errors.events]
    assert len(reported) == stats["failed"] + stats["dropped"]
    assert sorted(stored + reported) == list(range(total))


def test_stats_report_the_age_of_the_oldest_waiting_event() -> None:
    api = FakeApi()
    api.gate.clear()
    with closing(strategy(api)) as target:
        assert target.stats()["oldest_event_age"] is None
        add(target, "c", {"n": 1})
        add(target, "c", {"n": 2})
        first = target.stats()["oldest_event_age"]
        assert first is not None and first >= 0
        assert target.stats()["queue_depth"] + 1 >= target.stats()["pending"]
        api.gate.set()
        assert target.flush(5)
        assert target.stats()["oldest_event_age"] is None


# ------------------------------------------------------------------ flush and close


def test_flush_times_out_while_the_server_is_down_and_close_reports_what_is_left() -> None:
    errors = Recorder()
    api = FakeApi()
    api.failure = KeenConnectionError("refused", request_sent=False)
    target = strategy(api, on_error=errors)
    add(target, "c", {"n": 1})
    add(target, "c", {"n": 2})
    assert target.flush(0.1) is False
    target.close(0.1)
    stats = target.stats()
    check_counters(stats)
    assert stats["dropped"] == 2 and stats["sent"] == 0
    assert sorted(event["n"] for _c, event in errors.events) == [1, 2]
    assert all(isinstance(error, NotDeliveredError) for error in errors.errors())


def test_the_exit_flush_of_several_clients_shares_one_time_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()
    api.failure = KeenConnectionError("refused", request_sent=False)
    targets = [strategy(api, exit_timeout=0.3) for _ in range(2)]
    for target in targets:
        add(target, "c", {"n": 1})
    budgets: list[float] = []
    real_close = QueuedPersistenceStrategy.close

    def close(self: QueuedPersistenceStrategy, timeout: float | None = None) -> None:
        if self in targets:
            budgets.append(timeout or 0.0)
        real_close(self, timeout)

    monkeypatch.setattr(QueuedPersistenceStrategy, "close", close)
    monkeypatch.setattr(_strategy, "_LIVE", set(targets))  # (not other tests' clients)
    _strategy._close_all_at_exit()
    assert len(budgets) == 2
    assert budgets[0] > 0.2 and budgets[1] == 0.0  # the first used up the 0.3 s


def test_close_delivers_what_is_queued() -> None:
    api = FakeApi()
    target = strategy(api, flush_interval=60)
    for n in range(10):
        add(target, "c", {"n": n})
    target.close(5)
    assert sorted(api.stored_values()) == list(range(10))


def test_close_refuses_new_events_before_it_flushes() -> None:
    # Another thread keeps adding while close() waits on a slow server: once close has begun,
    # add_event is refused at once, so every event that was accepted is delivered, none dropped.
    api = FakeApi()
    api.gate.clear()  # the server does not answer yet
    target = strategy(api, flush_interval=0.01)
    add(target, "c", {"n": 0})
    wait_until(lambda: len(api.bodies) == 0 and target.stats()["queue_depth"] == 0)
    closer = threading.Thread(target=target.close, args=(3,))
    closer.start()
    accepted = 1
    with pytest.raises(DeliveryClosedError):
        for n in range(1, 1_000_000):
            add(target, "c", {"n": n})
            accepted += 1
    api.gate.set()
    closer.join(10)
    assert not closer.is_alive()
    stats = target.stats()
    assert stats["dropped"] == 0 and stats["failed"] == 0
    assert sorted(api.stored_values()) == list(range(accepted))


def test_flush_and_close_called_from_on_error_do_not_wait_for_the_sender() -> None:
    # on_error runs on the sender thread: a flush there cannot wait for the sender, and close
    # cannot join it; the events behind the rejected one must still go out
    flushed: list[bool] = []

    def flush_in_callback(events: Any, error: BaseException) -> None:
        flushed.append(target.flush())

    api = FakeApi(reject=lambda event: event["n"] == 0)
    api.gate.clear()
    target = strategy(api, batch_size=1, on_error=flush_in_callback)
    with closing(target):
        add(target, "c", {"n": 0})
        add(target, "c", {"n": 1})
        api.gate.set()
        assert target.flush(5)
    assert flushed == [False] and api.stored_values() == [1]

    def close_in_callback(events: Any, error: BaseException) -> None:
        other.close()

    api = FakeApi(reject=lambda event: event["n"] == 0)
    api.gate.clear()  # (both queued before the first is rejected)
    other = strategy(api, batch_size=1, on_error=close_in_callback)
    add(other, "c", {"n": 0})
    add(other, "c", {"n": 1})
    api.gate.set()
    wait_until(lambda: other.stats()["pending"] == 0)
    assert api.stored_values() == [1]
    check_counters(other.stats())


def test_the_sender_goes_on_after_an_unexpected_error() -> None:
    api = FakeApi()
    target = strategy(api)
    real_next_batch = target._queue.next_batch
    calls = []

    def broken_once() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_next_batch()

    target._queue.next_batch = broken_once  # type: ignore[method-assign]
    with closing(target):
        add(target, "c", {"n": 1})
        assert target.flush(5)
    assert api.stored_values() == [1]


def test_sys_exit_in_on_error_does_not_end_the_sender() -> None:
    # (SystemExit would end the thread without a trace, and the queue would stall)
    def leave(events: Any, error: BaseException) -> None:
        raise SystemExit

    api = FakeApi(reject=lambda event: event["n"] == 0)
    with closing(strategy(api, batch_size=1, on_error=leave)) as target:
        add(target, "c", {"n": 0})
        wait_until(lambda: target.stats()["failed"] == 1)
        add(target, "c", {"n": 1})
        assert target.flush(5)
    assert api.stored_values() == [1]


_SIGNAL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from _delivery_helpers import FakeApi, add, strategy
target = strategy(FakeApi())
add(target, "c", {"n": 1})
signal.signal(signal.SIGUSR1, lambda signum, frame: print(target.flush(5), flush=True))
with target._queue._lock:  # as if the signal came while add_event held the queue's lock
    os.kill(os.getpid(), signal.SIGUSR1)
    print("handled", flush=True)
target.close(1)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
def test_flush_from_a_signal_handler_does_not_deadlock() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        done = subprocess.run([sys.executable, "-c", _SIGNAL_SCRIPT, str(REPO / "tests")],
                              env=env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("flush in a signal handler deadlocked on the queue's lock")
    assert done.stdout.split() == ["True", "handled"], done.stderr


# ------------------------------------------------------------------ configuration


def test_delivery_settings_are_checked() -> None:
    # every one a keen.exceptions error (also the ValueError/TypeError they used to be)
    with pytest.raises(InvalidDeliveryError, match="overflow"):
        BackgroundDelivery(overflow="ignore")
    with pytest.raises(InvalidDeliveryError, match="max_queue_size"):
        BackgroundDelivery(max_queue_size=0)
    with pytest.raises(InvalidDeliveryError, match="10000000"):
        BackgroundDelivery(max_batch_bytes=20_000_000)
    with pytest.raises(InvalidDeliveryError, match="path"):
        DurableDelivery()
    with pytest.raises(InvalidDeliveryError, match="by keyword"):
        DurableDelivery("events.sqlite3")  # type: ignore[arg-type]
    with pytest.raises(InvalidDeliveryError, match="durability"):
        DurableDelivery(path="x.db", durability="maybe")
    with pytest.raises(InvalidDeliveryError, match="on_error"):
        BackgroundDelivery(on_error="print")  # type: ignore[arg-type]
    assert issubclass(InvalidDeliveryError, (ValueError, TypeError))


def test_delivery_names_resolve(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    assert resolve("direct") is None and resolve(None) is None
    assert resolve("background") == BackgroundDelivery()
    monkeypatch.delenv("KEEN_DELIVERY_PATH", raising=False)
    monkeypatch.delenv("KEEN_DELIVERY", raising=False)
    with pytest.raises(InvalidDeliveryError, match="KEEN_DELIVERY_PATH"):
        resolve("durable")
    monkeypatch.setenv("KEEN_DELIVERY_PATH", str(tmp_path / "q.db"))
    assert resolve("durable") == DurableDelivery(path=str(tmp_path / "q.db"))
    with pytest.raises(InvalidDeliveryError, match="'direct', 'background' or 'durable'"):
        resolve("fast")
    with pytest.raises(ValueError):
        make_strategy(FakeApi(), "direct")


def test_a_bad_keen_delivery_is_named_with_the_values_it_takes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import keen

    for name in ("project_id", "write_key", "delivery"):
        monkeypatch.setattr(keen, name, None)
    monkeypatch.setenv("KEEN_PROJECT_ID", "5eb1f5c3d3a2b40001e0a1b2")
    monkeypatch.setenv("KEEN_WRITE_KEY", "w")
    monkeypatch.setenv("KEEN_BASE_URL", "http://127.0.0.1:9")  # (nothing is sent)
    monkeypatch.setenv("KEEN_DELIVERY", "bakground")
    keen.reset_client()
    try:
        with pytest.raises(InvalidDeliveryError,
                           match=r"KEEN_DELIVERY='bakground'.*'direct', 'background' or 'durable'"):
            keen.add_event("c", {"n": 1})
    finally:
        monkeypatch.delenv("KEEN_DELIVERY")
        keen.reset_client()


def test_a_durable_file_in_a_missing_folder_is_named(tmp_path: Any) -> None:
    missing = tmp_path / "no-such-folder" / "queue.sqlite3"
    with pytest.raises(InvalidDeliveryError, match=r"no-such-folder.*does not exist"):
        QueuedPersistenceStrategy(FakeApi(), DurableDelivery(path=str(missing)))
    with pytest.raises(InvalidDeliveryError, match="is a folder"):
        QueuedPersistenceStrategy(FakeApi(), DurableDelivery(path=str(tmp_path)))
    assert not missing.parent.exists()


def test_the_default_sender_tries_again_within_5_seconds_however_long_the_outage() -> None:
    """The backoff cap bounds how late the first try after a server recovers can come."""
    from keen._delivery import DELIVERY_RETRY
    from keen._retry import delay

    waits = [delay(DELIVERY_RETRY, attempt, rand=lambda: 1.0) for attempt in range(1, 100)]
    assert waits[0] == 0.2 and max(waits) == 5.0
    assert delay(DELIVERY_RETRY, 50, retry_after=45.0) == 45.0  # what the server asked
