"""The project document: ``/projects/<id>`` (and each entry of ``/projects``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keen.server.auth import ADMIN
from keen.server.resources._base import API_VERSION, Call, Response, Route, json_response
from keen.server.resources.saved_queries import SAVED_QUERY_KIND

if TYPE_CHECKING:
    from keen.server.engines.base import EventStore as Storage


def project_document(storage: Storage, project_id: str) -> dict[str, Any]:
    base = f"/{API_VERSION}/projects/{project_id}"
    saved = storage.list_docs(project_id, SAVED_QUERY_KIND)
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
                   for c in storage.collections(project_id)],
    }


def project_info(call: Call) -> Response:
    call.principal.require(ADMIN)
    return json_response(200, project_document(call.storage, call.project_id))


ROUTES: list[Route] = [((), {"GET": project_info})]
