"""HTTP/1.1 requests read off a socket strictly (RFC 9112), every read bounded in size and time.

The local server reads its requests here rather than through ``http.server``, whose framing is
lenient (``int()`` accepts ``Content-Length: +9``, ``1_0`` and ``-1``; a chunk-size line is read
whole however long it is) and whose reads have no deadline.

Rules (each refusal is a ``WireError``: the server answers it with the status below, as the API's
JSON error envelope, and closes the connection without reading further):

* request line: ``METHOD SP request-target SP HTTP/x.y`` ended by CRLF (a bare LF is accepted, a
  bare CR anywhere is a 400); at most ``Limits.max_request_line`` bytes (414); at most two empty
  lines before it. Methods other than GET, HEAD, POST, PUT, DELETE, PATCH and OPTIONS: 501.
  Versions other than HTTP/1.0 and HTTP/1.1: 505 (a malformed version: 400). The target is
  origin-form (``/path?query``), absolute-form (``http://host/path``: its authority replaces
  ``Host``) or ``*`` for OPTIONS.
* header fields: ``name ":" OWS value OWS``; a token name, no space before the colon, no obsolete
  line folding, no CR, NUL or other control character but HTAB in a value (400). At most
  ``max_header_line`` bytes per line, ``max_headers`` fields and ``max_header_bytes`` in all (431).
* an HTTP/1.1 request carries exactly one ``Host`` (400 otherwise).
* ``Content-Length``: ASCII digits only (no sign, ``_``, spaces or non-ASCII digits); duplicate
  fields or list members must agree (400); a value above ``max_body`` is a 413 before any byte
  of the body is read.
* ``Transfer-Encoding``: only ``chunked`` (other codings: 501); ``chunked`` given twice, on an
  HTTP/1.0 request, or together with ``Content-Length``: 400. A chunk-size line is 1*HEXDIG with
  optional extensions, at most ``max_chunk_line`` bytes (400); each chunk's data is followed by
  CRLF (400); the sum of the chunks may not pass ``max_body`` (413); trailer fields are read under
  the header limits and discarded.
* time: the first byte of a request must come within ``idle_timeout`` seconds of the connection
  opening or of the previous answer (else the connection is closed without an answer); the
  request line and headers within ``header_timeout`` seconds of that first byte, the body within
  ``body_timeout`` seconds of the headers (408 otherwise).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from typing import NoReturn

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/([0-9])\.([0-9])$")
_DIGITS = re.compile(r"^[0-9]+$")
_HEX = re.compile(rb"^[0-9A-Fa-f]+$")
# Field values: visible ASCII, obs-text (0x80-0xFF), SP and HTAB; nothing else.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(rb"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class Limits:
    """The bounds of the HTTP layer (sizes in bytes, times in seconds)."""

    max_request_line: int = 65_536
    max_header_line: int = 32_768
    max_headers: int = 100
    max_header_bytes: int = 65_536
    max_chunk_line: int = 1_024
    max_body: int = 40_000_000
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    write_timeout: float = 30.0
    max_connections: int = 512

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    0 < value < float("inf")):
                raise ValueError(f"Limits.{name} must be a positive finite number, "
                                 f"got {value!r}")


class WireError(Exception):
    """A request the server will not read further: answered with ``status``, then closed."""

    def __init__(self, status: int, message: str, error_code: str = "InvalidRequestError"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


class Closed(Exception):
    """The peer closed, or stayed silent past the idle timeout, between requests."""


@dataclass
class Head:
    """A request line and its header fields, read and checked."""

    method: str
    target: str  # origin-form: path and query; "*" for OPTIONS *
    version: tuple[int, int]
    fields: list[tuple[str, str]] = field(default_factory=list)  # (lower-case name, value)
    authority: str | None = None  # from an absolute-form target

    def get(self, name: str) -> str | None:
        """The value of a field given once (the last one if repeated; see ``values``)."""
        found = self.values(name)
        return found[-1] if found else None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.values("connection") for t in v.split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def expects_continue(self) -> bool:
        return self.version >= (1, 1) and (self.get("expect") or "").lower() == "100-continue"


class Reader:
    """Buffered reads from a socket, each bounded in size and by a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.deadline = float("inf")
        self.timeout_status = 408

    def expire_in(self, seconds: float, status: int = 408) -> None:
        """Reads fail once ``seconds`` have passed (``status``: 408, or 0 for ``Closed``)."""
        self.deadline = time.monotonic() + seconds
        self.timeout_status = status

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._expired()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65_536)
        except socket.timeout:
            self._expired()
        except OSError as exc:
            raise Closed from exc
        if not data:
            if self.timeout_status == 0 or not self.buffer:
                raise Closed
            raise WireError(400, "The connection was closed in the middle of a request.")
        self.buffer += data

    def _expired(self) -> NoReturn:
        if self.timeout_status == 0:
            raise Closed
        raise WireError(408, "The request was not received in time.", "RequestTimeoutError")

    def readline(self, limit: int, too_long: WireError) -> bytes:
        """One line without its CRLF (or LF); ``too_long`` when longer than ``limit``."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                if end > limit + 1:  # +1: the CR of a CRLF
                    raise too_long
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if b"\r" in line:
                    raise WireError(400, "A bare CR in the request head.")
                return line
            if len(self.buffer) > limit + 1:
                raise too_long
            start = len(self.buffer)
            self._fill()

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes; a large read goes straight into one buffer of that size."""
        have = len(self.buffer)
        if have >= n:
            data = bytes(memoryview(self.buffer)[:n])
            del self.buffer[:n]
            return data
        out = bytearray(n)
        out[:have] = self.buffer
        self.buffer.clear()
        view = memoryview(out)
        while have < n:
            have += self._recv_into(view[have:])
        view.release()
        return bytes(out)

    def _recv_into(self, view: memoryview) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._expired()
        self.sock.settimeout(remaining)
        try:
            got = self.sock.recv_into(view, min(len(view), 1 << 20))
        except socket.timeout:
            self._expired()
        except OSError as exc:
            raise Closed from exc
        if not got:
            raise WireError(400, "The connection was closed in the middle of a request.")
        return got

    def first_byte(self) -> None:
        """Wait for the first byte of the next request (``Closed`` if none comes)."""
        if not self.buffer:
            self._fill()


def read_head(reader: Reader, limits: Limits) -> Head:
    """Read and check the request line and the header fields."""
    reader.expire_in(limits.idle_timeout, status=0)
    reader.first_byte()
    reader.expire_in(limits.header_timeout)
    too_long = WireError(414, "The request line is too long.", "RequestURITooLongError")
    line = reader.readline(limits.max_request_line, too_long)
    for _ in range(2):  # RFC 9112 2.2: empty lines before a request line may be ignored
        if line:
            break
        line = reader.readline(limits.max_request_line, too_long)
    head = _request_line(line)
    head.fields = _fields(reader, limits)
    _check_fields(head)
    return head


def _request_line(line: bytes) -> Head:
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise WireError(400, "Malformed request line.")
    method, target, version = parts
    match = _VERSION.match(version)
    if match is None:
        raise WireError(400, "Malformed HTTP version.")
    numbers = (int(match.group(1)), int(match.group(2)))
    if numbers not in ((1, 0), (1, 1)):
        raise WireError(505, "Only HTTP/1.0 and HTTP/1.1 are served.",
                        "HTTPVersionNotSupportedError")
    if not _TOKEN.match(method):
        raise WireError(400, "Malformed request method.")
    name = method.decode("ascii")
    if name not in METHODS:
        raise WireError(501, f"Method {name[:20]!r} is not implemented.", "NotImplementedError")
    if not _TARGET.match(target):
        raise WireError(400, "Malformed request target.")
    text = target.decode("ascii")
    authority = None
    if text == "*":
        if name != "OPTIONS":
            raise WireError(400, "The '*' target is for OPTIONS only.")
    elif not text.startswith("/"):
        scheme, sep, rest = text.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise WireError(400, "Malformed request target.")
        authority, slash, path = rest.partition("/")
        if not authority or "@" in authority:
            raise WireError(400, "Malformed request target.")
        text = slash + path if slash else "/"
    return Head(name, text, numbers, authority=authority)


def _fields(reader: Reader, limits: Limits) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    total = 0
    too_long = WireError(431, "A header field is too long.", "RequestHeaderFieldsTooLargeError")
    while True:
        line = reader.readline(limits.max_header_line, too_long)
        if not line:
            return fields
        total += len(line) + 2
        if len(fields) >= limits.max_headers or total > limits.max_header_bytes:
            raise WireError(431, "Too many or too large header fields.",
                            "RequestHeaderFieldsTooLargeError")
        fields.append(_field(line))


def _field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise WireError(400, "Obsolete line folding in a header field.")
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.match(name):
        raise WireError(400, "Malformed header field name.")
    value = value.strip(b" \t")
    if _BAD_VALUE.search(value):
        raise WireError(400, "A control character in a header field value.")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _check_fields(head: Head) -> None:
    hosts = head.values("host")
    if head.version >= (1, 1) and len(hosts) != 1:
        raise WireError(400, "An HTTP/1.1 request carries exactly one Host header.")
    if len(hosts) > 1:
        raise WireError(400, "More than one Host header.")
    expect = head.get("expect")  # RFC 9110 10.1.1: ignored in an HTTP/1.0 request
    if head.version >= (1, 1) and expect is not None and expect.lower() != "100-continue":
        raise WireError(417, "Only 'Expect: 100-continue' is understood.",
                        "ExpectationFailedError")


def body_length(head: Head, limits: Limits) -> int | None:
    """The declared length of the body; ``None`` for a chunked body. Checks the framing."""
    codings = [t.strip().lower() for v in head.values("transfer-encoding") for t in v.split(",")]
    lengths = [t.strip() for v in head.values("content-length") for t in v.split(",")]
    if codings:
        if head.version < (1, 1):
            raise WireError(400, "Transfer-Encoding on an HTTP/1.0 request.")
        if lengths:
            raise WireError(400, "Both Transfer-Encoding and Content-Length.")
        unknown = [c for c in codings if c != "chunked"]
        if unknown:
            raise WireError(501, "Only the chunked transfer coding is implemented.",
                            "NotImplementedError")
        if len(codings) > 1:
            raise WireError(400, "chunked may be applied only once.")
        return None
    if not lengths:
        return 0
    if not all(_DIGITS.match(value) for value in lengths):
        raise WireError(400, "Content-Length must be a non-negative decimal integer.")
    if len(set(lengths)) > 1 and len({int(v) for v in lengths}) > 1:
        raise WireError(400, "Conflicting Content-Length values.")
    if len(lengths[0].lstrip("0")) > 18 or int(lengths[0]) > limits.max_body:
        raise too_large()
    return int(lengths[0])


def too_large() -> WireError:
    return WireError(413, "The request body is too large.", "RequestEntityTooLargeError")


def read_body(reader: Reader, length: int | None, limits: Limits) -> bytes:
    """The body (``length`` from ``body_length``), under ``body_timeout``."""
    reader.expire_in(limits.body_timeout)
    if length is not None:
        return reader.read(length) if length else b""
    chunks: list[bytes] = []
    total = 0
    bad_line = WireError(400, "Malformed chunk size line.")
    while True:
        line = reader.readline(limits.max_chunk_line, bad_line)
        size_text = line.split(b";", 1)[0].rstrip(b" \t")
        if not _HEX.match(size_text):
            raise bad_line
        if len(size_text.lstrip(b"0")) > 16:
            raise too_large()
        size = int(size_text, 16)
        if size == 0:
            _trailers(reader, limits)
            return b"".join(chunks)
        total += size
        if total > limits.max_body:
            raise too_large()
        chunks.append(reader.read(size))
        if reader.read(2) != b"\r\n":
            raise WireError(400, "Chunk data not followed by CRLF.")


def _trailers(reader: Reader, limits: Limits) -> None:
    _fields(reader, limits)  # checked under the header limits, then discarded
