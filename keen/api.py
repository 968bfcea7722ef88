"""The transport: one object, one pooled ``requests.Session``, one request path.

Every request goes through :meth:`KeenApi._request`, which picks the key, builds the headers,
calls :meth:`KeenApi.fulfill` (``getattr(session, method)(...)``, so patching
``requests.Session.get/post/put/delete`` still intercepts everything), maps ``requests``
exceptions to :mod:`keen.exceptions`, applies the retry policy (:mod:`keen._retry`) and turns
error answers into :class:`~keen.exceptions.KeenApiError` subclasses.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import re
import sys
import time
import weakref
from collections.abc import Mapping
from typing import Any, Callable, TypeVar, Union
from urllib.parse import quote, unquote, urlencode

import requests
import urllib3.exceptions

from keen import _params, _retry, exceptions
from keen._encoding import dumps, encode_event
from keen._event import Event
from keen.utilities import VERSION, KeenKeys, headers, require_key

__all__ = ["DEFAULT_TIMEOUT", "MAX_GET_URL_LENGTH", "HTTPMethods", "KeenApi"]

_log = logging.getLogger("keen.api")

#: Seconds a request may take before it fails (0.7.0's value); a (connect, read) tuple works too.
DEFAULT_TIMEOUT = 305
#: Longest GET URL sent; longer queries go as a POST with a JSON body (keen-api.md 2.3).
MAX_GET_URL_LENGTH = 4000

Timeout = Union[float, tuple[float, float], None]

#: Sent with every request: this library, its version, the Python running it, and requests.
USER_AGENT = (f"keen-python/{VERSION} ({platform.python_implementation()} "
              f"{platform.python_version()}) {requests.utils.default_user_agent()}")

F = TypeVar("F", bound=Callable[..., Any])


class HTTPMethods:
    """The HTTP methods, named as the ``requests.Session`` methods that send them."""

    GET = "get"
    POST = "post"
    DELETE = "delete"
    PUT = "put"


def _segment(name: str) -> str:
    """A path segment with every reserved character escaped (``/``, ``?``, ``#``, ``%``...)."""
    if not isinstance(name, str):  # checked before the cache, which cannot hash a list
        raise exceptions.InvalidEventError(f"A name in a URL must be a string, not {name!r}.")
    return _quoted(name)


@functools.lru_cache(maxsize=1024)
def _quoted(name: str) -> str:
    return quote(name, safe="")


def key_text(key: str | bytes) -> str:
    """A key as text: keys may be given as bytes (``scoped_keys.encrypt`` returns bytes, and
    0.7.0 code passes them on as they are). Latin-1 maps each byte to one character, so the
    header sent is the same bytes either way."""
    return key.decode("latin-1") if isinstance(key, bytes) else key


@functools.lru_cache(maxsize=64)
def _headers_for(key: str | bytes) -> dict[str, str]:
    # one dict per key, reused: requests copies headers into each request and never mutates them
    return {**headers(key_text(key)), "User-Agent": USER_AGENT}


def _key_first(key_type: str) -> Callable[[F], F]:
    """Check the ``key_type`` key before anything else, arguments included, as 0.7.0 did.

    So a call on a client without the key raises InvalidEnvironmentError even when an argument
    is missing or malformed. Works on a KeenApi and on objects holding one as ``.api``.
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            require_key(getattr(self, "api", self), key_type)
            return method(self, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def debug_enabled() -> bool:
    """Whether each request is shown on stderr: ``keen.debug`` when set, else ``KEEN_DEBUG``."""
    setting = getattr(sys.modules.get("keen"), "debug", None)
    if setting is None:
        setting = os.environ.get("KEEN_DEBUG", "").strip().lower() not in _OFF
    return bool(setting)


_OFF = ("", "0", "false", "no", "off")


def debug_line(text: str) -> None:
    """Write one ``keen:`` line to stderr (the debug switch's output)."""
    # stderr closed or gone: debugging output is not worth a crash
    with contextlib.suppress(OSError, ValueError):
        print(f"keen: {text}", file=sys.stderr, flush=True)


def _not_sent(exc: requests.RequestException) -> bool:
    """Whether ``exc`` proves the request never reached the server."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError,
                        requests.exceptions.ProxyError, requests.exceptions.InvalidURL,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the real cause
    return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                               urllib3.exceptions.ConnectTimeoutError))


#: An access key in a URL path (``/keys/<key>``): access keys are secrets too.
_ACCESS_KEY_IN_PATH = re.compile(r"(/keys/)([^/?#\s'\"]+)")


#: A password (or token) in a URL's user info: ``https://user:secret@host``.
_USERINFO = re.compile(r"(://)[^/?#@\s]*@")


def _scrub(text: str) -> str:
    """``text`` with any access key in a URL path, and any user info in a URL (a base_url
    with credentials), replaced by ``<redacted>``."""
    if "/keys/" in text:
        text = _ACCESS_KEY_IN_PATH.sub(r"\1<redacted>", text)
    return _USERINFO.sub(r"\1<redacted>@", text) if "@" in text else text


def _scrubbed_cause(exc: requests.RequestException) -> BaseException:
    """``exc`` for chaining; for an access-key URL, a copy whose text (and chain) hides the key."""
    text = str(exc)
    if "/keys/" not in text:
        return exc
    cause = type(exc)(_scrub(text))
    cause.__suppress_context__ = True
    return cause


def _transport_error(exc: requests.RequestException, what: str) -> exceptions.KeenTransportError:
    """The keen exception standing for ``exc`` (which becomes its ``__cause__``)."""
    sent = not _not_sent(exc)
    cls: type[exceptions.KeenTransportError]
    if isinstance(exc, requests.ConnectTimeout):
        cls = exceptions.KeenConnectTimeoutError
    elif isinstance(exc, requests.ReadTimeout):
        cls = exceptions.KeenReadTimeoutError
    elif isinstance(exc, requests.Timeout):
        cls = exceptions.KeenTimeoutError
    elif isinstance(exc, requests.ConnectionError):
        cls = exceptions.KeenConnectionError
    else:
        cls = exceptions.KeenTransportError
    state = "the request may have reached the server" if sent else "the request was not sent"
    cls = _also_an_instance_of(cls, type(exc))
    message = f"{what} failed: {type(exc).__name__}: {exc} ({state})"
    return cls(_scrub(message), request_sent=sent)


_VARIANTS: dict[tuple[type, type], type[exceptions.KeenTransportError]] = {}


def _also_an_instance_of(
    cls: type[exceptions.KeenTransportError], requests_cls: type[requests.RequestException]
) -> type[exceptions.KeenTransportError]:
    """``cls``, or a subclass of it that is also ``requests_cls``.

    So that ``except requests.exceptions.SSLError`` (or any other specific requests exception
    an application caught with 0.7.0) still catches what this package raises instead.
    """
    if issubclass(cls, requests_cls):
        return cls
    variant = _VARIANTS.get((cls, requests_cls))
    if variant is None:
        namespace = {"__module__": cls.__module__, "__doc__": cls.__doc__,
                     "__qualname__": cls.__qualname__}
        variant = _VARIANTS.setdefault(
            (cls, requests_cls), type(cls.__name__, (cls, requests_cls), namespace))
    return variant


class KeenApi:
    """Talks to the Keen API for one project.

    :param project_id: the project id.
    :param write_key: key for recording events (each key may be str or bytes).
    :param read_key: key for queries, collection schemas, saved-query and dataset results.
    :param base_url: where the API is (default ``https://api.keen.io``), e.g. a local server.
    :param api_version: the API version path segment (default ``"3.0"``).
    :param get_timeout: seconds for reads (default 305); a ``(connect, read)`` tuple works too.
    :param post_timeout: seconds for writes and deletes (default 305).
    :param master_key: key for deletes, saved-query, dataset and access-key management.
    :param session: a ready ``requests.Session`` (proxies, ``verify``/CA bundle, client
        certificates, adapters); one is created when omitted. It is shared by all threads.
    :param retry: a :class:`keen._retry.RetryPolicy` (default: up to 3 retries within 30 s;
        ``keen._retry.NO_RETRY`` disables retrying).
    """

    #: The default location of the API.
    base_url = "https://api.keen.io"
    #: The default API version.
    api_version = "3.0"

    def __init__(
        self,
        project_id: str,
        write_key: str | bytes | None = None,
        read_key: str | bytes | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        get_timeout: Timeout = None,
        post_timeout: Timeout = None,
        master_key: str | bytes | None = None,
        *,
        session: requests.Session | None = None,
        retry: _retry.RetryPolicy | None = None,
    ) -> None:
        self.project_id = project_id
        self.write_key = write_key
        self.read_key = read_key
        self.master_key = master_key
        if base_url is not None:
            if not isinstance(base_url, str) or not base_url:
                raise exceptions.InvalidConfigurationError(
                    f"base_url must be a non-empty URL string, not {base_url!r}")
            self.base_url = base_url.rstrip("/")
        if api_version is not None:
            self.api_version = api_version
        self.get_timeout: Timeout = _checked_timeout("get_timeout", get_timeout)
        self.post_timeout: Timeout = _checked_timeout("post_timeout", post_timeout)
        if retry is not None and not isinstance(retry, _retry.RetryPolicy):
            raise exceptions.InvalidConfigurationError(
                f"retry must be a keen.RetryPolicy (or keen.NO_RETRY), not {type(retry).__name__}")
        self._owns_session = session is None
        self.session = requests.Session() if session is None else session
        self.retry = _retry.DEFAULT_POLICY if retry is None else retry
        _LIVE_APIS.add(self)

    def __repr__(self) -> str:
        keys = [name for name in ("write", "read", "master") if getattr(self, f"{name}_key")]
        return (f"{type(self).__name__}(project_id={self.project_id!r}, "
                f"base_url={_scrub(self.base_url)!r}, keys set: {', '.join(keys) or 'none'})")

    # -- keys (the names 0.7.0 had; persistence strategies and interfaces use them) --------
    def _get_read_key(self) -> str | bytes | None:
        return self.read_key

    def _get_write_key(self) -> str | bytes | None:
        return self.write_key

    def _get_master_key(self) -> str | bytes | None:
        return self.master_key

    # -- the request path -------------------------------------------------------------------
    def fulfill(self, method: str, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request with the session method named ``method`` ("get", "post"...)."""
        response: requests.Response = getattr(self.session, method)(*args, **kwargs)
        return response

    def project_url(self, *segments: str) -> str:
        """The URL of a resource of this project; each segment is escaped."""
        url = f"{self.base_url}/{self.api_version}/projects/{self.project_id}"
        for segment in segments:
            url += "/" + _segment(segment)
        return url

    def _request(
        self,
        method: str,
        url: str,
        key_type: str,
        *,
        idempotent: bool | Callable[[], bool],
        timeout: Timeout,
        retry: _retry.RetryPolicy | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request (with retries); the 2xx response, or raise a keen exception."""
        request_headers = _headers_for(require_key(self, key_type))
        policy = self.retry if retry is None else retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.fulfill(method, url, headers=request_headers, timeout=timeout,
                                        **kwargs)
            except requests.RequestException as exc:
                error = _transport_error(exc, f"{method.upper()} {_path(url)}")
                if debug_enabled():
                    debug_line(f"{method.upper()} {_path(url)} -> {type(exc).__name__} after "
                               f"{(time.monotonic() - started) * 1000:.1f} ms")
                elapsed = time.monotonic() - started
                if _retry.should_retry(policy, attempt, elapsed,
                                       idempotent=_resolve(idempotent), transport_error=True,
                                       request_sent=error.request_sent):
                    wait = _wait_before_retry(policy, attempt, elapsed, None, method, url,
                                              type(exc).__name__)
                    if wait is not None:
                        time.sleep(wait)
                        continue
                raise error from _scrubbed_cause(exc)
            except OSError as exc:  # not wrapped by requests
                if "invalid path" in str(exc):  # its check of session.verify / session.cert
                    raise exceptions.InvalidTLSFileError(
                        f"{method.upper()} {_path(url)} was not sent: {exc}. Check the "
                        f"session's verify (CA bundle) and cert (client certificate) "
                        f"paths.") from None
                raise exceptions.KeenTransportError(
                    _scrub(f"{method.upper()} {_path(url)} failed: {type(exc).__name__}: {exc}")
                ) from exc
            status = response.status_code
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("%s %s -> %s in %.1f ms", method.upper(), _path(url), status,
                           (time.monotonic() - started) * 1000)
            if debug_enabled():
                debug_line(f"{method.upper()} {_path(url)} -> {status} in "
                           f"{(time.monotonic() - started) * 1000:.1f} ms")
            if 200 <= status < 300:
                return response
            retry_after = _retry_after(response)
            elapsed = time.monotonic() - started
            if _retry.should_retry(policy, attempt, elapsed, idempotent=_resolve(idempotent),
                                   status=status):
                wait = _wait_before_retry(policy, attempt, elapsed, retry_after, method, url,
                                          f"HTTP {status}")
                if wait is not None:
                    response.close()  # frees the connection for the wait
                    time.sleep(wait)
                    continue
            raise self._api_error(response, retry_after, url, method)

    def _api_error(self, response: requests.Response, retry_after: float | None,
                   url: str, method: str = "") -> exceptions.KeenApiError:
        body = _json_or_none(response)
        if not isinstance(body, dict):
            text = response.text if body is None else dumps(body)
            body = {"message": f"The API did not respond with JSON, but: {text[:1000]}",
                    "error_code": str(response.status_code)}
        secrets = [key_text(k) for k in (self.write_key, self.read_key, self.master_key) if k]
        secrets += [unquote(match.group(2)) for match in _ACCESS_KEY_IN_PATH.finditer(url)]
        request = f"{method.upper()} {_path(url)}" if method else _path(url)
        return exceptions.error_for_response(response.status_code, _redact(body, secrets),
                                             retry_after, request=request)

    def _json(self, method: str, url: str, key_type: str, *,
              idempotent: bool | Callable[[], bool] = True, timeout: Timeout = None,
              **kwargs: Any) -> Any:
        """Send a request and return its JSON body (KeenApiError for a 2xx that is not JSON)."""
        if timeout is None:
            timeout = self.get_timeout
        response = self._request(method, url, key_type, idempotent=idempotent, timeout=timeout,
                                 **kwargs)
        try:
            return response.json()
        except ValueError:
            raise exceptions.KeenApiError(
                {"message": f"The API did not respond with JSON, but: {response.text[:1000]}",
                 "error_code": str(response.status_code)}, response.status_code) from None

    def _json_or(self, default: Any, method: str, url: str, key_type: str, *,
                 idempotent: bool = True, timeout: Timeout = None, **kwargs: Any) -> Any:
        """Like _json, but ``default`` when the answer has no JSON body (e.g. 204)."""
        if timeout is None:
            timeout = self.get_timeout
        response = self._request(method, url, key_type, idempotent=idempotent, timeout=timeout,
                                 **kwargs)
        body = _json_or_none(response)
        return default if body is None else body

    # -- events -----------------------------------------------------------------------------
    @_key_first(KeenKeys.WRITE)
    def post_event(self, event: Event) -> None:
        """Record one event (write key)."""
        url = self.project_url("events", event.event_collection)
        payload = event.to_json()
        self._request(HTTPMethods.POST, url, KeenKeys.WRITE, data=payload,
                      timeout=self.post_timeout, idempotent=event.has_uniqueness_token)

    @_key_first(KeenKeys.WRITE)
    def post_events(self, events: Mapping[str, Any]) -> Any:
        """Record a batch ``{collection: [event, ...]}``; returns the per-event results."""
        payload = encode_batch(events)
        return self._post_batch(payload, lambda: _all_have_tokens(events))

    def post_events_raw(self, body: bytes, *, idempotent: bool,
                        retry: _retry.RetryPolicy | None = None) -> Any:
        """Record an already-encoded batch body; ``idempotent`` when every event has a token.

        ``retry`` overrides this object's retry policy for this request (a sender that retries
        on its own passes ``keen._retry.NO_RETRY``).
        """
        return self._post_batch(body, idempotent, retry)

    def _post_batch(self, payload: str | bytes, idempotent: bool | Callable[[], bool],
                    retry: _retry.RetryPolicy | None = None) -> Any:
        return self._json(HTTPMethods.POST, self.project_url("events"), KeenKeys.WRITE,
                          data=payload, timeout=self.post_timeout, idempotent=idempotent,
                          retry=retry)

    # -- queries ----------------------------------------------------------------------------
    @_key_first(KeenKeys.READ)
    def query(self, analysis_type: str, params: Mapping[str, Any], all_keys: bool = False) -> Any:
        """Run an analysis (read key); its ``result``, or the whole response with all_keys.

        ``params`` are wire values (see ``KeenClient.get_params``). When the GET URL would be
        longer than MAX_GET_URL_LENGTH the same query is sent as a POST with a JSON body.
        """
        _params.validate_query(params)
        url = self.project_url("queries", analysis_type)
        if _url_length(url, params) <= MAX_GET_URL_LENGTH:
            body = self._json(HTTPMethods.GET, url, KeenKeys.READ, params=params)
        else:
            body = self._json(HTTPMethods.POST, url, KeenKeys.READ,
                              data=_params.post_body(params))
        return body if all_keys else body["result"]

    @_key_first(KeenKeys.MASTER)
    def delete_events(self, event_collection: str, params: Mapping[str, Any]) -> bool:
        """Delete the events matching ``params`` (master key); True."""
        url = self.project_url("events", event_collection)
        self._request(HTTPMethods.DELETE, url, KeenKeys.MASTER, params=params,
                      timeout=self.post_timeout, idempotent=True)
        return True

    @_key_first(KeenKeys.READ)
    def get_collection(self, event_collection: str) -> Any:
        """The schema of one collection (read key)."""
        return self._json(HTTPMethods.GET, self.project_url("events", event_collection),
                          KeenKeys.READ)

    @_key_first(KeenKeys.READ)
    def get_all_collections(self) -> Any:
        """The schemas of all collections (read key)."""
        return self._json(HTTPMethods.GET, self.project_url("events"), KeenKeys.READ)

    # -- access keys (master key) -----------------------------------------------------------
    @_key_first(KeenKeys.MASTER)
    def create_access_key(self, name: str, is_active: bool = True,
                          permitted: list[str] | None = None,
                          options: dict[str, Any] | None = None) -> Any:
        """Create an access key; the key object the API returns."""
        payload = _access_key_body(name, is_active, permitted, options)
        return self._json(HTTPMethods.POST, self.project_url("keys"), KeenKeys.MASTER,
                          data=payload, idempotent=False)

    @_key_first(KeenKeys.MASTER)
    def list_access_keys(self) -> Any:
        """All access keys of the project."""
        return self._json(HTTPMethods.GET, self.project_url("keys"), KeenKeys.MASTER)

    @_key_first(KeenKeys.MASTER)
    def get_access_key(self, key: str) -> Any:
        """One access key."""
        return self._json(HTTPMethods.GET, self.project_url("keys", key), KeenKeys.MASTER)

    @_key_first(KeenKeys.MASTER)
    def update_access_key_full(self, key: str, name: str, is_active: bool,
                               permitted: list[str], options: dict[str, Any]) -> Any:
        """Replace name, is_active, permitted and options of an access key."""
        payload = _access_key_body(name, is_active, permitted, options)
        return self._json(HTTPMethods.POST, self.project_url("keys", key), KeenKeys.MASTER,
                          data=payload)

    def _update_access_key(self, key: str, change: Callable[[dict[str, Any]], None]) -> Any:
        """GET the key, apply ``change`` to its definition, POST it back."""
        require_key(self, KeenKeys.MASTER)
        current = self.get_access_key(key)
        definition = {field: current[field]
                      for field in ("name", "is_active", "permitted", "options")}
        change(definition)
        return self.update_access_key_full(key, **definition)

    @_key_first(KeenKeys.MASTER)
    def update_access_key_name(self, key: str, name: str) -> Any:
        """Rename an access key, keeping the rest."""
        return self._update_access_key(key, lambda d: d.update(name=name))

    @_key_first(KeenKeys.MASTER)
    def add_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Add permissions to an access key, keeping the rest."""
        permissions = _params.string_list("permissions", permissions)

        def add(d: dict[str, Any]) -> None:
            d["permitted"] = list(d["permitted"]) + [
                p for p in dict.fromkeys(permissions) if p not in d["permitted"]]
        return self._update_access_key(key, add)

    @_key_first(KeenKeys.MASTER)
    def remove_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Remove permissions from an access key, keeping the rest."""
        removed = set(_params.string_list("permissions", permissions))

        def remove(d: dict[str, Any]) -> None:
            d["permitted"] = [p for p in d["permitted"] if p not in removed]
        return self._update_access_key(key, remove)

    @_key_first(KeenKeys.MASTER)
    def update_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Replace the permissions of an access key, keeping the rest."""
        permissions = _params.string_list("permissions", permissions)
        return self._update_access_key(key, lambda d: d.update(permitted=permissions))

    @_key_first(KeenKeys.MASTER)
    def update_access_key_options(self, key: str, options: dict[str, Any]) -> Any:
        """Replace the options of an access key, keeping the rest."""
        _params.json_text("options", options)
        return self._update_access_key(key, lambda d: d.update(options=options))

    @_key_first(KeenKeys.MASTER)
    def revoke_access_key(self, key: str) -> Any:
        """Deactivate an access key; the API's JSON answer, or True when it has none."""
        return self._json_or(True, HTTPMethods.POST, self.project_url("keys", key, "revoke"),
                             KeenKeys.MASTER)

    @_key_first(KeenKeys.MASTER)
    def unrevoke_access_key(self, key: str) -> Any:
        """Reactivate an access key; the API's JSON answer, or True when it has none."""
        return self._json_or(True, HTTPMethods.POST, self.project_url("keys", key, "unrevoke"),
                             KeenKeys.MASTER)

    @_key_first(KeenKeys.MASTER)
    def delete_access_key(self, key: str) -> bool:
        """Delete an access key; True."""
        self._request(HTTPMethods.DELETE, self.project_url("keys", key), KeenKeys.MASTER,
                      timeout=self.get_timeout, idempotent=True)
        return True

    def close(self) -> None:
        """Close the session when this object created it (a session given to it stays open)."""
        if self._owns_session:
            self.session.close()


_PLAIN_DICT = frozenset({dict})


def encode_batch(events: Any) -> str:
    """The JSON body of a batch; InvalidEventError naming the first malformed part."""
    if not isinstance(events, Mapping):
        raise exceptions.InvalidEventError(
            f"add_events takes a dict of collection name -> list of events, "
            f"not {type(events).__name__}.")
    for collection, items in events.items():
        if not isinstance(collection, str) or not collection:
            raise exceptions.InvalidEventError(
                f"A collection name must be a non-empty string, not {collection!r}.")
        if not isinstance(items, (list, tuple)):
            raise exceptions.InvalidEventError(
                f"events[{collection!r}] must be a list of events, not {type(items).__name__}.")
        if not set(map(type, items)) <= _PLAIN_DICT:  # fast path: all plain dicts
            for index, item in enumerate(items):
                if not isinstance(item, Mapping):
                    raise exceptions.InvalidEventError(
                        f"events[{collection!r}][{index}] must be a dict, "
                        f"not {type(item).__name__}.")
    return encode_event(events)


def _all_have_tokens(events: Mapping[str, Any]) -> bool:
    return all(_has_token(item) for items in events.values() for item in items)


def _has_token(body: Any) -> bool:
    meta = body.get("keen") if isinstance(body, Mapping) else None
    return isinstance(meta, Mapping) and meta.get("uniqueness_token") is not None


def _access_key_body(name: str, is_active: bool, permitted: list[str] | None,
                     options: dict[str, Any] | None) -> str:
    if not isinstance(name, str) or not name:
        raise exceptions.InvalidQueryError(
            f"An access key name must be a non-empty string, not {name!r}.")
    body = {"name": name, "is_active": is_active,
            "permitted": [] if permitted is None else _params.string_list("permitted", permitted),
            "options": {} if options is None else options}
    return _params.json_text("the access key definition", body)


def _checked_timeout(name: str, value: Any) -> Timeout:
    """``value`` (None: DEFAULT_TIMEOUT) if it is a usable requests timeout; ValueError naming
    ``name`` otherwise."""
    if value is None:
        return DEFAULT_TIMEOUT
    parts = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value,)
    for part in parts:
        if part is None and len(parts) == 2:
            continue
        if isinstance(part, bool) or not isinstance(part, (int, float)) or not part > 0:
            raise exceptions.InvalidConfigurationError(
                f"{name} must be a number of seconds > 0 or a (connect, read) pair of them, "
                f"not {value!r}")
    return value  # type: ignore[no-any-return]


def _wait_before_retry(policy: _retry.RetryPolicy, attempt: int, elapsed: float,
                       retry_after: float | None, method: str, url: str,
                       why: str) -> float | None:
    """Seconds to wait before retry number ``attempt``, or None when the retry would start
    past the policy's deadline (e.g. a Retry-After longer than the time left)."""
    wait = _retry.delay(policy, attempt, retry_after)
    if elapsed + wait > policy.deadline:
        _log.info("not retrying %s %s after %s: waiting %.2f s would pass the %.1f s retry "
                  "deadline", method.upper(), _path(url), why, wait, policy.deadline)
        return None
    _log.info("retrying %s %s after %s (retry %d) in %.2f s", method.upper(), _path(url), why,
              attempt, wait)
    return wait


def _resolve(idempotent: bool | Callable[[], bool]) -> bool:
    return idempotent if isinstance(idempotent, bool) else idempotent()


#: Every KeenApi of this process, so that a forked child can drop the connections it inherited.
_LIVE_APIS: weakref.WeakSet[KeenApi] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    """In a forked child: close the child's copies of the parent's pooled sockets.

    Parent and child would otherwise write requests to, and read answers from, the same
    connections. The sessions stay usable: they open new connections when next needed.
    """
    for api in list(_LIVE_APIS):
        try:
            api.session.close()
        except Exception:  # a user's session object that cannot close: nothing more to do
            _log.debug("could not reset a connection pool after fork", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_connections)


def _path(url: str) -> str:
    """The URL without its query string or access keys (what log lines and messages show)."""
    return _scrub(url.split("?", 1)[0])


def _url_length(url: str, params: Mapping[str, Any]) -> int:
    """The length of ``url`` with ``params`` encoded as requests encodes them."""
    # cheap upper bound first: a character is at most 4 UTF-8 bytes, each at most "%XX"
    bound = len(url) + 1 + sum(len(k) + 2 + 12 * len(str(v)) for k, v in params.items())
    if bound <= MAX_GET_URL_LENGTH:
        return bound
    pairs = [(k, v if isinstance(v, (str, bytes)) else str(v)) for k, v in params.items()]
    return len(url) + 1 + len(urlencode(pairs))


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After")
    return _retry.parse_retry_after(value) if isinstance(value, str) else None


def _redact(value: Any, secrets: list[str]) -> Any:
    """``value`` (an error body or part of it) with every key replaced, at any depth."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "<redacted key>")
    elif isinstance(value, dict):
        value = {name: _redact(item, secrets) for name, item in value.items()}
    elif isinstance(value, list):
        value = [_redact(item, secrets) for item in value]
    return value
