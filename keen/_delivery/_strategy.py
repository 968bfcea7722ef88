"""The persistence strategy of background and durable delivery.

``persist`` / ``batch_persist`` run on the caller's thread and do only this: validate and
encode the event (with a ``keen.uniqueness_token`` added to a copy of the body), check Keen's
size limit, and put the JSON text on the queue. Everything else happens on the sender thread.

Process life: a flush bounded by ``exit_timeout`` runs at interpreter exit (atexit), and after a
``fork()`` the child starts with an empty queue and its own sender (the parent's queued events
stay the parent's, so nothing is sent twice).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from keen._delivery._config import MAX_EVENT_BYTES, BackgroundDelivery, DurableDelivery
from keen._delivery._queue import EventQueue, Item
from keen._delivery._sender import Sender, report_failure
from keen._encoding import encode_event, validate_collection_name
from keen.exceptions import (
    DeliveryClosedError,
    InvalidEventError,
    NotDeliveredError,
    QueueFullError,
)
from keen.persistence_strategies import BasePersistenceStrategy
from keen.utilities import require_key

if TYPE_CHECKING:
    from keen._event import Event

__all__ = ["QueuedPersistenceStrategy", "new_token"]

log = logging.getLogger("keen.delivery")

# Uniqueness tokens: a random prefix per process and a counter (unique, and far cheaper than
# uuid4). The child of a fork draws a new prefix.
_token_prefix = os.urandom(12).hex()
_token_counter = itertools.count(1)
#: Keen's limit on a keen.uniqueness_token (keen-api.md 4.4).
MAX_TOKEN_LENGTH = 64


def new_token() -> str:
    """A fresh ``keen.uniqueness_token`` (24 hex digits and a decimal counter; Keen allows 64)."""
    return _token_prefix + str(next(_token_counter))


def _check_token(token: Any) -> None:
    """A token set by the user: what the API takes, and able to tell events apart."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise InvalidEventError(
            f"keen.uniqueness_token must be a non-empty string of at most {MAX_TOKEN_LENGTH} "
            f"characters (or left out: one is added); got {type(token).__name__} "
            f"of length {len(token) if isinstance(token, str) else '-'}."
        )


def encode_for_queue(body: Mapping[str, Any]) -> str:
    """The JSON text of ``body`` with a uniqueness token (unless it has one); body untouched."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return encode_event(body)  # raises InvalidEventError naming the problem
    if "keen" not in body:
        # the common case, on the hot path: splice the token into the encoded text (a token is
        # digits and letters only) rather than encode a copy of the body
        text = encode_event(body)
        token = f'"keen": {{"uniqueness_token": "{new_token()}"}}}}'
        text = text[:-1] + ", " + token if len(text) > 2 else "{" + token
    else:
        meta = body["keen"]
        if not isinstance(meta, Mapping):
            raise InvalidEventError(
                f"The event's 'keen' property must be a dict, not {type(meta).__name__}."
            )
        if "uniqueness_token" not in meta:
            body = {**body, "keen": {**meta, "uniqueness_token": new_token()}}
        else:
            _check_token(meta["uniqueness_token"])
        text = encode_event(body)
    if len(text) > MAX_EVENT_BYTES:  # the text is ASCII: characters are bytes
        raise InvalidEventError(
            f"The event is {len(text)} bytes as JSON; Keen accepts at most {MAX_EVENT_BYTES}."
        )
    return text


class QueuedPersistenceStrategy(BasePersistenceStrategy):
    """Queue events on the caller's thread; deliver them from a sender thread."""

    def __init__(self, api: Any, config: BackgroundDelivery) -> None:
        self.api = api
        self.config = config
        self._queue: EventQueue
        if isinstance(config, DurableDelivery):
            from keen._delivery._durable import DurableQueue

            self._queue = DurableQueue(config)
        else:
            self._queue = EventQueue(config)
        self._sender = Sender(api, self._queue, config)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        #: set when close() begins: from then on add_event is refused, so nothing is queued
        #: that the closing flush was not waiting for
        self._closing = False
        _LIVE.add(self)
        if isinstance(config, DurableDelivery):
            # at once, even with nothing of ours to send: rows left in the file by an earlier
            # run, or released later by another client of the file, are ours to send
            self._start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {type(self.config).__name__} pending={self._pending()}>"

    # ------------------------------------------------------------------ the caller's thread

    def persist(self, event: Event) -> None:
        """Queue one event (validated and encoded here; raises InvalidEventError at once)."""
        self._check_can_send()
        text = encode_for_queue(event.body_with_timestamp())
        dropped = self._queue.put(event.event_collection, text)
        if self._thread is None:
            self._start()
        if dropped:
            self._report_dropped(dropped)

    def batch_persist(self, events: dict[str, list[dict[str, Any]]]) -> Any:
        """Queue a batch; ``{collection: [{"queued": True}, ...]}`` (False for dropped events).

        Every event is validated and encoded before any is queued: a bad one raises and
        nothing is queued.
        """
        self._check_can_send()
        if not isinstance(events, Mapping):
            raise InvalidEventError(
                f"add_events takes a dict of collection name to list of events, "
                f"not {type(events).__name__}."
            )
        encoded: list[tuple[str, str]] = []
        for collection, bodies in events.items():
            validate_collection_name(collection)
            if not isinstance(bodies, (list, tuple)):
                raise InvalidEventError(
                    f"The events for collection {collection!r} must be a list, "
                    f"not {type(bodies).__name__}."
                )
            encoded.extend((collection, encode_for_queue(body)) for body in bodies)
        dropped = self._queue.put_many(encoded)
        if self._thread is None:
            self._start()
        lost = {id(item[2]) for item in dropped}
        results: dict[str, list[dict[str, Any]]] = {}
        for collection, text in encoded:
            results.setdefault(collection, []).append({"queued": id(text) not in lost})
        if dropped:
            self._report_dropped(dropped)
        return results

    def _check_can_send(self) -> None:
        """What would make every send fail, known on the caller's thread: raise it there."""
        if self._closing:
            raise DeliveryClosedError("this client was closed: create a new one to send events")
        if not self.api._get_write_key():  # (cheap test first: this is add_event's path)
            require_key(self.api, "write")  # raises InvalidEnvironmentError saying what to set

    def _report_dropped(self, dropped: list[Item]) -> None:
        policy = self.config.overflow
        report_failure(
            self.config,
            dropped,
            QueueFullError(
                f"the delivery queue was full ({self.config.max_queue_size} events, "
                f"overflow={policy!r})"
            ),
        )

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            self._queue.start()
            thread = threading.Thread(target=self._sender.run, name="keen-delivery", daemon=True)
            thread.start()
            self._thread = thread

    # ------------------------------------------------------------------ control

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before the call was delivered, or failed for good
        (reported to on_error); True when that happened within ``timeout`` seconds (None: no
        limit). Called from ``on_error`` (on the sender thread, which cannot wait for itself)
        it returns at once: True when nothing is pending."""
        if self._on_sender_thread():
            return self._pending() == 0
        if self._thread is None and self._pending():
            self._start()
        return self._queue.flush(timeout)

    def _on_sender_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def close(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within ``timeout`` seconds (None: ``exit_timeout``),
        then stop the sender. In memory, events still queued after that are dropped (counted,
        logged, passed to on_error); in durable mode they stay in the file for the next start.
        Called from ``on_error`` (on the sender thread) it returns at once and closes from
        another thread."""
        if self._closed:
            return
        if self._on_sender_thread():
            threading.Thread(
                target=self.close, args=(timeout,), name="keen-delivery-close", daemon=True
            ).start()
            return
        if timeout is None:
            timeout = self.config.exit_timeout or 0.0
        deadline = time.monotonic() + timeout
        self._closing = True
        self._sender.hurry()  # a sender waiting to retry tries now: the server may be back
        delivered = self.flush(timeout)
        self._closed = True
        self._queue.start_closing()
        if not delivered:
            self._sender.stop()
        thread = self._thread
        if thread is not None:
            thread.join(max(deadline - time.monotonic(), 0.5))  # (time to stop after abort)
        left = self._queue.drain()
        if left:
            report_failure(
                self.config, left, NotDeliveredError("the client was closed before these were sent")
            )
        pending = self._pending()
        if pending:
            log.warning("closing with %d event(s) not delivered", pending)
        self._queue.close()
        _LIVE.discard(self)

    def stats(self) -> dict[str, int | float | None]:
        """Counters: queued (events handed to add_event, plus leftovers found in a durable
        file), sent, retried (events sent again after a transient failure), failed (refused by
        the server), dropped (overflow, or unsent at close), pending (queued - sent - failed -
        dropped), queue_depth (waiting, not in flight), oldest_event_age (seconds, or None)."""
        return self._queue.stats()

    def _pending(self) -> int:
        value = self._queue.stats()["pending"]
        return int(value or 0)

    def _after_fork_in_child(self) -> None:
        """A forked child: an empty queue of its own and no sender yet (started on first use)."""
        self._queue.after_fork_in_child()
        self._sender = Sender(self._sender.api, self._queue, self.config)
        self._thread = None
        self._start_lock = threading.Lock()
        # (KeenApi itself drops the connections the child inherited.)


#: Strategies open in this process, for the exit flush and fork handling. Strong references: a
#: client dropped without close() still has queued events (and a sender thread) to see to.
_LIVE: set[QueuedPersistenceStrategy] = set()


def _close_all_at_exit() -> None:
    """Close every open strategy; each waits at most its exit_timeout counted from the start
    of the exit (their senders work meanwhile), so several clients do not add up."""
    started = time.monotonic()
    for strategy in list(_LIVE):
        budget = strategy.config.exit_timeout or 0.0
        try:
            before = strategy._queue.stats()["dropped"] or 0
            strategy.close(max(budget - (time.monotonic() - started), 0.0))
            lost = int(strategy._queue.stats()["dropped"] or 0) - int(before)
            if lost > 0:
                _say_lost_at_exit(strategy, lost)
        except Exception:
            log.exception("flushing keen events at exit failed")


def _logging_configured(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` reaches a handler of the application's (our NullHandler
    is none): if not, Python shows nothing."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def _say_lost_at_exit(strategy: QueuedPersistenceStrategy, lost: int) -> None:
    """One line on stderr for events lost at exit, when no logging shows the warnings."""
    if sys.stderr is None or (_logging_configured(log) and log.isEnabledFor(logging.WARNING)):
        return  # (no stderr, as under pythonw; or said by the log already)
    error = strategy._sender.last_error
    if error is None:
        why = "the sender did not finish in time"
    else:
        text = str(error).strip().splitlines()
        why = f"last failure: {type(error).__name__}: {text[0] if text else '-'}"
    sys.stderr.write(
        f"keen: {lost} event(s) not delivered at exit, within exit_timeout="
        f"{strategy.config.exit_timeout or 0:g} s ({why}). To keep them: call "
        "client.flush(timeout) before exiting, raise exit_timeout, or use DurableDelivery.\n"
    )


def _after_fork_in_child() -> None:
    global _token_prefix
    _token_prefix = os.urandom(12).hex()
    for strategy in list(_LIVE):
        strategy._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
