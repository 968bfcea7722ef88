"""When to try a request again, and how long to wait first.

Pure functions over a frozen :class:`RetryPolicy`, so the rules can be tested without a network.

The rules:

* Reads and other idempotent requests are retried on transport failures (connection refused, reset,
  timeouts) and on the statuses in ``RETRY_STATUSES`` (429, 502, 503, 504).
* A non-idempotent request (an event write without uniqueness tokens) is retried only when a retry
  cannot duplicate anything: the request certainly never reached the server, or the server said it
  refused the request (429 Too Many Requests, 503 Service Unavailable).
* Waits grow exponentially from ``backoff_base`` and are capped at ``backoff_cap``, with full
  jitter (a uniformly random wait between 0 and that bound), so that many clients recovering from
  one outage do not return in lockstep.
* A ``Retry-After`` the server sent is the wait, whether shorter or longer than the backoff would
  be (the server knows when it can take the request again; a long backoff must not outlast its
  recovery), capped at ``retry_after_cap`` and at the deadline.
* No retry starts once ``deadline`` seconds have passed since the first attempt, so a synchronous
  call never hangs for minutes because of retries (each attempt still has its own timeout).
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Callable

from keen.exceptions import InvalidConfigurationError

__all__ = [
    "DEFAULT_POLICY",
    "NO_RETRY",
    "REFUSED_STATUSES",
    "RETRY_STATUSES",
    "RetryPolicy",
    "delay",
    "parse_retry_after",
    "should_retry",
]

#: Statuses after which an idempotent request is worth repeating.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses with which the server says it did not process the request at all.
REFUSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and for how long, a failed request is tried again.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param deadline: seconds after the first attempt past which no retry is started.
    :param backoff_base: the wait bound before the first retry, in seconds; doubled for each
        retry after it.
    :param backoff_cap: the largest wait bound, in seconds.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds (a longer one is
        waited for this long).
    """

    max_retries: int = 3
    deadline: float = 30.0
    backoff_base: float = 0.2
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise InvalidConfigurationError("max_retries must be an int")
        if self.max_retries < 0:
            raise InvalidConfigurationError("max_retries must be 0 or more")
        for name in ("deadline", "backoff_base", "backoff_cap", "retry_after_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidConfigurationError(f"{name} must be a number of seconds, 0 or more")


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(max_retries=0)


def should_retry(
    policy: RetryPolicy,
    attempt: int,
    elapsed: float,
    *,
    idempotent: bool,
    status: int | None = None,
    transport_error: bool = False,
    request_sent: bool = True,
) -> bool:
    """Whether attempt number ``attempt`` (1 = the first) may be followed by another.

    Give either ``status`` (the HTTP status of the answer) or ``transport_error=True`` with
    ``request_sent`` (False when the request certainly never reached the server).
    """
    if attempt > policy.max_retries or elapsed >= policy.deadline:
        return False
    if transport_error:
        return idempotent or not request_sent
    if status is None:
        return False
    if idempotent:
        return status in RETRY_STATUSES
    return status in REFUSED_STATUSES


def delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    The server's ``Retry-After`` when it sent one (at most ``retry_after_cap`` and the deadline);
    otherwise full jitter over a capped exponential bound.
    """
    if retry_after is not None and retry_after >= 0:
        return float(min(retry_after, policy.retry_after_cap, policy.deadline))
    exponent = min(max(attempt - 1, 0), 62)
    bound = min(policy.backoff_cap, policy.backoff_base * (2**exponent))
    return float(max(bound * rand(), 0.0))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(when.timestamp() - current, 0.0)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds
