"""pytest plugin: a local Keen server for your tests, no account and no network needed.

Enable it with one line in your ``conftest.py`` (or a test module)::

    pytest_plugins = ["keen.testing"]

Fixtures (each test gets a fresh, empty in-memory server on a free loopback port):

``keen_server``
    a running :class:`keen.server.LocalKeenServer` (``.url``, ``.project_id``, the keys,
    ``.faults`` for fault injection, ``.storage``).
``keen_client``
    a :class:`keen.KeenClient` with all three keys, pointed at ``keen_server``.
``keen_module``
    the ``keen`` module itself, its settings (``keen.project_id``, the keys, ``keen.base_url``
    and the ``KEEN_*`` environment variables) pointed at ``keen_server`` for the duration of the
    test, so code that calls ``keen.add_event(...)`` at module level is tested unchanged.
    Whatever delivery mode is set (``KEEN_DELIVERY=background``, or ``keen.delivery = ...`` in
    the code under test), a module call reads what was added before it: queued events are
    flushed (for up to 10 s) before every module call other than ``add_event``,
    ``add_events`` and ``generate_image_beacon``. ``keen.disabled`` starts False (whatever
    ``KEEN_DISABLED`` says): the events go to the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from keen.client import KeenClient
from keen.server import LocalKeenServer

__all__ = ["keen_client", "keen_module", "keen_server"]

_MODULE_SETTINGS = {
    "KEEN_PROJECT_ID": "project_id",
    "KEEN_WRITE_KEY": "write_key",
    "KEEN_READ_KEY": "read_key",
    "KEEN_MASTER_KEY": "master_key",
    "KEEN_BASE_URL": "base_url",
}


@pytest.fixture
def keen_server() -> Iterator[LocalKeenServer]:
    """A running local Keen server with an empty in-memory database."""
    with LocalKeenServer() as server:
        yield server


@pytest.fixture
def keen_client(keen_server: LocalKeenServer) -> KeenClient:
    """A ``keen.KeenClient`` for ``keen_server`` (project id, write, read and master keys)."""
    return keen_server.client


@pytest.fixture
def keen_module(
    keen_server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ModuleType]:
    """The ``keen`` module with its settings pointed at ``keen_server`` (restored afterwards);
    a module call reads the events added before it, whatever the delivery mode."""
    import keen

    if hasattr(keen, "_flush_before_calls"):
        monkeypatch.setattr(keen, "_flush_before_calls", True)
        monkeypatch.setattr(keen, "disabled", False)  # the test wants its events on the server
    for variable, value in keen_server.environment().items():
        monkeypatch.setenv(variable, value)
        attribute = _MODULE_SETTINGS[variable]
        if hasattr(keen, attribute):
            monkeypatch.setattr(keen, attribute, value)
    reset = getattr(keen, "reset_client", None)
    if callable(reset):
        reset()
    try:
        yield keen
    finally:
        if callable(reset):
            reset()
