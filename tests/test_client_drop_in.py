"""Issue 8: 0.7.0 code runs unchanged, and the first hour holds no surprises.

Bytes keys, module settings that show the values in use, the key checked before the arguments,
short scoped keys, ``KeenClient()`` from the environment, the debug switch, the disabled mode,
``keen.on_error``, and errors that are keen's own, on one line.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _client_helpers import Recorder, install_recorder, recorder_fixture  # noqa: F401 (a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

import keen
from keen import exceptions, scoped_keys
from keen.client import KeenClient
from keen.server import LocalKeenServer

ENV = ("PROJECT_ID", "WRITE_KEY", "READ_KEY", "MASTER_KEY", "BASE_URL", "DELIVERY", "DISABLED",
       "DEBUG")
MODULE_SETTINGS = ("project_id", "write_key", "read_key", "master_key", "base_url", "delivery",
                   "disabled", "debug", "on_error")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV:
        monkeypatch.delenv(f"KEEN_{name}", raising=False)
    for name in MODULE_SETTINGS:
        monkeypatch.setattr(keen, name, None, raising=False)
    monkeypatch.setattr(keen, "_filled", {}, raising=False)
    keen.reset_client()
    yield
    keen.reset_client()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalKeenServer]:
    with LocalKeenServer() as running:
        yield running


# -- 1. 0.7.0 code -----------------------------------------------------------------------------

def test_a_bytes_scoped_key_gets_the_api_error_not_a_type_error(server: LocalKeenServer) -> None:
    read_only = scoped_keys.encrypt(server.master_key, {"allowed_operations": ["read"]})
    assert isinstance(read_only, bytes)
    client = KeenClient(server.project_id, write_key=read_only, read_key=read_only,
                        base_url=server.url)
    with pytest.raises(exceptions.AuthenticationError) as caught:
        client.add_event("c", {"a": 1})  # a read-only key cannot write: 401
    texts = [str(caught.value), repr(caught.value), repr(client), repr(client.api)]
    assert not any(read_only.decode() in text for text in texts)
    assert client.count("c", timeframe="this_1_days") == 0  # and the bytes key reads


def test_a_bytes_key_echoed_by_the_server_is_redacted(recorder: Recorder) -> None:
    key = b"K" * 64
    recorder.answer = lambda request: (401, {"message": f"Key {key.decode()} is not valid",
                                             "error_code": "InvalidApiKeyError"})
    with pytest.raises(exceptions.AuthenticationError) as caught:
        KeenClient("PID", read_key=key, base_url="http://h").count("c")
    assert key.decode() not in str(caught.value)
    assert "<redacted key>" in str(caught.value)
    assert recorder.last.headers["Authorization"] == key.decode()


def test_module_settings_show_the_values_in_use_and_follow_later_changes(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEN_PROJECT_ID", "ENVPID")
    monkeypatch.setenv("KEEN_READ_KEY", "ENVRK")
    monkeypatch.setenv("KEEN_BASE_URL", "http://env-host")
    keen._initialize_client_from_environment()
    assert (keen.project_id, keen.read_key, keen.base_url) == ("ENVPID", "ENVRK",
                                                               "http://env-host")
    assert keen.write_key is None and keen.master_key is None
    monkeypatch.setenv("KEEN_PROJECT_ID", "OTHER")  # the environment changes later: followed
    keen.count("c")
    assert recorder.last.url.startswith("http://env-host/3.0/projects/OTHER/")
    assert keen.project_id == "OTHER"
    keen.project_id = "MINE"  # the application's own value wins
    keen.count("c")
    assert "/projects/MINE/" in recorder.last.url
    assert keen.project_id == "MINE"


@pytest.mark.parametrize("call", [
    lambda c: c.cached_datasets.get(),
    lambda c: c.cached_datasets.results("d"),
    lambda c: c.saved_queries.results(),
    lambda c: c.count("c", limit="five"),
    lambda c: c.count(123),
    lambda c: c.api.get_collection(),
    lambda c: c.api.query(),
])
def test_the_read_key_is_checked_before_the_arguments(call: Any, recorder: Recorder) -> None:
    with pytest.raises(exceptions.InvalidEnvironmentError, match="read key"):
        call(KeenClient("PID", write_key="W", base_url="http://h"))
    assert recorder.sent == []


@pytest.mark.parametrize("call", [
    lambda c: c.saved_queries.get(),
    lambda c: c.saved_queries.create("q"),
    lambda c: c.cached_datasets.delete(),
    lambda c: c.delete_events("c", filters="nonsense"),
    lambda c: c.api.get_access_key(),
])
def test_the_master_key_is_checked_before_the_arguments(call: Any, recorder: Recorder) -> None:
    with pytest.raises(exceptions.InvalidEnvironmentError, match="master key"):
        call(KeenClient("PID", read_key="R", base_url="http://h"))
    assert recorder.sent == []


SCOPED_0_7_0 = json.loads(
    (Path(__file__).parent / "data" / "scoped_keys_0_7_0.json").read_text())["cases"]
MASTER_64 = "24077ACBCB198BAAA2110EDDB673282F8E34909FD823A15C55A6253A664BE368"


def _length_0_7_0(master_key: str, options: Any) -> int:
    """Hex length of the key 0.7.0 makes: json.dumps' default separators, padded to 16 (64-char
    keys) or 32 bytes (legacy), and not padded at all when already a whole number of blocks."""
    block = 16 if len(master_key) == 64 else 32
    length = len(json.dumps(options).encode("utf-8"))
    return 2 * (16 + -(-length // block) * block)


@pytest.mark.parametrize("case", SCOPED_0_7_0, ids=lambda c: str(c["plaintext_length"]))
def test_scoped_keys_are_never_longer_than_0_7_0s(case: dict[str, Any]) -> None:
    assert _length_0_7_0(case["master_key"], case["options"]) == len(case["scoped_key"])
    ours = scoped_keys.encrypt(case["master_key"], case["options"])
    assert len(ours) <= len(case["scoped_key"])
    assert scoped_keys.decrypt(case["master_key"], ours) == case["options"]


@pytest.mark.parametrize("master_key", [MASTER_64, MASTER_64[:32]], ids=["64", "legacy"])
def test_the_issue_s_scoped_key_is_as_short_as_0_7_0s(master_key: str) -> None:
    options = {"allowed_operations": ["read"]}
    assert len(scoped_keys.encrypt(master_key, options)) == 96 == _length_0_7_0(master_key,
                                                                                options)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(options=st.dictionaries(st.text(max_size=12), _json, min_size=1, max_size=5),
       legacy=st.booleans())
def test_scoped_keys_never_longer_than_0_7_0s_for_any_options(options: dict[str, Any],
                                                               legacy: bool) -> None:
    master_key = MASTER_64[:32] if legacy else MASTER_64
    key = scoped_keys.encrypt(master_key, options)
    assert len(key) <= _length_0_7_0(master_key, options)
    assert scoped_keys.decrypt(master_key, key) == options


# -- 2. the environment, for every client ------------------------------------------------------

def test_keen_client_without_arguments_is_the_client_of_the_environment(
        server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    with KeenClient() as client:
        assert client.api.base_url == server.url
        client.add_event("env", {"a": 1})
        assert client.count("env", timeframe="this_1_days") == 1
        assert client.get_access_key  # the master key came too:
        assert client.list_access_keys() is not None
    client = KeenClient(read_key="", base_url=server.url)  # what is given wins
    with pytest.raises(exceptions.InvalidEnvironmentError, match="KEEN_READ_KEY is set, but"):
        client.count("env", timeframe="this_1_days")


def test_delivery_from_the_environment_is_the_module_s_not_an_explicit_client_s(
        monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.setenv("KEEN_PROJECT_ID", "PID")
    monkeypatch.setenv("KEEN_DISABLED", "1")
    monkeypatch.setenv("KEEN_DELIVERY", "background")
    client = KeenClient()  # a client built in code sends as it was told: directly
    assert type(client.persistence_strategy).__name__ == "DirectPersistenceStrategy"
    keen.add_event("c", {"a": 1})  # the module's default client follows KEEN_DISABLED
    assert keen.stats() == {"validated": 1, "sent": 0} and recorder.sent == []
    assert type(KeenClient(disabled=True).persistence_strategy).__name__ == (
        "DisabledPersistenceStrategy")


def test_without_a_project_id_the_error_names_the_variable() -> None:
    with pytest.raises(exceptions.InvalidProjectIdError, match="KEEN_PROJECT_ID"):
        KeenClient()


def test_a_missing_key_names_the_variable_only_when_it_is_unset(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = KeenClient("PID")
    with pytest.raises(exceptions.InvalidEnvironmentError) as caught:
        client.delete_events("c")
    assert "KEEN_MASTER_KEY environment variable" in str(caught.value)
    monkeypatch.setenv("KEEN_MASTER_KEY", "MK")
    with pytest.raises(exceptions.InvalidEnvironmentError) as caught:
        client.delete_events("c")  # built before the variable was set
    assert "or the KEEN_MASTER_KEY environment variable" not in str(caught.value)
    assert "KEEN_MASTER_KEY is set, but" in str(caught.value)


# -- 5. what users of other SDKs expect --------------------------------------------------------

@pytest.mark.parametrize("switch", ["environment", "module"])
def test_the_debug_switch_shows_each_request_without_a_key(
        switch: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    if switch == "environment":
        monkeypatch.setenv("KEEN_DEBUG", "1")
    else:
        keen.debug = True
    client = KeenClient("PID", write_key="SECRET-W", read_key="SECRET-R", base_url="http://h")
    client.add_event("c", {"a": 1})
    client.count("c", timeframe="this_1_days")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [line for line in lines if line.startswith("keen: ")]
    assert "POST http://h/3.0/projects/PID/events/c -> 201" in lines[0]
    assert "GET http://h/3.0/projects/PID/queries/count -> 200" in lines[1]
    assert "SECRET" not in "\n".join(lines)


def test_debug_is_off_by_default_and_the_module_setting_wins(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    client = KeenClient("PID", read_key="R", base_url="http://h")
    client.count("c")
    monkeypatch.setenv("KEEN_DEBUG", "1")
    keen.debug = False
    client.count("c")
    assert capsys.readouterr().err == ""


def test_disabled_client_checks_and_counts_and_sends_nothing(recorder: Recorder) -> None:
    client = KeenClient("PID", base_url="http://h", disabled=True)  # no key needed
    client.add_event("c", {"at": datetime.datetime(2024, 1, 1)})
    assert client.add_events({"c": [{"a": 1}, {"a": 2}]}) == {
        "c": [{"success": True}, {"success": True}]}
    with pytest.raises(exceptions.InvalidEventError):
        client.add_event("c", {"bad": float("nan")})
    with pytest.raises(exceptions.InvalidEventError):
        client.add_events({"c": ["not a dict"]})
    assert recorder.sent == []
    assert client.stats() == {"validated": 3, "sent": 0}


@pytest.mark.parametrize("switch", ["environment", "module"])
def test_disabled_module_sends_nothing(switch: str, recorder: Recorder,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    keen.project_id = "PID"
    keen.delivery = "background"  # disabled wins over it
    if switch == "environment":
        monkeypatch.setenv("KEEN_DISABLED", "1")
    else:
        keen.disabled = True
    keen.add_event("c", {"a": 1})
    assert keen.stats() == {"validated": 1, "sent": 0}
    assert recorder.sent == []


def test_on_error_set_on_the_module_receives_what_the_server_rejects(
        server: LocalKeenServer) -> None:
    received: list[tuple[list[tuple[str, dict[str, Any]]], BaseException]] = []
    called = threading.Event()

    def on_error(events: list[tuple[str, dict[str, Any]]], error: BaseException) -> None:
        received.append((events, error))
        called.set()

    keen.project_id, keen.write_key, keen.base_url = (server.project_id, server.write_key,
                                                      server.url)
    keen.delivery = keen.BackgroundDelivery(flush_interval=0.01)
    keen.add_event("accepted", {"ok": 1})  # builds the default client
    keen.on_error = on_error  # read when called: set after the client was built, still used
    keen.add_event("rejects", {"$bad": 1})  # the server refuses '$' names
    assert keen.flush(timeout=10)
    assert called.wait(10)
    (events, error), = received
    assert events[0][0] == "rejects" and events[0][1]["$bad"] == 1
    assert isinstance(error, exceptions.EventRejectedError)


# -- 6. errors ---------------------------------------------------------------------------------

def test_a_tls_file_that_does_not_exist_is_a_keen_error(tmp_path: Path) -> None:
    session = requests.Session()
    session.cert = str(tmp_path / "missing-client.pem")
    client = KeenClient("PID", read_key="R", base_url="https://127.0.0.1:9", session=session)
    with pytest.raises(exceptions.InvalidTLSFileError) as caught:
        client.count("c")
    assert isinstance(caught.value, (exceptions.BaseKeenClientError, OSError))
    assert "missing-client.pem" in str(caught.value)


def test_any_other_os_error_of_a_session_is_a_keen_error() -> None:
    class Broken(requests.Session):
        def get(self, *args: Any, **kwargs: Any) -> requests.Response:
            raise PermissionError("no sockets for you")

    client = KeenClient("PID", read_key="R", base_url="http://h", session=Broken())
    with pytest.raises(exceptions.KeenTransportError, match="no sockets for you"):
        client.count("c")


@pytest.mark.parametrize("make", [
    lambda: KeenClient("PID", base_url=""),
    lambda: KeenClient("PID", get_timeout=-1),
    lambda: KeenClient("PID", retry="often"),
    lambda: keen.RetryPolicy(max_retries=-1),
    lambda: KeenClient("PID", persistence_strategy=keen.persistence_strategies
                       .DirectPersistenceStrategy(None), delivery="background"),  # type: ignore
])
def test_bad_settings_raise_a_keen_error(make: Any) -> None:
    with pytest.raises(exceptions.InvalidConfigurationError) as caught:
        make()
    assert isinstance(caught.value, (ValueError, TypeError))


def test_an_api_error_is_one_line_naming_the_request(server: LocalKeenServer) -> None:
    client = server.make_client()
    with pytest.raises(exceptions.NotFoundError) as caught:
        client.saved_queries.results("no-such-query")
    text = str(caught.value)
    assert "\n" not in text and not text.startswith(" ")
    assert text.startswith("404 ")
    assert caught.value.error_code and caught.value.error_code in text
    assert f"GET {server.url}/3.0/projects/{server.project_id}/queries/saved/no-such-query/" \
           f"result" in text
    assert server.read_key not in text and server.master_key not in text


def test_naive_timestamps_are_read_as_utc_and_say_so(server: LocalKeenServer) -> None:
    assert "naive" in (KeenClient.add_event.__doc__ or "")
    assert "naive" in (keen.add_event.__doc__ or "")
    client = server.make_client()
    client.add_event("stamps", {"a": 1}, timestamp=datetime.datetime(2020, 1, 2, 3, 4, 5))
    client.add_event("stamps", {"a": 2}, timestamp=datetime.datetime(
        2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))))
    stamps = [e["keen"]["timestamp"] for e in client.extraction(
        "stamps", timeframe={"start": "2020-01-01T00:00:00Z", "end": "2020-01-03T00:00:00Z"})]
    assert stamps == ["2020-01-02T03:04:05.000Z", "2020-01-02T08:04:05.000Z"]


def test_environment_is_clean_for_these_tests() -> None:
    assert not [name for name in os.environ if name in {f"KEEN_{n}" for n in ENV}]
