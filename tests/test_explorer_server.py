"""The Explorer page as HTTP: who gets the page, who gets the API's JSON, and the security
headers and refusals that keep other web pages from reading it (no browser needed)."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

import pytest
import requests
from _server_helpers import REPO, TIMEOUT, ServerProcess, server_fixture  # noqa: F401

from keen.server import LocalKeenServer

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ROOT_JSON = [{"is_public": True, "url": "/3.0", "version": "3.0"}]


def get(server: LocalKeenServer, path: str = "/", **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=TIMEOUT)


def page_config(text: str) -> dict[str, Any]:
    match = re.search(r'<meta name="keen-explorer" content="([^"]*)">', text)
    assert match, text[:500]
    config: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return config


def test_api_clients_keep_the_root_json(server: LocalKeenServer) -> None:
    for accept in (None, "*/*", "application/json"):
        response = requests.get(server.url + "/", timeout=TIMEOUT,
                                headers={"Accept": accept} if accept else {})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == ROOT_JSON


def test_a_browser_gets_the_page_with_strict_security_headers(server: LocalKeenServer) -> None:
    response = get(server, Accept=BROWSER_ACCEPT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"  # it holds keys
    assert response.headers["Vary"] == "Accept"
    # No inline script: every <script> names a same-origin file; nothing from another site.
    scripts = re.findall(r"<script[^>]*>", response.text)
    assert scripts == ['<script src="/_keen/explorer/explorer.js" defer>']
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)
    config = page_config(response.text)
    assert config["projects"] == [{"id": server.project_id, "read_key": server.read_key,
                                   "master_key": server.master_key}]


def test_keys_with_markup_characters_reach_the_page_intact() -> None:
    key = 'r"<k>&\'</script>'
    with LocalKeenServer(read_key=key) as server:
        response = get(server, Accept=BROWSER_ACCEPT)
        assert "</script>" not in response.text.split("<body>")[0].replace(
            '<script src="/_keen/explorer/explorer.js" defer></script>', "")
        assert page_config(response.text)["projects"][0]["read_key"] == key


def test_head_answers_the_page_headers_without_a_body(server: LocalKeenServer) -> None:
    response = requests.head(server.url + "/", headers={"Accept": "text/html"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.content == b""


@pytest.mark.parametrize(("name", "content_type"), [
    ("explorer.js", "text/javascript; charset=utf-8"),
    ("explorer.css", "text/css; charset=utf-8"),
])
def test_the_page_files_are_served_same_origin(server: LocalKeenServer, name: str,
                                               content_type: str) -> None:
    response = get(server, f"/_keen/explorer/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response.content == resources.files("keen.server.explorer").joinpath(name).read_bytes()


def test_unknown_files_and_other_methods_are_refused(server: LocalKeenServer) -> None:
    for path in ("/_keen/explorer/../__init__.py", "/_keen/explorer/index.html",
                 "/_keen/explorer/%2e%2e/app.py", "/_keen/explorer/"):
        response = get(server, path)
        assert response.status_code == 404, path
        assert response.json()["error_code"] == "ResourceNotFoundError"
    response = requests.post(server.url + "/_keen/explorer/explorer.js", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io",
                                  "localhost.evil.example"])
def test_a_rebound_domain_name_never_gets_the_page(server: LocalKeenServer, host: str) -> None:
    """DNS rebinding: another site's name pointed at 127.0.0.1 makes the browser send that
    name as Host; the server's browser policy refuses it before the page (which holds the
    keys) is made."""
    response = get(server, Accept=BROWSER_ACCEPT, Host=host)
    assert response.status_code == 403
    assert response.json()["error_code"] == "ForbiddenHostError"
    assert server.read_key not in response.text
    assert get(server, "/_keen/explorer/explorer.js", Host=host).status_code == 403


@pytest.mark.parametrize("host", ["localhost", "app.localhost", "127.0.0.1", "[::1]", "10.1.2.3"])
def test_local_names_and_ip_addresses_get_the_page(server: LocalKeenServer, host: str) -> None:
    response = get(server, Accept=BROWSER_ACCEPT, Host=f"{host}:{server.port}")
    assert response.status_code == 200


@pytest.mark.parametrize(("site", "mode", "dest", "status"), [
    ("cross-site", "cors", "empty", 403),      # fetch() from another site
    ("same-site", "no-cors", "script", 403),    # <script src> from another port of 127.0.0.1
    ("cross-site", "navigate", "iframe", 403),  # framed by another site
    ("cross-site", "navigate", "document", 200),  # a link from elsewhere: opens, unreadable
    ("same-origin", "cors", "empty", 200),
    ("none", "navigate", "document", 200),      # typed into the address bar
])
def test_other_sites_may_not_read_the_page(server: LocalKeenServer, site: str, mode: str,
                                           dest: str, status: int) -> None:
    response = get(server, Accept=BROWSER_ACCEPT, **{"Sec-Fetch-Site": site,
                                                     "Sec-Fetch-Mode": mode,
                                                     "Sec-Fetch-Dest": dest})
    assert response.status_code == status
    assert (server.read_key in response.text) == (status == 200)


def test_a_foreign_origin_header_is_refused(server: LocalKeenServer) -> None:
    foreign = get(server, Accept=BROWSER_ACCEPT, Origin="http://evil.example")
    assert foreign.status_code == 403
    other_port = get(server, Accept=BROWSER_ACCEPT, Origin="http://127.0.0.1:1")
    assert other_port.status_code == 403
    own = get(server, Accept=BROWSER_ACCEPT, Origin=f"http://127.0.0.1:{server.port}")
    assert own.status_code == 200


def test_every_file_of_the_page_is_package_data() -> None:
    """A file added to keen/server/explorer but not to pyproject's package data would be
    missing from an installed (non-editable) package."""
    text = (REPO / "pyproject.toml").read_text()
    line = re.search(r'^"keen\.server\.explorer" = (\[.*\])$', text, re.MULTILINE)
    assert line, "no package data for keen.server.explorer in pyproject.toml"
    declared = set(json.loads(line.group(1)))
    folder = REPO / "keen" / "server" / "explorer"
    files = {p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".py"}
    assert files == declared
    assert re.search(r"^browser = \[", text, re.MULTILINE)  # the browser tests' extra


def test_the_banner_prints_the_explorer_url_which_serves_the_page() -> None:
    server = ServerProcess()
    try:
        lines = server.read_banner()
        explorer = [line for line in lines if line.startswith("Explorer")]
        assert explorer == [f"Explorer (open in a browser): {server.url}/"]
        url = explorer[0].split(": ", 1)[1]
        response = requests.get(url, headers={"Accept": BROWSER_ACCEPT}, timeout=TIMEOUT)
        assert response.status_code == 200
        assert "<title>Keen Explorer</title>" in response.text
    finally:
        assert server.stop()[0] == 0


def test_the_page_leaves_no_key_in_the_server_log(server: LocalKeenServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="keen.server")
    assert get(server, Accept=BROWSER_ACCEPT).status_code == 200
    assert get(server, Accept=BROWSER_ACCEPT, Host="evil.example").status_code == 403
    assert caplog.records
    for key in (server.read_key, server.master_key):
        assert key is not None and key not in caplog.text

