"""The one error type the storage and query engine raise for bad queries."""

from __future__ import annotations

__all__ = ["QueryError"]


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
