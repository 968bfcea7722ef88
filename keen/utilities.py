"""Version, request headers and the key-type names used across the package."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

from keen.exceptions import InvalidEnvironmentError

__all__ = ["VERSION", "KeenKeys", "headers", "requires_key", "version"]

VERSION = "0.8.0"

F = TypeVar("F", bound=Callable[..., Any])


def version() -> str:
    """The version of this package."""
    return VERSION


def headers(api_key: str) -> dict[str, str]:
    """The headers every request to the Keen API carries, for the given key."""
    return {
        "Content-Type": "application/json",
        "Authorization": api_key,
        "Keen-Sdk": f"python-{VERSION}",
    }


class KeenKeys:
    """The kinds of key an operation can need (least privilege: the weakest one that works)."""

    READ = "read"
    WRITE = "write"
    MASTER = "master"


def missing_key_error(key_type: str, master_key_set: bool) -> InvalidEnvironmentError:
    """The error for an operation whose ``key_type`` key is not configured."""
    variable = f"KEEN_{key_type.upper()}_KEY"
    message = (f"This operation needs a {key_type} key: give {key_type}_key to the client "
               f"(or set keen.{key_type}_key")
    if os.environ.get(variable):  # name the variable only when setting it would help
        message += (f"; {variable} is set, but this client was built before it was, or was "
                    f"given {key_type}_key='').")
    else:
        message += f", or the {variable} environment variable)."
    if master_key_set and key_type != KeenKeys.MASTER:
        message += (
            " A master key is set, but it is not used for this: give each operation the key"
            " with the least privilege."
        )
    return InvalidEnvironmentError(message)


def require_key(owner: Any, key_type: str) -> str:
    """The ``key_type`` key of ``owner`` (a KeenApi, or anything with ``_get_<type>_key``)."""
    key: str | None = getattr(owner, f"_get_{key_type}_key")()
    if not key:
        master: str | None = owner._get_master_key()
        raise missing_key_error(key_type, bool(master))
    return key


def requires_key(key_type: str) -> Callable[[F], F]:
    """Decorate a method so that it raises InvalidEnvironmentError when its key is missing.

    The object the method belongs to must have ``_get_read_key``, ``_get_write_key`` or
    ``_get_master_key`` (as KeenApi does), and ``_get_master_key``.
    """

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            require_key(self, key_type)
            return func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
