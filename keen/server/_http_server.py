"""Serving ``KeenApp`` over HTTP/1.1 on sockets, and ``LocalKeenServer``.

Reading a request is ``keen.server._wire`` (strict RFC 9112 framing, every read bounded in size
and time); who may call from a web browser is ``keen.server._security`` (Host, Origin, Fetch
Metadata, CORS). This module runs the connections:

* keep-alive: every answer carries ``Content-Length`` and is written with one ``sendall`` (status
  line, headers and body together) on a socket with ``TCP_NODELAY``, so a pooled client never
  waits on the small-write / delayed-ACK interaction (once ~44 ms per request).
* one thread per connection, at most ``Limits.max_connections`` at once (lowered to fit the
  process's file-descriptor limit). A connection beyond that is admitted by closing the
  connection that has been idle longest between requests (waiting for the first byte of its
  next request, or of its first: as a busy server frees kept-alive connections, which clients
  expect to be closed at any time between requests), so idle connections cannot lock others
  out; the evicted client sees the connection closed (FIN) with nothing of an answer. A
  connection is never closed while a request of it is under way (from its first byte to the
  end of its answer): when none is idle, the new connection is answered ``503
  ServiceUnavailableError`` with ``Retry-After: 1`` and closed, never left waiting. The listen
  backlog is 1024 (the kernel may cap it: ``net.core.somaxconn``).
* timeouts (``Limits``): a connection idle for ``idle_timeout`` s is closed; a request whose head
  takes more than ``header_timeout`` s, or whose body takes more than ``body_timeout`` s, is
  answered 408 and closed; an answer the client does not read within ``write_timeout`` s is
  abandoned. So half-sent requests cannot hold the server.
* every refusal of the HTTP layer (framing, limits, Host, Origin) is the API's JSON error
  envelope with an ``error_code``, sent before the body is read and before any key is looked at,
  and the connection is then closed.
* ``GET /_keen/health`` is answered by the connection's thread itself, before the fault queue,
  the storage or the query path are touched, so it answers while a query runs.
* no header of an answer carries a control character: a value with CR, LF or another control
  character (which could only come from the request) makes the answer a 400 instead
  (``InvalidRequestError``); the image beacon refuses such a ``redirect`` itself before recording.

``stop()`` closes idle keep-alive connections too, so a stopped server really stops answering
(clients see a connection error, as with a real outage) and the port can be bound again by
``start()``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from keen.server._http_errors import ApiError
from keen.server._security import BrowserPolicy
from keen.server._wire import (
    Closed,
    Head,
    Limits,
    Reader,
    WireError,
    body_length,
    read_body,
    read_head,
)
from keen.server.app import MAX_BATCH_BYTES, KeenApp, Request, Response, error_response
from keen.server.app import loggable_path as _loggable_path
from keen.server.config import (
    DEFAULT_HOST,
    ProjectConfig,
    merge_projects,
    resolve_primary,
)
from keen.server.faults import DROP, FAIL, SLOW, Fault, Faults
from keen.server.limits import QUERY_TIME_LIMIT, checked_query_time_limit

if TYPE_CHECKING:
    from keen.client import KeenClient
    from keen.server.engines.base import EventStore

logger = logging.getLogger("keen.server")

# Bodies beyond this are refused without being read (and the connection closed).
DEFAULT_LIMITS = Limits(max_body=4 * MAX_BATCH_BYTES)
LISTEN_BACKLOG = 1024
_BUSY_REFUSERS = 16  # threads at most answering 503 to connections beyond the bound
_FD_RESERVE = 64  # descriptors kept for the database, the listening socket, logs...
_BAD_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _wire_error(error: WireError) -> Response:
    return error_response(ApiError(error.status, error.error_code, error.message))


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: requests read and answered in turn until it closes."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        limits = self.server.limits
        while not self.server.stopping.is_set():
            try:
                if not reader.buffer:  # between requests: the server may evict it meanwhile
                    with self.server.idle(sock):
                        reader.expire_in(limits.idle_timeout, status=0)
                        reader.first_byte()
                head = read_head(reader, limits)
            except Closed:
                return
            except WireError as error:
                self._refuse(error, None)
                return
            try:
                if not self._one(reader, head):
                    return
            except (Closed, OSError):
                return

    def _one(self, reader: Reader, head: Head) -> bool:
        """Serve one request whose head was read; False when the connection must close."""
        path, _, query = head.target.partition("?")
        headers = {name: value for name, value in head.fields}
        if head.authority is not None:
            headers["host"] = head.authority
        policy = self.server.policy
        try:
            policy.check(head.method, path, headers)
            length = body_length(head, self.server.limits)
        except WireError as error:
            self._refuse(error, head)
            return False
        if head.expects_continue and length != 0:
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = read_body(reader, length, self.server.limits)
        except WireError as error:
            self._refuse(error, head)
            return False
        keep = head.keep_alive
        cors = policy.cors_headers(headers)
        if head.method == "OPTIONS":  # CORS preflight, for browser SDKs
            self._send(head, Response(204, headers=policy.preflight_headers(headers)), keep)
            return keep
        if path == "/_keen/health" and head.method in ("GET", "HEAD"):
            self._send(head, self.server.app.health(), keep, cors)
            return keep
        # In flight until the answer is written: stop() waits for it before closing sockets.
        with self.server.tracking():
            response = self._answer(head, path, query, headers, body)
            if response is None:
                return False
            self._send(head, response, keep, cors)
        return keep

    def _answer(self, head: Head, path: str, query: str, headers: dict[str, str],
                body: bytes) -> Response | None:
        """The app's answer, with any injected fault applied (``None``: dropped)."""
        fault = None if path.startswith("/_keen/") else self.server.faults.take()
        if fault is not None:
            early = self._before(fault)
            if early is not None or (fault.kind == DROP and not fault.after_processing):
                return early
        pairs = parse_qsl(query, keep_blank_values=True)
        request = Request(
            method=head.method,
            path=path,
            query=dict(pairs),
            repeated=frozenset(name for name, n in Counter(k for k, _ in pairs).items() if n > 1),
            headers=headers,
            body=body,
            client_address=str(self.client_address[0]),
        )
        response = self.server.app.handle(request)
        if fault is not None and fault.kind == DROP:
            self._drop()
            return None
        return response

    def _before(self, fault: Fault) -> Response | None:
        """Apply a fault before handling: the answer to send instead, if any."""
        if fault.kind == SLOW:
            self.server.stopping.wait(fault.seconds)
        elif fault.kind == DROP and not fault.after_processing:
            self._drop()
        elif fault.kind == FAIL:
            response = error_response(_fault_error(fault))
            if fault.retry_after is not None:
                response.headers["Retry-After"] = _retry_after_header(fault.retry_after)
            return response
        return None

    def _drop(self) -> None:
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def _refuse(self, error: WireError, head: Head | None) -> None:
        """Answer a refusal of the HTTP layer and close, draining what the client still sends
        for a moment so that it reads the answer rather than a reset."""
        logger.debug("keen local server: refused a request: %d %s", error.status,
                     error.error_code)
        self._send(head, _wire_error(error), keep=False)
        self.server.linger(self.request)

    def _send(self, head: Head | None, response: Response, keep: bool,
              extra: dict[str, str] | None = None) -> None:
        headers = {"Server": "keen-local-server", "Date": formatdate(usegmt=True)}
        headers.update(extra or {})
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
        headers.update(response.headers)
        if not keep:
            headers["Connection"] = "close"
        elif head is not None and head.version < (1, 1):
            headers["Connection"] = "keep-alive"
        try:
            lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}"]
            lines += [f"{name}: {_header_value(name, value)}" for name, value in headers.items()]
        except ValueError as exc:
            self._send(head, error_response(ApiError(400, "InvalidRequestError", str(exc))),
                       keep, extra)
            return
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if response.body and (head is None or head.method != "HEAD"):
            data += response.body
        self.request.settimeout(self.server.limits.write_timeout)
        try:
            self.request.sendall(data)  # one write: no delayed-ACK stall on kept-alive sockets
        except OSError:
            logger.debug("keen local server: the client went away before the answer")
        method = head.method if head is not None else "-"
        path = head.target.partition("?")[0] if head is not None else "-"
        logger.debug("%s %s -> %d", method, _loggable_path(path), response.status)


def _header_value(name: str, value: str) -> str:
    """``value`` fit for a header line: never a control character (no response splitting);
    characters beyond ASCII are percent-encoded as UTF-8 (as in a ``Location`` URL)."""
    if _BAD_HEADER_VALUE.search(value):
        raise ValueError(f"The answer's {name} header would carry a control character taken "
                         "from the request; refused.")
    if value.isascii():
        return value
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
                   for c in value)


def _fault_error(fault: Fault) -> ApiError:
    body = fault.error_body()
    return ApiError(fault.status, body["error_code"], body["message"])


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _connection_bound(configured: int) -> int:
    """``configured``, lowered so that accepting never runs out of file descriptors."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return configured
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(4, min(configured, soft - _FD_RESERVE))


_BUSY_ANSWER = error_response(ApiError(
    503, "ServiceUnavailableError",
    "The local server is handling too many connections; retry shortly.",
    headers={"Retry-After": "1"}))


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], app: KeenApp, faults: Faults,
                 policy: BrowserPolicy, limits: Limits) -> None:
        self.app = app
        self.faults = faults
        self.policy = policy
        self.limits = limits
        self.max_connections = _connection_bound(limits.max_connections)
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._connections: set[socket.socket] = set()
        # connections waiting for a request, longest idle first (evicted in that order)
        self._idle: dict[socket.socket, None] = {}
        self._evicted: set[socket.socket] = set()
        self._active = 0
        self._refusers = threading.BoundedSemaphore(_BUSY_REFUSERS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        evicted = None
        with self._lock:
            full = len(self._connections) >= self.max_connections
            if full and self._idle:  # make room: close the connection idle longest
                evicted = next(iter(self._idle))
                del self._idle[evicted]
                self._evicted.add(evicted)
                self._connections.discard(evicted)
                full = False
            if not full:
                self._connections.add(request)
        if evicted is not None:
            # FIN to its client, and its thread's wait for a request ends (``idle``)
            with contextlib.suppress(OSError):
                evicted.shutdown(socket.SHUT_RDWR)
        if not full:
            super().process_request(request, client_address)
        elif self._refusers.acquire(blocking=False):
            threading.Thread(target=self._busy, args=(request,), daemon=True).start()
        else:
            self.shutdown_request(request)

    def _busy(self, request: socket.socket) -> None:
        """Answer a connection beyond the bound, then close it: 503, except the health check
        (read for at most a second), which is answered as usual."""
        try:
            answer, head = _BUSY_ANSWER, None
            with contextlib.suppress(WireError, Closed, OSError):
                quick = Limits(idle_timeout=1.0, header_timeout=1.0)
                head = read_head(Reader(request), quick)
                headers = dict(head.fields)
                self.policy.check(head.method, head.target, headers)
                if head.target == "/_keen/health" and head.method in ("GET", "HEAD"):
                    answer = self.app.health()
            status = f"{answer.status} {_phrase(answer.status)}"
            extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
            data = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer.body)}\r\n{extra}"
                    "Connection: close\r\n\r\n").encode("ascii")
            if head is None or head.method != "HEAD":
                data += answer.body
            request.settimeout(1.0)
            with contextlib.suppress(OSError):
                request.sendall(data)
            self.linger(request)
        finally:
            self._refusers.release()

    def linger(self, request: socket.socket, seconds: float = 0.5,
               most: int = 1_048_576) -> None:
        """After a final answer: stop sending, then read and discard what the client is still
        sending (at most ``most`` bytes, ``seconds`` s), so its reading the answer is not cut
        short by a reset; the socket is then closed by the caller or ``shutdown_request``."""
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
            request.settimeout(seconds)
            read = 0
            while read < most:
                data = request.recv(65_536)
                if not data:
                    break
                read += len(data)
        with contextlib.suppress(OSError):
            request.close()

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._lock:
            self._connections.discard(request)
            self._lock.notify_all()

    @contextlib.contextmanager
    def idle(self, sock: socket.socket) -> Iterator[None]:
        """The block waits for the next request of ``sock``: meanwhile the connection may be
        evicted to admit another (``process_request``), and once it was the block ends with
        ``Closed``, even if a request began to arrive as it was (which is dropped unread,
        as it would be by a keep-alive timeout). Leaving the block otherwise makes the
        connection busy: never evicted until it is idle again."""
        with self._lock:
            self._idle[sock] = None
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._idle.pop(sock, None)
                evicted = sock in self._evicted
                self._evicted.discard(sock)
                self._lock.notify_all()
        if evicted:
            raise Closed

    def wait_for_idle(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` connections are idle between requests (for tests)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._idle) == count, timeout)

    def wait_for_connections(self, at_most: int, timeout: float) -> bool:
        """Wait until at most ``at_most`` client connections are open (for tests)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._connections) <= at_most, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (timeout, dropped connection): not worth a traceback on stderr.
        logger.debug("keen local server: connection error", exc_info=True)

    def tracking(self) -> _Tracking:
        return _Tracking(self)

    def finish_requests(self, timeout: float) -> bool:
        """Take no further request on any connection and wait up to ``timeout`` s for the
        requests in flight to be answered; whether they all were."""
        self.stopping.set()
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout)

    def close_connections(self) -> None:
        """Close every client connection."""
        with self._lock:
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



def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``: the loopback
    address for an all-interfaces bind (``0.0.0.0``, ``::``), which is not an address to
    connect to everywhere."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        host = "127.0.0.1" if address.version == 4 else "::1"
    name = f"[{host}]" if ":" in host else host
    return f"http://{name}:{port}"


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

    Browser access (``keen.server._security``): ``allow_origins`` are web origins allowed besides
    the server's own and loopback ones (``"*"``: every origin), ``allow_hosts`` are host names
    answered besides IP literals, ``localhost`` and ``host``; ``expose_faults`` serves the
    ``/_keen/faults`` control endpoint on a non-loopback ``host`` (``None``: only on a loopback
    one). ``limits`` bounds sizes, times and connections (``keen.server._wire.Limits``).
    ``query_time_limit`` is the seconds a query (or delete) may run before it is stopped with
    503 ``QueryTimeoutError`` (default ``keen.server.limits.QUERY_TIME_LIMIT``, 60; ``0`` or
    None: no limit); every store the server opens gets it, so it holds after ``stop()`` and
    ``start()`` with a file database too.
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
        allow_origins: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
        expose_faults: bool | None = None,
        limits: Limits | None = None,
        engine: str = "sqlite",
        query_time_limit: float | None = QUERY_TIME_LIMIT,
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
        self.query_time_limit = checked_query_time_limit(query_time_limit, "query_time_limit")
        self.clock: Callable[[], datetime] = clock or utc_now
        self.faults = Faults()
        self.policy = BrowserPolicy.create(host, allow_hosts, allow_origins, expose_faults)
        self.limits = limits or DEFAULT_LIMITS
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
        return client_url(self.host, self.port)

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
        app = KeenApp(self.storage, self.projects, self._now, self.faults,
                      expose_faults=self.policy.faults_exposed)
        server = _Server((self.host, self.port), app, self.faults, self.policy, self.limits)
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
        ``timeout`` seconds); an injected slow fault is cut short. With a file database,
        queries still running then are stopped by closing it, and answered 503
        ``ServiceUnavailableError`` (waiting at most ``timeout`` seconds again) before the
        connections close."""
        self._stop(timeout, release=False)

    def _stop(self, timeout: float, *, release: bool) -> None:
        """``stop``; ``release``: the database is closed even in memory (``close``)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        answered = server.finish_requests(timeout)
        if (self.db is not None or release) and self._storage is not None:
            self._storage.close()  # (interrupts the queries still running)
            self._storage = None
            if not answered:
                server.finish_requests(timeout)
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self, timeout: float = 5.0) -> None:
        """Stop and release everything (an in-memory database is lost; queries still
        running after ``timeout`` s are stopped and answered 503, as ``stop`` does with a
        file database)."""
        self._stop(timeout, release=True)
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

        storage = open_engine(self.engine, self.db)
        storage.query_time_limit = self.query_time_limit
        return storage


__all__ = ["Limits", "LocalKeenServer", "ProjectConfig"]
