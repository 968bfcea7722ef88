"""Where ``add_event`` / ``add_events`` send events.

The default, :class:`DirectPersistenceStrategy`, posts each call synchronously (as 0.7.0 did).
Background and durable delivery (``KeenClient(delivery=...)``) are strategies built by
``keen._delivery``. A custom strategy subclasses :class:`BasePersistenceStrategy` and implements
at least ``persist``.
"""

from __future__ import annotations

import threading
from typing import Any

from keen._event import Event
from keen.api import KeenApi, debug_enabled, debug_line, encode_batch

__all__ = ["BasePersistenceStrategy", "DirectPersistenceStrategy", "DisabledPersistenceStrategy"]


class BasePersistenceStrategy:
    """Persists events somewhere: the Keen API, a queue, a file..."""

    def persist(self, event: Event) -> None:
        """Persist one event."""
        raise NotImplementedError(f"{type(self).__name__} does not implement persist()")

    def batch_persist(self, events: dict[str, list[dict[str, Any]]]) -> Any:
        """Persist a batch ``{collection: [body, ...]}``.

        This default persists the events one by one with :meth:`persist` and reports every one
        as a success, in the shape of the API's batch answer.
        """
        results: dict[str, list[dict[str, Any]]] = {}
        for collection, bodies in events.items():
            for body in bodies:
                self.persist(Event(None, collection, body))
            results[collection] = [{"success": True} for _ in bodies]
        return results

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything persisted so far is delivered; True when it is."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within ``timeout`` and release resources."""

    def stats(self) -> dict[str, int | float | None]:
        """Counters describing delivery (empty for synchronous strategies)."""
        return {}


class DirectPersistenceStrategy(BasePersistenceStrategy):
    """Sends every event to the Keen API at once, on the caller's thread."""

    def __init__(self, api: KeenApi) -> None:
        self.api = api

    def persist(self, event: Event) -> None:
        """Post one event; raises on failure."""
        self.api.post_event(event)

    def batch_persist(self, events: dict[str, list[dict[str, Any]]]) -> Any:
        """Post a batch; returns the API's per-event results."""
        return self.api.post_events(events)


class DisabledPersistenceStrategy(BasePersistenceStrategy):
    """Sends nothing: each event is checked as a send would check it, then counted.

    What ``KeenClient(disabled=True)`` (``keen.disabled``, ``KEEN_DISABLED=1``) uses, for
    development and tests: a bad event still raises ``InvalidEventError`` at once, and
    ``stats()`` says how many events were checked (``validated``) and that none was sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._validated = 0

    def _count(self, events: int) -> None:
        with self._lock:
            self._validated += events

    def persist(self, event: Event) -> None:
        """Check the event (collection name, JSON body), count it, send nothing."""
        event.to_json()
        self._count(1)
        if debug_enabled():
            debug_line(f"disabled: event for {event.event_collection!r} checked, not sent")

    def batch_persist(self, events: dict[str, list[dict[str, Any]]]) -> Any:
        """Check the batch, count its events, send nothing; every event reported a success."""
        encode_batch(events)
        self._count(sum(len(items) for items in events.values()))
        if debug_enabled():
            debug_line(f"disabled: batch for {sorted(events)} checked, not sent")
        return {collection: [{"success": True} for _ in items]
                for collection, items in events.items()}

    def stats(self) -> dict[str, int | float | None]:
        """``validated`` (events checked and counted) and ``sent`` (always 0)."""
        with self._lock:
            return {"validated": self._validated, "sent": 0}
