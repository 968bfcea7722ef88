"""The retry policy, wired into the one request path, against a loopback server that fails."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from _client_helpers import PROJECT, READ, WRITE, scripted_server

from keen import _retry
from keen.api import KeenApi
from keen.client import KeenClient
from keen.exceptions import KeenConnectionError, RateLimitError, ServerError

FAST = _retry.RetryPolicy(max_retries=3, deadline=10.0, backoff_base=0.0, backoff_cap=0.0)
FAIL_503 = (503, {"message": "busy", "error_code": "Unavailable"}, {})
FAIL_502 = (502, {"message": "bad gateway", "error_code": "BadGateway"}, {})
FAIL_500 = (500, {"message": "oops", "error_code": "InternalServerError"}, {})
HANG_UP = (0, None, {})


def make_client(url: str, policy: _retry.RetryPolicy = FAST) -> KeenClient:
    return KeenClient(PROJECT, write_key=WRITE, read_key=READ, base_url=url, retry=policy)


def test_query_is_retried_until_it_succeeds() -> None:
    with scripted_server([FAIL_503, FAIL_502]) as server:
        assert make_client(server.url).count("c") == 7
    assert len(server.received) == 3


def test_query_gives_up_after_max_retries() -> None:
    with scripted_server([FAIL_503] * 5) as server, pytest.raises(ServerError) as caught:
        make_client(server.url).count("c")
    assert caught.value.status_code == 503
    assert len(server.received) == 4  # the first attempt and 3 retries


def test_internal_server_error_is_not_retried() -> None:
    with scripted_server([FAIL_500]) as server, pytest.raises(ServerError):
        make_client(server.url).count("c")
    assert len(server.received) == 1


def test_no_retry_policy_sends_once() -> None:
    with scripted_server([FAIL_503]) as server, pytest.raises(ServerError):
        make_client(server.url, _retry.NO_RETRY).count("c")
    assert len(server.received) == 1


@pytest.mark.parametrize(("failure", "retried"), [(FAIL_503, True), (FAIL_502, False),
                                                  (HANG_UP, False)])
def test_single_event_is_retried_only_when_it_cannot_duplicate(failure: Any,
                                                               retried: bool) -> None:
    with scripted_server([failure]) as server:
        client = make_client(server.url)
        if retried:
            client.add_event("c", {"a": 1})
        else:
            with pytest.raises((ServerError, KeenConnectionError)):
                client.add_event("c", {"a": 1})
    assert len([r for r in server.received if r[0] == "POST"]) == (2 if retried else 1)


def test_rate_limited_event_is_retried_after_retry_after() -> None:
    with scripted_server([(429, {"message": "slow", "error_code": "Limit"},
                           {"Retry-After": "0"})]) as server:
        make_client(server.url).add_event("c", {"a": 1})
    assert len(server.received) == 2


def test_event_with_uniqueness_token_is_retried_like_a_read() -> None:
    with scripted_server([FAIL_502, HANG_UP]) as server:
        make_client(server.url).add_event("c", {"keen": {"uniqueness_token": "t-1"}, "a": 1})
    assert len(server.received) >= 2  # a hang-up may be seen before the body is read
    assert server.received[-1][1].endswith("/events/c")


def test_batch_is_retried_only_when_every_event_has_a_token() -> None:
    tokened = {"c": [{"keen": {"uniqueness_token": "1"}}, {"keen": {"uniqueness_token": "2"}}]}
    with scripted_server([FAIL_502]) as server:
        result = make_client(server.url).add_events(tokened)
    assert result == {"c": [{"success": True}] * 2}
    assert len(server.received) == 2

    partly = {"c": [{"keen": {"uniqueness_token": "1"}}, {"a": 1}]}
    with scripted_server([FAIL_502]) as server, pytest.raises(ServerError):
        make_client(server.url).add_events(partly)
    assert len(server.received) == 1


def test_query_is_retried_after_a_hang_up() -> None:
    with scripted_server([HANG_UP]) as server:
        assert make_client(server.url).count("c") == 7


def test_event_never_sent_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts: list[str] = []
    original = KeenApi.fulfill

    def counting(self: KeenApi, method: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(method)
        return original(self, method, *args, **kwargs)

    monkeypatch.setattr(KeenApi, "fulfill", counting)
    with pytest.raises(KeenConnectionError) as caught:
        make_client(f"http://127.0.0.1:{port}").add_event("c", {"a": 1})
    assert caught.value.request_sent is False
    assert attempts == ["post"] * 4


def test_deadline_stops_retrying() -> None:
    policy = _retry.RetryPolicy(max_retries=10, deadline=0.0, backoff_base=0.0)
    with scripted_server([FAIL_503] * 3) as server, pytest.raises(ServerError):
        make_client(server.url, policy).count("c")
    assert len(server.received) == 1


def test_raw_batch_can_override_the_retry_policy() -> None:
    body = b'{"c": [{"keen": {"uniqueness_token": "t"}}]}'
    with scripted_server([FAIL_503, FAIL_503]) as server:
        api = make_client(server.url).api
        with pytest.raises(ServerError):
            api.post_events_raw(body, idempotent=True, retry=_retry.NO_RETRY)
        assert len(server.received) == 1
        assert api.post_events_raw(body, idempotent=True) == {"c": [{"success": True}]}
    assert len(server.received) == 3


def test_no_retry_when_retry_after_reaches_past_the_deadline() -> None:
    """A server asking for more patience than the deadline leaves gets its answer raised at
    once (with retry_after), not a sleep and a retry after the deadline."""
    policy = _retry.RetryPolicy(max_retries=3, deadline=0.5, backoff_base=0.0)
    limited = (429, {"message": "slow down", "error_code": "Limit"}, {"Retry-After": "1"})
    with scripted_server([limited]) as server, pytest.raises(RateLimitError) as caught:
        make_client(server.url, policy).count("c")
    assert caught.value.retry_after == 1.0
    assert len(server.received) == 1
