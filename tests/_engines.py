"""The engines every query-semantics test runs against (one suite, every engine).

``engine`` is a module-scoped fixture over the engines the server offers; ``open_store`` opens
one. DuckDB comes with the ``server`` extra (and the ``test`` extra): without it the duckdb runs
are skipped locally, and fail under CI (``CI`` set), where both engines must run.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest

from keen.server.engines import ENGINES, EventStore, open_engine

_HAS_DUCKDB = find_spec("duckdb") is not None

ENGINE_PARAMS = [
    pytest.param(name, marks=pytest.mark.skipif(
        name == "duckdb" and not _HAS_DUCKDB and not os.environ.get("CI"),
        reason='duckdb is not installed (pip install -e ".[test]")'))
    for name in ENGINES
]


@pytest.fixture(scope="module", params=ENGINE_PARAMS, name="engine")
def engine_fixture(request: pytest.FixtureRequest) -> str:
    """The name of an engine ("sqlite", "duckdb")."""
    return str(request.param)


def open_store(engine: str, path: str | None = None) -> EventStore:
    return open_engine(engine, path)
