"""The ``keen`` command: analyses, resources, export and import, from a terminal.

``keen --help`` lists the subcommands; ``keen SUBCOMMAND --help`` explains each. Settings come
from the ``KEEN_*`` environment variables, overridable by flags (:mod:`keen.cli._settings`).

Exit codes: 0 success; 1 the operation failed (the API refused it, the server could not be
reached, an import had refused events...); 2 the command line is wrong (nothing was sent);
130 interrupted. Errors are one line on standard error (``--traceback`` for the whole story);
no key is ever printed.

Modules: ``_settings`` (settings and the client), ``_args`` (filters, timeframes, JSON
arguments), ``_output`` (table, ``--json``, ``--csv``), ``_analyses``, ``_resources``,
``_export``, ``_import``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from keen import exceptions
from keen.api import KeenApi, _scrub
from keen.cli import _analyses, _args, _export, _import, _resources, _settings
from keen.utilities import VERSION

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
Query and manage a Keen project (or the local server) from the command line.

Settings come from KEEN_PROJECT_ID, KEEN_READ_KEY, KEEN_WRITE_KEY, KEEN_MASTER_KEY and
KEEN_BASE_URL, or the matching flags; each command uses the weakest key that allows it.
"""

_EPILOG = """\
examples:
  keen count purchases --timeframe this_7_days --group-by item.id --interval daily \\
      --filter 'price gte 10'
  keen collections list
  keen export purchases --timeframe this_30_days --format jsonl > purchases.jsonl
  keen export --all backup/ && keen import backup/
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command (every subcommand)."""
    connection = argparse.ArgumentParser(add_help=False)
    _settings.add_connection_arguments(connection)
    output = argparse.ArgumentParser(add_help=False)
    formats = output.add_argument_group("output").add_mutually_exclusive_group()
    formats.add_argument("--json", dest="format", action="store_const", const="json",
                         help="print the API's answer as JSON, as it came")
    formats.add_argument("--csv", dest="format", action="store_const", const="csv",
                         help="print the table as CSV")
    output.set_defaults(format="table")

    parser = _Parser(
        prog="keen", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"keen {VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _analyses.register(subparsers, [connection, output])
    _resources.register(subparsers, connection, output)
    _export.register(subparsers, [connection])
    _import.register(subparsers, [connection])
    return parser


def _transport_reason(error: exceptions.KeenTransportError) -> str:
    """The heart of a transport error: "[Errno 111] Connection refused", "timed out"..."""
    if isinstance(error, exceptions.KeenTimeoutError):
        return "no answer in time (timed out)"
    found = re.search(r"\[Errno -?\d+\] [^\"')(]+", str(error))
    return found.group(0).strip() if found else type(error).__name__


def _one_line(error: BaseException, base_url: str = KeenApi.base_url) -> str:
    """The message of ``error`` on one line."""
    if isinstance(error, exceptions.KeenApiError):
        status = "" if error.status_code is None else f"HTTP {error.status_code} "
        code = f"{error.error_code}: " if error.error_code else ""
        text = f"the API refused: {status}{code}{error.message}"
    elif isinstance(error, exceptions.KeenTransportError):
        text = (f"could not reach {_scrub(base_url)}: {_transport_reason(error)} "
                "(check KEEN_BASE_URL / --base-url and that the server is running)")
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror}: {error.filename!r}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _redacted(text: str, settings: _settings.Settings | None) -> str:
    if settings is not None:
        for key in (settings.write_key, settings.read_key, settings.master_key):
            if key:
                text = text.replace(key, "<redacted>")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``keen`` command with ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    settings: _settings.Settings | None = None
    try:
        settings = _settings.settings_from(args)
        code: int = args.handler(args, settings)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("keen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (_args.UsageError, _export.ExportError, exceptions.BaseKeenClientError, OSError,
            ValueError) as exc:
        if getattr(args, "traceback", False):
            print(_redacted(traceback.format_exc(), settings), file=sys.stderr, end="")
        usage = isinstance(exc, (_args.UsageError, exceptions.InvalidQueryError))
        base_url = (settings.base_url if settings is not None else None) or KeenApi.base_url
        print(f"keen: error: {_redacted(_one_line(exc, base_url), settings)}", file=sys.stderr)
        return 2 if usage else 1
