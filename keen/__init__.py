"""keen: a client for the Keen IO analytics API (a drop-in successor of keen 0.7.0).

Module-level use reads its settings at every call: the module globals ``project_id``,
``write_key``, ``read_key``, ``master_key``, ``base_url``, ``delivery`` and ``disabled``, each
falling back to its ``KEEN_*`` environment variable (``KEEN_PROJECT_ID``...). A default
:class:`KeenClient` is built on first use and rebuilt whenever a setting changes;
:func:`reset_client` drops it. Each module function is the :class:`KeenClient` method of the
same name (same signature and docstring), called on that default client.

Once the default client is built, ``project_id``, the keys and ``base_url`` hold the values it
uses (as in 0.7.0), also those read from the environment. A value the module filled in that
way still follows the environment: only a value the application assigned wins over it.

``debug`` (or ``KEEN_DEBUG=1``) shows each request on stderr, never with a key. ``on_error``
is called as ``on_error(events, error)`` with events that background or durable delivery of
the default client could not deliver (unless its delivery object has an ``on_error`` of its
own); it is read when called, so it may be set at any time.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from keen import _delivery, direction, exceptions
from keen._delivery import BackgroundDelivery, DurableDelivery
from keen._retry import NO_RETRY, RetryPolicy
from keen.client import Event, KeenClient, is_on
from keen.exceptions import InvalidEnvironmentError
from keen.persistence_strategies import DirectPersistenceStrategy
from keen.utilities import VERSION as __version__

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

R = TypeVar("R")

logging.getLogger("keen").addHandler(logging.NullHandler())

__all__ = [
    "NO_RETRY",
    "BackgroundDelivery",
    "DurableDelivery",
    "Event",
    "KeenClient",
    "RetryPolicy",
    "__version__",
    "add_access_key_permissions",
    "add_event",
    "add_events",
    "average",
    "count",
    "count_unique",
    "create_access_key",
    "delete_access_key",
    "delete_events",
    "direction",
    "exceptions",
    "extraction",
    "flush",
    "funnel",
    "generate_image_beacon",
    "get_access_key",
    "get_all_collections",
    "get_collection",
    "list_access_keys",
    "maximum",
    "median",
    "minimum",
    "multi_analysis",
    "percentile",
    "remove_access_key_permissions",
    "reset_client",
    "revoke_access_key",
    "select_unique",
    "standard_deviation",
    "stats",
    "sum",
    "unrevoke_access_key",
    "update_access_key_full",
    "update_access_key_name",
    "update_access_key_options",
    "update_access_key_permissions",
]

# -- settings (None = read the KEEN_* environment variable) -----------------------------------
project_id: str | None = None
write_key: str | None = None
read_key: str | None = None
master_key: str | None = None
base_url: str | None = None
delivery: Any = None
#: True: events are checked and counted, never sent (KEEN_DISABLED=1); see KeenClient(disabled=).
disabled: bool | None = None
#: True: each request is shown on stderr, without keys (KEEN_DEBUG=1).
debug: bool | None = None
#: on_error(events, error) for events the default client's queued delivery could not deliver.
on_error: Callable[[list[tuple[str, dict[str, Any]]], BaseException], None] | None = None

_SETTINGS = ("project_id", "write_key", "read_key", "master_key", "base_url", "delivery",
             "disabled")
#: The settings the module fills in with the values in use once the default client is built.
_FILLED_IN = ("project_id", "write_key", "read_key", "master_key", "base_url")
#: What the module filled in from the environment: such a value still follows the environment.
_filled: dict[str, Any] = {}
#: Set by the keen_module test fixture: queued events are flushed before any other call, so a
#: test reads what it just added whatever the delivery mode.
_flush_before_calls = False

#: The default client (0.7.0 name; tests of applications replace it with doubles, which are
#: then used as they are).
_client: KeenClient | None = None
_built_client: KeenClient | None = None
_built_settings: tuple[Any, ...] | None = None
_lock = threading.Lock()


def _current_settings() -> tuple[Any, ...]:
    values = globals()
    filled = _filled
    return tuple(
        value if value is not None and (name not in filled or filled[name] is not value)
        else (os.environ.get(f"KEEN_{name.upper()}") or None)
        for name, value in ((name, values[name]) for name in _SETTINGS)
    )


def _fill_in(settings: tuple[Any, ...]) -> None:
    """Make the module settings show the values the new default client uses (0.7.0 did)."""
    values = globals()
    for name, value in zip(_SETTINGS, settings):
        if name not in _FILLED_IN:
            continue
        current = values[name]
        if current is None or _filled.get(name) is current:
            values[name] = value
            if value is None:
                _filled.pop(name, None)
            else:
                _filled[name] = value


def _report_to_on_error(events: list[tuple[str, dict[str, Any]]], error: BaseException) -> None:
    callback = on_error
    if callback is not None:
        callback(events, error)


def _with_module_on_error(how: Any) -> Any:
    """The delivery setting ``how``, with ``keen.on_error`` as its callback when it is a queued
    delivery without a callback of its own."""
    if how is None:
        return None
    config = _delivery.resolve(how)
    if config is None or config.on_error is not None:
        return how if config is None else config
    return dataclasses.replace(config, on_error=_report_to_on_error)


def _initialize_client_from_environment() -> None:
    """Make ``keen._client`` a client built from the current settings (0.7.0 name)."""
    _default_client()


def _default_client() -> KeenClient:
    """The client module functions call: ``keen._client``, (re)built when settings changed.

    Returns the client it checked or built, never re-reads ``keen._client``: another thread
    may reset or replace it in the meantime.
    """
    global _client, _built_client, _built_settings
    client = _client
    if client is not None and client is not _built_client:
        return client  # put there by the application: not ours to replace
    settings = _current_settings()
    if client is not None and settings == _built_settings:
        return client
    with _lock:
        client = _client
        if client is not None and (client is not _built_client or settings == _built_settings):
            return client
        pid, write, read, master, url, how, off = settings
        if not pid:
            raise InvalidEnvironmentError(
                "No project id: set keen.project_id or the KEEN_PROJECT_ID environment variable.")
        old = _built_client
        off = is_on(off)
        client = _client = _built_client = KeenClient(
            pid, write_key=write, read_key=read, master_key=master, base_url=url,
            delivery=None if off else _with_module_on_error(how), disabled=off)
        _fill_in(settings)
        _built_settings = settings
    if old is not None and not isinstance(old.persistence_strategy, DirectPersistenceStrategy):
        old.close()  # deliver what the replaced client still holds
    return client


def _replacement(stale: KeenClient) -> KeenClient | None:
    """The default client now, if it is not ``stale`` (which was closed as it was replaced)."""
    current = _default_client()
    return None if current is stale else current


def reset_client() -> None:
    """Drop the default client; the next call builds a new one from the settings.

    The client this module built is closed; one the application put in ``keen._client`` is
    only dropped (it is the application's to close).
    """
    global _client, _built_client, _built_settings
    with _lock:
        built, _client, _built_client, _built_settings = _built_client, None, None, None
    if built is not None:
        built.close()


def flush(timeout: float | None = None) -> bool:
    """Wait until events queued by the default client are delivered; True when they are."""
    client = _client
    return True if client is None else client.flush(timeout)


def stats() -> dict[str, Any]:
    """Delivery counters of the default client (empty when none was built)."""
    client = _client
    return {} if client is None else client.stats()


def _facade(method: Callable[Concatenate[KeenClient, P], R],
            renames: dict[str, str] | None = None, *, adds: bool = False) -> Callable[P, R]:
    """A module function calling ``method`` on the default client, with its signature.

    The function is generated with the method's exact parameters (names, kinds, defaults), so
    it binds arguments like the method does; ``renames`` maps method parameter names to the
    names the 0.7.0 facade used (``event_body`` -> ``body``). Unless the method ``adds``
    events, the function first flushes queued events when ``_flush_before_calls`` is set.
    """
    renames = renames or {}
    name = method.__name__
    parameters = list(inspect.signature(method).parameters.values())[1:]
    namespace: dict[str, Any] = {"_default_client": _default_client,
                                 "_replacement": _replacement,
                                 "_DeliveryClosedError": exceptions.DeliveryClosedError,
                                 "_settings": globals()}
    declared, passed = [], []
    for index, parameter in enumerate(parameters):
        public = renames.get(parameter.name, parameter.name)
        if parameter.default is inspect.Parameter.empty:
            declared.append(public)
        else:
            namespace[f"_default_{index}"] = parameter.default
            declared.append(f"{public}=_default_{index}")
        passed.append(f"{parameter.name}={public}")
    call = f"{name}({', '.join(passed)})"
    # a queued client closed by another thread's settings change, between this call picking
    # it up and using it, raises DeliveryClosedError: the call goes to its replacement then
    flush = "" if adds else "    if _settings['_flush_before_calls']:\n        client.flush(10)\n"
    source = (f"def {name}({', '.join(declared)}):\n"
              f"    client = _default_client()\n"
              f"{flush}"
              f"    try:\n"
              f"        return client.{call}\n"
              f"    except _DeliveryClosedError:\n"
              f"        fresh = _replacement(client)\n"
              f"        if fresh is None:\n"
              f"            raise\n"
              f"        return fresh.{call}\n")
    exec(source, namespace)  # noqa: S102 -- source built above from a signature, no user input
    function: Callable[P, R] = namespace[name]
    doc = method.__doc__ or ""
    for old, new in renames.items():
        doc = doc.replace(f":param {old}:", f":param {new}:")
    function.__doc__ = doc
    function.__module__ = __name__
    function.__qualname__ = name
    return function


_BODY = {"event_body": "body"}
add_event = _facade(KeenClient.add_event, _BODY, adds=True)
add_events = _facade(KeenClient.add_events, adds=True)
generate_image_beacon = _facade(KeenClient.generate_image_beacon, _BODY, adds=True)
count = _facade(KeenClient.count)
sum = _facade(KeenClient.sum)
minimum = _facade(KeenClient.minimum)
maximum = _facade(KeenClient.maximum)
average = _facade(KeenClient.average)
median = _facade(KeenClient.median)
percentile = _facade(KeenClient.percentile)
standard_deviation = _facade(KeenClient.standard_deviation)
count_unique = _facade(KeenClient.count_unique)
select_unique = _facade(KeenClient.select_unique)
extraction = _facade(KeenClient.extraction)
funnel = _facade(KeenClient.funnel)
multi_analysis = _facade(KeenClient.multi_analysis)
delete_events = _facade(KeenClient.delete_events)
get_collection = _facade(KeenClient.get_collection)
get_all_collections = _facade(KeenClient.get_all_collections)
create_access_key = _facade(KeenClient.create_access_key)
list_access_keys = _facade(KeenClient.list_access_keys)
get_access_key = _facade(KeenClient.get_access_key)
update_access_key_name = _facade(KeenClient.update_access_key_name)
add_access_key_permissions = _facade(KeenClient.add_access_key_permissions)
remove_access_key_permissions = _facade(KeenClient.remove_access_key_permissions)
update_access_key_permissions = _facade(KeenClient.update_access_key_permissions)
update_access_key_options = _facade(KeenClient.update_access_key_options)
update_access_key_full = _facade(KeenClient.update_access_key_full)
revoke_access_key = _facade(KeenClient.revoke_access_key)
unrevoke_access_key = _facade(KeenClient.unrevoke_access_key)
delete_access_key = _facade(KeenClient.delete_access_key)
