"""The Keen HTTP API of the local server: routing, keys, requests in, responses out.

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
* an unknown analysis in ``/queries/<analysis>`` is a 404 (no such resource); a POST body's
  ``analysis_type`` must match the path if given (400 otherwise).
* event bodies are parsed as JSON whatever their ``Content-Type`` (``sendBeacon`` sends
  ``text/plain``). Events over 900,000 bytes are refused with 413 (single event) or as a batch
  item error ``EventTooLargeError``; batches over 10,000,000 bytes with 413; both carry
  ``error_code`` ``RequestEntityTooLargeError``. Malformed JSON is 400 ``InvalidEventError``
  (single event), ``InvalidBatchError`` (batch) or ``InvalidJSONError`` (anything else).
* the string values ``"${keen.ip}"`` and ``"${keen.user_agent}"`` anywhere in an event are
  replaced by the client's address and ``User-Agent`` (keen-api.md 4.4).
* image beacon: ``data`` may use either base64 alphabet, with or without padding, and ``' '``
  for an unescaped ``+``; the answer is a 1x1 GIF (200) or, with ``redirect``, a 302. A
  ``HEAD`` request gets the same answer without recording the event.
* saved queries: ``null`` query fields in a PUT are dropped (the GET of a definition shows
  ``group_by``, ``interval`` and ``timezone`` as ``null`` when unset); read-only fields (``urls``,
  ``created_date``, ``last_modified_date``, ``user_last_modified_date``, ``run_information``,
  ``result``) and unknown fields are a 400. ``refresh_rate`` must be 0 or 14400-172800. Renaming
  (``query_name`` differing from the path) onto an existing name is a 409.
* datasets: PUT answers 201 when created, 200 when replaced; read-only fields of a definition
  may be sent back and are ignored. Results are computed on demand.
* access keys: revoke/unrevoke answer 200 with the updated key object. (keen-api.md 15.1 cites
  test mocks with an empty 204, but keen 0.7.0 parses a JSON body from these calls: a body keeps
  that client working, and clients expecting 204 accept a 200 with JSON as well.)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from keen.server._errors import QueryError, bad_request
from keen.server._http_errors import ApiError, not_found
from keen.server.auth import (
    ACCESS_KEY_KIND,
    ACCESS_KEY_PERMISSIONS,
    ADMIN,
    CACHED_QUERIES,
    QUERIES,
    SAVED_QUERIES,
    SCHEMA,
    WRITES,
    Principal,
    authenticate,
)
from keen.server.config import ProjectConfig
from keen.server.engine import ANALYSES, dataset_results, decode_query_params, run_query
from keen.server.faults import Faults
from keen.server.filters import normalize_filters
from keen.server.timeframes import format_timestamp

if TYPE_CHECKING:
    from keen.server.storage import Storage

logger = logging.getLogger("keen.server")

API_VERSION = "3.0"
MAX_EVENT_BYTES = 900_000
MAX_BATCH_BYTES = 10_000_000
TOO_LARGE = "RequestEntityTooLargeError"
SAVED_QUERY_KIND = "saved_query"
DATASET_KIND = "dataset"
MIN_REFRESH_RATE = 14_400
MAX_REFRESH_RATE = 172_800
DATASET_PAGE_DEFAULT = 10
DATASET_PAGE_MAX = 100

_PLACEHOLDER_MARK = b"${keen."
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A transparent 1x1 GIF, the answer of the image beacon.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_SAVED_QUERY_FIELDS = {"query_name", "refresh_rate", "query", "metadata"}
_SAVED_QUERY_READ_ONLY = {"urls", "created_date", "last_modified_date", "user_last_modified_date",
                          "run_information", "result"}
_SAVED_QUERY_NULL_FIELDS = ("group_by", "interval", "timezone")
_DATASET_FIELDS = {"display_name", "index_by", "query"}
_DATASET_READ_ONLY = {"project_id", "organization_id", "dataset_name", "last_scheduled_date",
                      "latest_subtimeframe_available", "milliseconds_behind"}
_DATASET_QUERY_REQUIRED = ("analysis_type", "event_collection", "timeframe", "interval")
_ACCESS_KEY_FIELDS = {"name", "is_active", "permitted", "options"}
# Expected JSON types of option entries in any section ("allowed": an object for datasets, a
# list elsewhere).
_ACCESS_KEY_OPTION_TYPES: dict[str, type] = {"autofill": dict, "filters": list, "blocked": list,
                                             "operations": list}
_ACCESS_KEY_OPTIONS = ("writes", "queries", "saved_queries", "cached_queries", "datasets")


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


def json_response(status: int, payload: Any) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, "application/json")


def error_response(error: QueryError) -> Response:
    response = json_response(error.status, {"message": error.message,
                                            "error_code": error.error_code})
    response.headers.update(getattr(error, "headers", {}))
    return response


@dataclass
class _Call:
    """One authenticated call to a project resource."""

    request: Request
    project: ProjectConfig
    principal: Principal
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


Handler = Callable[..., Response]


class KeenApp:
    """The API of one local server over one ``Storage``."""

    def __init__(
        self,
        storage: Storage,
        projects: Sequence[ProjectConfig],
        clock: Callable[[], datetime],
        faults: Faults,
    ) -> None:
        self.storage = storage
        self.projects = {project.project_id: project for project in projects}
        self.clock = clock
        self.faults = faults
        # (path pattern below /3.0/projects/<id>, {method: handler}); "*" captures a segment.
        # Literal patterns come before captures that could shadow them.
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
            ((), {"GET": self._project_info}),
            (("events",), {"GET": self._list_collections, "POST": self._post_batch}),
            (("events", "*"), {"GET": self._collection_or_beacon, "POST": self._post_event,
                               "DELETE": self._delete_events}),
            (("events", "*", "properties"), {"GET": self._list_properties}),
            (("events", "*", "properties", "*"), {"GET": self._get_property,
                                                  "DELETE": self._delete_property}),
            (("queries",), {"GET": self._query_urls}),
            (("queries", "saved"), {"GET": self._list_saved_queries}),
            (("queries", "saved", "*"), {"GET": self._get_saved_query,
                                         "PUT": self._put_saved_query,
                                         "DELETE": self._delete_saved_query}),
            (("queries", "saved", "*", "result"), {"GET": self._saved_query_result}),
            (("queries", "*"), {"GET": self._query, "POST": self._query}),
            (("datasets",), {"GET": self._list_datasets}),
            (("datasets", "*"), {"GET": self._get_dataset, "PUT": self._put_dataset,
                                 "DELETE": self._delete_dataset}),
            (("datasets", "*", "results"), {"GET": self._dataset_results}),
            (("keys",), {"GET": self._list_access_keys, "POST": self._create_access_key}),
            (("keys", "*"), {"GET": self._get_access_key, "POST": self._update_access_key,
                             "DELETE": self._delete_access_key}),
            (("keys", "*", "revoke"), {"POST": self._revoke_access_key}),
            (("keys", "*", "unrevoke"), {"POST": self._unrevoke_access_key}),
        ]

    # --- entry point -------------------------------------------------------------------------

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
            raise _method_not_allowed({"GET"})
        return answer()

    def _project_call(self, method: str, project_id: str, rest: list[str],
                      request: Request) -> Response:
        handler, captures = self._route(method, rest)
        project = self.projects.get(project_id)
        if project is None:
            raise not_found(f"Project {project_id!r} not found.")
        principal = authenticate(project, _api_key(request), self.storage)
        call = _Call(request, project, principal, self.clock())
        return handler(call, *captures)

    def _route(self, method: str, rest: list[str]) -> tuple[Handler, list[str]]:
        for pattern, methods in self._routes:
            if len(pattern) != len(rest):
                continue
            if all(p in ("*", s) for p, s in zip(pattern, rest)):
                if method not in methods:
                    raise _method_not_allowed(set(methods))
                return methods[method], [s for p, s in zip(pattern, rest) if p == "*"]
        raise not_found()

    # --- control endpoints (not part of the Keen API) ---------------------------------------

    def _control(self, method: str, rest: list[str], request: Request) -> Response:
        if rest == ["health"] and method == "GET":
            return json_response(200, {"ok": True, "projects": sorted(self.projects)})
        if rest != ["faults"]:
            raise not_found()
        if method == "GET":
            return json_response(200, self.faults.snapshot())
        if method == "DELETE":
            self.faults.clear()
            return json_response(200, self.faults.snapshot())
        if method != "POST":
            raise _method_not_allowed({"GET", "POST", "DELETE"})
        command = _json_body(request, "InvalidJSONError")
        if not isinstance(command, dict):
            raise bad_request("InvalidFaultError", "The body must be a JSON object.")
        try:
            self.faults.apply_command(command)
        except (TypeError, ValueError) as exc:
            raise bad_request("InvalidFaultError", str(exc)) from exc
        return json_response(200, self.faults.snapshot())

    # --- projects -----------------------------------------------------------------------------

    def _list_projects(self, request: Request) -> Response:
        key = _api_key(request)
        projects = [p for p in self.projects.values() if key and key == p.master_key]
        if not projects:
            raise ApiError(401, "InvalidApiKeyError",
                           "The projects resource requires a project's master key.")
        return json_response(200, [self._project_document(p.project_id) for p in projects])

    def _project_info(self, call: _Call) -> Response:
        call.principal.require(ADMIN)
        return json_response(200, self._project_document(call.project_id))

    def _project_document(self, project_id: str) -> dict[str, Any]:
        base = f"/{API_VERSION}/projects/{project_id}"
        saved = self.storage.list_docs(project_id, SAVED_QUERY_KIND)
        return {
            "id": project_id,
            "name": project_id,
            "url": base,
            "events_url": f"{base}/events",
            "queries_url": f"{base}/queries",
            "saved_queries": [{"name": doc["query_name"],
                               "url": f"{base}/queries/saved/{doc['query_name']}"}
                              for doc in saved],
            "events": [{"name": c["name"], "url": c["url"]}
                       for c in self.storage.collections(project_id)],
        }

    # --- events --------------------------------------------------------------------------------

    def _post_event(self, call: _Call, collection: str) -> Response:
        call.principal.require(WRITES)
        if len(call.request.body) > MAX_EVENT_BYTES:
            raise ApiError(413, TOO_LARGE,
                           f"The event is larger than {MAX_EVENT_BYTES} bytes.")
        event = _json_body(call.request, "InvalidEventError")
        return self._record_one(call, collection, event)

    def _record_one(self, call: _Call, collection: str, event: Any) -> Response:
        item = self._insert(call, collection, [event], check_size=False)[0]
        if not item["success"]:
            error = item["error"]
            raise bad_request(error["name"], error["description"])
        return json_response(201, {"created": True})

    def _post_batch(self, call: _Call) -> Response:
        call.principal.require(WRITES)
        body_size = len(call.request.body)
        if body_size > MAX_BATCH_BYTES:
            raise ApiError(413, TOO_LARGE,
                           f"The batch is larger than {MAX_BATCH_BYTES} bytes.")
        batch = _json_body(call.request, "InvalidBatchError")
        if not isinstance(batch, dict) or not all(isinstance(v, list) for v in batch.values()):
            raise bad_request("InvalidBatchError",
                              "A batch must be a JSON object mapping collection names to "
                              "lists of events.")
        results = {
            collection: self._insert(call, collection, events,
                                     check_size=body_size > MAX_EVENT_BYTES)
            for collection, events in batch.items()
        }
        return json_response(200, results)

    def _insert(self, call: _Call, collection: str, events: list[Any],
                check_size: bool) -> list[dict[str, Any]]:
        """Store the good events; per-item results in the order given."""
        if len(events) == 1 or _PLACEHOLDER_MARK in call.request.body:
            events = _fill_placeholders(events, {
                "${keen.ip}": call.request.client_address,
                "${keen.user_agent}": call.request.headers.get("user-agent", ""),
            })
        refused: dict[int, dict[str, Any]] = {}
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                refused[index] = _item_error("InvalidEventError", "An event must be a JSON object.")
            elif check_size and _encoded_size(event) > MAX_EVENT_BYTES:
                refused[index] = _item_error("EventTooLargeError",
                                             f"The event is larger than {MAX_EVENT_BYTES} bytes.")
        good = [e for i, e in enumerate(events) if i not in refused] if refused else events
        stored = iter(self.storage.insert_events(
            call.project_id, collection, good, now=call.now, autofill=call.principal.autofill,
        ) if good else [])
        if not refused:
            return list(stored)
        return [refused[i] if i in refused else next(stored) for i in range(len(events))]

    def _collection_or_beacon(self, call: _Call, collection: str) -> Response:
        if "data" not in call.request.query:
            return self._get_collection(call, collection)
        call.principal.require(WRITES)
        event = _beacon_event(call.request.query["data"])
        if call.request.method != "HEAD":  # HEAD is safe: a link checker records nothing
            self._record_one(call, collection, event)
        redirect = call.request.query.get("redirect")
        if redirect:
            return Response(302, headers={"Location": redirect})
        return Response(200, PIXEL_GIF, "image/gif", {"Cache-Control": "no-store"})

    def _list_collections(self, call: _Call) -> Response:
        call.principal.require(SCHEMA)
        return json_response(200, self.storage.collections(call.project_id))

    def _schema(self, call: _Call, collection: str) -> dict[str, Any]:
        call.principal.require(SCHEMA)
        schema = self.storage.collection(call.project_id, collection)
        if schema is None:
            raise not_found(f"Collection {collection!r} not found.")
        return schema

    def _get_collection(self, call: _Call, collection: str) -> Response:
        return json_response(200, self._schema(call, collection))

    def _list_properties(self, call: _Call, collection: str) -> Response:
        schema = self._schema(call, collection)
        return json_response(200, [self._property(call, collection, name, kind)
                                   for name, kind in sorted(schema["properties"].items())])

    def _get_property(self, call: _Call, collection: str, name: str) -> Response:
        properties = self._schema(call, collection)["properties"]
        if name not in properties:
            raise not_found(f"Property {name!r} not found in collection {collection!r}.")
        return json_response(200, self._property(call, collection, name, properties[name]))

    def _delete_property(self, call: _Call, collection: str, name: str) -> Response:
        call.principal.require(ADMIN)
        self._schema(call, collection)  # 404 for an unknown collection
        self.storage.delete_property(call.project_id, collection, name)
        return Response(204)

    @staticmethod
    def _property(call: _Call, collection: str, name: str, kind: str) -> dict[str, str]:
        url = f"{call.base}/events/{quote(collection, safe='')}/properties/{quote(name, safe='')}"
        return {"property_name": name, "type": kind, "url": url}

    def _delete_events(self, call: _Call, collection: str) -> Response:
        call.principal.require(ADMIN)
        params = call.params()
        self.storage.delete_events(
            call.project_id, collection, timeframe=params.get("timeframe"),
            timezone=params.get("timezone"), filters=params.get("filters"), now=call.now,
        )
        return Response(204)

    # --- ad-hoc queries ---------------------------------------------------------------------

    def _query_urls(self, call: _Call) -> Response:
        call.principal.require(QUERIES)
        urls = {f"{name}_url": f"{call.base}/queries/{name}" for name in sorted(ANALYSES)}
        urls["saved_queries_url"] = f"{call.base}/queries/saved"
        return json_response(200, urls)

    def _query(self, call: _Call, analysis: str) -> Response:
        if analysis not in ANALYSES:
            raise not_found(f"Unknown analysis type {analysis!r}; expected one of "
                            f"{', '.join(sorted(ANALYSES))}.")
        call.principal.require(QUERIES)
        if call.request.method == "POST":
            params = _json_body(call.request, "InvalidJSONError")
            if not isinstance(params, dict):
                raise bad_request("InvalidJSONError", "The query body must be a JSON object.")
            declared = params.pop("analysis_type", analysis)
            if declared != analysis:
                raise bad_request("InvalidAnalysisTypeError",
                                  f"analysis_type {declared!r} does not match the URL "
                                  f"({analysis!r}).")
        else:
            params = call.params()
        result = run_query(self.storage, call.project_id, analysis, params, now=call.now,
                                  extra_filters=call.principal.query_filters)
        return json_response(200, result)

    # --- saved and cached queries -----------------------------------------------------------

    def _saved_view(self, call: _Call, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["query_name"]
        query = dict(doc["query"])
        if query.get("analysis_type") != "funnel":
            for key in _SAVED_QUERY_NULL_FIELDS:
                query.setdefault(key, None)
        view = dict(doc, query=query)
        view["urls"] = {"cached_results_url": f"{call.base}/queries/saved/{name}/result"}
        rate = doc["refresh_rate"]
        view["run_information"] = None if not rate else {
            "last_run_date": doc["last_modified_date"],
            "next_run_date": format_timestamp(datetime.fromisoformat(
                doc["last_modified_date"].replace("Z", "+00:00")) + timedelta(seconds=rate)),
        }
        return view

    def _saved_doc(self, call: _Call, name: str) -> dict[str, Any]:
        doc = self.storage.get_doc(call.project_id, SAVED_QUERY_KIND, name)
        if doc is None:
            raise not_found()
        return doc

    def _list_saved_queries(self, call: _Call) -> Response:
        call.principal.require(ADMIN)
        docs = self.storage.list_docs(call.project_id, SAVED_QUERY_KIND)
        return json_response(200, [self._saved_view(call, doc) for doc in docs])

    def _get_saved_query(self, call: _Call, name: str) -> Response:
        call.principal.require(ADMIN)
        return json_response(200, self._saved_view(call, self._saved_doc(call, name)))

    def _put_saved_query(self, call: _Call, name: str) -> Response:
        call.principal.require(ADMIN)
        body = _json_body(call.request, "InvalidJSONError")
        definition = _saved_query_definition(body, name)
        target = definition["query_name"]
        existing = self.storage.get_doc(call.project_id, SAVED_QUERY_KIND, name)
        if target != name:
            if existing is None:
                raise not_found(f"Saved query {name!r} not found: nothing to rename.")
            if self.storage.get_doc(call.project_id, SAVED_QUERY_KIND, target) is not None:
                raise ApiError(409, "DuplicateResourceError",
                               f"A saved query named {target!r} already exists.")
        stamp = format_timestamp(call.now)
        doc = dict(definition, created_date=existing["created_date"] if existing else stamp,
                   last_modified_date=stamp, user_last_modified_date=stamp)
        self.storage.put_doc(call.project_id, SAVED_QUERY_KIND, target, doc)
        if target != name:
            self.storage.delete_doc(call.project_id, SAVED_QUERY_KIND, name)
        return json_response(200 if existing else 201, self._saved_view(call, doc))

    def _delete_saved_query(self, call: _Call, name: str) -> Response:
        call.principal.require(ADMIN)
        if not self.storage.delete_doc(call.project_id, SAVED_QUERY_KIND, name):
            raise not_found()
        return Response(204)

    def _saved_query_result(self, call: _Call, name: str) -> Response:
        if not call.principal.permitted & {SAVED_QUERIES, CACHED_QUERIES}:
            call.principal.require(SAVED_QUERIES)
        doc = self._saved_doc(call, name)
        filters = call.principal.saved_query_filters(name, cached=doc["refresh_rate"] > 0)
        params = dict(doc["query"])
        analysis = params.pop("analysis_type")
        body = run_query(self.storage, call.project_id, analysis, params, now=call.now,
                                extra_filters=filters)
        view = self._saved_view(call, doc)
        view["result"] = body if analysis == "funnel" else body["result"]
        return json_response(200, view)

    # --- cached datasets --------------------------------------------------------------------

    def _dataset_doc(self, call: _Call, name: str) -> dict[str, Any]:
        doc = self.storage.get_doc(call.project_id, DATASET_KIND, name)
        if doc is None:
            raise not_found()
        return doc

    def _list_datasets(self, call: _Call) -> Response:
        call.principal.dataset_index_restriction(None, "list")
        params = call.request.query
        limit = _positive_int(params.get("limit"), "limit", DATASET_PAGE_DEFAULT)
        limit = min(limit, DATASET_PAGE_MAX)
        after = params.get("after_name")
        docs = [doc for doc in self.storage.list_docs(call.project_id, DATASET_KIND)
                if call.principal.dataset_visible(doc["dataset_name"])]
        remaining = [d for d in docs if after is None or d["dataset_name"] > after]
        page = remaining[:limit]
        next_url = None
        if len(remaining) > limit:
            host = call.request.headers.get("host", "127.0.0.1")
            query = urlencode({"limit": limit, "after_name": page[-1]["dataset_name"]})
            next_url = f"http://{host}{call.base}/datasets?{query}"
        return json_response(200, {"datasets": page, "next_page_url": next_url,
                                   "count": len(docs)})

    def _get_dataset(self, call: _Call, name: str) -> Response:
        call.principal.dataset_index_restriction(name, "read")
        return json_response(200, self._dataset_doc(call, name))

    def _put_dataset(self, call: _Call, name: str) -> Response:
        call.principal.require(ADMIN)
        if not _RESOURCE_NAME.match(name):
            raise bad_request("InvalidDatasetError", f"Dataset name {name!r} may contain only "
                              "letters, digits, '-' and '_'.")
        body = _json_body(call.request, "InvalidJSONError")
        definition = _dataset_definition(body, call.project_id, name)
        existing = self.storage.get_doc(call.project_id, DATASET_KIND, name)
        stamp = format_timestamp(call.now)
        doc = dict(definition, last_scheduled_date=stamp, latest_subtimeframe_available=stamp,
                   milliseconds_behind=0)
        self.storage.put_doc(call.project_id, DATASET_KIND, name, doc)
        return json_response(200 if existing else 201, doc)

    def _delete_dataset(self, call: _Call, name: str) -> Response:
        call.principal.require(ADMIN)
        if not self.storage.delete_doc(call.project_id, DATASET_KIND, name):
            raise not_found()
        return Response(204)

    def _dataset_results(self, call: _Call, name: str) -> Response:
        restriction = call.principal.dataset_index_restriction(name, "retrieve")
        doc = self._dataset_doc(call, name)
        params = call.params("index_by")
        raw_index = call.request.query.get("index_by")
        if raw_index is None:
            raise bad_request("InvalidDatasetQueryError", "index_by is required.")
        query = doc.get("query") or {}
        schema = self.storage.collection(call.project_id, str(query.get("event_collection")))
        index = _index_values(doc["index_by"], raw_index,
                              (schema or {}).get("properties", {}))
        for prop, allowed in (restriction or {}).items():
            if not isinstance(allowed, list) or index.get(prop) not in allowed:
                raise ApiError(401, "InvalidApiKeyError",
                               f"This access key may not read index value {index.get(prop)!r}"
                               f" of {prop!r}.")
        result = dataset_results(self.storage, call.project_id, doc, index,
                                        params.get("timeframe"), now=call.now)
        return json_response(200, result)

    # --- access keys ------------------------------------------------------------------------

    def _access_key_doc(self, call: _Call, key: str) -> dict[str, Any]:
        call.principal.require(ADMIN)
        doc = self.storage.get_doc(call.project_id, ACCESS_KEY_KIND, key)
        if doc is None:
            raise not_found()
        return doc

    def _list_access_keys(self, call: _Call) -> Response:
        call.principal.require(ADMIN)
        return json_response(200, self.storage.list_docs(call.project_id, ACCESS_KEY_KIND))

    def _create_access_key(self, call: _Call) -> Response:
        call.principal.require(ADMIN)
        definition = _access_key_definition(_json_body(call.request, "InvalidJSONError"))
        key = secrets.token_hex(32).upper()
        doc = {"key": key, "project_id": call.project_id, **definition}
        self.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
        return json_response(201, doc)

    def _get_access_key(self, call: _Call, key: str) -> Response:
        return json_response(200, self._access_key_doc(call, key))

    def _update_access_key(self, call: _Call, key: str) -> Response:
        doc = self._access_key_doc(call, key)
        doc.update(_access_key_definition(_json_body(call.request, "InvalidJSONError")))
        self.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
        return json_response(200, doc)

    def _set_active(self, call: _Call, key: str, active: bool) -> Response:
        doc = self._access_key_doc(call, key)
        doc["is_active"] = active
        self.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
        return json_response(200, doc)

    def _revoke_access_key(self, call: _Call, key: str) -> Response:
        return self._set_active(call, key, False)

    def _unrevoke_access_key(self, call: _Call, key: str) -> Response:
        return self._set_active(call, key, True)

    def _delete_access_key(self, call: _Call, key: str) -> Response:
        self._access_key_doc(call, key)
        self.storage.delete_doc(call.project_id, ACCESS_KEY_KIND, key)
        return Response(204)


# --- helpers -------------------------------------------------------------------------------


def loggable_path(path: str) -> str:
    """``path`` with access keys (``/keys/<key>``) masked, fit for a log line."""
    return re.sub(r"(/keys/)[^/?]+", r"\1<key>", path)


def _api_key(request: Request) -> str | None:
    return request.headers.get("authorization") or request.query.get("api_key") or None


def _method_not_allowed(allowed: set[str]) -> ApiError:
    methods = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
    return ApiError(405, "MethodNotAllowedError", f"Method not allowed; use {methods}.",
                    headers={"Allow": methods})


def _json_body(request: Request, error_code: str) -> Any:
    if not request.body.strip():
        raise bad_request(error_code, "The request body is empty; a JSON document is required.")
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise bad_request(error_code, f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise bad_request(error_code, "The request body is nested too deeply.") from exc


def _fill_placeholders(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with the string values ``${keen.ip}`` / ``${keen.user_agent}`` replaced."""
    if isinstance(value, str):
        return values.get(value, value)
    if isinstance(value, dict):
        return {k: _fill_placeholders(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_placeholders(v, values) for v in value]
    return value


def _item_error(name: str, description: str) -> dict[str, Any]:
    return {"success": False, "error": {"name": name, "description": description}}


def _encoded_size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, separators=(",", ":")).encode("utf-8"))


def _beacon_event(data: str) -> Any:
    text = data.strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise bad_request("InvalidEventError",
                          "The data parameter must be base64-encoded JSON.") from exc


def _positive_int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise bad_request("InvalidParameterError", f"{name} must be a positive integer.")
    return int(value)


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


def _check_fields(
    body: Any, what: str, allowed: AbstractSet[str],
    ignored: AbstractSet[str] = frozenset(), read_only: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
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


def _query_definition(body: Any, what: str, excluded: Sequence[str] = ()) -> dict[str, Any]:
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
    if "filters" in query:  # refused now rather than failing each time the query runs
        if not isinstance(query["filters"], list):
            raise bad_request(f"Invalid{what}Error", "query.filters must be a list of filters.")
        normalize_filters(query["filters"])
    return query


def _saved_query_definition(body: Any, name: str) -> dict[str, Any]:
    what = "SavedQuery"
    fields = _check_fields(body, what, _SAVED_QUERY_FIELDS, read_only=_SAVED_QUERY_READ_ONLY)
    target = fields.get("query_name") or name
    for candidate in (name, target):
        if not isinstance(candidate, str) or not _RESOURCE_NAME.match(candidate):
            raise bad_request(f"Invalid{what}Error", f"Saved query name {candidate!r} may "
                              "contain only letters, digits, '-' and '_'.")
    rate = fields.get("refresh_rate", 0)
    if (isinstance(rate, bool) or not isinstance(rate, int)
            or (rate != 0 and not MIN_REFRESH_RATE <= rate <= MAX_REFRESH_RATE)):
        raise bad_request(f"Invalid{what}Error",
                          f"refresh_rate must be 0 (not cached) or between {MIN_REFRESH_RATE} "
                          f"and {MAX_REFRESH_RATE} seconds; got {rate!r}.")
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad_request(f"Invalid{what}Error", "metadata must be a JSON object.")
    if "query" not in fields:
        raise bad_request(f"Invalid{what}Error", "query is required.")
    return {"query_name": target, "refresh_rate": rate,
            "query": _query_definition(fields["query"], what), "metadata": metadata}


def _dataset_definition(body: Any, project_id: str, name: str) -> dict[str, Any]:
    what = "Dataset"
    fields = _check_fields(body, what, _DATASET_FIELDS, ignored=_DATASET_READ_ONLY)
    display_name = fields.get("display_name")
    if not isinstance(display_name, str) or not display_name:
        raise bad_request(f"Invalid{what}Error", "display_name is required.")
    index_by = fields.get("index_by")
    if isinstance(index_by, str):
        index_by = [index_by]
    if (not isinstance(index_by, list) or not index_by
            or not all(isinstance(p, str) and p for p in index_by)):
        raise bad_request(f"Invalid{what}Error",
                          "index_by must be a property name or a list of property names.")
    query = _query_definition(fields.get("query"), what, excluded=("funnel", "extraction"))
    missing = [k for k in _DATASET_QUERY_REQUIRED if k not in query]
    if missing:
        raise bad_request(f"Invalid{what}Error",
                          f"query needs {', '.join('query.' + k for k in missing)}.")
    if isinstance(query.get("group_by"), str):
        query["group_by"] = [query["group_by"]]
    query["project_id"] = project_id
    return {"project_id": project_id, "organization_id": "local", "dataset_name": name,
            "display_name": display_name, "query": query, "index_by": index_by}


def _index_values(index_by: list[str], raw: str, types: Mapping[str, str]) -> dict[str, Any]:
    """The requested index as ``{property: value}``, from the ``index_by`` query parameter.

    Several index properties take a JSON object (or a list in ``index_by`` order). One index
    property takes its bare value, as the SDKs send it (``index_by=u-123``; 0.7.0 sends
    non-strings as JSON, ``index_by=3``). A bare value is ambiguous on the wire, so the schema
    decides [INF]: it is read as a number or boolean only where the property holds numbers or
    booleans, and as the text itself otherwise (``[bot]`` and ``"q"`` are user ids too).
    """
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        decoded = raw
    if isinstance(decoded, dict):
        if set(decoded) != set(index_by):
            raise bad_request("InvalidDatasetQueryError",
                              f"index_by must give a value for each of {', '.join(index_by)}.")
        return dict(decoded)
    if len(index_by) != 1:
        if isinstance(decoded, list) and len(decoded) == len(index_by):
            return dict(zip(index_by, decoded))
        raise bad_request("InvalidDatasetQueryError",
                          f"index_by must be a JSON object with {', '.join(index_by)}.")
    prop = index_by[0]
    kind = types.get(prop)
    typed = (kind == "num" and isinstance(decoded, (int, float)) and not isinstance(decoded, bool)
             ) or (kind == "bool" and isinstance(decoded, bool))
    return {prop: decoded if typed else raw}


def _access_key_definition(body: Any) -> dict[str, Any]:
    what = "AccessKey"
    fields = _check_fields(body, what, _ACCESS_KEY_FIELDS, ignored={"key", "project_id"})
    name = fields.get("name")
    if name is not None and not isinstance(name, str):
        raise bad_request(f"Invalid{what}Error", "name must be a string.")
    active = fields.get("is_active", True)
    if not isinstance(active, bool):
        raise bad_request(f"Invalid{what}Error", "is_active must be true or false.")
    permitted = fields.get("permitted", [])
    if (not isinstance(permitted, list)
            or not all(p in ACCESS_KEY_PERMISSIONS for p in permitted)):
        raise bad_request(f"Invalid{what}Error", "permitted must be a list of: "
                          f"{', '.join(ACCESS_KEY_PERMISSIONS)}.")
    options = fields.get("options") or {}
    if not isinstance(options, dict):
        raise bad_request(f"Invalid{what}Error", "options must be a JSON object.")
    unknown = sorted(set(options) - set(_ACCESS_KEY_OPTIONS))
    if unknown:
        raise bad_request(f"Invalid{what}Error", f"Unknown option(s): {', '.join(unknown)}.")
    for section, value in options.items():
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"Invalid{what}Error", f"options.{section} must be an object.")
        types = dict(_ACCESS_KEY_OPTION_TYPES, allowed=dict if section == "datasets" else list)
        for option, kind in types.items():
            if value and value.get(option) is not None and not isinstance(value[option], kind):
                expected = "a list" if kind is list else "an object"
                raise bad_request(f"Invalid{what}Error",
                                  f"options.{section}.{option} must be {expected}.")
        if value and value.get("filters"):  # refused now, not on every query made with the key
            normalize_filters(value["filters"])
    return {"name": name, "is_active": active, "permitted": list(dict.fromkeys(permitted)),
            "options": {section: options.get(section) for section in _ACCESS_KEY_OPTIONS}}


__all__ = [
    "API_VERSION",
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "KeenApp",
    "Request",
    "Response",
    "loggable_path",
]
