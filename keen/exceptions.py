"""Everything ``keen`` raises.

One root, two branches: "could not talk to the server" and "the server said no"::

    BaseKeenClientError
     +-- InvalidProjectIdError            (also ValueError)
     +-- InvalidConfigurationError        (also ValueError, TypeError) a client setting that
     |    |                               cannot work: base_url, a timeout, the retry policy...
     |    +-- InvalidTLSFileError         (also OSError) a CA bundle or certificate file that
     |                                    does not exist
     +-- InvalidPersistenceStrategyError  (also TypeError)
     +-- InvalidEnvironmentError          missing project id, or missing key for an operation
     +-- InvalidEventError                (also ValueError) bad event, collection name or value
     +-- InvalidQueryError                (also ValueError) malformed query, dataset, saved-query
     |                                    or access-key argument
     +-- ScopedKeyError                   (also ValueError) undecryptable scoped key
     +-- KeenApiError                     the server answered with an error status
     |    +-- BadRequestError             400 and other 4xx not listed below
     |    |    +-- PayloadTooLargeError   413
     |    +-- AuthenticationError         401, 402, 403
     |    +-- NotFoundError               404
     |    +-- RateLimitError              429
     |    +-- ServerError                 5xx
     +-- KeenTransportError               (also requests.RequestException) no usable answer
          +-- KeenConnectionError         (also requests.ConnectionError)
          +-- KeenTimeoutError            (also requests.Timeout)
          |    +-- KeenReadTimeoutError   (also requests.ReadTimeout)
          +-- KeenConnectTimeoutError     (both of the above, and requests.ConnectTimeout)

The transport errors also derive from the ``requests`` exception they replace (the one raised
is also an instance of the exact requests class, e.g. ``requests.exceptions.SSLError``), so
code written for 0.7.0 (``except requests.Timeout``) keeps working; the original exception is
the ``__cause__``. No message carries a key.

An API error reads as one line: the status, the API's ``error_code`` and ``message``, the request
(method and path, never a key or the query string) and a hint, e.g. ``404
ResourceNotFoundError: Resource not found (GET /3.0/projects/PID/queries/saved/q/result). Check
the project id and the name of the resource.``
"""

from __future__ import annotations

from typing import Any

import requests

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BaseKeenClientError",
    "DeliveryClosedError",
    "EventRejectedError",
    "InvalidConfigurationError",
    "InvalidEnvironmentError",
    "InvalidEventError",
    "InvalidPersistenceStrategyError",
    "InvalidProjectIdError",
    "InvalidQueryError",
    "InvalidTLSFileError",
    "KeenApiError",
    "KeenConnectTimeoutError",
    "KeenConnectionError",
    "KeenReadTimeoutError",
    "KeenTimeoutError",
    "KeenTransportError",
    "NotDeliveredError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QueueFullError",
    "RateLimitError",
    "ScopedKeyError",
    "ServerError",
    "error_for_response",
]


class BaseKeenClientError(Exception):
    """The root of every exception this package raises."""


class InvalidProjectIdError(BaseKeenClientError, ValueError):
    """The project id is not a non-empty string."""

    def __init__(self, project_id: Any, *, detail: str = "") -> None:
        super().__init__(f"Invalid project id: {project_id!r}; it must be a non-empty string."
                         + (f" {detail}" if detail else ""))
        self.project_id = project_id


class InvalidConfigurationError(BaseKeenClientError, ValueError, TypeError):
    """A client setting cannot work: a ``base_url`` that is not a URL string, a timeout that is
    not a positive number, a retry policy of the wrong type, ``persistence_strategy`` and
    ``delivery`` given together... Raised when the client is built, before any request.

    It is also a ``ValueError`` and a ``TypeError``, the built-in errors these settings raised
    before, so existing ``except`` clauses keep working.
    """


class InvalidTLSFileError(InvalidConfigurationError, OSError):
    """The CA bundle (``session.verify``) or client certificate (``session.cert``) names a file
    that does not exist; nothing was sent. Also an ``OSError``, which ``requests`` raised."""


class InvalidPersistenceStrategyError(BaseKeenClientError, TypeError):
    """The persistence strategy given to a client is not a ``BasePersistenceStrategy``."""

    def __init__(self) -> None:
        super().__init__(
            "Invalid persistence strategy: it must be an instance of "
            "keen.persistence_strategies.BasePersistenceStrategy."
        )


class InvalidEnvironmentError(BaseKeenClientError):
    """No project id is configured, or the key an operation needs is missing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidEventError(BaseKeenClientError, ValueError):
    """An event, event batch or collection name cannot be sent as it is."""


class InvalidQueryError(BaseKeenClientError, ValueError):
    """An argument of a query, dataset, saved-query or access-key call is malformed (a
    non-string collection name, ``order_by`` without ``group_by``, a ``limit`` that is not a
    positive int, a value that is not JSON...); nothing was sent."""


class ScopedKeyError(BaseKeenClientError, ValueError):
    """A scoped key cannot be decrypted with the master key given (or is not a scoped key)."""


class KeenApiError(BaseKeenClientError):
    """The Keen API answered with an error.

    :ivar api_error: the error body the API sent (a dict; ``message`` and ``error_code`` keys).
    :ivar status_code: the HTTP status, or None when unknown.
    :ivar error_code: the API's ``error_code`` (e.g. ``"InvalidApiKeyError"``), or None.
    :ivar message: the API's ``message``.
    :ivar request: what was asked for: the method and path (``"GET /3.0/projects/..."``; no
        key, no query string), or None when unknown.
    """

    #: What a user can do about this kind of error (one line, no key).
    hint = ""

    def __init__(
        self,
        api_error: Any,
        status_code: int | None = None,
        retry_after: float | None = None,
        *,
        request: str | None = None,
    ) -> None:
        body = api_error if isinstance(api_error, dict) else {"message": str(api_error)}
        self.api_error = api_error
        self.status_code = status_code
        self.retry_after = retry_after
        error_code = body.get("error_code")
        self.error_code: str | None = None if error_code is None else str(error_code)
        self.message = str(body.get("message", "(no message in the error body)"))
        self.request = request
        super().__init__(self._one_line(body))

    def _one_line(self, body: dict[str, Any]) -> str:
        """Status, error code, message, the request, any ids, a hint: one line."""
        head = " ".join(str(part) for part in (self.status_code, self.error_code)
                        if part is not None) or "Keen API error"
        text = f"{head}: {' '.join(self.message.split())}"
        asked = [self.request] if self.request else []
        asked += [f"{name} {body[name]}" for name in ("stacktrace_id", "unique_id") if name in body]
        if asked:
            text += f" ({'; '.join(asked)})"
        hint = _STATUS_HINTS.get(self.status_code, self.hint)
        return f"{text.rstrip('.')}. {hint}" if hint else text


class BadRequestError(KeenApiError):
    """400 (and other 4xx without a class of their own): the request itself was refused."""

    hint = "The API refused the request as malformed: check the parameters named in the message."


class PayloadTooLargeError(BadRequestError):
    """413: the event or batch is too large."""

    hint = "The event or batch is too large: send smaller events or split the batch."


class AuthenticationError(KeenApiError):
    """401, 402, 403: the key is wrong, lacks the permission, or the operation is forbidden."""

    hint = "Check that the key is valid for this project and permitted for this operation."


class NotFoundError(KeenApiError):
    """404: unknown project, collection, saved query, dataset or access key."""

    hint = "Check the project id and the name of the resource."


class RateLimitError(KeenApiError):
    """429: too many requests; ``retry_after`` says how long to wait when the server said so."""

    hint = "Too many requests: wait (see retry_after) and try again."


class ServerError(KeenApiError):
    """5xx: the server failed or timed out; ``retry_after`` when the server said so."""

    hint = "The Keen API failed to answer; try again later."


#: Hints for statuses that share a class but need their own advice.
_STATUS_HINTS: dict[int | None, str] = {
    414: "The URL is too long for the server. Long queries are sent as a POST, but dataset "
         "results and event deletes only exist as GET and DELETE: use fewer or shorter "
         "index_by values or filters.",
}


#: The one status-to-class table (exact statuses first, then ranges in error_for_response).
_STATUS_CLASSES: dict[int, type[KeenApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_for_response(
    status: int, body: Any, retry_after: float | None = None, *, request: str | None = None
) -> KeenApiError:
    """The exception for an error answer: the class chosen by ``status``, carrying ``body``
    (and ``request``, the method and path asked for)."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        if 500 <= status <= 599:
            cls = ServerError
        elif 400 <= status <= 499:
            cls = BadRequestError
        else:
            cls = KeenApiError
    return cls(body, status, retry_after, request=request)


class KeenTransportError(BaseKeenClientError, requests.RequestException):
    """No usable answer came back (connection refused or reset, timeout, TLS failure...).

    :ivar request_sent: False when the request certainly never reached the server, so retrying
        cannot duplicate anything.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class KeenConnectionError(KeenTransportError, requests.ConnectionError):
    """The connection could not be made, or broke."""


class KeenTimeoutError(KeenTransportError, requests.Timeout):
    """The server did not answer in time."""


class KeenReadTimeoutError(KeenTimeoutError, requests.ReadTimeout):
    """The server accepted the connection but did not answer in time."""


class KeenConnectTimeoutError(KeenConnectionError, KeenTimeoutError, requests.ConnectTimeout):
    """No connection could be made in time (the request was never sent)."""


# -- queued delivery: what the on_error callback of background and durable delivery receives.
# Only DeliveryClosedError is raised at the caller (add_event on a closed client).


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


# -- delivery settings (kept at the end of the file)


class InvalidDeliveryError(InvalidConfigurationError):
    """The delivery setting cannot work: a mode that does not exist (``delivery=``,
    ``keen.delivery`` or ``KEEN_DELIVERY``), durable delivery without a queue file, a queue file
    whose folder does not exist, an option of ``BackgroundDelivery``/``DurableDelivery`` out of
    range. Raised when the setting is made or the client built, before any event is queued.
    Also a ``ValueError`` and a ``TypeError``, which these raised before."""


__all__ += ["InvalidDeliveryError"]
