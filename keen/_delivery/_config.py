"""What a queued delivery is configured by: ``BackgroundDelivery``, ``DurableDelivery``, the
overflow and durability choices, the sender's retry policy, and ``resolve`` (a ``delivery=``
setting to its configuration). Imports nothing of the machinery that runs it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Union

from keen._retry import RetryPolicy
from keen.exceptions import InvalidDeliveryError

#: What happens to an event added while the queue is full.
OVERFLOW_POLICIES = ("block", "drop_newest", "drop_oldest")
#: What is on disk when add_event returns, in durable mode (see DurableDelivery).
DURABILITY_LEVELS = ("group", "process", "full")

#: The sender's retry policy: transient failures (connection errors, timeouts, 429, 5xx) are
#: retried until the events are delivered, after the server's Retry-After (up to 60 s) or else
#: a capped exponential backoff with full jitter; the uniqueness tokens make every retry safe.
#: The cap (5 s) is short on purpose: it bounds how long after a server recovers the sender
#: notices (one small request per client every 2.5 s on average during an outage). A policy
#: with a finite ``max_retries`` or ``deadline`` makes the sender give up and report the
#: events to ``on_error`` instead.
DELIVERY_RETRY = RetryPolicy(
    max_retries=2**62, deadline=math.inf, backoff_base=0.2, backoff_cap=5.0,
    retry_after_cap=60.0,
)

#: Keen's limits (keen-api.md section 17): a single event and a whole request body, in bytes.
MAX_EVENT_BYTES = 900_000
MAX_REQUEST_BYTES = 10_000_000

#: What on_error receives: the undelivered events as (collection, event body) pairs, and why.
ErrorCallback = Callable[[list[tuple[str, dict[str, Any]]], BaseException], None]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidDeliveryError(f"{name} must be an int, {minimum} or more; got {value!r}")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidDeliveryError(
            f"{name} must be a number of seconds, 0 or more; got {value!r}")


@dataclass(frozen=True)
class BackgroundDelivery:
    """Send events from a background thread, in batches, from a bounded in-memory queue.

    :param max_queue_size: events waiting (queued or being sent) at most. The bound is a
        count, not bytes: memory use is up to this many encoded events (each at most 900 KB;
        lower it if your events are large).
    :param overflow: what ``add_event`` does when the queue is full: ``"block"`` waits up to
        ``block_timeout`` seconds for room, then drops the event; ``"drop_newest"`` drops the new
        event; ``"drop_oldest"`` drops the oldest waiting one. Dropped events are counted
        (``stats()["dropped"]``), logged and passed to ``on_error``.
    :param block_timeout: see ``overflow``; with ``DurableDelivery(durability="group")`` also
        the longest ``add_event`` waits for a writer thread that fell behind.
    :param batch_size: events per request at most.
    :param max_batch_bytes: request body size at most (Keen refuses more than 10 MB).
    :param flush_interval: seconds an event waits at most for a batch to fill up.
    :param retry: the sender's :class:`keen._retry.RetryPolicy` (default :data:`DELIVERY_RETRY`:
        retry transient failures until delivered, after the server's ``Retry-After`` or a
        backoff of at most 5 s).
    :param on_error: ``on_error(events, error)`` is called with the events that cannot be
        delivered (rejected by the server, dropped when the queue was full, or left unsent at
        close) as ``(collection, body)`` pairs, and the exception saying why. It runs on the
        sender thread, on the thread calling ``add_event`` for events dropped by a full queue,
        or on the thread calling ``close``; keep it quick (the sender waits for it). Called
        from it, ``flush`` returns at once and ``close`` finishes on another thread.
        Exceptions it raises are logged and ignored. Failures are logged either way.
    :param exit_timeout: at interpreter exit, seconds to wait at most for the queue to drain
        (None: do not wait).
    """

    max_queue_size: int = 100_000
    overflow: str = "block"
    block_timeout: float = 1.0
    batch_size: int = 500
    max_batch_bytes: int = 5_000_000
    flush_interval: float = 1.0
    retry: RetryPolicy = DELIVERY_RETRY
    on_error: ErrorCallback | None = None
    exit_timeout: float | None = 5.0

    def __post_init__(self) -> None:
        _check_int("max_queue_size", self.max_queue_size, 1)
        if self.overflow not in OVERFLOW_POLICIES:
            raise InvalidDeliveryError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {self.overflow!r}"
            )
        _check_seconds("block_timeout", self.block_timeout)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("max_batch_bytes", self.max_batch_bytes, 1024)
        if self.max_batch_bytes > MAX_REQUEST_BYTES:
            raise InvalidDeliveryError(
                f"max_batch_bytes must be at most {MAX_REQUEST_BYTES} (Keen's limit)")
        _check_seconds("flush_interval", self.flush_interval)
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidDeliveryError("retry must be a keen._retry.RetryPolicy")
        if self.on_error is not None and not callable(self.on_error):
            raise InvalidDeliveryError("on_error must be callable: on_error(events, error)")
        if self.exit_timeout is not None:
            _check_seconds("exit_timeout", self.exit_timeout)


@dataclass(frozen=True)
class DurableDelivery(BackgroundDelivery):
    """Like :class:`BackgroundDelivery`, with the queue in a SQLite file (WAL mode).

    Give the file by keyword: ``DurableDelivery(path="events.sqlite3")``. Events leave the file
    only when the server has confirmed them (or rejected them for good). Each open client holds
    a lease (an OS file lock in ``<path>.owners/``) released at close and when its process
    ends; the next client that opens the file sends the events nobody holds (left by a crash,
    a kill, or a close before they were sent). Several processes may share one file: each
    event is sent by one of them.

    :param path: the SQLite file (created if missing).
    :param durability: what is on disk when ``add_event`` returns:

        * ``"group"`` (default, fastest): nothing yet. The event is in memory; a writer thread
          commits it to the file within ``commit_interval`` seconds (and always before sending
          it), and ``add_event`` waits for the writer when it falls behind (``block_timeout``
          at most). A process crash loses at most the events added in the last
          ``commit_interval`` before the last ``add_event`` returned; committed events survive
          a crash or kill of the process (an OS crash or power loss may also lose the last
          committed transactions: WAL with ``synchronous=NORMAL``).
        * ``"process"``: the event is committed before ``add_event`` returns
          (``synchronous=NORMAL``): everything survives a crash or kill of the process; an OS
          crash or power loss may lose the last events.
        * ``"full"``: the event is committed and synced to the disk before ``add_event`` returns
          (``synchronous=FULL``): everything survives a crash, a kill, an OS crash or a power
          loss. The slowest: one disk sync per event.
    :param commit_interval: seconds between group commits (``"group"`` only).

    Events written to the file are never dropped: ``overflow="drop_oldest"`` drops the oldest
    event not yet written (``"group"``), or else the new one (as ``"drop_newest"`` does).
    """

    max_queue_size: int = 1_000_000
    path: str | os.PathLike[str] = ""
    durability: str = "group"
    commit_interval: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.max_queue_size, (str, os.PathLike)):
            raise InvalidDeliveryError(
                "give the queue file by keyword: DurableDelivery(path=...)")
        super().__post_init__()
        if not isinstance(self.path, (str, os.PathLike)) or not os.fspath(self.path):
            raise InvalidDeliveryError(
                "DurableDelivery needs the queue file: DurableDelivery(path=...)")
        if self.durability not in DURABILITY_LEVELS:
            raise InvalidDeliveryError(
                f"durability must be one of {', '.join(DURABILITY_LEVELS)}; "
                f"got {self.durability!r}"
            )
        _check_seconds("commit_interval", self.commit_interval)


DeliverySetting = Union[None, str, BackgroundDelivery]


def resolve(delivery: DeliverySetting) -> BackgroundDelivery | None:
    """The delivery configuration for a ``delivery=`` setting (None for direct delivery).

    ``"durable"`` as a plain string takes the file from the ``KEEN_DELIVERY_PATH`` environment
    variable (there is no sensible default place for it).
    """
    if delivery is None or isinstance(delivery, BackgroundDelivery):
        return delivery
    if not isinstance(delivery, str):
        raise InvalidDeliveryError(
            "delivery must be 'direct', 'background', 'durable', a BackgroundDelivery or a "
            f"DurableDelivery; got {type(delivery).__name__}"
        )
    name = delivery.strip().lower()
    if name in ("", "direct"):
        return None
    if name == "background":
        return BackgroundDelivery()
    if name == "durable":
        path = os.environ.get("KEEN_DELIVERY_PATH", "")
        if not path:
            raise InvalidDeliveryError(
                "durable delivery needs a queue file: set KEEN_DELIVERY_PATH, or pass "
                "delivery=DurableDelivery(path=...)"
            )
        return DurableDelivery(path=path)
    if delivery == os.environ.get("KEEN_DELIVERY"):
        raise InvalidDeliveryError(
            f"KEEN_DELIVERY={delivery!r} is not a delivery mode: set it to 'direct', "
            "'background' or 'durable' (or unset it for direct delivery)"
        )
    raise InvalidDeliveryError(
        f"delivery must be 'direct', 'background' or 'durable' (or a BackgroundDelivery or "
        f"DurableDelivery); got {delivery!r}"
    )
