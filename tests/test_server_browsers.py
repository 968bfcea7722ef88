"""Web pages the developer visits cannot use the local server (issue 7, section 4): requests are
sent over real sockets with the headers browsers send (see keen/server/_security.py)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from _server_helpers import TIMEOUT, Api, api_fixture, error_of, server_fixture  # noqa: F401

from keen.server import LocalKeenServer
from keen.server._security import BrowserPolicy
from keen.server._wire import WireError

BEACON_DATA = "eyJhIjogMX0="  # {"a": 1}
FOREIGN = "https://evil.example"
IMG_FROM_FOREIGN_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                         "Sec-Fetch-Dest": "image", "Referer": f"{FOREIGN}/page"}


def _cors(origin: str, site: str = "cross-site") -> dict[str, str]:
    return {"Origin": origin, "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "empty"}


def _beacon(api: Api, headers: Mapping[str, str]) -> tuple[int, str | None]:
    response = api.get("/events/c", params={"api_key": api.server.write_key,
                                            "data": BEACON_DATA}, headers=headers)
    code = response.json()["error_code"] if response.status_code >= 400 else None
    return response.status_code, code


def test_an_img_beacon_from_a_foreign_site_is_refused(api: Api) -> None:
    assert _beacon(api, IMG_FROM_FOREIGN_SITE) == (403, "ForbiddenOriginError")
    no_referrer = {k: v for k, v in IMG_FROM_FOREIGN_SITE.items() if k != "Referer"}
    assert _beacon(api, no_referrer) == (403, "ForbiddenOriginError")
    assert api.count("c") == 0


def test_an_img_beacon_from_the_developers_own_pages_is_recorded(api: Api) -> None:
    own = {**IMG_FROM_FOREIGN_SITE, "Referer": "http://localhost:3000/signup"}
    assert _beacon(api, own) == (200, None)  # 127.0.0.1 and localhost are two sites
    same_site = {**IMG_FROM_FOREIGN_SITE, "Sec-Fetch-Site": "same-site"}
    del same_site["Referer"]
    assert _beacon(api, same_site) == (200, None)  # reached by a loopback name
    assert _beacon(api, {}) == (200, None)  # a program: no browser headers
    assert api.count("c") == 3


def test_a_text_plain_form_post_from_a_foreign_site_is_refused(api: Api) -> None:
    """A cross-origin form needs no preflight: it is refused by its Origin."""
    headers = {**_cors(FOREIGN), "Content-Type": "text/plain", "Sec-Fetch-Mode": "navigate",
               "Sec-Fetch-Dest": "document"}
    response = api.post("/events/c", data='{"a": 1}',
                        params={"api_key": api.server.write_key}, headers=headers)
    assert error_of(response) == (403, "ForbiddenOriginError")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert api.count("c") == 0


@pytest.mark.parametrize("origin", [FOREIGN, "null", "http://localhost.evil.example:3000",
                                    "http://127.0.0.1.evil.example"])
def test_reads_from_a_foreign_origin_are_refused_with_guessable_keys(api: Api,
                                                                     origin: str) -> None:
    api.write("c", {"a": 1})
    response = api.get("/queries/count", api.server.read_key,
                       params={"event_collection": "c", "timeframe": "this_10_years"},
                       headers=_cors(origin))
    assert error_of(response) == (403, "ForbiddenOriginError")
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = api.call("OPTIONS", "/queries/count", headers={
        **_cors(origin), "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert error_of(preflight) == (403, "ForbiddenOriginError")
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000",
                                    "http://[::1]:8080", "http://app.localhost:3000"])
def test_the_developers_own_web_app_on_another_loopback_port_works(api: Api,
                                                                  origin: str) -> None:
    preflight = api.call("OPTIONS", "/events/c", headers={
        **_cors(origin), "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
        "Access-Control-Request-Private-Network": "true"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert preflight.headers["Access-Control-Allow-Private-Network"] == "true"
    response = api.post("/events/c", api.server.write_key, body={"a": 1},
                        headers=_cors(origin))
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Vary"] == "Origin"
    assert api.count("c") == 1


def test_a_page_served_by_the_server_itself_is_same_origin(api: Api) -> None:
    own = f"http://127.0.0.1:{api.server.port}"
    response = api.post("/events/c", api.server.write_key, body={"a": 1},
                        headers=_cors(own, "same-origin"))
    assert response.status_code == 201
    response = api.get("/events", api.server.read_key,
                       headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})
    assert response.status_code == 200


def test_dns_rebinding_is_refused_by_the_host_header(api: Api) -> None:
    """evil.example re-pointed at 127.0.0.1: the browser thinks the page is same-origin."""
    host = f"evil.example:{api.server.port}"
    api.write("c", {"a": 1})
    for headers in ({"Host": host},
                    {"Host": host, **_cors(f"http://{host}", "same-origin")}):
        response = api.get("/queries/count", api.server.read_key, headers=headers,
                           params={"event_collection": "c", "timeframe": "this_10_years"})
        assert error_of(response) == (403, "ForbiddenHostError")
    assert error_of(api.get(f"{api.server.url}/_keen/health",
                            headers={"Host": host}))[1] == "ForbiddenHostError"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8765", "127.0.0.1", "[::1]:1",
                                  "10.1.2.3:8765", "app.localhost"])
def test_programs_and_literal_hosts_pass(api: Api, host: str) -> None:
    assert api.get(f"{api.server.url}/_keen/health", headers={"Host": host}).status_code == 200


def test_top_level_navigation_reaches_pages_but_not_the_api(api: Api) -> None:
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                "Sec-Fetch-Dest": "document", "Referer": f"{FOREIGN}/"}
    assert api.get(f"{api.server.url}/", headers=navigate).status_code == 200
    response = api.get("/events/c", params={"api_key": api.server.write_key,
                                            "data": BEACON_DATA}, headers=navigate)
    assert error_of(response) == (403, "ForbiddenOriginError")
    framed = {**navigate, "Sec-Fetch-Dest": "iframe"}
    assert error_of(api.get(f"{api.server.url}/", headers=framed))[0] == 403
    assert api.count("c") == 0


def test_allowed_origins_and_hosts_are_options() -> None:
    with LocalKeenServer(allow_origins=["https://app.example.com"],
                         allow_hosts=["devbox.lan"]) as server:
        api = Api(server)
        response = api.post("/events/c", server.write_key, body={"a": 1},
                            headers=_cors("https://app.example.com"))
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert error_of(api.post("/events/c", server.write_key, body={"a": 1},
                                 headers=_cors(FOREIGN)))[0] == 403
        health = api.get(f"{server.url}/_keen/health", headers={"Host": "devbox.lan:1"})
        assert health.status_code == 200
        api.session.close()
    with LocalKeenServer(allow_origins=["*"]) as server:
        api = Api(server)
        response = api.post("/events/c", server.write_key, body={"a": 1}, headers=_cors(FOREIGN))
        assert response.headers["Access-Control-Allow-Origin"] == FOREIGN
        api.session.close()


@pytest.mark.parametrize("bad", ["evil.example", "ftp://x", "http://x/path", ""])
def test_an_allowed_origin_must_be_an_origin(bad: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        LocalKeenServer(allow_origins=[bad])


@pytest.mark.parametrize(("host", "exposed"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
    ("192.168.1.5", False), ("::", False),
])
def test_faults_are_exposed_only_on_loopback_by_default(host: str, exposed: bool) -> None:
    assert BrowserPolicy.create(host).faults_exposed is exposed
    assert BrowserPolicy.create(host, expose_faults=True).faults_exposed is True


@pytest.mark.parametrize("host", ["[::1", "a:b:c", "x:port", "x:123456", "[zz]:1"])
def test_a_malformed_host_header_is_400(host: str) -> None:
    with pytest.raises(WireError) as raised:
        BrowserPolicy.create("127.0.0.1").check("GET", "/", {"host": host})
    assert raised.value.status == 400


def test_a_refused_origin_is_answered_before_the_body_is_sent(server: LocalKeenServer) -> None:
    """A 50 MB upload announced by a foreign page is refused at once; no byte of it is read."""
    import socket

    head = (f"POST /3.0/projects/{server.project_id}/events/c HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nOrigin: {FOREIGN}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 50000000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 403 ") and b"ForbiddenOriginError" in answer
