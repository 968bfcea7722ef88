"""Ad-hoc queries: ``/queries/<analysis>`` by GET (query string) or POST (JSON body).

Choices where keen-api.md leaves room [INF]: an unknown analysis is a 404 (no such resource);
a POST body's ``analysis_type`` must match the path if given (400 otherwise); a query parameter
given twice in the query string is a 400 (``Call.params``).
"""

from __future__ import annotations

from keen.server._errors import bad_request
from keen.server._http_errors import not_found
from keen.server.auth import QUERIES
from keen.server.engine import ANALYSES, run_query
from keen.server.resources._base import Call, Response, Route, json_response


def query_urls(call: Call) -> Response:
    call.principal.require(QUERIES)
    urls = {f"{name}_url": f"{call.base}/queries/{name}" for name in sorted(ANALYSES)}
    urls["saved_queries_url"] = f"{call.base}/queries/saved"
    return json_response(200, urls)


def query(call: Call, analysis: str) -> Response:
    if analysis not in ANALYSES:
        raise not_found(f"Unknown analysis type {analysis!r}; expected one of "
                        f"{', '.join(sorted(ANALYSES))}.")
    call.principal.require(QUERIES)
    if call.request.method == "POST":
        params = call.json_body()
        if not isinstance(params, dict):
            raise bad_request("InvalidJSONError", "The query body must be a JSON object.")
        declared = params.pop("analysis_type", analysis)
        if declared != analysis:
            raise bad_request("InvalidAnalysisTypeError",
                              f"analysis_type {declared!r} does not match the URL "
                              f"({analysis!r}).")
    else:
        params = call.params()
    result = run_query(call.storage, call.project_id, analysis, params, now=call.now,
                       extra_filters=call.principal.query_filters, rendered=True)
    return json_response(200, result)


ROUTES: list[Route] = [
    (("queries",), {"GET": query_urls}),
    (("queries", "*"), {"GET": query, "POST": query}),
]
