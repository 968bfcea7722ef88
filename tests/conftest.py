"""Every test starts from a clean ``KEEN_*`` environment: a developer who pasted the local
server's export block into the shell that runs the suite gets the same results as CI."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_keen_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KEEN_")]:
        monkeypatch.delenv(name)
