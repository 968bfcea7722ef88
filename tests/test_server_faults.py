"""Fault injection and restarts of the local server (Python API and HTTP control endpoint)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from _server_helpers import TIMEOUT, Api, api_fixture, error_of, server_fixture  # noqa: F401

from keen.server import LocalKeenServer
from keen.server.faults import MAX_PENDING, Faults


def test_fail_next_answers_with_the_chosen_status_then_recovers(api: Api) -> None:
    api.server.faults.fail_next(2, 429, retry_after=3)
    for _ in range(2):
        response = api.post("/events/c", api.server.write_key, body={"a": 1})
        assert error_of(response) == (429, "TooManyRequestsError")
        assert response.headers["Retry-After"] == "3"
    assert api.post("/events/c", api.server.write_key, body={"a": 1}).status_code == 201
    assert api.count("c") == 1  # failed requests were not processed
    assert api.server.faults.injected == 2


def test_fail_next_with_custom_error_code_and_default_503(api: Api) -> None:
    api.server.faults.fail_next(error_code="QueryTimeoutError", message="too slow")
    response = api.get("/events", api.server.read_key)
    assert response.status_code == 503
    assert response.json() == {"message": "too slow", "error_code": "QueryTimeoutError"}
    assert "Retry-After" not in response.headers


def test_drop_next_closes_the_connection_unprocessed(api: Api) -> None:
    api.server.faults.drop_next()
    with pytest.raises(requests.ConnectionError):
        api.post("/events/c", api.server.write_key, body={"a": 1})
    assert api.count("c") == 0
    # the pooled session recovers on a new connection
    assert api.post("/events/c", api.server.write_key, body={"a": 1}).status_code == 201


def test_drop_after_processing_stores_but_loses_the_answer(api: Api) -> None:
    api.server.faults.drop_next(after_processing=True)
    with pytest.raises(requests.ConnectionError):
        api.post("/events/c", api.server.write_key, body={"a": 1})
    assert api.count("c") == 1


def test_slow_next_delays_then_answers(api: Api) -> None:
    api.server.faults.slow_next(1, seconds=2.0)
    with pytest.raises(requests.Timeout):
        api.get("/events", api.server.read_key, timeout=0.3)
    assert api.server.faults.pending == 0


def test_faults_apply_in_order_and_clear(api: Api) -> None:
    faults = api.server.faults
    faults.fail_next(1, 500)
    faults.fail_next(1, 502)
    assert error_of(api.get("/events", api.server.read_key))[0] == 500
    assert error_of(api.get("/events", api.server.read_key))[0] == 502
    faults.fail_next(5)
    faults.clear()
    assert faults.pending == 0
    assert api.get("/events", api.server.read_key).status_code == 200


@pytest.mark.parametrize(("call", "message"), [
    (lambda f: f.fail_next(0), "from 1 to"),
    (lambda f: f.fail_next(1, 200), "status"),
    (lambda f: f.slow_next(1, -1), "seconds"),
    (lambda f: f.fail_next(1, retry_after="soon"), "retry_after"),
    (lambda f: f.fail_next(1, error_code=5), "error_code"),
    (lambda f: f.fail_next(1, message=""), "message"),
    (lambda f: f.drop_next(1, after_processing="false"), "after_processing"),
])
def test_bad_fault_arguments_are_refused(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(Faults())


def test_control_endpoint_queues_faults_for_other_processes(api: Api) -> None:
    control = f"{api.server.url}/_keen/faults"
    answer = api.post(control, body={"action": "fail", "count": 1, "status": 500})
    assert answer.json() == {"pending": 1, "injected": 0}
    assert error_of(api.get("/events", api.server.read_key)) == (500, "InternalServerError")
    api.post(control, body={"action": "drop", "after_processing": True})
    with pytest.raises(requests.ConnectionError):
        api.post("/events/c", api.server.write_key, body={"a": 1})
    assert api.count("c") == 1
    api.post(control, body={"action": "slow", "count": 3, "seconds": 1})
    assert api.get(control).json()["pending"] == 3  # control calls are never faulted
    assert api.delete(control).json() == {"pending": 0, "injected": 2}


@pytest.mark.parametrize("body", [
    {"action": "explode"}, {"action": "fail", "count": -1}, {"action": "slow", "status": 500},
    {"action": "drop", "after_processing": "false"}, {"action": "fail", "error_code": 7},
    [1, 2],
])
def test_control_endpoint_refuses_bad_commands(api: Api, body: object) -> None:
    response = api.post(f"{api.server.url}/_keen/faults", body=body)
    assert error_of(response) == (400, "InvalidFaultError")
    assert api.server.faults.pending == 0


def test_health_endpoint(api: Api) -> None:
    assert api.get(f"{api.server.url}/_keen/health").json()["ok"] is True


def test_stop_closes_pooled_connections_and_start_reuses_the_port(api: Api) -> None:
    server = api.server
    api.write("c", {"a": 1})
    port = server.port
    server.stop()
    with pytest.raises(requests.ConnectionError):
        api.get("/events", server.read_key, timeout=2)
    server.start()
    assert server.port == port
    assert api.count("c") == 1  # the in-memory data outlived the restart
    server.faults.slow_next(1, seconds=30)
    # a slow request in flight does not hold up stop() for its whole delay
    worker = threading.Thread(target=lambda: _ignore_errors(api))
    worker.start()
    deadline = time.monotonic() + TIMEOUT
    while server.faults.pending and time.monotonic() < deadline:
        time.sleep(0.01)  # until the request has reached the server
    server.stop(timeout=TIMEOUT)
    worker.join(TIMEOUT)
    assert not worker.is_alive()


def _ignore_errors(api: Api) -> None:
    with contextlib.suppress(requests.RequestException):
        api.get("/events", api.server.read_key, timeout=TIMEOUT)


def test_restart_with_a_file_database_keeps_everything(tmp_path: Path) -> None:
    db = str(tmp_path / "keen.db")
    with LocalKeenServer(db=db) as first:
        api = Api(first)
        api.write("c", {"a": 1}, {"a": 2})
        key = api.create_key(name="k", permitted=["queries"])
        port = first.port
        first.stop()
        first.start()
        assert first.port == port
        assert api.count("c", key) == 2
    with LocalKeenServer(db=db) as second:
        assert Api(second).count("c", key) == 2


def test_stop_lets_a_request_in_flight_finish_and_answer(tmp_path: Path) -> None:
    """stop() waits (up to its timeout) for requests being handled: their answers reach the
    client, and a write that was accepted is in the file database after a restart."""
    server = LocalKeenServer(db=str(tmp_path / "keen.db")).start()
    api = Api(server)
    http_server = server._server
    assert http_server is not None
    app = http_server.app
    entered, release = threading.Event(), threading.Event()
    handle = app.handle

    def held(request: Any) -> Any:
        entered.set()
        release.wait(TIMEOUT)
        return handle(request)

    app.handle = held  # type: ignore[method-assign]
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(
        api.post("/events/c", server.write_key, body={"a": 1}).status_code))
    worker.start()
    assert entered.wait(TIMEOUT)
    stopper = threading.Thread(target=server.stop, kwargs={"timeout": TIMEOUT})
    stopper.start()
    assert http_server.stopping.wait(TIMEOUT)  # stop() is now waiting for requests in flight
    release.set()
    stopper.join(TIMEOUT)
    worker.join(TIMEOUT)
    assert answers == [201]
    with server:
        assert api.count("c") == 1
    api.session.close()


@pytest.mark.parametrize(("call", "message"), [
    (lambda f: f.fail_next(MAX_PENDING + 1), "from 1 to"),
    (lambda f: f.fail_next(20_000_000), "from 1 to"),
    (lambda f: f.slow_next(1, float("inf")), "seconds"),
    (lambda f: f.slow_next(1, float("nan")), "seconds"),
    (lambda f: f.slow_next(1, 1e300), "seconds"),
    (lambda f: f.fail_next(1, retry_after=float("nan")), "retry_after"),
    (lambda f: f.fail_next(1, retry_after=1e300), "retry_after"),
])
def test_fault_numbers_are_bounded(call, message: str) -> None:  # type: ignore[no-untyped-def]
    faults = Faults()
    with pytest.raises(ValueError, match=message):
        call(faults)
    assert faults.pending == 0


def test_the_fault_queue_is_bounded() -> None:
    faults = Faults()
    faults.fail_next(MAX_PENDING - 1)
    with pytest.raises(ValueError, match="at most"):
        faults.drop_next(2)
    assert faults.pending == MAX_PENDING - 1  # the refused command queued nothing
    faults.drop_next(1)
    assert faults.pending == MAX_PENDING


@pytest.mark.parametrize("body", [
    b'{"action": "fail", "count": 20000000}',
    b'{"action": "slow", "seconds": Infinity}',
    b'{"action": "slow", "seconds": NaN}',
    b'{"action": "slow", "seconds": 1e300}',
])
def test_control_endpoint_refuses_huge_or_infinite_numbers(api: Api, body: bytes) -> None:
    response = api.post(f"{api.server.url}/_keen/faults", data=body,
                        headers={"Content-Type": "application/json"})
    assert error_of(response) == (400, "InvalidFaultError")
    assert api.server.faults.pending == 0


def test_control_endpoint_takes_only_json(api: Api) -> None:
    """A cross-origin HTML form can post text/plain without a preflight: refused."""
    response = api.post(f"{api.server.url}/_keen/faults", data='{"action": "fail"}',
                        headers={"Content-Type": "text/plain"})
    assert error_of(response) == (415, "UnsupportedMediaTypeError")
    assert api.server.faults.pending == 0


def test_control_endpoint_refuses_a_foreign_web_page(api: Api) -> None:
    response = api.post(f"{api.server.url}/_keen/faults", body={"action": "fail"},
                        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site",
                                 "Sec-Fetch-Mode": "cors"})
    assert error_of(response) == (403, "ForbiddenOriginError")
    assert api.server.faults.pending == 0


def test_faults_endpoint_hidden_unless_exposed() -> None:
    with LocalKeenServer(expose_faults=False) as server:
        api = Api(server)
        response = api.post(f"{server.url}/_keen/faults", body={"action": "fail"})
        assert error_of(response) == (404, "ResourceNotFoundError")
        assert server.faults.pending == 0
        assert api.get(f"{server.url}/_keen/health").json()["ok"] is True
        api.session.close()
