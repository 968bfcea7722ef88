"""Where the ``keen`` command finds its project, keys and server, and the client it builds.

Each setting comes from its flag when given, else from the ``KEEN_*`` environment variable the
library reads (an empty variable counts as unset), as ``keen.KeenClient`` would be configured:

==============  ==================  =====================================================
flag            variable            used for
==============  ==================  =====================================================
--project       KEEN_PROJECT_ID     every command
--read-key      KEEN_READ_KEY       analyses, schemas, dataset and saved-query results
--write-key     KEEN_WRITE_KEY      ``import``
--master-key    KEEN_MASTER_KEY     deletes, saved queries, datasets, access keys
--base-url      KEEN_BASE_URL       the API's location (default https://api.keen.io)
==============  ==================  =====================================================

Every key the user gave is handed to the client, which uses the weakest key that allows each
operation (the library's rule), and says which key to set when one is missing. Keys are never
printed: :class:`Settings` has no key in its ``repr``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keen import _retry
from keen.client import KeenClient
from keen.exceptions import InvalidEnvironmentError

__all__ = ["Settings", "add_connection_arguments", "build_client", "settings_from"]

#: setting -> (flag, environment variable)
SOURCES: dict[str, tuple[str, str]] = {
    "project_id": ("--project", "KEEN_PROJECT_ID"),
    "write_key": ("--write-key", "KEEN_WRITE_KEY"),
    "read_key": ("--read-key", "KEEN_READ_KEY"),
    "master_key": ("--master-key", "KEEN_MASTER_KEY"),
    "base_url": ("--base-url", "KEEN_BASE_URL"),
}


#: Seconds to wait for a connection (``--timeout`` bounds the whole answer).
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, repr=False)
class Settings:
    """The connection settings of one run (keys included: never print this)."""

    project_id: str | None
    write_key: str | None
    read_key: str | None
    master_key: str | None
    base_url: str | None
    timeout: float
    retries: int

    def __repr__(self) -> str:
        keys = [name for name in ("write_key", "read_key", "master_key") if getattr(self, name)]
        return (f"Settings(project_id={self.project_id!r}, base_url={self.base_url!r}, "
                f"keys set: {', '.join(keys) or 'none'})")

    def require_project(self) -> str:
        if not self.project_id:
            raise InvalidEnvironmentError(
                "No project: set KEEN_PROJECT_ID or pass --project.")
        return self.project_id


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The connection flags (shared by every subcommand)."""
    group = parser.add_argument_group(
        "connection", "Each defaults to its KEEN_* environment variable. Prefer the variables "
        "for keys: a key on the command line is visible to other users of the machine.")
    for setting, (flag, variable) in SOURCES.items():
        group.add_argument(flag, dest=setting, metavar="VALUE" if "key" in flag else None,
                           default=argparse.SUPPRESS, help=f"(default: ${variable})")
    group.add_argument("--timeout", type=_positive_float, default=argparse.SUPPRESS,
                       help="seconds one request may take (default: 305)")
    group.add_argument("--retries", type=_count, default=argparse.SUPPRESS,
                       help="times a failed request is tried again (default: 3)")
    group.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error instead of one line")


def settings_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: flags first, then the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting, (_flag, variable) in SOURCES.items():
        given = getattr(args, setting, None)
        values[setting] = given if given else (env.get(variable) or None)
    return Settings(timeout=getattr(args, "timeout", 305.0),
                    retries=getattr(args, "retries", 3), **values)


def retry_policy(settings: Settings) -> _retry.RetryPolicy:
    """The retry policy of requests made by the command."""
    return _retry.RetryPolicy(max_retries=settings.retries)


def build_client(settings: Settings, delivery: Any = None) -> KeenClient:
    """A client with every key the user gave (it picks the weakest one per operation)."""
    # a host that does not answer at all fails within CONNECT_TIMEOUT, not the read timeout
    timeout = (min(CONNECT_TIMEOUT, settings.timeout), settings.timeout)
    return KeenClient(settings.require_project(), write_key=settings.write_key,
                      read_key=settings.read_key, master_key=settings.master_key,
                      base_url=settings.base_url, get_timeout=timeout, post_timeout=timeout,
                      retry=retry_policy(settings), delivery=delivery)
