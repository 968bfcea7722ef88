"""The sender thread: takes batches off the queue and posts them to the bulk endpoint.

For each batch:

* The body is built by joining the events' JSON texts, encoded once on the caller's thread.
* 2xx: each event's item result (keen-api.md 4.2) says whether it was stored. An event the
  server rejected (invalid name or value) cannot succeed later: it is reported to ``on_error``
  and the log, and not retried.
* 413 (too large): the batch is split in two halves, each sent on its own; a single event the
  server finds too large is reported and dropped.
* Transient failures (connection refused or reset, timeouts, 408, 429, 5xx) are retried: after
  the server's ``Retry-After`` when it sent one, else after a capped exponential backoff with full
  jitter (:mod:`keen._retry`; the cap, 5 s by default, is also how late at most the first try
  after the server recovered comes, since the sender cannot know sooner). ``close()`` cuts the
  wait short: it tries once more at once, so what a recovered server can take within the
  close's timeout is delivered, not dropped. Every event carries a ``keen.uniqueness_token``,
  so a retry after a lost answer cannot store an event twice: this is why 500 is retried here
  although an ordinary write without tokens is not (keen._retry.RETRY_STATUSES).
* Other answers (401, 403, 404, other 4xx) fail the whole batch: they are reported, not retried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

from keen._delivery._config import BackgroundDelivery
from keen._delivery._queue import EventQueue, Item
from keen._retry import NO_RETRY, RETRY_STATUSES, delay
from keen.exceptions import (
    EventRejectedError,
    KeenApiError,
    KeenTransportError,
    NotDeliveredError,
    PayloadTooLargeError,
)

__all__ = ["Sender", "build_body", "report_failure"]

log = logging.getLogger("keen.delivery")


def build_body(items: list[Item]) -> bytes:
    """The bulk request body for ``items``: events grouped by collection, in queue order."""
    groups: dict[str, list[str]] = {}
    for _key, collection, text, _queued_at in items:
        group = groups.get(collection)
        if group is None:
            groups[collection] = group = []
        group.append(text)
    parts = [f"{json.dumps(name)}: [{', '.join(texts)}]" for name, texts in groups.items()]
    return ("{" + ", ".join(parts) + "}").encode("utf-8")


def report_failure(config: BackgroundDelivery, items: list[Item], error: BaseException) -> None:
    """Log events that will not be delivered and pass them to ``on_error``."""
    if not items:
        return
    collections = sorted({item[1] for item in items})
    log.warning(
        "%d event(s) for collection(s) %s not delivered: %s: %s",
        len(items), ", ".join(collections), type(error).__name__, error,
    )
    if config.on_error is None:
        return
    events = [(collection, json.loads(text)) for _key, collection, text, _t in items]
    try:
        config.on_error(events, error)
    except Exception:
        log.exception("the on_error callback raised an exception (ignored)")


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, KeenTransportError):
        return True
    if isinstance(error, KeenApiError) and error.status_code is not None:
        status = error.status_code
        return status in RETRY_STATUSES or status == 408 or 500 <= status <= 599
    return False


class _Abandoned(Exception):
    """The strategy is closing and asked the sender to stop waiting."""


class Sender:
    """Posts what the queue hands out, until the queue closes (runs on its own thread)."""

    def __init__(self, api: Any, queue: EventQueue, config: BackgroundDelivery) -> None:
        self.api = api
        self.queue = queue
        self.config = config
        #: set by close() when its time is up: stop waiting between retries
        self.abort = threading.Event()
        #: set by stop() and hurry(): end the wait before the next retry
        self._interrupt = threading.Event()
        #: the transient failure the batch in hand met last (None once a request succeeded):
        #: why events are still undelivered, said when they are given up at exit
        self.last_error: BaseException | None = None

    def hurry(self) -> None:
        """Retry now rather than after the pending wait (once: close() gives a last chance)."""
        self._interrupt.set()

    def stop(self) -> None:
        """Stop waiting and sending: what is not settled is abandoned."""
        self.abort.set()
        self._interrupt.set()

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before a retry; cut short by hurry(), ended by stop()."""
        self._interrupt.wait(seconds)
        if self.abort.is_set():
            raise _Abandoned
        self._interrupt.clear()

    def run(self) -> None:
        log.debug("sender thread started")
        failures = 0
        while not self.abort.is_set():
            try:
                batch = self.queue.next_batch()
                if batch is None:
                    break
                if batch:
                    try:
                        self.deliver(batch)
                    finally:
                        self.queue.batch_done()
                failures = 0
            except BaseException:  # a bug, the queue file failing, SystemExit from on_error:
                # say so, and go on (a dead sender would stall the queue silently)
                failures += 1
                log.exception("unexpected error in the keen delivery thread; going on")
                self.abort.wait(delay(self.config.retry, failures))
        log.debug("sender thread stopped")

    def deliver(self, batch: list[Item]) -> None:
        """Send ``batch`` (splitting it when too large) until each event is settled."""
        parts: deque[list[Item]] = deque([batch])
        while parts:
            part = parts.popleft()
            try:
                halves = self._send(part)
            except _Abandoned:
                left = [item for rest in (part, *parts) for item in rest]
                report_failure(
                    self.config,
                    self.queue.abandon(left),
                    NotDeliveredError("the client was closed before these events were sent"),
                )
                return
            parts.extendleft(reversed(halves))

    def _send(self, part: list[Item]) -> list[list[Item]]:
        """Post ``part`` until settled; the halves to send instead when it was too large."""
        policy = self.config.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            body = build_body(part)
            try:
                answer = self.api.post_events_raw(body, idempotent=True, retry=NO_RETRY)
            except PayloadTooLargeError as error:
                if len(part) > 1:
                    middle = len(part) // 2
                    log.debug("batch of %d events too large, splitting it", len(part))
                    return [part[:middle], part[middle:]]
                self._fail(part, error)
                return []
            except (KeenApiError, KeenTransportError) as error:
                elapsed = time.monotonic() - started
                # the budget check of keen._retry.should_retry; the statuses are wider (above)
                if not _is_transient(error) or attempt > policy.max_retries or (
                    elapsed >= policy.deadline
                ):
                    self._fail(part, error)
                    return []
                wait = delay(policy, attempt, getattr(error, "retry_after", None))
                (log.warning if attempt == 1 else log.debug)(
                    "sending %d event(s) failed (%s), retry %d in %.2f s",
                    len(part), type(error).__name__, attempt, wait,
                )
                self.last_error = error
                self.queue.add_retried(len(part))
                self._pause(wait)
                continue
            except Exception as error:  # not an answer we know: do not loop on it
                log.exception("sending %d event(s) failed unexpectedly", len(part))
                self._fail(part, error)
                return []
            self.last_error = None
            self._settle(part, answer, len(body), time.monotonic() - started)
            return []

    def _fail(self, items: list[Item], error: BaseException) -> None:
        self.queue.settle([], items)
        report_failure(self.config, items, error)

    def _settle(self, part: list[Item], answer: Any, size: int, seconds: float) -> None:
        """Count each event of a posted batch as sent or rejected, from the item results."""
        by_collection: dict[str, list[Item]] = {}
        for item in part:
            by_collection.setdefault(item[1], []).append(item)
        sent: list[Item] = []
        rejected: list[tuple[Item, Any]] = []
        for collection, items in by_collection.items():
            results = answer.get(collection) if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(items):
                # a 2xx without item results: the server took the batch
                log.debug("no item results for collection %s; counting it as sent", collection)
                sent.extend(items)
                continue
            for item, result in zip(items, results):
                if isinstance(result, dict) and result.get("success") is False:
                    rejected.append((item, result.get("error")))
                else:
                    sent.append(item)
        self.queue.settle(sent, [item for item, _error in rejected])
        log.debug(
            "posted %d event(s), %d bytes, in %.3f s: %d stored, %d rejected",
            len(part), size, seconds, len(sent), len(rejected),
        )
        for item, error in rejected:
            report_failure(self.config, [item], EventRejectedError(error))
