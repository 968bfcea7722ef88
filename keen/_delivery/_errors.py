"""Why queued events were not delivered: the errors ``on_error`` receives (never raised at
the caller, except DeliveryClosedError)."""

from __future__ import annotations

from typing import Any

from keen.exceptions import BadRequestError, BaseKeenClientError

__all__ = ["DeliveryClosedError", "EventRejectedError", "NotDeliveredError", "QueueFullError"]


class NotDeliveredError(BaseKeenClientError):
    """The events were given up: the client was closed (or the process exited) first."""


class QueueFullError(NotDeliveredError):
    """The events were dropped because the queue was full (see the ``overflow`` policy)."""


class DeliveryClosedError(BaseKeenClientError, RuntimeError):
    """``add_event`` on a client whose background delivery was closed."""


class EventRejectedError(BadRequestError):
    """The server stored the rest of the batch but refused this event (keen-api.md 3.2).

    ``error_code`` is the item error's ``name`` (e.g. ``InvalidPropertyNameError``) and
    ``message`` its ``description``.
    """

    hint = "The event itself is invalid: fix it before sending it again."

    def __init__(self, item_error: Any) -> None:
        error = item_error if isinstance(item_error, dict) else {}
        super().__init__(
            {
                "message": str(error.get("description", "the event was rejected")),
                "error_code": error.get("name"),
            }
        )
