"""The released keen 0.7.0 client, unchanged, against the local server.

"Real Keen clients cannot tell the difference": this drives every public 0.7.0 call against a
``LocalKeenServer`` from the throwaway 0.7.0 virtualenv (skipped when it is not there).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keen.server import LocalKeenServer

KEEN_07_PYTHON = Path("/tmp/k07/venv/bin/python")

PROGRAM = r'''
import json, sys
import requests
from keen import scoped_keys
from keen.client import KeenClient

url, pid, wk, rk, mk = sys.argv[1:6]
c = KeenClient(pid, write_key=wk, read_key=rk, master_key=mk, base_url=url)
tf = "this_1_days"
out = {}
c.add_event("sign ups", {"username": "ada", "n": 1})
out["add_events"] = c.add_events({"sign ups": [{"username": "bob", "n": 2}],
                                  "purchases": [{"price": 5}]})
out["count"] = c.count("sign ups", timeframe=tf)
out["sum"] = c.sum("sign ups", "n", timeframe=tf, group_by=["username"])
out["top"] = c.sum("sign ups", "n", timeframe=tf, group_by="username",
                   order_by={"property_name": "result", "direction": "DESC"}, limit=1)
out["interval"] = len(c.count("sign ups", timeframe="this_2_days", interval="daily"))
out["percentile"] = c.percentile("sign ups", "n", percentile=50, timeframe=tf)
out["select_unique"] = sorted(c.select_unique("sign ups", "username", timeframe=tf))
out["extraction"] = sorted(e["username"] for e in
                           c.extraction("sign ups", timeframe=tf, property_names=["username"]))
# 0.7.0 needs a bytes write key for beacons (one of its bugs)
beacon = KeenClient(pid, write_key=wk.encode(), base_url=url).generate_image_beacon(
    "beacons", {"a": 1})
out["beacon"] = requests.get(beacon, timeout=10).status_code
out["funnel"] = c.funnel([{"event_collection": "sign ups", "actor_property": "username",
                           "timeframe": tf}])
out["multi"] = c.multi_analysis("sign ups", {"t": {"analysis_type": "sum",
                                                   "target_property": "n"}}, timeframe=tf)
c.saved_queries.create("q1", {"refresh_rate": 0, "query": {
    "analysis_type": "count", "event_collection": "sign ups", "timeframe": tf}})
out["saved"] = c.saved_queries.results("q1")["result"]
c.saved_queries.update("q1", {"refresh_rate": 14400})
out["saved_rate"] = c.saved_queries.get("q1")["refresh_rate"]
out["saved_all"] = [q["query_name"] for q in c.saved_queries.all()]
out["saved_delete"] = c.saved_queries.delete("q1")
c.cached_datasets.create("ds1", {"analysis_type": "count", "event_collection": "sign ups",
                                 "timeframe": "this_7_days", "interval": "daily"},
                         "username", "DS")
out["dataset"] = c.cached_datasets.results("ds1", "ada", tf)["result"][0]["value"]
out["datasets"] = c.cached_datasets.all()["count"]
key = c.create_access_key("k", permitted=["writes"])["key"]
out["revoked"] = c.revoke_access_key(key)["is_active"]
out["unrevoked"] = c.unrevoke_access_key(key)["is_active"]
out["renamed"] = c.update_access_key_full(key, "k2", True, ["queries"], {})["name"]
out["keys"] = [k["name"] for k in c.list_access_keys()]
out["key_deleted"] = c.delete_access_key(key)
out["collections"] = sorted(col["name"] for col in c.get_all_collections())
out["schema"] = c.get_collection("sign ups")["properties"]["n"]
out["deleted"] = c.delete_events("purchases")
scoped = scoped_keys.encrypt(mk, {"allowed_operations": ["read"], "filters": [
    {"property_name": "n", "operator": "eq", "property_value": 1}]})
out["scoped"] = KeenClient(pid, read_key=scoped, base_url=url).count("sign ups", timeframe=tf)
print(json.dumps(out))
'''


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    with LocalKeenServer() as running:
        yield running


@pytest.mark.skipif(not KEEN_07_PYTHON.exists(), reason="no keen 0.7.0 virtualenv at /tmp/k07")
def test_keen_0_7_0_client_works_unchanged(server: LocalKeenServer, tmp_path: Path) -> None:
    args = [server.url, server.project_id, str(server.write_key), str(server.read_key),
            server.master_key]
    result = subprocess.run([str(KEEN_07_PYTHON), "-c", PROGRAM, *args], capture_output=True,
                            text=True, timeout=120, cwd=str(tmp_path), env={})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out == {
        "add_events": {"sign ups": [{"success": True}], "purchases": [{"success": True}]},
        "count": 2,
        "sum": [{"username": "ada", "result": 1}, {"username": "bob", "result": 2}],
        "top": [{"username": "bob", "result": 2}],
        "interval": 2,
        "percentile": 1,
        "select_unique": ["ada", "bob"],
        "extraction": ["ada", "bob"],
        "beacon": 200,
        "funnel": [2],
        "multi": {"t": 3},
        "saved": 2,
        "saved_rate": 14400,
        "saved_all": ["q1"],
        "saved_delete": True,
        "dataset": 1,
        "datasets": 1,
        "revoked": False,
        "unrevoked": True,
        "renamed": "k2",
        "keys": ["k2"],
        "key_deleted": True,
        "collections": ["beacons", "purchases", "sign ups"],
        "schema": "num",
        "deleted": True,
        "scoped": 1,
    }
