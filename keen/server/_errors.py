"""The one error type the storage and query engine raise for bad queries."""

from __future__ import annotations

__all__ = ["SHUTTING_DOWN", "QueryError", "StoreClosedError", "bad_request"]


class QueryError(Exception):
    """A query (or delete) the server must refuse.

    ``status`` is the HTTP status to answer with, ``error_code`` the Keen ``error_code`` and
    ``message`` the human-readable text: the HTTP layer turns it into
    ``{"message": ..., "error_code": ...}``.
    """

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def __repr__(self) -> str:
        return f"QueryError({self.status!r}, {self.error_code!r}, {self.message!r})"


def bad_request(error_code: str, message: str) -> QueryError:
    """A 400 ``QueryError``."""
    return QueryError(400, error_code, message)


# The answer of a request the server stopped because it is shutting down (503, as the HTTP
# layer's answer when it has no room for a connection: the client may send it again later).
SHUTTING_DOWN = "ServiceUnavailableError"


class StoreClosedError(QueryError, RuntimeError):
    """The store was closed before or while the request ran (503 ``ServiceUnavailableError``):
    a query running when its store closes is interrupted with it, and a store used after
    ``close()`` raises it (a ``RuntimeError`` too, as any use of a closed object)."""

    def __init__(self, what: str) -> None:
        super().__init__(503, SHUTTING_DOWN,
                         f"The local server is shutting down: {what}. Send it again once the "
                         "server is back.")
