"""Fault injection: make the next requests fail, answer slowly, or lose their connection.

Faults form one queue; each queued fault applies to exactly one incoming API request, in order, so
``fail_next(2)`` then ``drop_next(1)`` fails two requests and drops the third. Requests to the
control endpoints under ``/_keen/`` are never affected.

The same queue is reachable over HTTP (for tests running in another process), see
``Faults.apply_command`` and the ``/_keen/faults`` endpoint of the server.

Bounds (a ``ValueError`` naming the problem, a 400 ``InvalidFaultError`` over HTTP): at most
``MAX_PENDING`` faults wait in the queue (a command that would pass it queues nothing); ``seconds``
and ``retry_after`` are finite numbers of at most ``MAX_SECONDS`` (no ``Infinity``, ``NaN`` or
``1e300``).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PENDING = 10_000
MAX_SECONDS = 3_600.0

FAIL = "fail"
SLOW = "slow"
DROP = "drop"

_DEFAULT_ERROR_CODES = {
    429: "TooManyRequestsError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


@dataclass(frozen=True)
class Fault:
    """One injected fault, consumed by one request."""

    kind: str
    status: int = 503
    retry_after: float | None = None
    error_code: str | None = None
    message: str | None = None
    seconds: float = 0.0
    after_processing: bool = False

    def error_body(self) -> dict[str, str]:
        """The JSON error body of a ``fail`` fault."""
        code = self.error_code or _DEFAULT_ERROR_CODES.get(self.status, "InjectedFaultError")
        return {"message": self.message or f"Injected fault (status {self.status})",
                "error_code": code}


def _count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PENDING:
        raise ValueError(f"n must be an integer from 1 to {MAX_PENDING}, got {_short(n)}")
    return n


def _number(value: object, name: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 <= value <= MAX_SECONDS):
        raise ValueError(f"{name} must be a number of seconds from 0 to {MAX_SECONDS:g}, "
                         f"got {_short(value)}")
    return float(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Faults:
    """The fault queue of one server (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._injected = 0

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        retry_after: float | None = None,
        error_code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` and a Keen error body, unprocessed.

        ``retry_after`` (seconds) adds a ``Retry-After`` header, as a 429 or 503 may carry.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        if retry_after is not None:
            retry_after = _number(retry_after, "retry_after")
        for name, text in (("error_code", error_code), ("message", message)):
            if text is not None and (not isinstance(text, str) or not text):
                raise ValueError(f"{name} must be a non-empty string, got {text!r}")
        fault = Fault(FAIL, status=status, retry_after=retry_after, error_code=error_code,
                      message=message)
        self._push(fault, n)

    def slow_next(self, n: int = 1, seconds: float = 1.0) -> None:
        """Wait ``seconds`` before handling each of the next ``n`` requests, then answer."""
        self._push(Fault(SLOW, seconds=_number(seconds, "seconds")), n)

    def drop_next(self, n: int = 1, *, after_processing: bool = False) -> None:
        """Close the connection of the next ``n`` requests without answering.

        By default the request is dropped unprocessed. With ``after_processing=True`` it is
        handled first (events are stored) and only the answer is lost: what a client sees when a
        server dies between committing and replying.
        """
        if not isinstance(after_processing, bool):  # "false" from a JSON command is not False
            raise ValueError(f"after_processing must be true or false, got {after_processing!r}")
        self._push(Fault(DROP, after_processing=after_processing), n)

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """How many requests are still going to be affected."""
        with self._lock:
            return len(self._queue)

    @property
    def injected(self) -> int:
        """How many requests were affected so far."""
        with self._lock:
            return self._injected

    def take(self) -> Fault | None:
        """The fault for the request being handled now, if any (used by the HTTP layer)."""
        with self._lock:
            if not self._queue:
                return None
            self._injected += 1
            return self._queue.popleft()

    def snapshot(self) -> dict[str, int]:
        """``{"pending": ..., "injected": ...}``, as the control endpoint reports it."""
        with self._lock:
            return {"pending": len(self._queue), "injected": self._injected}

    def apply_command(self, command: Mapping[str, Any]) -> None:
        """Queue faults from a JSON command (the body of ``POST /_keen/faults``).

        ``{"action": "fail", "count": 2, "status": 429, "retry_after": 1}``,
        ``{"action": "slow", "count": 1, "seconds": 0.5}``,
        ``{"action": "drop", "count": 1, "after_processing": true}``, ``{"action": "clear"}``.
        Raises ``ValueError`` naming the problem.
        """
        action = command.get("action")
        options = {key: value for key, value in command.items() if key not in ("action", "count")}
        n = command.get("count", 1)
        allowed = {
            FAIL: {"status", "retry_after", "error_code", "message"},
            SLOW: {"seconds"},
            DROP: {"after_processing"},
            "clear": set(),
        }
        if action not in allowed:
            raise ValueError(f"action must be one of {sorted(allowed)}, got {action!r}")
        unknown = sorted(set(options) - allowed[action])
        if unknown:
            raise ValueError(f"unknown option(s) for {action!r}: {', '.join(unknown)}")
        if action == FAIL:
            self.fail_next(n, **options)
        elif action == SLOW:
            self.slow_next(n, **options)
        elif action == DROP:
            self.drop_next(n, **options)
        else:
            self.clear()

    def _push(self, fault: Fault, n: int) -> None:
        count = _count(n)
        with self._lock:
            if len(self._queue) + count > MAX_PENDING:
                raise ValueError(f"the fault queue holds at most {MAX_PENDING} faults "
                                 f"({len(self._queue)} pending); clear it first")
            self._queue.extend([fault] * count)
