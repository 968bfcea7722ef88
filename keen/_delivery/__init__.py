"""Delivery in the background: the asynchronous insert, and a durable queue on disk.

``KeenClient(delivery=...)`` (or the ``keen.delivery`` setting) chooses how events travel:

* ``"direct"`` (the default): each ``add_event`` posts at once and returns the answer; failures
  raise in the caller.
* ``"background"`` or :class:`BackgroundDelivery`: ``add_event`` validates and encodes the event
  on the caller's thread (bad input raises there), puts it on a bounded in-memory queue and
  returns; a sender thread posts batches to the bulk endpoint, retrying transient failures.
  Queued events are lost if the process dies before they are sent.
* ``"durable"`` or :class:`DurableDelivery`: the same, with the queue in a SQLite file (WAL mode):
  events survive a crash, a kill or a restart, and leave the file only when the server confirmed
  them. ``durability`` says precisely what is on disk when ``add_event`` returns.

In both queued modes every event gets a ``keen.uniqueness_token`` when it is queued (unless it
already has one), so a batch sent again after a lost answer or a crash is stored only once.

How the pieces fit: ``_config`` (the configuration objects, which the other modules import
rather than this package, so nothing imports upward), ``_queue`` (the in-memory queue, its
counters and overflow policies), ``_durable`` (the SQLite queue), ``_sender`` (the thread that
batches and posts), ``_strategy`` (the persistence strategy the client calls, the exit flush
and fork handling); what ``on_error``
receives is in :mod:`keen.exceptions`. Only this module and ``_config`` are imported by
``import keen``: no thread, file or SQLite until a queued delivery is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keen._delivery._config import (
    DELIVERY_RETRY,
    DURABILITY_LEVELS,
    MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
    OVERFLOW_POLICIES,
    BackgroundDelivery,
    DeliverySetting,
    DurableDelivery,
    ErrorCallback,
    resolve,
)

if TYPE_CHECKING:
    from keen._delivery._strategy import QueuedPersistenceStrategy

__all__ = [
    "DELIVERY_RETRY",
    "DURABILITY_LEVELS",
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "OVERFLOW_POLICIES",
    "BackgroundDelivery",
    "DeliverySetting",
    "DurableDelivery",
    "ErrorCallback",
    "make_strategy",
    "resolve",
]


def make_strategy(api: Any, delivery: DeliverySetting) -> QueuedPersistenceStrategy:
    """The persistence strategy that delivers through ``api`` (a KeenApi) as ``delivery`` says.

    Not for direct delivery: the client uses its DirectPersistenceStrategy for that.
    """
    config = resolve(delivery)
    if config is None:
        raise ValueError("make_strategy builds queued strategies only; direct is the client's")
    from keen._delivery._strategy import QueuedPersistenceStrategy

    return QueuedPersistenceStrategy(api, config)
