"""The retry rules as pure functions: what is retried, and how long we wait."""

from __future__ import annotations

import pytest

from keen import _retry
from keen._retry import RetryPolicy, delay, parse_retry_after, should_retry

POLICY = RetryPolicy(max_retries=3, deadline=30.0, backoff_base=0.5, backoff_cap=4.0)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_idempotent_requests_retry_on_transient_statuses(status: int) -> None:
    assert should_retry(POLICY, 1, 0.0, idempotent=True, status=status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
def test_client_errors_and_plain_500_are_not_retried(status: int) -> None:
    assert not should_retry(POLICY, 1, 0.0, idempotent=True, status=status)


def test_event_writes_retry_only_when_the_server_refused() -> None:
    assert should_retry(POLICY, 1, 0.0, idempotent=False, status=429)
    assert should_retry(POLICY, 1, 0.0, idempotent=False, status=503)
    # A gateway error may hide a request that was processed: retrying could duplicate events.
    assert not should_retry(POLICY, 1, 0.0, idempotent=False, status=502)
    assert not should_retry(POLICY, 1, 0.0, idempotent=False, status=504)


def test_event_writes_retry_transport_errors_only_when_never_sent() -> None:
    assert should_retry(POLICY, 1, 0.0, idempotent=False, transport_error=True, request_sent=False)
    assert not should_retry(
        POLICY, 1, 0.0, idempotent=False, transport_error=True, request_sent=True
    )
    assert should_retry(POLICY, 1, 0.0, idempotent=True, transport_error=True, request_sent=True)


def test_attempts_and_deadline_bound_the_retries() -> None:
    assert should_retry(POLICY, 3, 0.0, idempotent=True, status=503)
    assert not should_retry(POLICY, 4, 0.0, idempotent=True, status=503)
    assert not should_retry(POLICY, 1, 30.0, idempotent=True, status=503)
    assert not should_retry(_retry.NO_RETRY, 1, 0.0, idempotent=True, status=503)


def test_delay_is_full_jitter_over_a_capped_exponential() -> None:
    assert delay(POLICY, 1, rand=lambda: 1.0) == 0.5
    assert delay(POLICY, 2, rand=lambda: 1.0) == 1.0
    assert delay(POLICY, 3, rand=lambda: 1.0) == 2.0
    assert delay(POLICY, 4, rand=lambda: 1.0) == 4.0
    assert delay(POLICY, 10, rand=lambda: 1.0) == 4.0  # capped
    assert delay(POLICY, 3, rand=lambda: 0.0) == 0.0
    assert delay(POLICY, 3, rand=lambda: 0.25) == 0.5
    assert delay(POLICY, 1000, rand=lambda: 1.0) == 4.0  # no overflow for huge attempt numbers


def test_retry_after_is_the_wait_even_when_the_backoff_has_grown_longer() -> None:
    # after a run of failures the backoff bound is at its cap: a server that says "retry in
    # 1 s" is tried again in 1 s, not after up to the cap (issue 9)
    assert delay(POLICY, 10, retry_after=1.0, rand=lambda: 1.0) == 1.0
    assert delay(POLICY, 4, retry_after=0.0, rand=lambda: 1.0) == 0.0
    assert delay(POLICY, 1, retry_after=3.0, rand=lambda: 0.0) == 3.0  # longer: waited for


def test_retry_after_is_capped_by_retry_after_cap_and_the_deadline() -> None:
    assert delay(POLICY, 1, retry_after=3600.0, rand=lambda: 0.0) == 30.0  # the deadline
    capped = RetryPolicy(deadline=float("inf"), retry_after_cap=20.0)
    assert delay(capped, 1, retry_after=3600.0) == 20.0
    # a value that is no duration (negative, NaN) falls back to the backoff
    assert delay(POLICY, 2, retry_after=-1.0, rand=lambda: 1.0) == 1.0
    assert delay(POLICY, 2, retry_after=float("nan"), rand=lambda: 1.0) == 1.0


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"deadline": -1.0}, {"backoff_base": "1"}, {"max_retries": 1.5},
     {"retry_after_cap": -1}],
)
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
