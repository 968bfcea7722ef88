"""The Explorer page of the local server: a query builder and chart in the browser.

``GET /`` with ``text/html`` in the ``Accept`` header (what a browser sends when it opens the
URL) answers the page; any other ``GET /`` (``requests``, ``curl``: ``*/*`` or JSON) keeps the
Keen API's root JSON, so API clients see no change. The page's script and style sheet are served
from ``/_keen/explorer/explorer.js`` and ``/_keen/explorer/explorer.css`` (files of this
package: nothing is loaded from another site, the page works with no network).

The page talks to the API of this server with the project's keys, which it receives in the HTML
(``<meta name="keen-explorer">``): the read key for schemas, queries and results, the master
key only to list saved queries (that listing is master-only in the API). It sends them in the
``Authorization`` header, never in a URL; the snippets it shows use ``$KEEN_READ_KEY`` etc.

Security choices (the data must not become readable by other web pages):

* The server's browser policy (``keen.server._security``) applies to the page as to the API:
  a ``Host`` that is not an IP address, ``localhost`` or an allowed name is refused before the
  request reaches here (DNS rebinding). The page holds keys, so on top of that policy its
  answers are refused (403 ``ExplorerRequestRefusedError``) when the browser says the request
  comes from another site, even a loopback one, and is not a top-level navigation
  (``Sec-Fetch-Site``/``Sec-Fetch-Mode``), or when an ``Origin`` header names any origin but
  the server's own (the API also serves the developer's loopback origins; the page does not).
* Every Explorer answer carries a strict ``Content-Security-Policy`` (scripts, styles and
  requests only from this origin, no inline script, ``frame-ancestors 'none'``),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and ``Cross-Origin-Resource-Policy: same-origin``; the page (it holds keys) is
  ``Cache-Control: no-store`` and ``Vary: Accept``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from keen.server._http_errors import ApiError, not_found
from keen.server.config import ProjectConfig
from keen.server.resources._base import API_VERSION, Request, Response

ASSET_PREFIX = ("_keen", "explorer")
ASSETS = {
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
REFUSED = "ExplorerRequestRefusedError"


def wants_page(request: Request) -> bool:
    """True when the request asks for HTML (a browser opening the URL)."""
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
               for part in accept.split(","))


def answer(segments: list[str], request: Request,
           projects: Iterable[ProjectConfig]) -> Response | None:
    """The Explorer's answer to ``segments`` (the decoded path), or None when the request is
    not the Explorer's (the API answers it)."""
    method = "GET" if request.method == "HEAD" else request.method
    if not segments and method == "GET" and wants_page(request):
        _check_origin(request)
        return _page(list(projects))
    if tuple(segments[:2]) != ASSET_PREFIX:
        return None
    name = "/".join(segments[2:])
    if name not in ASSETS:
        raise not_found()
    if method != "GET":
        raise ApiError(405, "MethodNotAllowedError", "Method not allowed; use GET, HEAD.",
                       headers={"Allow": "GET, HEAD"})
    _check_origin(request)
    return Response(200, _read(name), ASSETS[name],
                    {**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def _check_origin(request: Request) -> None:
    """Stricter than the server's browser policy, which has already checked ``Host``: only the
    server's own origin, or a top-level navigation, may have the page (it holds keys)."""
    host = request.headers.get("host", "")
    site = request.headers.get("sec-fetch-site", "").lower()
    mode = request.headers.get("sec-fetch-mode", "").lower()
    dest = request.headers.get("sec-fetch-dest", "").lower()
    if site in ("cross-site", "same-site") and not (mode == "navigate" and dest == "document"):
        raise ApiError(403, REFUSED, "The Explorer may not be read by another site.")
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        raise ApiError(403, REFUSED, "The Explorer may not be read by another site.")


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def _page(projects: list[ProjectConfig]) -> Response:
    config: dict[str, Any] = {
        "api": f"/{API_VERSION}",
        "projects": [{"id": p.project_id, "read_key": p.read_key or p.master_key,
                      "master_key": p.master_key} for p in projects],
    }
    text = _read("index.html").decode("utf-8")
    body = text.replace("{{config}}", html.escape(json.dumps(config), quote=True))
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept"}
    return Response(200, body.encode("utf-8"), "text/html; charset=utf-8", headers)


__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "answer", "wants_page"]
