"""The in-memory event queue: bounded, with an overflow policy, and counters for every event.

Producers (the threads calling ``add_event``) take one lock per call, append an already encoded
event and return; the one consumer (the sender thread) takes batches off the front. Counters,
all under the same lock::

    queued  = events handed to the queue (including those dropped on arrival)
    pending = events waiting or being sent
    queued == sent + failed + dropped + pending   (at every moment)

Conditions on the lock: ``_wake`` wakes the sender (a batch is full, the queue stopped being
empty, a flush or close began); ``_progress`` wakes producers waiting for room and threads waiting
in ``flush`` (the sender settled events).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from keen._delivery._config import BackgroundDelivery

__all__ = ["EventQueue", "Item"]

#: One queued event: (key, collection, encoded JSON text, time queued). ``key`` is the row id in
#: the durable queue, 0 in memory. The time is time.monotonic() in memory, time.time() on disk.
Item = tuple[int, str, str, float]


class EventQueue:
    """A bounded FIFO of encoded events, in memory."""

    clock = staticmethod(time.monotonic)

    def __init__(self, config: BackgroundDelivery) -> None:
        self.config = config
        self._max = config.max_queue_size
        self._batch_size = config.batch_size
        self._max_bytes = config.max_batch_bytes
        self._interval = config.flush_interval
        self._reset()

    def after_fork_in_child(self) -> None:
        """In a forked child: the parent's events are the parent's; start empty."""
        self._reset()

    def _reset(self) -> None:
        """Fresh state: at construction, and in a child process after fork."""
        # re-entrant: a signal handler calling flush() or stats() may interrupt this thread
        # while it holds the lock in add_event
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._items: deque[Item] = deque()
        self._inflight: list[Item] = []
        self.queued = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retried = 0
        self._pending = 0
        #: events that became pending, and events that stopped being pending (for flush)
        self._admitted = 0
        self._settled = 0
        self._flushing = 0
        self._closing = False

    # ----------------------------------------------------------------- producers

    def put(self, collection: str, text: str) -> list[Item]:
        """Queue one event; the events dropped to make that possible (usually none)."""
        with self._lock:
            if self._pending >= self._max:
                return self._overflow([(0, collection, text, self.clock())])
            self._items.append((0, collection, text, self.clock()))
            self.queued += 1
            self._pending += 1
            self._admitted += 1
            size = len(self._items)
            if size == 1 or size == self._batch_size:
                self._wake.notify()
        return []

    def put_many(self, events: Iterable[tuple[str, str]]) -> list[Item]:
        """Queue several events at once (one lock); the events dropped (usually none)."""
        now = self.clock()
        items = [(0, collection, text, now) for collection, text in events]
        with self._lock:
            room = max(self._max - self._pending, 0)
            accepted, rest = items[:room], items[room:]
            self._items.extend(accepted)
            self.queued += len(accepted)
            self._pending += len(accepted)
            self._admitted += len(accepted)
            self._wake.notify()
            return self._overflow(rest) if rest else []

    def _overflow(self, items: list[Item]) -> list[Item]:
        """Apply the overflow policy to ``items`` arriving at a full queue (lock held)."""
        policy = self.config.overflow
        deadline = time.monotonic() + self.config.block_timeout
        dropped: list[Item] = []
        for item in items:
            if policy == "block":  # (the lock is released while waiting)
                self._progress.wait_for(
                    lambda: self._pending < self._max, max(deadline - time.monotonic(), 0.0)
                )
            elif policy == "drop_oldest" and self._items:
                dropped.append(self._items.popleft())
                self._pending -= 1
                self._settled += 1
                self.dropped += 1
            self.queued += 1  # (only now: the counters balance while a producer waits)
            if self._pending < self._max:
                self._items.append(item)
                self._pending += 1
                self._admitted += 1
                self._wake.notify()
            else:
                dropped.append(item)
                self.dropped += 1
        return dropped

    # ----------------------------------------------------------------- the sender

    def next_batch(self) -> list[Item] | None:
        """Wait for the next batch to send; None when the queue is closing and empty.

        A batch is ready when ``batch_size`` events wait, when the oldest has waited
        ``flush_interval`` seconds, or at once during a flush or close.
        """
        with self._lock:
            while True:
                count = len(self._items)
                if count >= self._batch_size or (count and (self._flushing or self._closing)):
                    break
                if self._closing:
                    return None
                if count:
                    timeout = self._items[0][3] + self._interval - self.clock()
                    if timeout <= 0:
                        break
                    self._wake.wait(timeout)
                else:
                    self._wake.wait()
            self._inflight = self._take()
            return self._inflight

    def _take(self) -> list[Item]:
        """Up to ``batch_size`` events and ``max_batch_bytes`` from the front (lock held)."""
        batch = [self._items.popleft()]
        size = len(batch[0][2])
        while self._items and len(batch) < self._batch_size:
            size += len(self._items[0][2]) + 2
            if size > self._max_bytes:
                break
            batch.append(self._items.popleft())
        return batch

    def settle(self, sent: list[Item], failed: list[Item]) -> None:
        """Some of the batch in flight was delivered (``sent``) or failed for good."""
        with self._lock:
            self._account(len(sent), len(failed), 0)

    def _account(self, sent: int, failed: int, dropped: int) -> None:
        """Counters for events that stopped being pending (lock held)."""
        self.sent += sent
        self.failed += failed
        self.dropped += dropped
        done = sent + failed + dropped
        self._pending -= done
        self._settled += done
        self._progress.notify_all()

    def abandon(self, items: list[Item]) -> list[Item]:
        """The sender gives up on ``items`` (closing): they count as dropped; returns them."""
        with self._lock:
            self._account(0, 0, len(items))
        return items

    def add_retried(self, count: int) -> None:
        with self._lock:
            self.retried += count

    def batch_done(self) -> None:
        with self._lock:
            self._inflight = []

    # ----------------------------------------------------------------- flush / close / stats

    def flush(self, timeout: float | None) -> bool:
        """Wait until every event queued before the call was delivered or failed for good."""
        with self._lock:
            target = self._admitted
            self._flushing += 1
            self._notify_all_workers()
            try:
                return self._progress.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._flushing -= 1

    def _notify_all_workers(self) -> None:
        """Wake the threads consuming the queue (lock held)."""
        self._wake.notify_all()

    def start_closing(self) -> None:
        with self._lock:
            self._closing = True
            self._notify_all_workers()

    def start(self) -> None:
        """Start helper threads of the queue itself (none in memory)."""

    def close(self) -> None:
        """Release what the queue holds (nothing in memory)."""

    def drain(self) -> list[Item]:
        """Remove what still waits (not what is in flight) and count it as dropped (close)."""
        with self._lock:
            left = list(self._items)
            self._items.clear()
            self._account(0, 0, len(left))
        return left

    def oldest_age(self) -> float | None:
        """Seconds the oldest pending event has waited (lock held), None when none waits."""
        oldest = self._inflight[0] if self._inflight else self._items[0] if self._items else None
        return None if oldest is None else max(self.clock() - oldest[3], 0.0)

    def stats(self) -> dict[str, int | float | None]:
        with self._lock:
            return {
                "queued": self.queued,
                "sent": self.sent,
                "retried": self.retried,
                "failed": self.failed,
                "dropped": self.dropped,
                "pending": self._pending,
                "queue_depth": len(self._items),
                "oldest_event_age": self.oldest_age(),
            }
