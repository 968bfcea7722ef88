"""The local server's HTTP layer over real sockets: keep-alive without stalls, strict framing
(RFC 9112) with bounded reads, timeouts, the connection bound, the backlog, the health check and
response splitting (issue 7, sections 1, 4 and 5)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _server_helpers import TIMEOUT, Api, api_fixture, error_of, server_fixture  # noqa: F401
from hypothesis import given
from hypothesis import strategies as st

from keen.server import LocalKeenServer, _http_server
from keen.server._http_server import _connection_bound, _header_value
from keen.server._wire import Head, Limits, Reader, WireError, body_length, read_body


def _connect(server: LocalKeenServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def _read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _exchange(server: LocalKeenServer, data: bytes) -> bytes:
    """Send ``data`` (without closing our side); everything answered until the server closes."""
    with _connect(server) as sock:
        sock.sendall(data)
        return _read_until_closed(sock)


def _statuses(answer: bytes) -> list[int]:
    """The status of every answer in ``answer`` (bodies here never hold a status line)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", answer)]


def _error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    return int(head.split(b" ")[1]), json.loads(body)["error_code"]


def _post(server: LocalKeenServer, framing: str, body: bytes = b"") -> bytes:
    """A keyless POST to an event collection with the given framing headers."""
    return (f"POST /3.0/projects/{server.project_id}/events/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"{framing}\r\n").encode() + body


# --- 1. keep-alive -------------------------------------------------------------------------


def test_an_answer_is_written_in_one_piece_on_a_no_delay_socket(server: LocalKeenServer) -> None:
    """Headers then body in two small writes stall a kept-alive client ~40 ms (Nagle against
    delayed ACK): the whole answer arrives in the first read."""
    request = (b"GET /3.0/projects/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: %s\r\n\r\n") % (server.project_id.encode(),
                                                 str(server.read_key).encode())
    with _connect(server) as sock:
        for _ in range(3):  # the same kept-alive connection
            sock.sendall(request)
            first = sock.recv(65536)
            head, _, body = first.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert length > 0 and len(body) == length, first
        assert server._server is not None
        (connection,) = server._server._connections
        assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_http_1_0_keep_alive_is_honoured(server: LocalKeenServer) -> None:
    with _connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /_keen/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in answer
        sock.sendall(b"GET /_keen/health HTTP/1.0\r\n\r\n")  # no keep-alive: closed after
        assert _statuses(_read_until_closed(sock)) == [200]


def test_pipelined_requests_are_answered_in_order(server: LocalKeenServer) -> None:
    """Strict framing keeps what follows a well-framed body for the next request."""
    body = b'{"a": 1}'
    first = (f"POST /3.0/projects/{server.project_id}/events/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             f"Authorization: {server.write_key}\r\nContent-Length: {len(body)}\r\n\r\n"
             ).encode() + body
    second = b"GET /_keen/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert _statuses(_exchange(server, first + second)) == [201, 200]


# --- 4. framing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("framing", "status"), [
    ("Content-Length: -1\r\n", 400),
    ("Content-Length: +9\r\n", 400),
    ("Content-Length: 1_0\r\n", 400),
    ("Content-Length: 0x10\r\n", 400),
    ("Content-Length: \u0663\r\n", 400),  # a non-ASCII digit int() would take
    ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    ("Content-Length: 5, 6\r\n", 400),
    ("Content-Length: 99999999999999999999999999999999\r\n", 413),
    ("Content-Length: 50000000\r\n", 413),
    ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
    ("Transfer-Encoding: gzip\r\n", 501),
    ("Transfer-Encoding: gzip, chunked\r\n", 501),
    ("Transfer-Encoding: chunked, chunked\r\n", 400),
    ("Expect: teapot\r\n", 417),
])
def test_bad_framing_is_refused_before_the_body_and_the_key(
    server: LocalKeenServer, framing: str, status: int
) -> None:
    """No key is sent: the framing is judged first. Whatever follows the head is never read
    as a second request (``Content-Length: -1`` once served the body as one)."""
    smuggled = b"GET /_keen/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = _exchange(server, _post(server, framing.encode("utf-8").decode("latin-1"),
                                     b"hello" + smuggled))
    assert _statuses(answer) == [status]
    assert _error(answer)[0] == status


@pytest.mark.parametrize("chunks", [
    b"-5\r\nhello\r\n0\r\n\r\n",  # negative size
    b"zz\r\nhello\r\n0\r\n\r\n",  # not hex
    b"\r\nhello\r\n0\r\n\r\n",  # empty size
    b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF
    b" 5\r\nhello\r\n0\r\n\r\n",  # space before the size
])
def test_malformed_chunks_are_refused(server: LocalKeenServer, chunks: bytes) -> None:
    answer = _exchange(server, _post(server, "Transfer-Encoding: chunked\r\n", chunks))
    assert _error(answer) == (400, "InvalidRequestError")


def test_an_endless_chunk_size_line_is_refused_without_waiting_for_its_end(
    server: LocalKeenServer,
) -> None:
    with _connect(server) as sock:
        sock.sendall(_post(server, "Transfer-Encoding: chunked\r\n", b"1" * 200_000))
        answer = _read_until_closed(sock)  # while we have not finished the line
    assert _error(answer) == (400, "InvalidRequestError")


def test_a_chunked_body_over_the_limit_is_413_before_it_is_read() -> None:
    with LocalKeenServer(limits=Limits(max_body=1000)) as server:
        chunks = b"400\r\n" + b"x" * 1024 + b"\r\n" + b"fffffffffff\r\n"
        answer = _exchange(server, _post(server, "Transfer-Encoding: chunked\r\n", chunks))
        assert _error(answer) == (413, "RequestEntityTooLargeError")
        answer = _exchange(server, _post(server, "Transfer-Encoding: chunked\r\n",
                                         b"fffffffffffffffffffffffff\r\n"))
        assert _error(answer) == (413, "RequestEntityTooLargeError")


def test_chunked_body_with_extensions_and_trailers_is_read(api: Api) -> None:
    server = api.server
    event = b'{"plan": "pro"}'
    chunks = (b"%x;ext=1\r\n%s\r\n0\r\nX-Checksum: abc\r\n\r\n" % (len(event), event))
    head = (f"POST /3.0/projects/{server.project_id}/events/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {server.write_key}\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    with _connect(server) as sock:
        sock.sendall(head + chunks)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")
    assert api.count("c") == 1


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "RequestURITooLongError"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 40_000 + b"\r\n\r\n", 431,
     "RequestHeaderFieldsTooLargeError"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-A: " + b"a" * 3_000 + b"\r\n") * 30
     + b"\r\n", 431, "RequestHeaderFieldsTooLargeError"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-H: 1\r\n" * 101 + b"\r\n", 431,
     "RequestHeaderFieldsTooLargeError"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "InvalidRequestError"),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET / HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET  / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET / HTTP/1.1 \r\nHost: 127.0.0.1\r\n\r\n", 400, "InvalidRequestError"),
    (b"BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "NotImplementedError"),
    (b"GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505, "HTTPVersionNotSupportedError"),
    (b"GET * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "InvalidRequestError"),
    (b"GET ftp://x/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "InvalidRequestError"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "InvalidRequestError"),
])
def test_request_heads_are_parsed_strictly_and_bounded(
    server: LocalKeenServer, data: bytes, status: int, code: str
) -> None:
    assert _error(_exchange(server, data)) == (status, code)


def test_an_absolute_form_target_is_served(server: LocalKeenServer) -> None:
    answer = _exchange(server, b"GET http://127.0.0.1/_keen/health HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert _statuses(answer) == [200]


def _head(*fields: tuple[str, str], version: tuple[int, int] = (1, 1)) -> Head:
    return Head("POST", "/", version, list(fields))


_LENGTH_TEXT = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.text(alphabet="0123456789+-_ x\u0663", min_size=0, max_size=8),
)


@given(st.lists(_LENGTH_TEXT, min_size=1, max_size=3))
def test_content_length_matches_a_brute_force_reference(values: list[str]) -> None:
    """Accepted exactly when every member is ASCII digits and all members agree."""
    members = [member.strip(" \t") for value in values for member in value.split(",")]
    valid = all(m and all(c in "0123456789" for c in m) for m in members)
    expected = int(members[0]) if valid and len({int(m) for m in members}) == 1 else None
    limits = Limits(max_body=10**9)
    head = _head(*[("content-length", v.strip(" \t")) for v in values])
    if expected is None:
        with pytest.raises(WireError) as raised:
            body_length(head, limits)
        assert raised.value.status == 400
    else:
        assert body_length(head, limits) == expected


# --- 4. response splitting -----------------------------------------------------------------


@pytest.mark.parametrize("redirect", ["https://example.com/\r\nSet-Cookie: a=b",
                                      "https://example.com/\nX: y", "https://e.com/\x00"])
def test_a_beacon_redirect_with_control_characters_is_refused(api: Api, redirect: str) -> None:
    response = api.get("/events/c", api.server.write_key,
                       params={"data": "eyJhIjogMX0=", "redirect": redirect},
                       allow_redirects=False)
    assert error_of(response) == (400, "InvalidParameterError")
    assert "Set-Cookie" not in response.headers and "X" not in response.headers
    assert api.count("c") == 0  # refused before anything is recorded


def test_a_beacon_redirect_beyond_ascii_is_percent_encoded(api: Api) -> None:
    response = api.get("/events/c", api.server.write_key,
                       params={"data": "eyJhIjogMX0=", "redirect": "https://e.com/caf\u00e9"},
                       allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://e.com/caf%C3%A9"
    assert api.count("c") == 1


@given(st.text(max_size=20))
def test_no_header_value_ever_carries_a_control_character(value: str) -> None:
    try:
        written = _header_value("Location", value)
    except ValueError:
        assert any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value)
    else:
        assert written.isascii()
        assert not any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in written)


# --- 5. timeouts, the connection bound, the backlog, the health check ----------------------


@pytest.fixture(name="quick")
def quick_fixture() -> Iterator[LocalKeenServer]:
    limits = Limits(idle_timeout=0.3, header_timeout=0.3, body_timeout=0.3, max_connections=4)
    with LocalKeenServer(limits=limits) as running:
        yield running


def test_an_idle_connection_is_closed(quick: LocalKeenServer) -> None:
    with _connect(quick) as sock:
        assert sock.recv(1024) == b""  # closed by the server, without an answer


@pytest.mark.parametrize("partial", [
    b"GET /_keen/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # head never finished
    b"POST /_keen/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n{",
])
def test_a_half_sent_request_is_answered_408(quick: LocalKeenServer, partial: bytes) -> None:
    assert _error(_exchange(quick, partial)) == (408, "RequestTimeoutError")


_HEALTH = b"GET /_keen/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(name="bounded")
def bounded_fixture() -> Iterator[LocalKeenServer]:
    """At most 4 connections; timeouts long enough never to close one during a test."""
    with LocalKeenServer(limits=Limits(max_connections=4)) as running:
        yield running


def _served(sock: socket.socket) -> bool:
    """One request answered on a kept-alive connection (not the health check, which is
    answered beyond the bound too)."""
    sock.sendall(b"GET /3.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def _idle(server: LocalKeenServer, count: int) -> bool:
    """Wait until ``count`` connections of ``server`` are idle between requests."""
    assert server._server is not None
    return server._server.wait_for_idle(count, TIMEOUT)


def test_idle_connections_are_closed_longest_idle_first_to_admit_new_ones(
    bounded: LocalKeenServer,
) -> None:
    """Four kept-alive connections, idle after one request each, fill the bound: each new
    connection is admitted by closing the one idle longest, whose client reads a clean end
    of stream (no answer, no reset); a connection used again is no longer the oldest."""
    held: list[socket.socket] = []
    try:
        for count in range(1, 5):
            held.append(_connect(bounded))
            assert _served(held[-1]) and _idle(bounded, count)
        assert _served(held[0]) and _idle(bounded, 4)  # held[0] is now the latest used
        newcomer = _connect(bounded)
        held.append(newcomer)
        assert _served(newcomer)  # admitted
        assert held[1].recv(65536) == b""  # closed cleanly, nothing of an answer
        assert _idle(bounded, 4)
        held.append(_connect(bounded))
        assert _served(held[-1])
        assert held[2].recv(65536) == b""
        for sock in (held[0], held[3], newcomer):  # the others are still served
            assert _served(sock)
    finally:
        for sock in held:
            sock.close()


def test_connections_mid_request_are_never_closed_beyond_the_bound_they_get_503(
    bounded: LocalKeenServer,
) -> None:
    """Two connections with half a request head, two with a query waiting for the storage:
    a connection beyond the bound closes none of them (503 with Retry-After, the health check
    still answered); each then gets its whole answer."""
    query = (f"GET /3.0/projects/{bounded.project_id}/queries/count?event_collection=c"
             f"&timeframe=this_1_days HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             f"Authorization: {bounded.read_key}\r\n\r\n").encode()
    busy: list[socket.socket] = []
    storage: Any = bounded.storage
    try:
        with storage._lock:  # queries wait for the storage
            for count in range(1, 5):
                busy.append(_connect(bounded))
                assert _idle(bounded, 1)  # its thread waits for a request
                busy[-1].sendall(b"GET /3.0 HTTP/1.1\r\n" if count <= 2 else query)
                assert _idle(bounded, 0)  # its request began: busy
            answer = _exchange(bounded, _post(bounded, "Content-Length: 2\r\n", b"{}"))
            assert _error(answer) == (503, "ServiceUnavailableError")
            assert b"Retry-After: 1" in answer
            answer = _exchange(bounded, _HEALTH)  # the health check is answered even now
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"ok":true' in answer
            for sock in busy[:2]:
                sock.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
                assert _statuses(_read_until_closed(sock)) == [200]
        for sock in busy[2:]:
            head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body) == {"result": 0}
    finally:
        for sock in busy:
            sock.close()


def test_300_simultaneous_clients_are_all_answered(server: LocalKeenServer) -> None:
    """Every client connects before any sends (a backlog of 5 reset some of them)."""
    n = 300
    request = (f"POST /3.0/projects/{server.project_id}/events/c HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nAuthorization: {server.write_key}\r\n"
               "Content-Length: 8\r\nConnection: close\r\n\r\n{\"a\": 1}").encode()
    connected = threading.Barrier(n, timeout=TIMEOUT * 3)
    statuses: list[int | str] = []

    def client() -> None:
        try:
            with _connect(server) as sock:
                connected.wait()
                sock.sendall(request)
                statuses.append(_statuses(_read_until_closed(sock))[0])
        except (OSError, threading.BrokenBarrierError, IndexError) as exc:
            statuses.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert statuses == [201] * n
    assert server.storage.count_events(server.project_id, "c") == n


def test_the_health_check_answers_while_a_query_waits_for_the_storage(api: Api) -> None:
    server = api.server
    with server.storage._lock:  # a query (or a long write) holds the storage
        waiting = threading.Thread(target=lambda: api.count("c"))
        waiting.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"GET /_keen/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert waiting.is_alive()  # the query was indeed held up
    waiting.join(TIMEOUT)


def test_half_sent_requests_do_not_hold_up_legitimate_ones(quick: LocalKeenServer) -> None:
    """Beyond the bound a request is answered 503 at once, not queued behind the slow ones;
    once their heads time out (408), requests are served again."""
    assert quick._server is not None
    slow = [_connect(quick) for _ in range(4)]
    try:
        assert _idle(quick, 4)
        for sock in slow:
            sock.sendall(b"POST /3.0/projects/x/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _idle(quick, 0)  # all four are mid-request: none may be closed for a newcomer
        answer = _exchange(quick, b"GET /3.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _error(answer) == (503, "ServiceUnavailableError")
        for sock in slow:
            assert _error(_read_until_closed(sock)) == (408, "RequestTimeoutError")
    finally:
        for sock in slow:
            sock.close()
    assert quick._server.wait_for_connections(0, TIMEOUT)
    answer = _exchange(quick, b"GET /3.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Connection: close\r\n\r\n")
    assert _statuses(answer) == [200]


def test_the_connection_bound_fits_the_file_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (128, 4096))
    assert _connection_bound(512) == 128 - _http_server._FD_RESERVE
    monkeypatch.setattr(resource, "getrlimit", lambda which: (100_000, 100_000))
    assert _connection_bound(512) == 512


@pytest.mark.parametrize("bad", [{"idle_timeout": 0}, {"body_timeout": float("inf")},
                                 {"max_body": -1}, {"max_connections": True},
                                 {"header_timeout": float("nan")}])
def test_limits_must_be_positive_and_finite(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Limits(**bad)  # type: ignore[arg-type]


@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=64), max_size=8),
       st.booleans())
def test_chunked_bodies_decode_to_what_was_sent(body: bytes, sizes: list[int],
                                                extension: bool) -> None:
    """Reference: the body split at the given sizes, each piece framed by hand."""
    pieces, rest = [], body
    for size in sizes:
        if rest:
            pieces.append(rest[:size])
            rest = rest[size:]
    if rest:
        pieces.append(rest)
    ext = b";name=value" if extension else b""
    wire = b"".join(b"%X%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces) + b"0\r\n\r\n"
    left, right = socket.socketpair()
    with left, right:
        left.sendall(wire + b"NEXT")
        reader = Reader(right)
        assert read_body(reader, None, Limits()) == body
        assert bytes(reader.buffer) == b"NEXT"  # nothing beyond the body was consumed
