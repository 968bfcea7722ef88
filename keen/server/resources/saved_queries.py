"""Saved (and cached) queries: ``/queries/saved/<name>`` and its ``/result``.

Choices where keen-api.md leaves room [INF]: ``null`` query fields in a PUT are dropped (the GET
of a definition shows ``group_by``, ``interval`` and ``timezone`` as ``null`` when unset);
read-only fields (``urls``, ``created_date``, ``last_modified_date``, ``user_last_modified_date``,
``run_information``, ``result``) and unknown fields are a 400. ``refresh_rate`` must be 0 or
14400-172800. Renaming (``query_name`` differing from the path) onto an existing name is a 409.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from keen.server._errors import bad_request
from keen.server._http_errors import ApiError, not_found
from keen.server.auth import ADMIN, CACHED_QUERIES, SAVED_QUERIES
from keen.server.engine import run_query
from keen.server.resources._base import (
    RESOURCE_NAME,
    Call,
    Response,
    Route,
    check_fields,
    json_response,
    query_definition,
)
from keen.server.timeframes import format_timestamp

SAVED_QUERY_KIND = "saved_query"
MIN_REFRESH_RATE = 14_400
MAX_REFRESH_RATE = 172_800

_FIELDS = {"query_name", "refresh_rate", "query", "metadata"}
_READ_ONLY = {"urls", "created_date", "last_modified_date", "user_last_modified_date",
              "run_information", "result"}
_NULL_FIELDS = ("group_by", "interval", "timezone")


def _view(call: Call, doc: dict[str, Any]) -> dict[str, Any]:
    name = doc["query_name"]
    query = dict(doc["query"])
    if query.get("analysis_type") != "funnel":
        for key in _NULL_FIELDS:
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


def list_saved_queries(call: Call) -> Response:
    call.principal.require(ADMIN)
    docs = call.storage.list_docs(call.project_id, SAVED_QUERY_KIND)
    return json_response(200, [_view(call, doc) for doc in docs])


def get_saved_query(call: Call, name: str) -> Response:
    call.principal.require(ADMIN)
    return json_response(200, _view(call, call.stored_doc(SAVED_QUERY_KIND, name)))


def put_saved_query(call: Call, name: str) -> Response:
    call.principal.require(ADMIN)
    definition = _definition(call.json_body(), name)
    target = definition["query_name"]
    existing = call.storage.get_doc(call.project_id, SAVED_QUERY_KIND, name)
    if target != name:
        if existing is None:
            raise not_found(f"Saved query {name!r} not found: nothing to rename.")
        if call.storage.get_doc(call.project_id, SAVED_QUERY_KIND, target) is not None:
            raise ApiError(409, "DuplicateResourceError",
                           f"A saved query named {target!r} already exists.")
    stamp = format_timestamp(call.now)
    doc = dict(definition, created_date=existing["created_date"] if existing else stamp,
               last_modified_date=stamp, user_last_modified_date=stamp)
    call.storage.put_doc(call.project_id, SAVED_QUERY_KIND, target, doc)
    if target != name:
        call.storage.delete_doc(call.project_id, SAVED_QUERY_KIND, name)
    return json_response(200 if existing else 201, _view(call, doc))


def delete_saved_query(call: Call, name: str) -> Response:
    call.principal.require(ADMIN)
    return call.delete_stored(SAVED_QUERY_KIND, name)


def saved_query_result(call: Call, name: str) -> Response:
    if not call.principal.permitted & {SAVED_QUERIES, CACHED_QUERIES}:
        call.principal.require(SAVED_QUERIES)
    doc = call.stored_doc(SAVED_QUERY_KIND, name)
    filters = call.principal.saved_query_filters(name, cached=doc["refresh_rate"] > 0)
    params = dict(doc["query"])
    analysis = params.pop("analysis_type")
    body = run_query(call.storage, call.project_id, analysis, params, now=call.now,
                     extra_filters=filters, rendered=True)
    view = _view(call, doc)
    view["result"] = body if analysis == "funnel" else body["result"]
    return json_response(200, view)


def _definition(body: Any, name: str) -> dict[str, Any]:
    what = "SavedQuery"
    fields = check_fields(body, what, _FIELDS, read_only=_READ_ONLY)
    target = fields.get("query_name") or name
    for candidate in (name, target):
        if not isinstance(candidate, str) or not RESOURCE_NAME.match(candidate):
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
            "query": query_definition(fields["query"], what), "metadata": metadata}


ROUTES: list[Route] = [
    (("queries", "saved"), {"GET": list_saved_queries}),
    (("queries", "saved", "*"), {"GET": get_saved_query, "PUT": put_saved_query,
                                 "DELETE": delete_saved_query}),
    (("queries", "saved", "*", "result"), {"GET": saved_query_result}),
]
