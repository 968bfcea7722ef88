"""Errors of the HTTP layer, in the same shape as the engine's ``QueryError``.

Everything the server refuses ends as one ``QueryError`` (or this subclass, which can carry extra
headers) and is answered by one function as ``{"message": ..., "error_code": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from keen.server._errors import QueryError

INVALID_API_KEY = "InvalidApiKeyError"
ADMIN_ONLY = "AdminOnlyEndpointError"
NOT_FOUND = "ResourceNotFoundError"


class ApiError(QueryError):
    """A refusal of the HTTP layer; ``headers`` are added to the response."""

    def __init__(
        self, status: int, error_code: str, message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, error_code, message)
        self.headers = dict(headers or {})


def not_found(message: str = "Resource not found") -> ApiError:
    return ApiError(404, NOT_FOUND, message)


def unauthorized(message: str, error_code: str = INVALID_API_KEY) -> ApiError:
    return ApiError(401, error_code, message)
