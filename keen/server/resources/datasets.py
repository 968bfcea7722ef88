"""Cached datasets: ``/datasets``, ``/datasets/<name>`` and ``/datasets/<name>/results``.

Choices where keen-api.md leaves room [INF]: PUT answers 201 when created, 200 when replaced;
read-only fields of a definition may be sent back and are ignored. Results are computed on
demand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from keen.server._errors import bad_request
from keen.server._http_errors import ApiError
from keen.server.auth import ADMIN
from keen.server.engine import dataset_results
from keen.server.resources._base import (
    RESOURCE_NAME,
    Call,
    Response,
    Route,
    check_fields,
    json_response,
    positive_int,
    query_definition,
)
from keen.server.timeframes import format_timestamp

DATASET_KIND = "dataset"
PAGE_DEFAULT = 10
PAGE_MAX = 100

_FIELDS = {"display_name", "index_by", "query"}
_READ_ONLY = {"project_id", "organization_id", "dataset_name", "last_scheduled_date",
              "latest_subtimeframe_available", "milliseconds_behind"}
_QUERY_REQUIRED = ("analysis_type", "event_collection", "timeframe", "interval")


def list_datasets(call: Call) -> Response:
    call.principal.dataset_index_restriction(None, "list")
    params = call.request.query
    limit = min(positive_int(params.get("limit"), "limit", PAGE_DEFAULT), PAGE_MAX)
    after = params.get("after_name")
    docs = [doc for doc in call.storage.list_docs(call.project_id, DATASET_KIND)
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


def get_dataset(call: Call, name: str) -> Response:
    call.principal.dataset_index_restriction(name, "read")
    return json_response(200, call.stored_doc(DATASET_KIND, name))


def put_dataset(call: Call, name: str) -> Response:
    call.principal.require(ADMIN)
    if not RESOURCE_NAME.match(name):
        raise bad_request("InvalidDatasetError", f"Dataset name {name!r} may contain only "
                          "letters, digits, '-' and '_'.")
    definition = _definition(call.json_body(), call.project_id, name)
    existing = call.storage.get_doc(call.project_id, DATASET_KIND, name)
    stamp = format_timestamp(call.now)
    doc = dict(definition, last_scheduled_date=stamp, latest_subtimeframe_available=stamp,
               milliseconds_behind=0)
    call.storage.put_doc(call.project_id, DATASET_KIND, name, doc)
    return json_response(200 if existing else 201, doc)


def delete_dataset(call: Call, name: str) -> Response:
    call.principal.require(ADMIN)
    return call.delete_stored(DATASET_KIND, name)


def dataset_results_of(call: Call, name: str) -> Response:
    restriction = call.principal.dataset_index_restriction(name, "retrieve")
    doc = call.stored_doc(DATASET_KIND, name)
    params = call.params("index_by")
    raw_index = call.request.query.get("index_by")
    if raw_index is None:
        raise bad_request("InvalidDatasetQueryError", "index_by is required.")
    query = doc.get("query") or {}
    schema = call.storage.collection(call.project_id, str(query.get("event_collection")))
    index = _index_values(doc["index_by"], raw_index, (schema or {}).get("properties", {}))
    for prop, allowed in (restriction or {}).items():
        if not isinstance(allowed, list) or index.get(prop) not in allowed:
            raise ApiError(401, "InvalidApiKeyError",
                           f"This access key may not read index value {index.get(prop)!r}"
                           f" of {prop!r}.")
    result = dataset_results(call.storage, call.project_id, doc, index,
                             params.get("timeframe"), now=call.now, rendered=True)
    return json_response(200, result)


def _definition(body: Any, project_id: str, name: str) -> dict[str, Any]:
    what = "Dataset"
    fields = check_fields(body, what, _FIELDS, ignored=_READ_ONLY)
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
    query = query_definition(fields.get("query"), what, excluded=("funnel", "extraction"))
    missing = [k for k in _QUERY_REQUIRED if k not in query]
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
    except (ValueError, RecursionError):
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


ROUTES: list[Route] = [
    (("datasets",), {"GET": list_datasets}),
    (("datasets", "*"), {"GET": get_dataset, "PUT": put_dataset, "DELETE": delete_dataset}),
    (("datasets", "*", "results"), {"GET": dataset_results_of}),
]
