"""The engines that can store the local server's events, and how to open one by name.

* ``sqlite`` (the default): :class:`keen.server.storage.Storage`, standard library only.
* ``duckdb``: :class:`keen.server.engines.duckdb.DuckDBStore`, a columnar engine for millions
  of events; needs the optional extra (``pip install "keen[server]"``).

Both implement :class:`keen.server.engines.base.EventStore` and answer every query the same
way (one test suite runs against both).
"""

from __future__ import annotations

from keen.server.engines.base import DatabaseError, EngineUnavailable, EventStore

__all__ = [
    "DEFAULT_ENGINE", "ENGINES", "DatabaseError", "EngineUnavailable", "EventStore", "open_engine",
]

ENGINES = ("sqlite", "duckdb")
DEFAULT_ENGINE = "sqlite"


def open_engine(name: str, path: str | None = None) -> EventStore:
    """Open the engine ``name`` on the database file ``path`` (None: in memory).

    Raises ``ValueError`` for an unknown name and ``EngineUnavailable`` when the engine's
    package is missing.
    """
    if name == "sqlite":
        from keen.server.storage import Storage

        return Storage(path)
    if name == "duckdb":
        try:
            import duckdb  # noqa: F401
        except ImportError:
            raise EngineUnavailable(
                'The duckdb engine needs the duckdb package: pip install "keen[server]"'
            ) from None
        from keen.server.engines.duckdb import DuckDBStore

        return DuckDBStore(path)
    raise ValueError(f"Unknown engine {name!r}; use one of {', '.join(ENGINES)}.")
