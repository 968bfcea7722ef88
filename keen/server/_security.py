"""Who may talk to the local server from a web browser: the policy, in one place.

The local server listens on the developer's machine while a browser is open, and its default keys
are public constants (``keen.server.config``). Any web page the developer visits can make the
browser send requests to ``http://127.0.0.1:8765``; the policy below makes sure such a page can
neither read nor write the local data, whatever keys it guesses, while programs (the client,
``requests``, ``curl``, test suites: they send no ``Origin``, ``Referer`` or ``Sec-Fetch-*``
headers) and the developer's own pages keep working without any option.

Rules, checked by the HTTP layer on every request before its body is read and before any key is
looked at (a refusal is a 403 with ``error_code`` ``ForbiddenOriginError`` or
``ForbiddenHostError``, or a 400 for a malformed ``Host``, and the connection is closed):

1. **Host** (DNS rebinding): the ``Host`` header (or the authority of an absolute-form target)
   must name an IP address literal, ``localhost`` or a name ending in ``.localhost``, the host the
   server was bound to (``--host``), or a name given with ``--allow-host``. A page on
   ``evil.example`` that re-points its own name at 127.0.0.1 sends ``Host: evil.example`` and is
   refused, so it can never read an answer as same-origin.
2. **Origin**: a request carrying ``Origin`` (browsers send it with every cross-origin request and
   with same-origin ``POST``/``PUT``/``DELETE``) is served only if that origin is allowed:
   the server's own origin (same ``Host``: the page the server serves at ``/`` works), an origin
   whose host is a loopback name or address (``http://localhost:3000``,
   ``http://127.0.0.1:5173``: the developer's own web app on another port), or one given with
   ``--allow-origin`` (``--allow-origin '*'`` allows every origin, as the server did before
   0.8). ``Origin: null`` (sandboxed frames, ``file:`` pages) is refused unless
   ``--allow-origin null``.
3. **Fetch Metadata**, for browser requests without ``Origin`` (an ``<img>`` beacon, a
   ``<script>`` tag, a link): ``Sec-Fetch-Site: cross-site`` is refused unless ``Referer`` names
   an allowed origin (rule 2); so is ``same-site`` unless the server was reached by a loopback
   name. The one exception: a top-level navigation (``Sec-Fetch-Mode: navigate``,
   ``Sec-Fetch-Dest: document``, ``GET``/``HEAD``) to a path outside ``/3.0/`` and ``/_keen/``
   (a link to the server's own page). ``same-origin`` and ``none`` (the user typed the URL) pass.
4. **CORS**: answers carry ``Access-Control-Allow-Origin`` only for an allowed ``Origin``, echoing
   it (with ``Vary: Origin``); never ``*``. A preflight (``OPTIONS`` with
   ``Access-Control-Request-Method``) from an allowed origin gets 204 with the methods and
   headers the API uses (and ``Access-Control-Allow-Private-Network: true`` when asked);
   from any other origin, 403.
5. **Control endpoints** (``/_keen/faults``): rules 1-3 apply, a ``POST`` must be
   ``Content-Type: application/json`` (a cross-origin form cannot send that without a preflight),
   and they answer 404 when the server listens on a non-loopback address unless started with
   ``--expose-faults`` (``expose_faults=True``). ``/_keen/health`` is always served.

A page the server itself serves (the Explorer at ``/``) is same-origin: it may be handed keys in
its HTML, which other origins cannot read (no CORS for them, and rule 1 stops DNS rebinding).

Browsers that send neither ``Origin`` nor ``Sec-Fetch-Site`` on a no-cors ``GET`` (before 2023
for Safari) are not covered by rule 3: an ``<img>`` beacon from such a browser can still write an
event with a guessed write key. Start the server with your own keys (``--write-key``...) if that
matters to you.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keen.server._wire import WireError

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Keen-Sdk",
    "Access-Control-Max-Age": "600",
}


def is_loopback_name(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def split_host(value: str) -> tuple[str, int | None]:
    """``(host, port)`` of a ``Host`` value; ``WireError`` (400) when malformed."""
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[:end + 1], value[end + 1:]
        if end < 0 or not _is_ip(host) or (rest and not rest.startswith(":")):
            raise WireError(400, "Malformed Host header.")
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
        if ":" in port:
            raise WireError(400, "Malformed Host header.")
    if not host or (port and not (port.isascii() and port.isdigit() and len(port) <= 5)):
        raise WireError(400, "Malformed Host header.")
    return host.lower().rstrip("."), int(port) if port else None


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or "/" in rest:
        return None
    try:
        host, port = split_host(rest)
    except WireError:
        return None
    return scheme.lower(), host, port if port is not None else (443 if scheme == "https" else 80)


def _forbidden(message: str, error_code: str = "ForbiddenOriginError") -> WireError:
    return WireError(403, message, error_code)


@dataclass(frozen=True)
class BrowserPolicy:
    """The rules above for one server; ``check`` and ``cors_headers`` apply them."""

    bound_host: str = "127.0.0.1"
    allowed_hosts: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()
    expose_faults: bool | None = None  # None: only on a loopback address

    @classmethod
    def create(cls, bound_host: str, allowed_hosts: Iterable[str] = (),
               allowed_origins: Iterable[str] = (),
               expose_faults: bool | None = None) -> BrowserPolicy:
        origins = set()
        for origin in allowed_origins:
            text = origin.strip().rstrip("/")
            if text not in ("*", "null") and _origin_parts(text) is None:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
            origins.add(text.lower())
        return cls(bound_host.lower(), frozenset(h.lower().rstrip(".") for h in allowed_hosts),
                   frozenset(origins), expose_faults)

    @property
    def faults_exposed(self) -> bool:
        if self.expose_faults is not None:
            return self.expose_faults
        return is_loopback_name(self.bound_host)

    # --- rule 1 ---------------------------------------------------------------------------

    def check_host(self, host: str | None) -> str | None:
        """The host name the request was sent to (``None``: no Host, an HTTP/1.0 program)."""
        if host is None:
            return None
        name, _ = split_host(host)
        if (_is_ip(name) or is_loopback_name(name) or name == self.bound_host.strip("[]")
                or name in self.allowed_hosts):
            return name
        raise _forbidden(f"This server does not answer for the host {name[:100]!r} (start it "
                         "with --allow-host to add a name).", "ForbiddenHostError")

    # --- rule 2 ---------------------------------------------------------------------------

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        text = origin.strip().rstrip("/").lower()
        if "*" in self.allowed_origins or text in self.allowed_origins:
            return True
        parts = _origin_parts(text)
        if parts is None:
            return False
        scheme, origin_host, origin_port = parts
        if is_loopback_name(origin_host):
            return True
        if host is not None and scheme == "http":  # same origin: the server's own pages
            name, port = split_host(host)
            return (name, port if port is not None else 80) == (origin_host, origin_port)
        return False

    # --- rules 1 to 3 ---------------------------------------------------------------------

    def check(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """Raise ``WireError`` when the request must be refused (``headers``: lower-case)."""
        host = headers.get("host")
        name = self.check_host(host)
        origin = headers.get("origin")
        if origin is not None:
            if not self.origin_allowed(origin, host):
                raise _forbidden("Requests from this web origin are refused (start the server "
                                 "with --allow-origin to allow it).")
            return
        site = (headers.get("sec-fetch-site") or "").lower()
        if site not in ("cross-site", "same-site"):
            return
        if site == "same-site" and name is not None and is_loopback_name(name):
            return
        referer = headers.get("referer")
        if referer and self.origin_allowed(_referer_origin(referer), host):
            return
        if (headers.get("sec-fetch-mode", "").lower() == "navigate"
                and headers.get("sec-fetch-dest", "").lower() == "document"
                and method in ("GET", "HEAD")
                and not path.startswith(("/3.0/", "/_keen/"))):
            return
        raise _forbidden("Requests from another web site are refused (start the server with "
                         "--allow-origin to allow one).")

    # --- rule 4 ---------------------------------------------------------------------------

    def cors_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """CORS headers for an answer to a request that passed ``check``."""
        origin = headers.get("origin")
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        answer = {**self.cors_headers(headers), **PREFLIGHT_HEADERS}
        if headers.get("access-control-request-private-network", "").lower() == "true":
            answer["Access-Control-Allow-Private-Network"] = "true"
        return answer


def _referer_origin(referer: str) -> str:
    scheme, sep, rest = referer.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if sep else ""
