"""Errors: status classes, non-JSON bodies, transport failures, and keys kept out of text/logs."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest
import requests
from _client_helpers import MASTER, PROJECT, READ, WRITE, install_recorder, scripted_server

from keen import _retry
from keen.api import KeenApi
from keen.client import KeenClient
from keen.exceptions import (
    AuthenticationError,
    BadRequestError,
    BaseKeenClientError,
    KeenApiError,
    KeenConnectionError,
    KeenReadTimeoutError,
    KeenTimeoutError,
    KeenTransportError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    error_for_response,
)

NO_RETRY = _retry.NO_RETRY


@pytest.mark.parametrize(("status", "cls"), [
    (400, BadRequestError), (409, BadRequestError), (413, PayloadTooLargeError),
    (401, AuthenticationError), (402, AuthenticationError), (403, AuthenticationError),
    (404, NotFoundError), (429, RateLimitError), (500, ServerError), (503, ServerError),
    (302, KeenApiError),
])
def test_status_picks_the_exception_class(status: int, cls: type[KeenApiError]) -> None:
    error = error_for_response(status, {"message": "m", "error_code": "E"}, 2.5)
    assert type(error) is cls
    assert (error.status_code, error.error_code, error.message, error.retry_after) == (
        status, "E", "m", 2.5)


def test_api_error_from_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (404, {"message": "Resource not found",
                                       "error_code": "ResourceNotFoundError"})
    client = KeenClient(PROJECT, master_key=MASTER, retry=NO_RETRY)
    with pytest.raises(NotFoundError) as caught:
        client.saved_queries.get("nope")
    assert caught.value.error_code == "ResourceNotFoundError"
    assert caught.value.api_error == {"message": "Resource not found",
                                      "error_code": "ResourceNotFoundError"}
    assert "Check the project id" in str(caught.value)


def test_non_json_error_body(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (502, "<html>" + "bad gateway " * 200 + "</html>")
    client = KeenClient(PROJECT, read_key=READ, retry=NO_RETRY)
    with pytest.raises(ServerError) as caught:
        client.count("c")
    text = str(caught.value)
    assert "502" in text
    assert "The API did not respond with JSON, but: <html>bad gateway" in text
    assert len(caught.value.message) < 1100
    assert caught.value.error_code == "502"


def test_non_json_success_body_is_an_api_error(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (200, "<html>captive portal</html>")
    with pytest.raises(KeenApiError, match="captive portal"):
        KeenClient(PROJECT, read_key=READ).count("c")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_a_requests_and_keen_error() -> None:
    client = KeenClient(PROJECT, write_key=WRITE, base_url=f"http://127.0.0.1:{_closed_port()}",
                        retry=NO_RETRY)
    with pytest.raises(requests.ConnectionError) as caught:
        client.add_event("c", {"a": 1})
    error = caught.value
    assert isinstance(error, KeenConnectionError)
    assert isinstance(error, BaseKeenClientError)
    assert error.request_sent is False
    assert isinstance(error.__cause__, requests.ConnectionError)
    assert not isinstance(error.__cause__, BaseKeenClientError)


def test_read_timeout_is_a_requests_and_keen_error() -> None:
    release = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def accept_and_hold() -> None:
            connection, _ = listener.accept()
            release.wait(10)
            connection.close()

        holder = threading.Thread(target=accept_and_hold, daemon=True)
        holder.start()
        client = KeenClient(PROJECT, read_key=READ, base_url=f"http://127.0.0.1:{port}",
                            get_timeout=0.3, retry=NO_RETRY)
        try:
            with pytest.raises(requests.Timeout) as caught:
                client.count("c")
        finally:
            release.set()
            holder.join(5)
    error = caught.value
    assert isinstance(error, (KeenTimeoutError, requests.ReadTimeout, KeenReadTimeoutError))
    assert isinstance(error, KeenTransportError) and isinstance(error, BaseKeenClientError)
    assert error.request_sent is True


def _every_text(client: KeenClient, caplog: pytest.LogCaptureFixture, error: Exception) -> str:
    return "\n".join([repr(client), repr(client.api), str(error), repr(error),
                      str(error.__cause__ or ""), caplog.text])


def test_keys_never_appear_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    def answer(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if "/queries/" in path:  # a server that echoes the key back in its error message
            return 401, {"message": f"Key {READ} is not valid", "error_code": "InvalidApiKey"}
        return 201, {"created": True}

    with scripted_server(fallback=answer) as server:
        client = KeenClient(PROJECT, write_key=WRITE, read_key=READ, master_key=MASTER,
                            base_url=server.url, retry=NO_RETRY)
        client.add_event("c", {"a": 1})
        with pytest.raises(AuthenticationError) as caught:
            client.count("c")
    text = _every_text(client, caplog, caught.value)
    assert "POST /3.0/projects" in caplog.text  # the debug log line is there...
    for key in (WRITE, READ, MASTER):
        assert key not in text  # ...without a key anywhere
    assert "<redacted key>" in str(caught.value)

    bad = KeenClient(PROJECT, write_key=WRITE, base_url=f"http://127.0.0.1:{_closed_port()}",
                     retry=NO_RETRY)
    with pytest.raises(KeenConnectionError) as refused:
        bad.add_event("c", {"a": 1})
    assert WRITE not in _every_text(bad, caplog, refused.value)


def test_library_logger_has_a_null_handler_and_no_level() -> None:
    logger = logging.getLogger("keen")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET


def test_keen_api_repr_shows_which_keys_are_set() -> None:
    api = KeenApi(PROJECT, read_key=READ)
    assert repr(api) == (f"KeenApi(project_id='{PROJECT}', base_url='https://api.keen.io', "
                         "keys set: read)")


def test_retry_after_is_kept_on_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(request: Any) -> tuple[int, Any]:
        return 429, {"message": "slow down", "error_code": "TooManyRequests"}

    recorder = install_recorder(monkeypatch)
    recorder.answer = answer
    original = recorder.send

    def send_with_header(adapter: Any, request: Any, **kwargs: Any) -> requests.Response:
        response = original(adapter, request, **kwargs)
        response.headers["Retry-After"] = "7"
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send_with_header)
    with pytest.raises(RateLimitError) as caught:
        KeenClient(PROJECT, read_key=READ, retry=NO_RETRY).count("c")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(("raised", "expected", "sent"), [
    (requests.ConnectTimeout("connect timed out"), "KeenConnectTimeoutError", False),
    (requests.ReadTimeout("read timed out"), "KeenReadTimeoutError", True),
    (requests.exceptions.SSLError("bad certificate"), "KeenConnectionError", False),
    (requests.exceptions.ProxyError("proxy refused"), "KeenConnectionError", False),
    (requests.ConnectionError("connection reset"), "KeenConnectionError", True),
    (requests.exceptions.ChunkedEncodingError("broken body"), "KeenTransportError", True),
])
def test_every_requests_failure_maps_to_a_keen_error(monkeypatch: pytest.MonkeyPatch,
                                                     raised: Exception, expected: str,
                                                     sent: bool) -> None:
    def fail(self: Any, request: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fail)
    client = KeenClient(PROJECT, read_key=READ, retry=NO_RETRY)
    with pytest.raises(type(raised)) as caught:  # still what 0.7.0 users catch
        client.count("c")
    error = caught.value
    assert type(error).__name__ == expected
    assert isinstance(error, KeenTransportError)
    assert error.request_sent is sent
    assert error.__cause__ is raised
    if isinstance(raised, requests.ConnectTimeout):
        assert isinstance(error, KeenConnectionError) and isinstance(error, KeenTimeoutError)


def test_connect_and_read_timeouts_can_be_split(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = install_recorder(monkeypatch)
    client = KeenClient(PROJECT, write_key=WRITE, read_key=READ, get_timeout=(3.05, 60),
                        post_timeout=(3.05, 20))
    client.count("c")
    client.add_event("c", {})
    assert [s.timeout for s in recorder.sent] == [(3.05, 60), (3.05, 20)]


def test_client_and_api_attributes_of_0_7_0() -> None:
    client = KeenClient(PROJECT, write_key=WRITE, read_key=READ, master_key=MASTER,
                        get_timeout=10, post_timeout=20, base_url="http://h")
    assert (client.project_id, client.get_timeout, client.post_timeout) == (PROJECT, 10, 20)
    api = client.api
    assert isinstance(api, KeenApi) and client.persistence_strategy.api is api  # type: ignore[attr-defined]
    assert (api.project_id, api.write_key, api.read_key, api.master_key) == (
        PROJECT, WRITE, READ, MASTER)
    assert (api.base_url, api.api_version, api.get_timeout, api.post_timeout) == (
        "http://h", "3.0", 10, 20)
    assert isinstance(api.session, requests.Session)
    assert client.saved_queries.api is api and client.cached_datasets.api is api
    assert KeenApi.base_url == "https://api.keen.io" and KeenApi.api_version == "3.0"


def test_a_url_too_long_for_a_get_only_resource_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries switch to POST when long; dataset results and deletes exist only as GET and
    DELETE, so a huge index_by or filter list goes as it is, and a 414 answer explains why."""
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (414, "<html>Request-URI Too Long</html>")
    client = KeenClient(PROJECT, read_key=READ, master_key=MASTER, retry=NO_RETRY)
    with pytest.raises(BadRequestError) as caught:
        client.cached_datasets.results("d", ["x" * 5000], "this_1_days")
    assert recorder.last.method == "GET" and len(recorder.last.url) > 5000
    assert caught.value.status_code == 414
    assert "URL is too long" in str(caught.value)
    with pytest.raises(BadRequestError, match="URL is too long"):
        client.delete_events("c", filters=[{"property_name": "id", "operator": "in",
                                            "property_value": ["x" * 5000]}])
    assert recorder.last.method == "DELETE"


def test_a_key_echoed_deep_in_an_error_body_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (400, {"message": "bad", "error_code": "E",
                                       "details": {"headers": [f"Authorization: {READ}"]}})
    with pytest.raises(BadRequestError) as caught:
        KeenClient(PROJECT, read_key=READ, retry=NO_RETRY).count("c")
    assert READ not in repr(caught.value.api_error)
    assert caught.value.api_error["details"] == {
        "headers": ["Authorization: <redacted key>"]}


def test_an_access_key_echoed_in_an_error_body_is_redacted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    access_key = "A" * 64
    recorder = install_recorder(monkeypatch)
    recorder.answer = lambda r: (404, {"message": f"No access key {access_key}.",
                                       "error_code": "ResourceNotFoundError"})
    client = KeenClient(PROJECT, master_key=MASTER, retry=NO_RETRY)
    with pytest.raises(NotFoundError) as caught:
        client.get_access_key(access_key)
    assert access_key not in str(caught.value) + repr(caught.value.api_error)
    assert "No access key <redacted key>." in str(caught.value)


def test_credentials_in_base_url_stay_out_of_reprs_errors_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with scripted_server([(503, {"message": "busy", "error_code": "E"}, {})]) as server:
        url = server.url.replace("http://", "http://tour:s3cret-pass@")
        client = KeenClient(PROJECT, read_key=READ, base_url=url,
                            retry=_retry.RetryPolicy(max_retries=1, backoff_base=0.0))
        assert client.count("c") == 7  # retried once (logged), then answered
    bad = KeenClient(PROJECT, write_key=WRITE, retry=NO_RETRY,
                     base_url=f"http://tour:s3cret-pass@127.0.0.1:{_closed_port()}")
    with pytest.raises(KeenConnectionError) as refused:
        bad.add_event("c", {"a": 1})
    text = _every_text(client, caplog, refused.value) + repr(bad)
    assert "retrying GET http://<redacted>@127.0.0.1:" in caplog.text
    assert "s3cret-pass" not in text
