"""Background delivery against the local server while it fails: each test ends by comparing
what the server stored with what was handed to add_event (nothing lost, nothing twice)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _delivery_helpers import (
    QUICK_RETRY,
    Recorder,
    assert_exactly_once,
    check_counters,
    wait_until,
)

from keen._delivery import BackgroundDelivery
from keen.client import KeenClient
from keen.server import LocalKeenServer

COLLECTION = "deliveries"


@pytest.fixture
def server() -> Iterator[LocalKeenServer]:
    with LocalKeenServer() as running:
        yield running


@pytest.fixture
def errors() -> Recorder:
    return Recorder()


def _client(server: LocalKeenServer, errors: Recorder, **options: Any) -> KeenClient:
    settings: dict[str, Any] = {"retry": QUICK_RETRY, "flush_interval": 0.01, "batch_size": 50,
                                "on_error": errors}
    settings.update(options)
    return server.make_client(delivery=BackgroundDelivery(**settings), post_timeout=5)


def _finish(client: KeenClient, server: LocalKeenServer, errors: Recorder,
            expected: range) -> dict[str, Any]:
    assert client.flush(20), client.stats()
    stats = client.stats()
    client.close(1)
    check_counters(stats)
    assert errors.calls == []
    assert stats["sent"] == len(expected) and stats["failed"] == stats["dropped"] == 0
    assert_exactly_once(server, COLLECTION, expected)
    return stats


def test_server_down_at_start(server: LocalKeenServer, errors: Recorder) -> None:
    server.stop()
    client = _client(server, errors)
    for n in range(300):
        client.add_event(COLLECTION, {"n": n})
    assert client.flush(0.2) is False  # nobody to deliver to yet
    assert client.stats()["pending"] == 300
    server.start()
    stats = _finish(client, server, errors, range(300))
    assert stats["retried"] > 0


def test_server_killed_mid_stream_and_restarted(server: LocalKeenServer,
                                                errors: Recorder) -> None:
    client = _client(server, errors)
    for n in range(500):
        client.add_event(COLLECTION, {"n": n})
    wait_until(lambda: client.stats()["sent"] >= 100)
    server.stop()
    for n in range(500, 1000):
        client.add_event(COLLECTION, {"n": n})
    server.start()
    _finish(client, server, errors, range(1000))


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, None), (429, 0.05)])
def test_bursts_of_errors(server: LocalKeenServer, errors: Recorder, status: int,
                          retry_after: float | None) -> None:
    client = _client(server, errors)
    for round_ in range(3):
        server.faults.fail_next(4, status, retry_after=retry_after)
        for n in range(round_ * 200, (round_ + 1) * 200):
            client.add_event(COLLECTION, {"n": n})
        assert client.flush(20)
    stats = _finish(client, server, errors, range(600))
    assert stats["retried"] > 0 and server.faults.injected == 12


def test_slow_answers_past_the_client_timeout(server: LocalKeenServer,
                                              errors: Recorder) -> None:
    # the client gives up waiting, the server stores the batch anyway: the retry must not
    # store it a second time (uniqueness tokens)
    client = server.make_client(
        delivery=BackgroundDelivery(retry=QUICK_RETRY, flush_interval=0.01, batch_size=50,
                                    on_error=errors),
        post_timeout=0.2,
    )
    server.faults.slow_next(3, seconds=0.6)
    for n in range(400):
        client.add_event(COLLECTION, {"n": n})
    stats = _finish(client, server, errors, range(400))
    assert stats["retried"] > 0


@pytest.mark.parametrize("after_processing", [False, True])
def test_dropped_connections(server: LocalKeenServer, errors: Recorder,
                             after_processing: bool) -> None:
    client = _client(server, errors)
    server.faults.drop_next(3, after_processing=after_processing)
    for n in range(400):
        client.add_event(COLLECTION, {"n": n})
    stats = _finish(client, server, errors, range(400))
    assert stats["retried"] > 0 and server.faults.injected == 3


def test_many_threads_with_faults(server: LocalKeenServer, errors: Recorder) -> None:
    client = _client(server, errors)
    server.faults.fail_next(2, 503)
    server.faults.drop_next(2, after_processing=True)
    server.faults.fail_next(2, 429, retry_after=0.01)

    def produce(start: int) -> None:
        for n in range(start, start + 250):
            client.add_event(COLLECTION, {"n": n})

    threads = [threading.Thread(target=produce, args=(t * 250,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    _finish(client, server, errors, range(1000))


def test_invalid_events_are_reported_and_the_rest_stored(server: LocalKeenServer,
                                                         errors: Recorder) -> None:
    client = _client(server, errors)
    for n in range(10):
        body: dict[str, Any] = {"n": n}
        if n == 4:
            body["$bad"] = 1  # property names must not start with "$" (keen-api.md 4.5)
        client.add_event(COLLECTION, body)
    assert client.flush(10)
    stats = client.stats()
    client.close(1)
    assert stats["sent"] == 9 and stats["failed"] == 1
    assert [event["n"] for _c, event in errors.events] == [4]
    assert_exactly_once(server, COLLECTION, [n for n in range(10) if n != 4])  # type: ignore[arg-type]


def test_debug_log_lines_carry_no_key(server: LocalKeenServer, errors: Recorder,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keen")
    client = _client(server, errors)
    server.faults.fail_next(1, 503)
    for n in range(20):
        client.add_event(COLLECTION, {"n": n})
    _finish(client, server, errors, range(20))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "posted" in text and "retry" in text
    for key in (server.write_key, server.read_key, server.master_key):
        assert key and key not in text


# ------------------------------------------------------------------ recovery (issue 9)


def _default_retry_client(server: LocalKeenServer, errors: Recorder) -> KeenClient:
    """A client with the default retry policy (real backoff, real Retry-After)."""
    return server.make_client(
        delivery=BackgroundDelivery(flush_interval=0.01, batch_size=100, on_error=errors),
        post_timeout=5,
    )


def test_delivery_resumes_as_retry_after_says_after_a_run_of_failures(
        server: LocalKeenServer, errors: Recorder) -> None:
    """An outage, then a run of 503s saying "Retry-After": each wait is what the server asked,
    not a backoff grown to its cap, so the queue is delivered soon after the server is back."""
    server.stop()
    client = _default_retry_client(server, errors)
    for n in range(500):
        client.add_event(COLLECTION, {"n": n})
    wait_until(lambda: client.stats()["retried"] >= 300)  # three refused connections
    server.faults.fail_next(11, 503, retry_after=0.05)
    server.start()
    assert client.flush(8), client.stats()  # (the old backoff: ~30 s per try by the 11th)
    assert server.faults.injected == 11
    _finish(client, server, errors, range(500))


def test_close_tries_at_once_instead_of_dropping_what_it_could_deliver(
        server: LocalKeenServer, errors: Recorder) -> None:
    """The sender waits out a long Retry-After; the server is back meanwhile. close(5) tries
    again at once and delivers everything, rather than wait and then drop the queue."""
    client = _default_retry_client(server, errors)
    server.faults.fail_next(1, 503, retry_after=60)
    for n in range(300):
        client.add_event(COLLECTION, {"n": n})
    wait_until(lambda: client.stats()["retried"] >= 100)  # the sender is waiting its 60 s
    client.close(5)
    stats = client.stats()
    check_counters(stats)
    assert stats["sent"] == 300 and stats["dropped"] == 0, stats
    assert errors.calls == []
    assert_exactly_once(server, COLLECTION, range(300))
