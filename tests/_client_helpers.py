"""Test helpers for the client tests: a recording transport and a scripted loopback server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from keen.client import KeenClient

PROJECT = "5004ded1163d66114f000000"
WRITE = "W" * 64
READ = "R" * 64
MASTER = "M" * 64


@dataclass
class Sent:
    """One request as it went on the wire."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout: Any

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)

    def json(self) -> Any:
        assert self.body is not None
        return json.loads(self.body)


def default_answer(request: requests.PreparedRequest) -> tuple[int, Any]:
    """A plausible 2xx answer for any Keen endpoint."""
    path = urlsplit(request.url or "").path
    if request.method == "DELETE":
        return 204, None
    if "/keys" in path:
        return 200, {"key": "K", "name": "n", "is_active": True, "permitted": ["queries"],
                     "options": {"writes": None}}
    if "/queries/saved/" in path and request.method == "GET":
        return 200, {"query_name": "q", "refresh_rate": 0, "urls": {},
                     "query": {"analysis_type": "count", "event_collection": "c",
                               "group_by": None, "timeframe": "this_1_days", "filters": []},
                     "metadata": {"display_name": "d"}}
    if path.endswith("/events") and request.method == "POST":
        body = json.loads(request.body or "{}")
        return 200, {name: [{"success": True} for _ in items] for name, items in body.items()}
    if request.method == "POST" and "/events/" in path:
        return 201, {"created": True}
    return 200, {"result": 1}


@dataclass
class Recorder:
    """Replaces HTTPAdapter.send: records every request, answers with ``answer``."""

    answer: Callable[[requests.PreparedRequest], tuple[int, Any]] = default_answer
    sent: list[Sent] = field(default_factory=list)

    def send(self, adapter: HTTPAdapter, request: requests.PreparedRequest,
             **kwargs: Any) -> requests.Response:
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        self.sent.append(Sent(request.method or "", request.url or "", dict(request.headers),
                              body, kwargs.get("timeout")))
        status, payload = self.answer(request)
        response = requests.Response()
        response.status_code = status
        if isinstance(payload, (bytes, str)):
            response._content = payload.encode() if isinstance(payload, str) else payload
        else:
            response._content = b"" if payload is None else json.dumps(payload).encode()
        response.request = request
        response.url = request.url or ""
        response.headers["Content-Type"] = "application/json"
        return response

    @property
    def last(self) -> Sent:
        return self.sent[-1]


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append((self.command, self.path, dict(self.headers), body))
        status, payload, extra_headers = self.server.next_answer(self.command, self.path, body)
        if status == 0:  # hang up without answering
            self.close_connection = True
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ScriptedServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering from a script, then with a fallback answer."""

    daemon_threads = True

    def __init__(self, script: list[tuple[int, Any, dict[str, str]]],
                 fallback: Callable[[str, str, bytes], tuple[int, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.script = list(script)
        self.fallback = fallback
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    def next_answer(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        status, payload = self.fallback(method, path, body)
        return status, payload, {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def _ok(method: str, path: str, body: bytes) -> tuple[int, Any]:
    if method == "POST" and path.split("?")[0].endswith("/events"):
        batch = json.loads(body)
        return 200, {name: [{"success": True} for _ in items] for name, items in batch.items()}
    if method == "POST":
        return 201, {"created": True}
    return 200, {"result": 7}


@contextmanager
def scripted_server(
    script: list[tuple[int, Any, dict[str, str]]] | None = None,
    fallback: Callable[[str, str, bytes], tuple[int, Any]] = _ok,
) -> Iterator[ScriptedServer]:
    """Start a ScriptedServer on 127.0.0.1 in a thread; stop it afterwards."""
    server = ScriptedServer(script or [], fallback)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def install_recorder(monkeypatch: Any, recorder: Recorder | None = None) -> Recorder:
    """Route every requests transport call through ``recorder`` (a new one by default)."""
    rec = Recorder() if recorder is None else recorder

    def send(adapter: HTTPAdapter, request: requests.PreparedRequest,
             **kwargs: Any) -> requests.Response:
        return rec.send(adapter, request, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return rec


@pytest.fixture(name="recorder")
def recorder_fixture(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every request the client sends, recorded (none reaches a network)."""
    return install_recorder(monkeypatch)


def make_client(**keys: Any) -> KeenClient:
    """A client for project ``PID`` with all three keys, or only the ``keys`` given."""
    keys = keys or {"write_key": "WK", "read_key": "RK", "master_key": "MK"}
    return KeenClient("PID", base_url="http://h", **keys)
