"""The Keen HTTP API of the local server: routing and keys; the resources live in
``keen.server.resources`` (one module each: events, queries, saved queries, datasets, access
keys, the project document).

``KeenApp.handle(Request) -> Response`` knows nothing about sockets (``_http_server`` serves it);
storage and queries are delegated to ``keen.server.storage`` and ``keen.server.engine``.

Besides the Keen API (keen-api.md 9.1) the server answers two control resources of its own,
without a key, never affected by injected faults:

* ``GET /_keen/health``: ``{"ok": true, "projects": [...]}``, for readiness checks;
* ``/_keen/faults``: ``POST`` a command to queue faults (see ``Faults.apply_command``),
  ``GET`` the counts ``{"pending", "injected"}``, ``DELETE`` to clear the queue.

Choices where keen-api.md leaves room [INF]:

* routing is checked first (unknown path: 404 ``ResourceNotFoundError``; known path, wrong
  method: 405 ``MethodNotAllowedError``), then the project (404), then the key (401), then the
  permission (401), as in keen-api.md 2.1. The key may come in the ``Authorization`` header
  (preferred) or the ``api_key`` query parameter. ``/``, ``/3.0`` and ``/timezones`` need no key.
* a query or delete parameter given twice in the query string is a 400
  (``TimeframeDefinitionError`` for ``timeframe``, keen-api.md 7.3; ``InvalidParameterError``
  otherwise) rather than a silent choice of one value.
* malformed JSON in a body other than an event's is 400 ``InvalidJSONError``.

``GET /`` from a browser (``Accept: text/html``) is the Explorer page (``keen.server.explorer``,
with its files under ``/_keen/explorer/``); other clients get the API's root JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from keen.server import explorer
from keen.server._errors import QueryError, bad_request
from keen.server._http_errors import ApiError, not_found
from keen.server.auth import authenticate
from keen.server.config import ProjectConfig
from keen.server.faults import Faults
from keen.server.resources import ROUTES
from keen.server.resources._base import (
    API_VERSION,
    Call,
    Handler,
    Request,
    Response,
    api_key,
    error_response,
    json_body,
    json_response,
    loggable_path,
    method_not_allowed,
)
from keen.server.resources.events import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from keen.server.resources.projects import project_document

if TYPE_CHECKING:
    from keen.server.engines.base import EventStore as Storage

logger = logging.getLogger("keen.server")


class KeenApp:
    """The API of one local server over one ``Storage``."""

    def __init__(
        self,
        storage: Storage,
        projects: Sequence[ProjectConfig],
        clock: Callable[[], datetime],
        faults: Faults,
        *,
        expose_faults: bool = True,
    ) -> None:
        self.storage = storage
        self.projects = {project.project_id: project for project in projects}
        self.clock = clock
        self.faults = faults
        self.expose_faults = expose_faults
        self._health = json_response(200, {"ok": True, "projects": sorted(self.projects)})

    def health(self) -> Response:
        """The answer of ``GET /_keen/health``: never touches storage, queries or faults."""
        return Response(self._health.status, self._health.body, self._health.content_type)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return self._dispatch(request)
        except QueryError as error:
            return error_response(error)
        except Exception:
            logger.exception("keen local server: internal error on %s %s", request.method,
                             loggable_path(request.path))
            return json_response(500, {"message": "Internal server error",
                                       "error_code": "InternalServerError"})

    def _dispatch(self, request: Request) -> Response:
        segments = [unquote(part) for part in request.path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments.pop()  # a trailing slash
        method = "GET" if request.method == "HEAD" else request.method
        page = explorer.answer(segments, request, self.projects.values())  # the Explorer page
        if page is not None:
            return page
        if segments[:1] == ["_keen"]:
            return self._control(method, segments[1:], request)
        if segments[:2] == [API_VERSION, "projects"] and len(segments) > 2:
            return self._project_call(method, segments[2], segments[3:], request)
        service = {
            (): lambda: json_response(200, [{"is_public": True, "url": f"/{API_VERSION}",
                                             "version": API_VERSION}]),
            (API_VERSION,): lambda: json_response(
                200, {"projects_resource_url": f"/{API_VERSION}/projects"}),
            ("timezones",): lambda: json_response(200, _timezones(self.clock())),
            (API_VERSION, "projects"): lambda: self._list_projects(request),
        }
        answer = service.get(tuple(segments))
        if answer is None:
            raise not_found()
        if method != "GET":
            raise method_not_allowed({"GET"})
        return answer()

    def _project_call(self, method: str, project_id: str, rest: list[str],
                      request: Request) -> Response:
        handler, captures = _route(method, rest)
        project = self.projects.get(project_id)
        if project is None:
            raise not_found(f"Project {project_id!r} not found.")
        principal = authenticate(project, api_key(request), self.storage)
        call = Call(request, project, principal, self.storage, self.clock())
        return handler(call, *captures)

    # --- control endpoints (not part of the Keen API) ---------------------------------------

    def _control(self, method: str, rest: list[str], request: Request) -> Response:
        if rest == ["health"] and method == "GET":
            return self.health()
        if rest != ["faults"] or not self.expose_faults:
            raise not_found()
        if method == "GET":
            return json_response(200, self.faults.snapshot())
        if method == "DELETE":
            self.faults.clear()
            return json_response(200, self.faults.snapshot())
        if method != "POST":
            raise method_not_allowed({"GET", "POST", "DELETE"})
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # A cross-origin HTML form can only send text/plain and form types.
            raise ApiError(415, "UnsupportedMediaTypeError",
                           "POST /_keen/faults takes Content-Type: application/json.")
        command = json_body(request, "InvalidJSONError")
        if not isinstance(command, dict):
            raise bad_request("InvalidFaultError", "The body must be a JSON object.")
        try:
            self.faults.apply_command(command)
        except (TypeError, ValueError) as exc:
            raise bad_request("InvalidFaultError", str(exc)) from exc
        return json_response(200, self.faults.snapshot())

    def _list_projects(self, request: Request) -> Response:
        key = api_key(request)
        projects = [p for p in self.projects.values() if key and key == p.master_key]
        if not projects:
            raise ApiError(401, "InvalidApiKeyError",
                           "The projects resource requires a project's master key.")
        return json_response(200, [project_document(self.storage, p.project_id)
                                   for p in projects])


def _route(method: str, rest: list[str]) -> tuple[Handler, list[str]]:
    """The handler of the most specific route matching ``rest`` (literal segments beat
    captures), and the segments its captures took."""
    matches = [(pattern, methods) for pattern, methods in ROUTES
               if len(pattern) == len(rest) and all(p in ("*", s) for p, s in zip(pattern, rest))]
    if not matches:
        raise not_found()
    pattern, methods = min(matches, key=lambda match: match[0].count("*"))
    if method not in methods:
        raise method_not_allowed(set(methods))
    return methods[method], [s for p, s in zip(pattern, rest) if p == "*"]


def _timezones(now: datetime) -> list[dict[str, Any]]:
    import zoneinfo

    zones = []
    for name in sorted(zoneinfo.available_timezones()):
        try:
            offset = now.astimezone(zoneinfo.ZoneInfo(name)).utcoffset() or timedelta(0)
        except (ValueError, OSError):
            continue
        seconds = int(offset.total_seconds())
        sign = "-" if seconds < 0 else "+"
        hours, minutes = divmod(abs(seconds) // 60, 60)
        zones.append({"name": name, "number_of_seconds_to_offset_time": seconds,
                      "utc_offset": f"{sign}{hours:02d}:{minutes:02d}"})
    return zones


__all__ = [
    "API_VERSION",
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "KeenApp",
    "Request",
    "Response",
    "error_response",
    "loggable_path",
]
