"""A client used on both sides of ``os.fork()`` does not share connections between processes."""

from __future__ import annotations

import os
import warnings

import pytest

from keen.server import LocalKeenServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _pooled_connections(client: object, url: str) -> int:
    adapter = client.api.session.get_adapter(url)  # type: ignore[attr-defined]
    pools = adapter.poolmanager.pools._container.values()
    return sum(conn is not None for pool in pools for conn in list(pool.pool.queue))


def test_child_opens_its_own_connections_and_both_processes_keep_working() -> None:
    with LocalKeenServer() as server:
        client = server.client
        client.add_event("visits", {"who": "parent"})
        assert _pooled_connections(client, server.url) == 1  # a kept-alive connection
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: must not reuse the parent's socket
            code = 1
            try:
                if _pooled_connections(client, server.url) == 0:
                    client.add_event("visits", {"who": "child"})
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.add_event("visits", {"who": "parent again"})
        who = sorted(e["who"] for e in client.extraction("visits", timeframe="this_1_days"))
        assert who == ["child", "parent", "parent again"]
