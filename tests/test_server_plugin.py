"""The pytest plugin ``keen.testing``, exercised in a pytest run of its own (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import requests

pytest_plugins = ["keen.testing"]

def test_server_fixture(keen_server):
    response = requests.post(
        f"{keen_server.url}/3.0/projects/{keen_server.project_id}/events/c",
        json={"a": 1}, headers={"Authorization": keen_server.write_key}, timeout=10)
    assert response.status_code == 201
    assert keen_server.storage.count_events(keen_server.project_id, "c") == 1


def test_each_test_gets_an_empty_server(keen_server):
    assert keen_server.storage.count_events(keen_server.project_id, "c") == 0


def test_client_fixture(keen_client):
    keen_client.add_event("c", {"a": 1})
    assert keen_client.count("c", timeframe="this_1_days") == 1


def test_module_fixture(keen_module, keen_server):
    keen_module.add_event("c", {"a": 2})
    assert keen_module.count("c", timeframe="this_1_days") == 1
    assert keen_server.storage.count_events(keen_server.project_id, "c") == 1


def test_faults_through_the_fixture(keen_server, keen_client):
    import pytest
    import keen.exceptions

    keen_server.faults.fail_next(1, 500)
    with pytest.raises(keen.exceptions.ServerError):
        keen_client.count("c", timeframe="this_1_days")
'''


def test_plugin_gives_a_server_a_client_and_the_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


QUEUED_USER_TESTS = '''
import keen

pytest_plugins = ["keen.testing"]

def test_module_level_code(keen_module):
    keen_module.add_event("sign_ups", {"username": "ada"})   # same as keen.add_event(...)
    assert keen_module.count("sign_ups", timeframe="this_day") == 1


def test_code_under_test_sets_background_delivery(keen_module):
    keen.delivery = "background"
    try:
        keen.add_event("sign_ups", {"username": "ada"})
        keen.add_events({"sign_ups": [{"username": "bob"}]})
        assert keen.count("sign_ups", timeframe="this_day") == 2
    finally:
        keen.delivery = None
'''


@pytest.mark.parametrize("environment", ["", "background"])
def test_module_fixture_reads_what_was_added_whatever_the_delivery(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, environment: str) -> None:
    """Issue 8: with KEEN_DELIVERY=background, or keen.delivery set by the code under test,
    the README's own test_module_level_code failed (assert 0 == 1)."""
    if environment:
        monkeypatch.setenv("KEEN_DELIVERY", environment)
    else:
        monkeypatch.delenv("KEEN_DELIVERY", raising=False)
    pytester.makepyfile(test_user=QUEUED_USER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
