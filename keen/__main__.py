"""``python -m keen``: the README's tour, run for real against a Keen-compatible server.

With no configuration it starts the bundled local server (:mod:`keen.server`) in this process, so
it needs no account and no network. With ``KEEN_BASE_URL`` and ``KEEN_PROJECT_ID`` (and the keys)
in the environment, it runs against that server instead.

It sends the README's example events (one at a time, a batch, one with its own timestamp), runs
every query the README shows, a saved query and a scoped key, and prints each result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import keen
from keen import direction, scoped_keys
from keen.client import KeenClient

SIGN_UPS = [
    {"username": "lloyd", "referred_by": "harry", "user": {"email": "lloyd@example.com"}},
    {"username": "nameuser1", "user": {"email": "one@example.com"}},
    {"username": "nameuser2", "user": {"email": "two@example.com"}},
]
PURCHASES = [
    {"price": 5, "item": {"id": 123}, "user": {"id": "u1", "email": "lloyd@example.com"}},
    {"price": 6, "item": {"id": 123}, "user": {"id": "u2", "email": "one@example.com"}},
    {"price": 20, "item": {"id": 7}, "user": {"id": "u1", "email": "lloyd@example.com"}},
]
TIMEFRAME = "this_14_days"
#: Marks what this run creates, so that it deletes only that on a server holding real data.
RUN = uuid.uuid4().hex[:12]
THIS_RUN = [{"property_name": "tour_run", "operator": "eq", "property_value": RUN}]
STEPS = [
    {"event_collection": "sign_ups", "actor_property": "user.email"},
    {"event_collection": "purchases", "actor_property": "user.email"},
]
ANALYSES = {
    "total": {"analysis_type": "sum", "target_property": "price"},
    "average": {"analysis_type": "average", "target_property": "price"},
}


def _show(label: str, value: Any) -> None:
    print(f"{label:<48} {json.dumps(value, sort_keys=True, default=str)}")


@contextlib.contextmanager
def _configured() -> Iterator[str]:
    """Point the ``keen`` module at a server; yields a description of where it points."""
    if os.environ.get("KEEN_BASE_URL") and os.environ.get("KEEN_PROJECT_ID"):
        yield os.environ["KEEN_BASE_URL"]  # the KEEN_* environment configures keen by itself
        return
    from keen.server import LocalKeenServer

    names = ("project_id", "write_key", "read_key", "master_key", "base_url")
    saved = {name: getattr(keen, name) for name in names}
    with LocalKeenServer() as server:
        for name in names:
            setattr(keen, name, getattr(server, "url" if name == "base_url" else name))
        try:
            yield f"the embedded Keen server at {server.url}"
        finally:
            keen.reset_client()
            for name, value in saved.items():
                setattr(keen, name, value)


def run_tour() -> None:
    """Send the README's events and run each of its queries through ``keen``, printing answers."""
    keen.add_event("sign_ups", SIGN_UPS[0])
    _show("add_event('sign_ups', {...})", "sent")
    _show("add_events({...})", keen.add_events({"sign_ups": SIGN_UPS[1:], "purchases": PURCHASES}))
    keen.add_event("backfill", {"keen": {"timestamp": "2012-07-06T02:09:10.141Z"}, "user": "lloyd",
                                "tour_run": RUN})
    july_2012 = {"start": "2012-07-06T00:00:00Z", "end": "2012-07-07T00:00:00Z"}
    backfilled = keen.extraction("backfill", timeframe=july_2012, filters=THIS_RUN)
    stamps = [e["keen"]["timestamp"] for e in backfilled]
    _show("add_event with keen.timestamp, read back", stamps)

    _show("count('purchases')", keen.count("purchases", timeframe=TIMEFRAME))
    for name in ("sum", "minimum", "maximum", "average", "median", "standard_deviation"):
        analysis = getattr(keen, name)
        _show(f"{name}('purchases', 'price')", analysis("purchases", "price", timeframe=TIMEFRAME))
    _show(
        "percentile('purchases', 'price', 90)",
        keen.percentile("purchases", "price", 90, timeframe=TIMEFRAME),
    )
    _show(
        "sum('purchases', 'price', group_by='item.id')",
        keen.sum("purchases", "price", group_by="item.id", timeframe=TIMEFRAME),
    )
    best_sellers = {"property_name": "result", "direction": direction.DESCENDING}
    _show(
        "count('purchases', group_by, order_by, limit=5)",
        keen.count("purchases", timeframe=TIMEFRAME, group_by="item.id", order_by=best_sellers,
                   limit=5),
    )
    _show(
        "count_unique('purchases', 'user.id')",
        keen.count_unique("purchases", "user.id", timeframe=TIMEFRAME),
    )
    _show(
        "select_unique('purchases', 'user.email')",
        keen.select_unique("purchases", "user.email", timeframe=TIMEFRAME),
    )
    _show(
        "extraction('purchases', property_names=[...])",
        keen.extraction("purchases", timeframe="today", property_names=["price", "item.id"]),
    )
    _show(
        "multi_analysis('purchases', total + average)",
        keen.multi_analysis("purchases", analyses=ANALYSES, timeframe=TIMEFRAME),
    )
    _show("funnel([sign_ups, purchases])", keen.funnel(STEPS, timeframe="today"))
    whole = keen.funnel(STEPS, timeframe="today", all_keys=True)
    _show("funnel(..., all_keys=True) keys", sorted(whole))
    schema = keen.get_collection("purchases")
    _show("get_collection('purchases') properties", sorted(schema["properties"]))

    client = keen._default_client()
    saved_query = f"cheap-purchases-{RUN}"
    client.saved_queries.create(
        saved_query,
        {
            "refresh_rate": 0,
            "query": {
                "analysis_type": "count",
                "event_collection": "purchases",
                "timeframe": TIMEFRAME,
                "filters": [{"property_name": "price", "operator": "lt", "property_value": 10}],
            },
        },
    )
    _show(
        "saved_queries.results('cheap-purchases')",
        client.saved_queries.results(saved_query)["result"],
    )
    client.saved_queries.delete(saved_query)

    master_key = client.api.master_key
    if master_key:
        only_u1 = {"property_name": "user.id", "operator": "eq", "property_value": "u1"}
        scoped = scoped_keys.encrypt(
            master_key, {"allowed_operations": ["read"], "filters": [only_u1]}
        ).decode()
        with KeenClient(client.project_id, read_key=scoped,
                        base_url=client.api.base_url) as scoped_client:
            _show(
                "count('purchases') with a scoped key for u1",
                scoped_client.count("purchases", timeframe=TIMEFRAME),
            )

    _show("delete_events('backfill')", keen.delete_events("backfill", filters=THIS_RUN))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keen", description="Run the README's tour of keen against a server."
    )
    parser.parse_args(argv)
    with _configured() as where:
        print(f"keen {keen.__version__}: talking to {where}")
        run_tour()
    print("Every call above went over HTTP and back.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
