"""Event: one event body on its way to a collection (the 0.7.0 class ``keen.client.Event``).

It lives in this low module, which imports only :mod:`keen._encoding` and
:mod:`keen.exceptions`, so that the layers below the client (``keen.api``,
``keen.persistence_strategies``, ``keen._delivery``) can use it without importing upwards.
``keen.client.Event`` and ``keen.Event`` are this class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keen import exceptions
from keen._encoding import encode_event, validate_collection_name

__all__ = ["Event"]


class Event:
    """One event: a body to record in a collection, with an optional timestamp.

    :param project_id: the project the event belongs to.
    :param event_collection: the collection to record it in.
    :param event_body: the event, a dict (datetimes, Decimals, UUIDs, sets are encoded).
    :param timestamp: when it happened (a datetime); sent as ``keen.timestamp``. A naive
        datetime (no ``tzinfo``, such as ``datetime.now()``) is sent as it is and the API reads
        it as UTC, as with keen 0.7.0: give an aware one (``datetime.now(timezone.utc)``) to
        record the moment you mean.
    """

    def __init__(self, project_id: str | None, event_collection: str,
                 event_body: Mapping[str, Any], timestamp: Any = None) -> None:
        self.project_id = project_id
        self.event_collection = validate_collection_name(event_collection)
        if not isinstance(event_body, Mapping):
            raise exceptions.InvalidEventError(
                f"An event body must be a dict, not {type(event_body).__name__}.")
        self.event_body = event_body
        self.timestamp = timestamp

    def __repr__(self) -> str:
        return f"Event({self.event_collection!r}, {dict(self.event_body)!r})"

    def body_with_timestamp(self) -> Mapping[str, Any]:
        """The body to send: ``timestamp`` merged into ``keen`` (other ``keen`` keys kept)."""
        if self.timestamp is None:
            return self.event_body
        meta = self.event_body.get("keen")
        if meta is None:
            meta = {}
        elif not isinstance(meta, Mapping):
            raise exceptions.InvalidEventError(
                f"The event's 'keen' property must be a dict, not {type(meta).__name__}.")
        stamp = self.timestamp
        stamp = stamp.isoformat() if hasattr(stamp, "isoformat") else stamp
        return {**self.event_body, "keen": {**meta, "timestamp": stamp}}

    def to_json(self) -> str:
        """The JSON text of the event (the user's body is not modified)."""
        return encode_event(self.body_with_timestamp())

    def has_uniqueness_token(self) -> bool:
        """Whether the event carries ``keen.uniqueness_token`` (so resending is harmless)."""
        meta = self.event_body.get("keen")
        return isinstance(meta, Mapping) and meta.get("uniqueness_token") is not None
