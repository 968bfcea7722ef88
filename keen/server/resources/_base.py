"""What every resource module of the local server shares: one request in, one response out.

The HTTP layer hands over a ``Request``; ``KeenApp`` authenticates it and calls a resource's
handler with a ``Call`` (request, project, principal, storage, clock reading) and the path
segments its route captured. Handlers return a ``Response`` or raise a ``QueryError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keen.server._errors import QueryError, bad_request
from keen.server._http_errors import ApiError, not_found
from keen.server._json import encode
from keen.server.auth import Principal
from keen.server.config import ProjectConfig
from keen.server.engine import ANALYSES, decode_query_params
from keen.server.filters import normalize_filters

if TYPE_CHECKING:
    from keen.server.engines.base import EventStore as Storage

API_VERSION = "3.0"
RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class Request:
    """One HTTP request, as the HTTP layer hands it over."""

    method: str
    path: str  # without the query string, still percent-encoded
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    client_address: str = ""
    repeated: frozenset[str] = frozenset()  # query parameters given more than once (last wins)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One authenticated call to a project resource."""

    request: Request
    project: ProjectConfig
    principal: Principal
    storage: Storage
    now: datetime

    @property
    def project_id(self) -> str:
        return self.project.project_id

    @property
    def base(self) -> str:
        return f"/{API_VERSION}/projects/{self.project.project_id}"

    def params(self, *raw: str) -> dict[str, Any]:
        """Query-string parameters decoded into native values (the key, and the parameters
        named in ``raw``, which the caller decodes itself, left out)."""
        skipped = {"api_key", *raw}
        for name in sorted(self.request.repeated - skipped):
            if name == "timeframe":  # the API's words (keen-api.md 7.3)
                raise bad_request("TimeframeDefinitionError",
                                  "You sent in an invalid definition for the timeframe: "
                                  "'You have multiple values for timeframe specified.'.")
            raise bad_request("InvalidParameterError",
                              f"The {name!r} parameter was given more than once.")
        return decode_query_params(
            {k: v for k, v in self.request.query.items() if k not in skipped})

    def json_body(self, error_code: str = "InvalidJSONError") -> Any:
        return json_body(self.request, error_code)

    def stored_doc(self, kind: str, name: str) -> dict[str, Any]:
        """The project's stored definition ``kind``/``name``; a 404 when there is none."""
        doc = self.storage.get_doc(self.project_id, kind, name)
        if doc is None:
            raise not_found()
        return doc

    def delete_stored(self, kind: str, name: str) -> Response:
        """Delete the stored definition ``kind``/``name``: 204, or a 404 when there is none."""
        if not self.storage.delete_doc(self.project_id, kind, name):
            raise not_found()
        return Response(204)


Handler = Callable[..., Response]
# A path pattern below /3.0/projects/<id> ("*" captures a segment) and its handlers by method.
Route = tuple[tuple[str, ...], dict[str, Handler]]


def json_response(status: int, payload: Any) -> Response:
    """``payload`` as compact JSON (``JsonText`` parts written as they are)."""
    return Response(status, encode(payload), "application/json")


def error_response(error: QueryError) -> Response:
    # A message may quote the input; a lone surrogate in it is written as its escape.
    message = error.message.encode("utf-8", "backslashreplace").decode("utf-8")
    response = json_response(error.status, {"message": message,
                                            "error_code": error.error_code})
    response.headers.update(getattr(error, "headers", {}))
    return response


def loggable_path(path: str) -> str:
    """``path`` with access keys (``/keys/<key>``) masked, fit for a log line."""
    return re.sub(r"(/keys/)[^/?]+", r"\1<key>", path)


def api_key(request: Request) -> str | None:
    return request.headers.get("authorization") or request.query.get("api_key") or None


def method_not_allowed(allowed: set[str]) -> ApiError:
    methods = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
    return ApiError(405, "MethodNotAllowedError", f"Method not allowed; use {methods}.",
                    headers={"Allow": methods})


def json_body(request: Request, error_code: str) -> Any:
    if not request.body.strip():
        raise bad_request(error_code, "The request body is empty; a JSON document is required.")
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise bad_request(error_code, f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise bad_request(error_code, "The request body is nested too deeply.") from exc


def positive_int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise bad_request("InvalidParameterError", f"{name} must be a positive integer.")
    return int(value)


def check_fields(
    body: Any, what: str, allowed: AbstractSet[str],
    ignored: AbstractSet[str] = frozenset(), read_only: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
    """The ``allowed`` fields of a definition object; read-only and unknown ones are a 400."""
    if not isinstance(body, dict):
        raise bad_request(f"Invalid{what}Error", f"The {what} definition must be a JSON object.")
    bad = sorted(set(body) & read_only)
    if bad:
        raise bad_request(f"Invalid{what}Error",
                          f"Read-only field(s) may not be sent: {', '.join(bad)}.")
    unknown = sorted(set(body) - allowed - ignored - read_only)
    if unknown:
        raise bad_request(f"Invalid{what}Error", f"Unknown field(s): {', '.join(unknown)}.")
    return {k: v for k, v in body.items() if k in allowed}


def query_definition(body: Any, what: str, excluded: Sequence[str] = ()) -> dict[str, Any]:
    """A stored query (of a saved query or a dataset), checked when it is defined rather than
    failing each time it runs."""
    if not isinstance(body, dict):
        raise bad_request(f"Invalid{what}Error", "query must be a JSON object.")
    query = {k: v for k, v in body.items() if v is not None}
    analysis = query.get("analysis_type")
    if not isinstance(analysis, str) or analysis not in ANALYSES or analysis in excluded:
        allowed = sorted(ANALYSES - set(excluded))
        raise bad_request(f"Invalid{what}Error",
                          f"query.analysis_type must be one of {', '.join(allowed)}; "
                          f"got {analysis!r}.")
    needed = "steps" if analysis == "funnel" else "event_collection"
    if needed not in query:
        raise bad_request(f"Invalid{what}Error", f"query.{needed} is required.")
    if "filters" in query:
        if not isinstance(query["filters"], list):
            raise bad_request(f"Invalid{what}Error", "query.filters must be a list of filters.")
        normalize_filters(query["filters"])
    return query
