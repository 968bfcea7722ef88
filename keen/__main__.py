"""``python -m keen``: the README's tour, run for real against a Keen-compatible server.

With no configuration it starts the bundled local server (:mod:`keen.server`) in this process, so
it needs no account and no network. With ``KEEN_BASE_URL`` and ``KEEN_PROJECT_ID`` (and the keys)
in the environment, it talks to that server instead, and there it writes nothing unless asked:

* without ``--write`` it only reads (the collections of the project) and says how to run the
  whole tour;
* with ``--write`` (which needs ``KEEN_MASTER_KEY``) it runs the whole tour there: every event it
  sends carries ``tour_run`` (a random id), every query is filtered on it, and at the end, even
  after a failure, it deletes those events and its saved query.

The whole tour sends the README's example events (one at a time, a batch, one with its own
timestamp), runs every query the README shows, a saved query and a scoped key, and prints each
result. A failure is one line on stderr (what failed, what to check) and exit status 1;
``--traceback`` shows the whole traceback instead.
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
from keen.exceptions import AuthenticationError, BaseKeenClientError, KeenTransportError

PROG = "python -m keen"

TIMEFRAME = "this_14_days"
#: Marks what this run creates, so that it reads and deletes only that on a server holding data.
RUN = uuid.uuid4().hex[:12]
THIS_RUN = [{"property_name": "tour_run", "operator": "eq", "property_value": RUN}]
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
#: The collections the tour writes to (and cleans up).
COLLECTIONS = ("sign_ups", "purchases", "backfill")
STEPS = [
    {"event_collection": "sign_ups", "actor_property": "user.email", "filters": THIS_RUN},
    {"event_collection": "purchases", "actor_property": "user.email", "filters": THIS_RUN},
]
ANALYSES = {
    "total": {"analysis_type": "sum", "target_property": "price"},
    "average": {"analysis_type": "average", "target_property": "price"},
}


def _show(label: str, value: Any) -> None:
    print(f"{label:<48} {json.dumps(value, sort_keys=True, default=str)}")


def _tagged(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**event, "tour_run": RUN} for event in events]


def _configured_elsewhere() -> bool:
    """Whether the KEEN_* environment points keen at a server other than the embedded one."""
    return bool(os.environ.get("KEEN_BASE_URL") and os.environ.get("KEEN_PROJECT_ID"))


@contextlib.contextmanager
def _configured() -> Iterator[str]:
    """Point the ``keen`` module at a server; yields a description of where it points."""
    if _configured_elsewhere():
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
    """Send the README's events and run each of its queries through ``keen``, printing answers.

    Everything it sends is tagged with ``tour_run``; every query is filtered on it.
    """
    keen.add_event("sign_ups", _tagged(SIGN_UPS[:1])[0])
    _show("add_event('sign_ups', {...})", "sent")
    _show("add_events({...})", keen.add_events({"sign_ups": _tagged(SIGN_UPS[1:]),
                                                "purchases": _tagged(PURCHASES)}))
    keen.add_event("backfill", {"keen": {"timestamp": "2012-07-06T02:09:10.141Z"}, "user": "lloyd",
                                "tour_run": RUN})
    july_2012 = {"start": "2012-07-06T00:00:00Z", "end": "2012-07-07T00:00:00Z"}
    backfilled = keen.extraction("backfill", timeframe=july_2012, filters=THIS_RUN)
    stamps = [e["keen"]["timestamp"] for e in backfilled]
    _show("add_event with keen.timestamp, read back", stamps)

    mine: dict[str, Any] = {"timeframe": TIMEFRAME, "filters": THIS_RUN}
    _show("count('purchases')", keen.count("purchases", **mine))
    for name in ("sum", "minimum", "maximum", "average", "median", "standard_deviation"):
        analysis = getattr(keen, name)
        _show(f"{name}('purchases', 'price')", analysis("purchases", "price", **mine))
    _show("percentile('purchases', 'price', 90)",
          keen.percentile("purchases", "price", 90, **mine))
    _show("sum('purchases', 'price', group_by='item.id')",
          keen.sum("purchases", "price", group_by="item.id", **mine))
    best_sellers = {"property_name": "result", "direction": direction.DESCENDING}
    _show("count('purchases', group_by, order_by, limit=5)",
          keen.count("purchases", group_by="item.id", order_by=best_sellers, limit=5, **mine))
    _show("count_unique('purchases', 'user.id')",
          keen.count_unique("purchases", "user.id", **mine))
    _show("select_unique('purchases', 'user.email')",
          keen.select_unique("purchases", "user.email", **mine))
    _show("extraction('purchases', property_names=[...])",
          keen.extraction("purchases", timeframe="today", filters=THIS_RUN,
                          property_names=["price", "item.id"]))
    _show("multi_analysis('purchases', total + average)",
          keen.multi_analysis("purchases", analyses=ANALYSES, **mine))
    _show("funnel([sign_ups, purchases])", keen.funnel(STEPS, timeframe="today"))
    whole = keen.funnel(STEPS, timeframe="today", all_keys=True)
    _show("funnel(..., all_keys=True) keys", sorted(whole))
    schema = keen.get_collection("purchases")
    _show("get_collection('purchases') properties", sorted(schema["properties"]))

    client = keen._default_client()
    saved_query = f"cheap-purchases-{RUN}"
    cheap = [*THIS_RUN, {"property_name": "price", "operator": "lt", "property_value": 10}]
    client.saved_queries.create(saved_query, {
        "refresh_rate": 0,
        "query": {"analysis_type": "count", "event_collection": "purchases",
                  "timeframe": TIMEFRAME, "filters": cheap},
    })
    try:
        _show("saved_queries.results('cheap-purchases')",
              client.saved_queries.results(saved_query)["result"])
    finally:
        client.saved_queries.delete(saved_query)

    master_key = client.api.master_key
    if master_key:
        only_u1 = {"property_name": "user.id", "operator": "eq", "property_value": "u1"}
        scoped = scoped_keys.encrypt(master_key, {"allowed_operations": ["read"],
                                                  "filters": [only_u1]})
        with KeenClient(client.project_id, read_key=scoped,
                        base_url=client.api.base_url) as scoped_client:
            _show("count('purchases') with a scoped key for u1",
                  scoped_client.count("purchases", **mine))

    _show("delete_events('backfill')", keen.delete_events("backfill", filters=THIS_RUN))


def clean_up() -> None:
    """Delete every event this run sent (each carries ``tour_run``)."""
    for collection in COLLECTIONS:
        keen.delete_events(collection, filters=THIS_RUN)


def look_only(where: str) -> None:
    """Against a server of the user's: read, write nothing, and say how to run the whole tour."""
    collections = sorted(c.get("name", "?") for c in keen.get_all_collections())
    _show("get_all_collections() names", collections)
    print(f"Nothing was written to {where}. To run the whole tour there, add --write: its "
          f"events are tagged and deleted at the end (this needs KEEN_MASTER_KEY).")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tour keen: send the README's example events, run every query it shows, a "
                    "saved query and a scoped key, and print each answer. With no KEEN_* "
                    "settings it starts the bundled local server in this process (no account, "
                    "no network). With KEEN_BASE_URL and KEEN_PROJECT_ID set it talks to that "
                    "server, and only reads there unless --write is given.",
        epilog="Settings come from KEEN_BASE_URL, KEEN_PROJECT_ID, KEEN_WRITE_KEY, "
               "KEEN_READ_KEY and KEEN_MASTER_KEY (see `python -m keen.server`). With a "
               "subcommand (python -m keen count purchases ...) it is the keen command: see "
               "`keen --help`.")
    parser.add_argument("--version", action="version", version=f"keen {keen.__version__}")
    parser.add_argument("--write", action="store_true",
                        help="against a server of yours (KEEN_BASE_URL): send the tour's events "
                             "there; they are tagged with a run id and deleted at the end, so "
                             "this needs KEEN_MASTER_KEY")
    parser.add_argument("--traceback", action="store_true",
                        help="on failure, show the whole traceback instead of one line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    With a subcommand (``python -m keen count purchases``) this is the ``keen`` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-"):
        from keen.cli import main as command

        return command(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _tour(args.write, parser)
    except BaseKeenClientError as error:
        if args.traceback:
            raise
        print(f"{PROG}: {explain(error)}", file=sys.stderr)
        return 1


def _tour(write: bool, parser: argparse.ArgumentParser) -> int:
    elsewhere = _configured_elsewhere()
    if elsewhere and write and not os.environ.get("KEEN_MASTER_KEY"):
        parser.error("--write needs KEEN_MASTER_KEY: the tour deletes the events it wrote")
    with _configured() as where:
        print(f"keen {keen.__version__}: talking to {where}")
        if elsewhere and not write:
            look_only(where)
            return 0
        try:
            run_tour()
        except BaseException:
            with contextlib.suppress(BaseKeenClientError):  # the first failure is the story
                clean_up()
            raise
        clean_up()
    print("Every call above went over HTTP and back.")
    return 0


def explain(error: BaseKeenClientError) -> str:
    """One line: what failed and what to check (the whole story is in ``--traceback``)."""
    where = os.environ.get("KEEN_BASE_URL") or "the embedded server"
    if isinstance(error, KeenTransportError):
        cause = error.__cause__
        reason = ("it timed out" if "Timeout" in type(error).__name__
                  else "the connection was refused" if "refused" in str(cause or error).lower()
                  else f"{type(cause or error).__name__}")
        return (f"cannot reach the Keen API at {where} ({reason}). Check KEEN_BASE_URL and "
                f"that the server is running; --traceback shows the details.")
    if isinstance(error, AuthenticationError):
        return (f"the server at {where} refused the key ({error.status_code} "
                f"{error.error_code}). Check KEEN_PROJECT_ID and the KEEN_*_KEY variables; "
                f"--traceback shows the details.")
    return f"{error} (--traceback shows the details)"


if __name__ == "__main__":
    sys.exit(main())
