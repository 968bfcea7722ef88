"""One client used from many threads at once shares one pooled session and loses nothing."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _client_helpers import PROJECT, READ, WRITE, scripted_server

from keen.client import KeenClient


def test_one_client_many_threads() -> None:
    def answer(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "POST":
            return 201, {"created": True}
        return 200, {"result": path.count("&") + 1}

    with scripted_server(fallback=answer) as server:
        client = KeenClient(PROJECT, write_key=WRITE, read_key=READ, base_url=server.url)
        session = client.api.session

        def work(n: int) -> Any:
            client.add_event("threads", {"n": n})
            return client.count("threads", timeframe="this_1_days")

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(200)))
        client.close()
    assert results == [2] * 200
    posted = sorted(json.loads(body)["n"] for method, _, _, body in server.received
                    if method == "POST")
    assert posted == list(range(200))
    assert client.api.session is session
    assert {headers["Authorization"] for method, _, headers, _ in server.received
            if method == "POST"} == {WRITE}
