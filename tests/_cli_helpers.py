"""Helpers for the ``keen`` command's tests (tests/test_cli_*.py): run ``keen.cli.main`` in
this process against local servers, with realistic events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from keen.cli import main
from keen.server import LocalKeenServer

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
KEEN_VARIABLES = ("KEEN_PROJECT_ID", "KEEN_WRITE_KEY", "KEEN_READ_KEY", "KEEN_MASTER_KEY",
                  "KEEN_BASE_URL")
CITIES = ["Paris", "Lyon", "Tempe", "Tucson", "Osaka"]


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """``cli(*argv)`` runs ``keen argv...`` with the KEEN_* variables of ``server``."""

    def __init__(self, server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.server = server
        self.monkeypatch = monkeypatch
        self.capsys = capsys

    def __call__(self, *argv: str, server: LocalKeenServer | None = None,
                 env: dict[str, str] | None = None) -> Result:
        target = server or self.server
        for name in KEEN_VARIABLES:
            self.monkeypatch.delenv(name, raising=False)
        for name, value in {**target.environment(), **(env or {})}.items():
            if value:
                self.monkeypatch.setenv(name, value)
            else:
                self.monkeypatch.delenv(name, raising=False)
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *argv: str, **kwargs: Any) -> Result:
        result = self(*argv, **kwargs)
        assert result.code == 0, result.err
        return result


def purchase(i: int, when: datetime) -> dict[str, Any]:
    """A realistic purchase: a dozen properties, nested objects, high- and low-cardinality
    values, a list, a boolean, sometimes a null."""
    return {
        "order_id": f"o-{i:06d}",
        "price": round(5 + (i * 37 % 200) / 4, 2),
        "quantity": 1 + i % 4,
        "on_sale": i % 5 == 0,
        "coupon": None if i % 3 else f"C{i % 7}",
        "tags": ["gift"] if i % 6 == 0 else ["self", f"t{i % 3}"],
        "item": {"id": i % 9, "name": f"item {i % 9}", "category": ["books", "games"][i % 2]},
        "user": {"id": f"u{i % 23}", "plan": ["free", "pro", "team"][i % 3],
                 "geo": {"city": CITIES[i % 5], "country": "FR" if i % 5 < 2 else "US"}},
        "session": {"id": f"s-{i * 7919 % 10007}", "referrer": None if i % 4 else "search"},
        "keen": {"timestamp": (when + timedelta(minutes=97 * i)).isoformat()},
    }


def load(server: LocalKeenServer, n: int = 60) -> list[dict[str, Any]]:
    """Store n purchases over the 5 days before NOW, and a few sign-ups; the purchases."""
    start = NOW - timedelta(days=5)
    events = [purchase(i, start) for i in range(n)]
    sign_ups = [{"user": {"id": f"u{i}", "plan": "free"}, "source": ["ad", "friend"][i % 2],
                 "keen": {"timestamp": (start + timedelta(hours=i)).isoformat()}}
                for i in range(30)]
    answer = server.client.add_events({"purchases": events, "sign_ups": sign_ups})
    assert all(item["success"] for items in answer.values() for item in items)
    return events


def keys_of(server: LocalKeenServer) -> list[str]:
    return [k for k in (server.master_key, server.read_key, server.write_key) if k]


def no_key_in(server: LocalKeenServer, *texts: str) -> bool:
    return not any(key in text for key in keys_of(server) for text in texts)


@pytest.fixture(name="cli")
def cli_fixture(server: LocalKeenServer, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> Cli:
    """The ``keen`` command against the module's ``server`` fixture."""
    return Cli(server, monkeypatch, capsys)
