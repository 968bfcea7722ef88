"""Helpers for the local-server tests (tests/test_server_*.py): raw HTTP over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from _engines import ENGINE_PARAMS

from keen.server import LocalKeenServer

TIMEOUT = 10  # seconds, for every HTTP call of these tests
REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)


class Api:
    """Raw ``requests`` calls to one project of a running ``LocalKeenServer``."""

    def __init__(self, server: LocalKeenServer, project_id: str | None = None) -> None:
        self.server = server
        self.project_id = project_id or server.project_id
        self.session = requests.Session()

    @property
    def base(self) -> str:
        return f"{self.server.url}/3.0/projects/{self.project_id}"

    def call(self, method: str, path: str, key: str | None = None, *,
             params: Mapping[str, Any] | None = None, body: Any = None,
             data: bytes | str | None = None, headers: Mapping[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        """``path`` is relative to the project (``/events/x``) unless it starts with ``http``."""
        url = path if path.startswith("http") else self.base + path
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = key
        if body is not None:
            data = json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, url, params=params, data=data, headers=sent,
                                    **kwargs)

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, key, **kwargs)

    def post(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, key, **kwargs)

    def put(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, key, **kwargs)

    def delete(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, key, **kwargs)

    # shortcuts with the server's own keys
    def write(self, collection: str, *events: dict[str, Any]) -> None:
        response = self.post("/events", self.server.write_key, body={collection: list(events)})
        assert response.status_code == 200, response.text
        assert all(item["success"] for item in response.json()[collection]), response.text

    def count(self, collection: str, key: str | None = None, **params: Any) -> Any:
        query = {"event_collection": collection, "timeframe": "this_10_years", **params}
        response = self.post("/queries/count", key or self.server.read_key, body=query)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def create_key(self, **definition: Any) -> str:
        response = self.post("/keys", self.server.master_key, body=definition)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


@contextmanager
def disk_full() -> Iterator[None]:
    """Every write of this process to a file fails inside the block, as on a full disk: the
    file-size limit (``RLIMIT_FSIZE``, no root needed) is 0 bytes and ``SIGXFSZ`` is ignored,
    so writes fail with EFBIG (skips the test where there is no such limit)."""
    resource = pytest.importorskip("resource")
    if not hasattr(signal, "SIGXFSZ"):  # pragma: no cover
        pytest.skip("no SIGXFSZ here")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def error_of(response: requests.Response) -> tuple[int, str]:
    """``(status, error_code)`` of an error answer, checking the envelope."""
    body = response.json()
    assert set(body) == {"message", "error_code"}, body
    assert body["message"]
    return response.status_code, body["error_code"]


@pytest.fixture(name="server")
def server_fixture(request: pytest.FixtureRequest) -> Iterator[LocalKeenServer]:
    """A server of the sqlite engine, or of each engine for a test marked ``each_engine``."""
    engine = str(getattr(request, "param", "sqlite"))
    with LocalKeenServer(clock=lambda: NOW, engine=engine) as running:
        yield running


# Runs one test (which uses ``server`` or ``api``) against every engine, where a whole module
# would be too much (``each_engine_server_fixture`` does a whole module).
each_engine = pytest.mark.parametrize("server", ENGINE_PARAMS, indirect=True)


@pytest.fixture(name="server", params=ENGINE_PARAMS)
def each_engine_server_fixture(request: pytest.FixtureRequest) -> Iterator[LocalKeenServer]:
    """A server of each engine (import it instead of ``server_fixture`` to run a module's
    tests against every engine)."""
    with LocalKeenServer(clock=lambda: NOW, engine=str(request.param)) as running:
        yield running


@pytest.fixture(name="api")
def api_fixture(server: LocalKeenServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.session.close()


class ServerProcess:
    """``python -m keen.server`` in a subprocess; ``url`` read from its first line."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
        environment["PYTHONPATH"] = str(REPO) + os.pathsep + environment.get("PYTHONPATH", "")
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keen.server", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
            cwd=str(REPO),
        )
        self.lines: list[str] = []
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if "listening on http://" in line:
                return line.split("listening on ", 1)[1].strip()
        self.process.kill()
        _, err = self.process.communicate(timeout=TIMEOUT)
        raise AssertionError(f"server did not start: {self.lines} {err}")

    def read_banner(self) -> list[str]:
        """The rest of the start-up text (up to the Ctrl+C line)."""
        assert self.process.stdout is not None
        while not self.lines[-1].startswith("Press Ctrl+C"):
            self.lines.append(self.process.stdout.readline().rstrip("\n"))
        return self.lines

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.returncode, out, err
