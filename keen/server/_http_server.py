"""Serving ``KeenApp`` over HTTP/1.1 with the standard library, and ``LocalKeenServer``.

HTTP/1.1 with keep-alive: every response carries ``Content-Length`` so pooled client connections
stay usable. ``stop()`` closes idle keep-alive connections too, so a stopped server really stops
answering (clients see a connection error, as with a real outage) and the port can be bound
again by ``start()``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from keen.server._http_errors import ApiError
from keen.server.app import MAX_BATCH_BYTES, KeenApp, Request, Response, error_response
from keen.server.app import loggable_path as _loggable_path
from keen.server.config import (
    DEFAULT_HOST,
    ProjectConfig,
    merge_projects,
    resolve_primary,
)
from keen.server.faults import DROP, FAIL, SLOW, Fault, Faults

if TYPE_CHECKING:
    from keen.client import KeenClient
    from keen.server.engines.base import EventStore

logger = logging.getLogger("keen.server")

# Bodies beyond this are refused without being read (and the connection closed).
_MAX_READ_BYTES = 4 * MAX_BATCH_BYTES
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
}
_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Keen-Sdk",
    "Access-Control-Max-Age": "86400",
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _BodyTooLarge(Exception):
    pass


class _BadLength(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the
    # body until the client's delayed ACK (~40 ms on Linux), on every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "keen-local-server"

    def do_GET(self) -> None:
        self._serve()

    # Every method reaches the app, which answers 405 (with ``Allow``) on a known path.
    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Requests ``http.server`` refuses itself (a malformed request line or version,
        oversized headers, a method no handler exists for) get the API's JSON envelope too.
        The request line is not echoed: it may hold an ``api_key``."""
        self.close_connection = True
        # A request line too broken to parse leaves the HTTP/0.9 default, which has no status
        # line or headers: answer as HTTP/1.1 so any client can read the error.
        self.request_version = self.protocol_version
        self._send(error_response(ApiError(code, "InvalidRequestError",
                                           f"{HTTPStatus(code).phrase}: the server could not "
                                           "read this request.")))

    def do_OPTIONS(self) -> None:  # CORS preflight, for browser SDKs
        self._read_body()
        self._send(Response(204, headers=dict(_PREFLIGHT_HEADERS)))

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self.close_connection = True
            self._send(error_response(_too_large()))
            return
        except (_BadLength, ValueError):  # ValueError: a malformed chunk size
            self.close_connection = True
            self._send(error_response(_malformed_body()))
            return
        # In flight until the answer is written: stop() waits for it before closing sockets.
        with self.server.tracking():
            self._answer(body)

    def _answer(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        fault = None if path.startswith("/_keen/") else self.server.faults.take()
        if fault is not None and not self._before(fault):
            return
        pairs = parse_qsl(query, keep_blank_values=True)
        request = Request(
            method=self.command,
            path=path,
            query=dict(pairs),
            repeated=frozenset(name for name, n in Counter(k for k, _ in pairs).items() if n > 1),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_address=str(self.client_address[0]),
        )
        response = self.server.app.handle(request)
        if fault is not None and fault.kind == DROP:
            self._drop()
            return
        self._send(response)

    def _before(self, fault: Fault) -> bool:
        """Apply a fault before handling; False when the request must not be handled."""
        if fault.kind == SLOW:
            self.server.stopping.wait(fault.seconds)
            return True
        if fault.kind == DROP and not fault.after_processing:
            self._drop()
            return False
        if fault.kind == FAIL:
            response = error_response(_fault_error(fault))
            if fault.retry_after is not None:
                response.headers["Retry-After"] = _retry_after_header(fault.retry_after)
            self._send(response)
            return False
        return True

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: refuse a body that could not be read before it is sent."""
        try:
            refusal = _too_large() if self._declared_length() > _MAX_READ_BYTES else None
        except _BadLength:
            refusal = _malformed_body()
        if refusal is None:
            return super().handle_expect_100()
        self.close_connection = True
        self._send(error_response(refusal))
        return False

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadLength from None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if length > _MAX_READ_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > _MAX_READ_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = dict(_CORS_HEADERS)
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
        headers.update(response.headers)
        if self.close_connection:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)
        path = getattr(self, "path", "")  # unset when the request line could not be parsed
        logger.debug("%s %s -> %d", self.command, _loggable_path(path.partition("?")[0]),
                     response.status)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _send logs, without the query string (it may hold an api_key)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("keen local server: HTTP error (details withheld: may include a key)")


def _too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLargeError", "The request body is too large.")


def _malformed_body() -> ApiError:
    return ApiError(400, "InvalidRequestError", "Malformed Content-Length or chunked body.")


def _fault_error(fault: Fault) -> ApiError:
    body = fault.error_body()
    return ApiError(fault.status, body["error_code"], body["message"])


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: KeenApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._active = 0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (timeout, dropped connection): not worth a traceback on stderr.
        logger.debug("keen local server: connection error", exc_info=True)

    def tracking(self) -> _Tracking:
        return _Tracking(self)

    def close_connections(self, timeout: float) -> None:
        """Close every client connection; wait up to ``timeout`` s for requests in flight."""
        self.stopping.set()
        with self._lock:
            self._lock.wait_for(lambda: self._active == 0, timeout)
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Tracking:
    def __init__(self, server: _Server) -> None:
        self.server = server

    def __enter__(self) -> None:
        with self.server._lock:
            self.server._active += 1

    def __exit__(self, *exc: object) -> None:
        with self.server._lock:
            self.server._active -= 1
            self.server._lock.notify_all()


class LocalKeenServer:
    """A local Keen-compatible server on a free port, for tests and offline work.

    Use it as a context manager::

        with LocalKeenServer() as server:
            server.client.add_event("sign_ups", {"username": "ada"})
            assert server.client.count("sign_ups", timeframe="this_day") == 1

    ``db`` is the database file (``None``: in memory) of the ``engine``: ``"sqlite"`` (the
    default, standard library only) or ``"duckdb"`` (``pip install "keen[server]"``; see
    ``keen.server.engines``). ``stop()`` then ``start()`` restarts on the
    same port with the same data (an in-memory database is kept while the object lives). The
    keys default to the development values of ``keen.server.config`` (never the ``KEEN_*``
    environment: tests must not pick up real keys). ``clock`` returns the aware UTC "now" used
    for timestamps and relative timeframes; it may also be replaced later through ``.clock``.
    ``projects`` declares more projects besides the primary one.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        db: str | None = None,
        project_id: str | None = None,
        master_key: str | None = None,
        read_key: str | None = None,
        write_key: str | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        projects: Iterable[ProjectConfig] = (),
        engine: str = "sqlite",
    ) -> None:
        self.project = resolve_primary(project_id=project_id, master_key=master_key,
                                       read_key=read_key, write_key=write_key)
        self.projects = merge_projects(self.project, projects)
        self.host = host
        self.port = port
        self.db = db
        from keen.server.engines import ENGINES

        if engine not in ENGINES:
            raise ValueError(f"Unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
        self.engine = engine
        self.clock: Callable[[], datetime] = clock or utc_now
        self.faults = Faults()
        self._storage: EventStore | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._client: KeenClient | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalKeenServer {self.url} project={self.project_id!r} {state}>"

    # --- identity -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give a client (``KeenClient(base_url=...)``, ``KEEN_BASE_URL``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def project_id(self) -> str:
        return self.project.project_id

    @property
    def master_key(self) -> str:
        return self.project.master_key

    @property
    def read_key(self) -> str | None:
        return self.project.read_key

    @property
    def write_key(self) -> str | None:
        return self.project.write_key

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def storage(self) -> EventStore:
        """The server's storage, for direct assertions (opened by ``start()``)."""
        if self._storage is None:
            self._storage = self._open_storage()
        return self._storage

    @property
    def client(self) -> KeenClient:
        """A ``keen.client.KeenClient`` with all three keys, pointed at this server."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self, **options: Any) -> KeenClient:
        """A new ``KeenClient`` for this server; ``options`` go to the constructor."""
        from keen.client import KeenClient

        settings: dict[str, Any] = {
            "project_id": self.project_id, "write_key": self.write_key,
            "read_key": self.read_key, "master_key": self.master_key, "base_url": self.url,
        }
        settings.update(options)
        return KeenClient(**settings)

    def environment(self) -> dict[str, str]:
        """``KEEN_*`` variables that point the ``keen`` module (or a subprocess) here."""
        values = {"KEEN_BASE_URL": self.url, "KEEN_PROJECT_ID": self.project_id,
                  "KEEN_WRITE_KEY": self.write_key, "KEEN_READ_KEY": self.read_key,
                  "KEEN_MASTER_KEY": self.master_key}
        return {name: value for name, value in values.items() if value is not None}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalKeenServer:
        """Start serving (on the same port as before after a ``stop()``)."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        app = KeenApp(self.storage, self.projects, self._now, self.faults)
        server = _Server((self.host, self.port), app, self.faults)
        self.port = server.server_address[1]
        self._server = server
        # A short poll keeps stop() quick (a test suite starts many servers).
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name=f"keen-local-server-{self.port}", daemon=True)
        self._thread.start()
        logger.debug("keen local server listening on %s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close client connections; a file database is closed too.

        Requests being handled finish and get their answers first (waiting at most
        ``timeout`` seconds); an injected slow fault is cut short."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections(timeout)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.db is not None and self._storage is not None:
            self._storage.close()
            self._storage = None

    def close(self) -> None:
        """Stop and release everything (an in-memory database is lost)."""
        self.stop()
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def __enter__(self) -> LocalKeenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return self.clock()

    def _open_storage(self) -> EventStore:
        from keen.server.engines import open_engine

        return open_engine(self.engine, self.db)


__all__ = ["LocalKeenServer", "ProjectConfig"]
