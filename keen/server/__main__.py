"""``python -m keen.server`` / ``keen-server``: run the local Keen-compatible server.

Options (and nothing else): ``--version``, ``--host`` (127.0.0.1), ``--port`` (8765; 0 picks a
free port), ``--db PATH`` (database file; default in memory), ``--engine sqlite|duckdb``
(default sqlite; duckdb needs ``pip install "keen[server]"``), ``--query-time-limit SECONDS``
(default 60; ``0``: no limit), ``--project-id``, ``--master-key``,
``--read-key``, ``--write-key`` (defaults: ``KEEN_PROJECT_ID``, ``KEEN_MASTER_KEY``,
``KEEN_READ_KEY``, ``KEEN_WRITE_KEY``, else the development values of ``keen.server.config``).
More projects: a JSON file named by ``KEEN_SERVER_CONFIG`` (see ``keen.server.config``).
Browsers and exposure (``keen.server._security``): ``--allow-origin ORIGIN`` and
``--allow-host NAME`` (repeatable), ``--expose-faults`` (serve ``/_keen/faults`` on a
non-loopback ``--host``). ``--show-keys`` prints every key in full.

On start it prints the URL and ``export`` lines to paste into a shell. Keys are secrets: only the
built-in development keys (public constants) are printed in full; a key taken from the
environment or given as an option is named with its last four characters (if it is long enough
for that to reveal little) and not printed, unless ``--show-keys`` asks for it. It says when the
server listens on a non-loopback address and whether ``/_keen/faults`` is served there. It serves
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sqlite3
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from keen.server._security import is_loopback_name
from keen.server.config import (
    CONFIG_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigError,
    projects_from_environment,
    resolve_primary,
)
from keen.server.engines import DEFAULT_ENGINE, ENGINES, DatabaseError, EngineUnavailable
from keen.server.limits import QUERY_TIME_LIMIT, QUERY_TIME_LIMIT_MAX, checked_query_time_limit

KEY_FIELDS = ("write_key", "read_key", "master_key")
DEV = "dev"  # the source of a built-in development key


def _prog(argv0: str | None = None) -> str:
    """The command's name as it was run: ``keen-server``, or ``python -m keen.server``."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "python -m keen.server" if name in ("__main__.py", "") else name


def _query_time_limit(text: str) -> float | None:
    """``--query-time-limit``: a number of seconds, ``0`` for no limit (argparse names the
    option in front of the message of the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    try:
        return checked_query_time_limit(value, "the limit")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    from keen.utilities import VERSION

    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Run a local Keen-compatible server (Keen HTTP API 3.0 over SQLite or DuckDB).",
        epilog=f"More projects may be declared in a JSON file named by ${CONFIG_ENV}.",
        allow_abbrev=False,  # exactly the documented options: no "--master" for "--master-key"
    )
    parser.add_argument("--version", action="version", version=f"keen-server (keen {VERSION})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--db", metavar="PATH", default=None,
                        help="database file (default: in memory, lost on exit)")
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE,
                        help=f"storage and query engine (default {DEFAULT_ENGINE}; duckdb needs "
                             'pip install "keen[server]")')
    parser.add_argument("--query-time-limit", type=_query_time_limit, default=QUERY_TIME_LIMIT,
                        metavar="SECONDS",
                        help=f"seconds a query (or delete) may run before it is stopped with "
                             f"503 QueryTimeoutError (default {QUERY_TIME_LIMIT:g}; at most "
                             f"{QUERY_TIME_LIMIT_MAX:g}; 0: no limit)")
    parser.add_argument("--project-id", help="project id (default $KEEN_PROJECT_ID or a dev id)")
    parser.add_argument("--master-key", help="master key (default $KEEN_MASTER_KEY or a dev key)")
    parser.add_argument("--read-key", help="read key (default $KEEN_READ_KEY or a dev key)")
    parser.add_argument("--write-key", help="write key (default $KEEN_WRITE_KEY or a dev key)")
    parser.add_argument("--show-keys", action="store_true",
                        help="print every key in full at start-up (by default only the "
                             "built-in development keys are)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="a web origin (scheme://host[:port]) whose pages may call the "
                             "server, besides its own and loopback ones; '*' allows every "
                             "origin (repeatable)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name the server answers to, besides IP addresses, "
                             "localhost and --host (repeatable)")
    parser.add_argument("--expose-faults", action="store_true",
                        help="serve the /_keen/faults control endpoint on a non-loopback --host")
    return parser


def key_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """Where each key of the primary project came from: ``--option``, ``$VARIABLE`` or dev."""
    sources = {}
    for name in KEY_FIELDS:
        variable = f"KEEN_{name.upper()}"
        if getattr(args, name) is not None:
            sources[name] = f"--{name.replace('_', '-')}"
        elif environ.get(variable):
            sources[name] = f"${variable}"
        else:
            sources[name] = DEV
    return sources


def _masked(value: str) -> str:
    return f"ending ...{value[-4:]}" if len(value) >= 20 else "short"


def banner(url: str, project_id: str, keys: dict[str, str | None],
           others: Sequence[str], *, sources: Mapping[str, str] | None = None,
           show_keys: bool = False, notes: Sequence[str] = ()) -> str:
    """The start-up text: the URL, ``export`` lines for a shell, then ``notes``.

    A key is printed in full only if it is a built-in development key (``sources[name]`` is
    ``"dev"``; every key when ``sources`` is None) or ``show_keys`` is set; any other is named by
    where it came from and its last four characters."""
    lines = [f"keen local server listening on {url}",
             f"Explorer (open in a browser): {url}/", "",
             "Point keen at it (paste into your shell):", "",
             f"export KEEN_BASE_URL={shlex.quote(url)}",
             f"export KEEN_PROJECT_ID={shlex.quote(project_id)}"]
    hidden = False
    for name in KEY_FIELDS:
        value = keys[name]
        if value is None:
            continue
        source = DEV if sources is None else sources.get(name, DEV)
        if show_keys or source == DEV:
            lines.append(f"export KEEN_{name.upper()}={shlex.quote(value)}")
        else:
            hidden = True
            lines.append(f"# KEEN_{name.upper()}: the key from {source} "
                         f"({_masked(value)}), not printed")
    if hidden:
        lines.append("# (keys you supplied are not printed: --show-keys prints them)")
    if others:
        lines += ["", f"Also serving project(s) from ${CONFIG_ENV}: {', '.join(others)}"]
    if notes:
        lines += ["", *notes]
    lines += ["", "Press Ctrl+C to stop."]
    return "\n".join(lines)


def exposure_notes(host: str, allow_origins: Sequence[str], expose_faults: bool) -> list[str]:
    """What the start-up text says about browsers and a non-loopback ``host``."""
    origins = ", ".join(allow_origins) if allow_origins else "none"
    notes = ["Web pages: only this server's own pages and pages on loopback origins may call "
             f"it (also allowed with --allow-origin: {origins})."]
    if not is_loopback_name(host):
        notes.append(f"WARNING: listening on {host}, which is not a loopback address: other "
                     "machines may reach this server and its data.")
        notes.append("/_keen/faults is served here (--expose-faults)." if expose_faults else
                     "/_keen/faults is not served on this address (--expose-faults serves it).")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        primary = resolve_primary(project_id=args.project_id, master_key=args.master_key,
                                  read_key=args.read_key, write_key=args.write_key,
                                  environ=os.environ)
        projects = projects_from_environment(primary)
    except ConfigError as exc:
        parser.error(str(exc))

    from keen.server._http_server import LocalKeenServer

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server = LocalKeenServer(host=args.host, port=args.port, db=args.db,
                                 project_id=primary.project_id, master_key=primary.master_key,
                                 read_key=primary.read_key, write_key=primary.write_key,
                                 projects=projects[1:], allow_origins=args.allow_origin,
                                 allow_hosts=args.allow_host,
                                 expose_faults=True if args.expose_faults else None,
                                 engine=args.engine, query_time_limit=args.query_time_limit)
    except ValueError as exc:
        parser.error(f"--allow-origin: {exc}")
    try:
        _ = server.storage  # opens the database: a bad --db is reported before listening
    except EngineUnavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError, DatabaseError) as exc:
        print(f"{parser.prog}: cannot open the database {args.db!r}: {exc}", file=sys.stderr)
        return 1
    try:
        server.start()
    except OSError as exc:
        print(f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        server.close()
        return 1
    keys = {"write_key": primary.write_key, "read_key": primary.read_key,
            "master_key": primary.master_key}
    migrated = getattr(server.storage, "migrated_from", None)
    if migrated is not None:
        print(f"Copied the SQLite database {migrated} into {server.storage.database} "  # type: ignore[attr-defined]
              "(the SQLite file is unchanged).", flush=True)
    notes = exposure_notes(args.host, args.allow_origin, server.policy.faults_exposed)
    print(banner(server.url, primary.project_id, keys, [p.project_id for p in projects[1:]],
                 sources=key_sources(args, os.environ), show_keys=args.show_keys,
                 notes=notes), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
    print("keen local server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
