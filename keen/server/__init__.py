"""A local Keen-compatible server: the Keen HTTP API over SQLite, standard library only (or over
DuckDB, ``engine="duckdb"``, with ``pip install "keen[server]"``; see ``keen.server.engines``).

Run it on its own with ``python -m keen.server`` (or ``keen-server``), or in-process::

    from keen.server import LocalKeenServer

    with LocalKeenServer() as server:
        server.client.add_event("sign_ups", {"username": "ada"})

Importing this package is cheap: the HTTP layer loads on first use of ``LocalKeenServer``;
pycryptodome only when a scoped key arrives; the client only through ``LocalKeenServer.client``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keen.server._wire import Limits
from keen.server.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEV_MASTER_KEY,
    DEV_PROJECT_ID,
    DEV_READ_KEY,
    DEV_WRITE_KEY,
    ProjectConfig,
)
from keen.server.faults import Faults

if TYPE_CHECKING:
    from keen.server._http_server import LocalKeenServer

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEV_MASTER_KEY",
    "DEV_PROJECT_ID",
    "DEV_READ_KEY",
    "DEV_WRITE_KEY",
    "Faults",
    "Limits",
    "LocalKeenServer",
    "ProjectConfig",
]


def __getattr__(name: str) -> Any:
    if name == "LocalKeenServer":
        from keen.server._http_server import LocalKeenServer

        return LocalKeenServer
    raise AttributeError(f"module 'keen.server' has no attribute {name!r}")
