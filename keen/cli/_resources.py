"""Resource subcommands: collections, saved queries, cached datasets, access keys, scoped keys
and ``delete-events``.

Keys needed (the library picks them): schemas and results need the read key; saved-query,
dataset and access-key management, deletes and scoped keys need the master key.

``delete-events`` shows what it is about to delete and asks for confirmation; ``--yes`` skips
the question. Without a terminal to ask on (a script, a pipe) it refuses unless ``--yes`` is
given, so a script cannot delete by accident.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, Callable

from keen import exceptions, scoped_keys
from keen.cli import _args, _output
from keen.cli._analyses import add_scope_arguments
from keen.cli._settings import Settings, build_client
from keen.client import KeenClient

__all__ = ["register"]

Handler = Callable[[KeenClient, argparse.Namespace], tuple[Any, "_output.Table | None"]]


def _fields_table(document: Any) -> _output.Table:
    """A definition as rows of (field, value)."""
    if not isinstance(document, Mapping):
        return ["result"], [[document]]
    return ["field", "value"], [[key, value] for key, value in document.items()]


def _rows(items: Any, columns: list[tuple[str, Callable[[Mapping[str, Any]], Any]]]
          ) -> _output.Table:
    items = items if isinstance(items, list) else []
    return ([name for name, _ in columns],
            [[get(item) for _, get in columns] for item in items if isinstance(item, Mapping)])


def _query_of(item: Mapping[str, Any]) -> Mapping[str, Any]:
    query = item.get("query")
    return query if isinstance(query, Mapping) else {}


# -- collections ------------------------------------------------------------------------------

def _collections_list(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.get_all_collections()
    return answer, _rows(answer, [("name", lambda c: c.get("name")),
                                  ("properties", lambda c: len(c.get("properties") or {}))])


def _collections_show(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.get_collection(args.name)
    properties = answer.get("properties") if isinstance(answer, Mapping) else None
    return answer, (["property", "type"], sorted([k, v] for k, v in (properties or {}).items()))


# -- saved queries ----------------------------------------------------------------------------

def _saved_definition(args: argparse.Namespace) -> dict[str, Any]:
    document = _args.load_json(args.file, "--file")
    if not isinstance(document, dict):
        raise _args.UsageError("--file: expected a JSON object")
    if "analysis_type" in document:  # a bare query: wrap it as a definition
        document = {"query": document}
    if "query" not in document and not args.merge:
        raise _args.UsageError('--file: a saved query definition needs "query" (or give the '
                               "query itself, with its analysis_type)")
    return document


def _saved_list(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.saved_queries.all()
    return answer, _rows(answer, [
        ("query_name", lambda q: q.get("query_name")),
        ("analysis_type", lambda q: _query_of(q).get("analysis_type")),
        ("event_collection", lambda q: _query_of(q).get("event_collection")),
        ("refresh_rate", lambda q: q.get("refresh_rate"))])


def _saved_show(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.saved_queries.get(args.name)
    return answer, _fields_table(answer)


def _saved_create(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.saved_queries.create(args.name, _saved_definition(args))
    return answer, _fields_table(answer)


def _saved_update(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    definition = _saved_definition(args)
    if args.merge:
        answer = client.saved_queries.update(args.name, definition)
    else:
        answer = client.saved_queries.update_full(args.name, definition)
    return answer, _fields_table(answer)


def _saved_delete(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    client.saved_queries.delete(args.name)
    print(f"deleted saved query {args.name!r}", file=sys.stderr)
    return None, None


def _saved_results(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.saved_queries.results(args.name)
    query = _query_of(answer) if isinstance(answer, Mapping) else {}
    analysis = str(query.get("analysis_type", ""))
    result = answer.get("result") if isinstance(answer, Mapping) else answer
    group_by = query.get("group_by") or []
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    labels = list(query.get("analyses") or ())
    table = _output.result_table(analysis, result if analysis == "funnel" else
                                 {"result": result}, group_by, labels)
    return answer, table


# -- cached datasets --------------------------------------------------------------------------

def all_datasets(client: KeenClient) -> list[Any]:
    """Every dataset definition (all pages)."""
    found: list[Any] = []
    after: str | None = None
    while True:
        page = client.cached_datasets.all(limit=100, after_name=after)
        items = page.get("datasets") or [] if isinstance(page, Mapping) else []
        found.extend(items)
        if not isinstance(page, Mapping) or not page.get("next_page_url") or not items:
            return found
        after = items[-1].get("dataset_name")


def _datasets_list(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = all_datasets(client)
    return answer, _rows(answer, [
        ("dataset_name", lambda d: d.get("dataset_name")),
        ("display_name", lambda d: d.get("display_name")),
        ("analysis_type", lambda d: _query_of(d).get("analysis_type")),
        ("event_collection", lambda d: _query_of(d).get("event_collection")),
        ("index_by", lambda d: d.get("index_by"))])


def _datasets_show(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.cached_datasets.get(args.name)
    return answer, _fields_table(answer)


def _datasets_create(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    document = _args.load_json(args.file, "--file")
    if not isinstance(document, dict) or not {"query", "index_by", "display_name"} <= set(
            document):
        raise _args.UsageError('--file: a dataset definition is a JSON object with "query", '
                               '"index_by" and "display_name"')
    answer = client.cached_datasets.create(args.name, document["query"], document["index_by"],
                                           document["display_name"])
    return answer, _fields_table(answer)


def _datasets_delete(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    client.cached_datasets.delete(args.name)
    print(f"deleted dataset {args.name!r}", file=sys.stderr)
    return None, None


def _datasets_results(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    index = args.index_by
    index_value: Any = index
    if index.strip()[:1] in ("{", "["):
        index_value = _args.load_json(index, "--index-by")
    timeframe = _args.parse_timeframe(args.timeframe)
    answer = client.cached_datasets.results(args.name, index_value, timeframe)
    return answer, _output.result_table("", answer)


# -- access keys ------------------------------------------------------------------------------

def _permissions(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def _options(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = _args.load_json(text, "--options")
    if not isinstance(value, dict):
        raise _args.UsageError("--options: expected a JSON object")
    return value


_KEY_COLUMNS: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
    ("key", lambda k: k.get("key")), ("name", lambda k: k.get("name")),
    ("is_active", lambda k: k.get("is_active")), ("permitted", lambda k: k.get("permitted"))]


def _keys_list(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.list_access_keys()
    return answer, _rows(answer, _KEY_COLUMNS)


def _keys_show(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.get_access_key(args.key)
    return answer, _fields_table(answer)


def _keys_create(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.create_access_key(args.name, is_active=not args.inactive,
                                      permitted=_permissions(args.permitted) or [],
                                      options=_options(args.options))
    return answer, _fields_table(answer)


def _keys_update(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    current = client.get_access_key(args.key)
    name = current.get("name") if args.name is None else args.name
    permitted = _permissions(args.permitted)
    options = _options(args.options)
    active = current.get("is_active", True) if args.active is None else args.active
    answer = client.update_access_key_full(
        args.key, name=name, is_active=active,
        permitted=current.get("permitted") or [] if permitted is None else permitted,
        options=current.get("options") or {} if options is None else options)
    return answer, _fields_table(answer)


def _keys_revoke(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.revoke_access_key(args.key)
    return answer, _fields_table(answer)


def _keys_unrevoke(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    answer = client.unrevoke_access_key(args.key)
    return answer, _fields_table(answer)


def _keys_delete(client: KeenClient, args: argparse.Namespace) -> tuple[Any, Any]:
    client.delete_access_key(args.key)
    print("deleted the access key", file=sys.stderr)
    return None, None


# -- scoped keys ------------------------------------------------------------------------------

def _master_key(settings: Settings) -> str:
    if not settings.master_key:
        from keen.utilities import missing_key_error

        raise missing_key_error("master", False)
    return settings.master_key


def _scoped_encrypt(args: argparse.Namespace, settings: Settings) -> int:
    options: dict[str, Any] = _options(args.options) or {}
    operations = _permissions(args.allowed_operations)
    if operations is not None:
        unknown = sorted(set(operations) - {"read", "write"})
        if unknown:
            raise _args.UsageError(f"--allowed-operations: unknown {', '.join(unknown)}; "
                                   "use read and/or write")
        options["allowed_operations"] = operations
    filters = _args.parse_filters(args.filters)
    if filters is not None:
        options["filters"] = [*options.get("filters", []), *filters]
    if not options.get("allowed_operations"):
        raise _args.UsageError("give --allowed-operations (read, write or read,write)")
    key = scoped_keys.encrypt(_master_key(settings), options)
    print(key.decode("ascii") if isinstance(key, bytes) else key)
    return 0


def _scoped_decrypt(args: argparse.Namespace, settings: Settings) -> int:
    options = scoped_keys.decrypt(_master_key(settings), args.scoped_key)
    _output.write_json(options, sys.stdout)
    return 0


# -- delete-events ----------------------------------------------------------------------------

def _how_many(settings: Settings, collection: str, timeframe: Any, timezone: Any,
              filters: Any) -> str:
    """How many events a delete would remove, for the question ("the" when unknown)."""

    try:
        with build_client(settings) as client:
            found = client.count(collection, timeframe=timeframe or _args.ALL_TIME,
                                 timezone=timezone, filters=filters)
    except exceptions.BaseKeenClientError:
        return "the"
    return f"the {found}"


def _delete_events(args: argparse.Namespace, settings: Settings) -> int:
    timeframe = _args.parse_timeframe(args.timeframe)
    timezone = _args.parse_timezone(args.timezone)
    filters = _args.parse_filters(args.filters)
    scope = [f"timeframe {json.dumps(timeframe)}" if timeframe is not None else "all time"]
    if filters:
        scope.append(f"{len(filters)} filter(s)")
    what = f"events of {args.collection!r} ({', '.join(scope)})"
    if not args.yes and settings.read_key:
        what = f"{_how_many(settings, args.collection, timeframe, timezone, filters)} {what}"
    if not args.yes:
        if not sys.stdin.isatty():
            raise _args.UsageError(f"refusing to delete {what} without a terminal to confirm "
                                   "on: add --yes")
        prompt = f"Delete {what}? This cannot be undone. [y/N] "
        print(prompt, end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    with build_client(settings) as client:
        client.delete_events(args.collection, timeframe=timeframe, timezone=timezone,
                             filters=filters)
    print(f"deleted {what}", file=sys.stderr)
    return 0


# -- registration -----------------------------------------------------------------------------

def _runner(handler: Handler) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        with build_client(settings) as client:
            answer, table = handler(client, args)
        if answer is not None or table is not None:
            _output.emit(args.format, answer, table)
        return 0
    return run


_EXAMPLES = {
    "saved-queries create": "keen saved-queries create big-orders --file '{\"query\": "
                            "{\"analysis_type\": \"count\", \"event_collection\": "
                            "\"purchases\", \"timeframe\": \"this_7_days\", \"filters\": "
                            "[{\"property_name\": \"price\", \"operator\": \"gte\", "
                            "\"property_value\": 100}]}, \"refresh_rate\": 0}'",
    "saved-queries update": "keen saved-queries update big-orders --merge --file "
                            "'{\"refresh_rate\": 14400}'",
    "datasets create": "keen datasets create orders-by-user --file '{\"display_name\": "
                       "\"Orders by user\", \"index_by\": \"user.id\", \"query\": "
                       "{\"analysis_type\": \"count\", \"event_collection\": "
                       "\"purchases\", \"timeframe\": \"this_30_days\", \"interval\": "
                       "\"daily\"}}'",
    "datasets results": "keen datasets results orders-by-user --index-by u123 "
                        "--timeframe this_7_days",
    "access-keys create": "keen access-keys create --name dashboard --permitted queries,schema "
                          "--options '{\"queries\": {\"filters\": [{\"property_name\": "
                          "\"customer.id\", \"operator\": \"eq\", \"property_value\": "
                          "\"c42\"}]}}'",
    "access-keys update": "keen access-keys update KEY --permitted queries --inactive",
}


def _group(subparsers: Any, name: str, help_text: str,
           parents: list[argparse.ArgumentParser]) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=help_text + ".")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(action: str, handler: Handler, help_line: str) -> argparse.ArgumentParser:
        example = _EXAMPLES.get(f"{name} {action}")
        sub: argparse.ArgumentParser = actions.add_parser(
            action, parents=parents, help=help_line, description=help_line + ".",
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=_runner(handler))
        return sub
    return add


def register(subparsers: Any, connection: argparse.ArgumentParser,
             output: argparse.ArgumentParser) -> None:
    both = [connection, output]

    add = _group(subparsers, "collections", "event collections and their schemas", both)
    add("list", _collections_list, "every collection, with its number of properties (read key)")
    add("show", _collections_show, "the properties of one collection and their types "
        "(read key)").add_argument("name", help="the collection")

    add = _group(subparsers, "saved-queries", "saved (and cached) queries", both)
    add("list", _saved_list, "every saved query (master key)")
    add("show", _saved_show, "one saved query's definition (master key)").add_argument("name")
    for action, handler, text in (
            ("create", _saved_create, "create (or replace) a saved query from a JSON file "
             "(master key)"),
            ("update", _saved_update, "replace a saved query's definition from a JSON file; "
             "--merge changes only what the file gives (master key)")):
        sub = add(action, handler, text)
        sub.add_argument("name", help="the saved query's name (letters, digits, - and _)")
        sub.add_argument("--file", required=True, metavar="JSON|FILE",
                         help='{"query": {...}, "refresh_rate": 0, "metadata": {...}}, or the '
                              "query object itself; JSON, a file, or - for stdin")
        sub.set_defaults(merge=False)
        if action == "update":
            sub.add_argument("--merge", action="store_true",
                             help="merge the file into the current definition")
    add("delete", _saved_delete, "delete a saved query (master key)").add_argument("name")
    add("results", _saved_results, "run a saved query (read key)").add_argument("name")

    add = _group(subparsers, "datasets", "cached datasets", both)
    add("list", _datasets_list, "every cached dataset (read key)")
    add("show", _datasets_show, "one dataset's definition (read key)").add_argument("name")
    sub = add("create", _datasets_create, "create a dataset from a JSON file (master key)")
    sub.add_argument("name")
    sub.add_argument("--file", required=True, metavar="JSON|FILE",
                     help='{"display_name": ..., "index_by": ..., "query": {...}}')
    add("delete", _datasets_delete, "delete a dataset (master key)").add_argument("name")
    sub = add("results", _datasets_results, "a dataset's results for one index value "
              "(read key)")
    sub.add_argument("name")
    sub.add_argument("--index-by", required=True, metavar="VALUE",
                     help="the index value (a JSON object for several index properties)")
    sub.add_argument("--timeframe", required=True)

    add = _group(subparsers, "access-keys", "access keys (all actions need the master key)",
                 both)
    add("list", _keys_list, "every access key")
    add("show", _keys_show, "one access key").add_argument("key")
    sub = add("create", _keys_create, "create an access key")
    sub.add_argument("--name", required=True)
    sub.add_argument("--permitted", metavar="LIST", help="comma-separated: writes, queries, "
                     "saved_queries, cached_queries, datasets, schema")
    sub.add_argument("--options", metavar="JSON|FILE", help="the key's options object")
    sub.add_argument("--inactive", action="store_true", help="create it revoked")
    sub = add("update", _keys_update, "change an access key (what is not given is kept)")
    sub.add_argument("key")
    sub.add_argument("--name")
    sub.add_argument("--permitted", metavar="LIST", help="replaces the permissions")
    sub.add_argument("--options", metavar="JSON|FILE", help="replaces the options")
    state = sub.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True)
    state.add_argument("--inactive", dest="active", action="store_const", const=False)
    for action, handler, text in (("revoke", _keys_revoke, "deactivate an access key"),
                                  ("unrevoke", _keys_unrevoke, "reactivate an access key"),
                                  ("delete", _keys_delete, "delete an access key")):
        add(action, handler, text).add_argument("key")

    scoped = subparsers.add_parser("scoped-key", help="create or read scoped keys (master key)",
                                   description="Scoped keys (legacy): options encrypted with "
                                               "the master key.")
    actions = scoped.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = actions.add_parser("encrypt", parents=[connection], help="create a scoped key",
                             description="Print a new scoped key.")
    sub.add_argument("--allowed-operations", metavar="LIST", help="read, write or read,write")
    sub.add_argument("--filter", dest="filters", action="append", metavar="FILTER",
                     help="a filter applied to every query made with the key; repeatable")
    sub.add_argument("--options", metavar="JSON|FILE", help="the whole options object")
    sub.set_defaults(handler=_scoped_encrypt)
    sub = actions.add_parser("decrypt", parents=[connection], help="show a scoped key's options",
                             description="Print the options inside a scoped key.")
    sub.add_argument("scoped_key")
    sub.set_defaults(handler=_scoped_decrypt)

    sub = subparsers.add_parser(
        "delete-events", parents=[connection], help="delete events (master key; asks first)",
        description="Delete the events of a collection that match (all of them without "
                    "--timeframe and --filter). Asks for confirmation unless --yes; refuses "
                    "without a terminal unless --yes.")
    sub.add_argument("collection")
    add_scope_arguments(sub, timeframe_required=False)
    sub.add_argument("--yes", action="store_true", help="do not ask")
    sub.set_defaults(handler=_delete_events)
