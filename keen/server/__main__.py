"""``python -m keen.server`` / ``keen-server``: run the local Keen-compatible server.

Options (and nothing else): ``--host`` (127.0.0.1), ``--port`` (8765; 0 picks a free port),
``--db PATH`` (database file; default in memory), ``--engine sqlite|duckdb`` (default sqlite;
duckdb needs ``pip install "keen[server]"``), ``--project-id``, ``--master-key``,
``--read-key``, ``--write-key`` (defaults: ``KEEN_PROJECT_ID``, ``KEEN_MASTER_KEY``,
``KEEN_READ_KEY``, ``KEEN_WRITE_KEY``, else the development values of ``keen.server.config``).
More projects: a JSON file named by ``KEEN_SERVER_CONFIG`` (see ``keen.server.config``).

On start it prints the URL and ``export`` lines to paste into a shell (the keys are printed on
purpose: this is the user's own development server). It serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from keen.server.config import (
    CONFIG_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigError,
    projects_from_environment,
    resolve_primary,
)
from keen.server.engines import DEFAULT_ENGINE, ENGINES, DatabaseError, EngineUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keen-server",
        description="Run a local Keen-compatible server (Keen HTTP API 3.0 over SQLite or DuckDB).",
        epilog=f"More projects may be declared in a JSON file named by ${CONFIG_ENV}.",
        allow_abbrev=False,  # exactly the documented options: no "--master" for "--master-key"
    )
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--db", metavar="PATH", default=None,
                        help="database file (default: in memory, lost on exit)")
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE,
                        help=f"storage and query engine (default {DEFAULT_ENGINE}; duckdb needs "
                             'pip install "keen[server]")')
    parser.add_argument("--project-id", help="project id (default $KEEN_PROJECT_ID or a dev id)")
    parser.add_argument("--master-key", help="master key (default $KEEN_MASTER_KEY or a dev key)")
    parser.add_argument("--read-key", help="read key (default $KEEN_READ_KEY or a dev key)")
    parser.add_argument("--write-key", help="write key (default $KEEN_WRITE_KEY or a dev key)")
    return parser


def banner(url: str, project_id: str, keys: dict[str, str | None],
           others: Sequence[str]) -> str:
    """The start-up text: the URL, then ``export`` lines for a shell."""
    lines = [f"keen local server listening on {url}", "",
             "Point keen at it (paste into your shell):", "",
             f"export KEEN_BASE_URL={shlex.quote(url)}",
             f"export KEEN_PROJECT_ID={shlex.quote(project_id)}"]
    for name in ("write_key", "read_key", "master_key"):
        value = keys[name]
        if value is not None:
            lines.append(f"export KEEN_{name.upper()}={shlex.quote(value)}")
    if others:
        lines += ["", f"Also serving project(s) from ${CONFIG_ENV}: {', '.join(others)}"]
    lines += ["", "Press Ctrl+C to stop."]
    return "\n".join(lines)


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
    server = LocalKeenServer(host=args.host, port=args.port, db=args.db,
                             project_id=primary.project_id, master_key=primary.master_key,
                             read_key=primary.read_key, write_key=primary.write_key,
                             projects=projects[1:], engine=args.engine)
    try:
        _ = server.storage  # opens the database: a bad --db is reported before listening
    except EngineUnavailable as exc:
        print(f"keen-server: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError, DatabaseError) as exc:
        print(f"keen-server: cannot open the database {args.db!r}: {exc}", file=sys.stderr)
        return 1
    try:
        server.start()
    except OSError as exc:
        print(f"keen-server: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        server.close()
        return 1
    keys = {"write_key": primary.write_key, "read_key": primary.read_key,
            "master_key": primary.master_key}
    migrated = getattr(server.storage, "migrated_from", None)
    if migrated is not None:
        print(f"Copied the SQLite database {migrated} into {server.storage.database} "  # type: ignore[attr-defined]
              "(the SQLite file is unchanged).", flush=True)
    print(banner(server.url, primary.project_id, keys, [p.project_id for p in projects[1:]]),
          flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
    print("keen local server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
