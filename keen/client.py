"""KeenClient: the whole Keen API for one project (and ``Event``, from :mod:`keen._event`).

The analysis methods share one parameter table (``keen._params``): each method declares its
signature, its body hands ``locals()`` to :meth:`KeenClient._analysis`, and its docstring is
built from the table by :func:`_documented`.
"""

from __future__ import annotations

import base64
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

import requests

from keen import _params, _retry, cached_datasets, exceptions, saved_queries
from keen._event import Event
from keen.api import DEFAULT_TIMEOUT, KeenApi, Timeout, _scrub, _segment
from keen.persistence_strategies import (
    BasePersistenceStrategy,
    DirectPersistenceStrategy,
    DisabledPersistenceStrategy,
)
from keen.utilities import KeenKeys, require_key

__all__ = ["Event", "KeenClient"]

F = TypeVar("F", bound=Callable[..., Any])

Timeframe = Union[str, Mapping[str, str], None]
Timezone = Union[str, int, None]
GroupBy = Union[str, Sequence[str], None]
OrderBy = Union[Mapping[str, str], Sequence[Mapping[str, str]], None]
Filters = Optional[Sequence[Mapping[str, Any]]]
Steps = Sequence[Mapping[str, Any]]

def _environment(setting: str) -> str | None:
    """The ``KEEN_<SETTING>`` environment variable, None when unset or empty."""
    return os.environ.get(f"KEEN_{setting.upper()}") or None


def is_on(value: Any) -> bool:
    """A switch given as a bool or as text (``"1"``, ``"true"``, ``"yes"``, ``"on"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


#: Parameters that every analysis having them requires (no default in its signature).
_REQUIRED = ("event_collection", "target_property", "percentile", "steps", "analyses")


def _documented(summary: str) -> Callable[[F], F]:
    """Give an analysis method a docstring: ``summary`` plus a line per parameter."""

    def decorate(method: F) -> F:
        names = [n for n in inspect.signature(method).parameters if n != "self"]
        lines = [f":param {name}: {_params.PARAM_DOCS[name]}" for name in names]
        method.__doc__ = summary + "\n\n" + "\n".join(lines) + "\n"
        return method

    return decorate


class KeenClient:
    """A client for one Keen project.

    ``KeenClient()`` with no arguments is the client of the environment: the project id, the
    keys and the server not given (None) are read from ``KEEN_PROJECT_ID``, ``KEEN_WRITE_KEY``,
    ``KEEN_READ_KEY``, ``KEEN_MASTER_KEY`` and ``KEEN_BASE_URL`` when the client is built.
    Arguments given win; ``""`` for a key means "no key", whatever the environment says. How
    events travel is the client's own choice (``delivery=``, ``disabled=``): ``KEEN_DELIVERY``
    and ``KEEN_DISABLED`` set the module's default client only, so a client built in code
    never becomes queued or silent because of the environment.

    :param project_id: the project id (a non-empty string).
    :param write_key: key for recording events (str, or bytes as ``scoped_keys.encrypt``
        returns them; so are the other keys).
    :param read_key: key for queries and schemas.
    :param persistence_strategy: where events go (default: straight to the API).
    :param api_class: the transport class, built as ``api_class(project_id, write_key=...,
        read_key=..., get_timeout=..., post_timeout=..., master_key=..., base_url=...)``.
    :param get_timeout: seconds for reads (default 305).
    :param post_timeout: seconds for writes (default 305).
    :param master_key: key for deletes and saved-query / dataset / access-key management.
    :param base_url: where the API is (default ``https://api.keen.io``).
    :param session: a ready ``requests.Session`` (proxies, CA bundle, client certificates);
        shared by all threads using this client.
    :param retry: a ``keen._retry.RetryPolicy`` (default up to 3 retries within 30 s).
    :param delivery: ``None`` / ``"direct"`` (synchronous, the default), ``"background"``,
        ``"durable"``, or a delivery config object (``keen.BackgroundDelivery``...).
    :param disabled: True: ``add_event`` / ``add_events`` check each event (collection name,
        JSON body) and count it (``stats()["validated"]``), and send nothing; no key is needed
        for that. Queries and management calls are not affected. It overrides ``delivery``.
    """

    def __init__(
        self,
        project_id: str | None = None,
        write_key: str | bytes | None = None,
        read_key: str | bytes | None = None,
        persistence_strategy: BasePersistenceStrategy | None = None,
        api_class: type[KeenApi] = KeenApi,
        get_timeout: Timeout = DEFAULT_TIMEOUT,
        post_timeout: Timeout = DEFAULT_TIMEOUT,
        master_key: str | bytes | None = None,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        retry: _retry.RetryPolicy | None = None,
        delivery: Any = None,
        disabled: bool = False,
    ) -> None:
        if project_id is None:
            project_id = _environment("project_id")
            if project_id is None:
                raise exceptions.InvalidProjectIdError(
                    None, detail="Pass project_id, or set the KEEN_PROJECT_ID environment "
                                 "variable.")
        self.check_project_id(project_id)
        if persistence_strategy is not None and not isinstance(
                persistence_strategy, BasePersistenceStrategy):
            raise exceptions.InvalidPersistenceStrategyError()
        if persistence_strategy is not None and (delivery is not None or disabled):
            raise exceptions.InvalidConfigurationError(
                "give either persistence_strategy or delivery / disabled, not both")
        extra: dict[str, Any] = {}
        if session is not None:
            extra["session"] = session
        if retry is not None:
            extra["retry"] = retry
        # api_class is a seam users replace: only pass the 0.7.0 arguments unless asked to
        keys: dict[str, Any] = {
            name: _environment(name) if value is None else value for name, value in
                (("write_key", write_key), ("read_key", read_key), ("master_key", master_key))}
        self.api = api_class(project_id, get_timeout=get_timeout, post_timeout=post_timeout,
                             base_url=_environment("base_url") if base_url is None else base_url,
                             **keys, **extra)
        if persistence_strategy is None:
            persistence_strategy = (DisabledPersistenceStrategy() if disabled
                                    else self._strategy_for(delivery))
        self.project_id = project_id
        self.persistence_strategy = persistence_strategy
        self.get_timeout = get_timeout
        self.post_timeout = post_timeout
        self.saved_queries = saved_queries.SavedQueriesInterface(self.api)
        self.cached_datasets = cached_datasets.CachedDatasetsInterface(self.api)

    def _strategy_for(self, delivery: Any) -> BasePersistenceStrategy:
        if delivery is None or delivery == "direct":
            return DirectPersistenceStrategy(self.api)
        from keen import _delivery  # background threads and files: only loaded when asked for

        strategy: BasePersistenceStrategy = _delivery.make_strategy(self.api, delivery)
        return strategy

    def __repr__(self) -> str:
        return (f"KeenClient(project_id={self.project_id!r}, "
                f"base_url={_scrub(self.api.base_url)!r}, "
                f"persistence_strategy={type(self.persistence_strategy).__name__})")

    @staticmethod
    def check_project_id(project_id: Any) -> None:
        """Raise InvalidProjectIdError unless ``project_id`` is a non-empty string."""
        if not isinstance(project_id, str) or not project_id:
            raise exceptions.InvalidProjectIdError(project_id)

    # -- events -----------------------------------------------------------------------------
    def add_event(self, event_collection: str, event_body: Mapping[str, Any],
                  timestamp: Any = None) -> None:
        """Record one event (write key), through the persistence strategy.

        :param event_collection: the collection to record it in.
        :param event_body: the event, a dict.
        :param timestamp: when it happened (a datetime); becomes ``keen.timestamp``. An aware
            datetime is sent in UTC. A naive one (no ``tzinfo``, e.g. ``datetime.now()``) is
            sent as it is and the API reads it as UTC, as with 0.7.0: on a machine whose local
            time is not UTC, pass ``datetime.now(timezone.utc)`` instead.
        """
        event = Event(self.project_id, event_collection, event_body, timestamp=timestamp)
        self.persistence_strategy.persist(event)

    def add_events(self, events: dict[str, list[dict[str, Any]]]) -> Any:
        """Record a batch ``{collection: [event, ...]}`` (write key).

        Returns the API's answer, ``{collection: [{"success": True}, ...]}``: events the API
        refused are reported there (``"success": False`` with an ``error``), not raised.
        """
        return self.persistence_strategy.batch_persist(events)

    def generate_image_beacon(self, event_collection: str, event_body: Mapping[str, Any],
                              timestamp: Any = None) -> str:
        """A URL that records the event when fetched (e.g. as an ``<img>``); contains the
        write key.

        :param event_collection: the collection to record it in.
        :param event_body: the event, a dict.
        :param timestamp: when it happened (a datetime).
        """
        event = Event(self.project_id, event_collection, event_body, timestamp=timestamp)
        write_key: Any = require_key(self.api, KeenKeys.WRITE)
        if isinstance(write_key, bytes):
            write_key = write_key.decode("ascii")
        data = base64.b64encode(event.to_json().encode("utf-8")).decode("ascii")
        url = self.api.project_url("events")
        return f"{url}/{_segment(event_collection)}?api_key={write_key}&data={data}"

    # -- events: maintenance and schema -----------------------------------------------------
    def delete_events(self, event_collection: str, timeframe: Timeframe = None,
                      timezone: Timezone = None, filters: Filters = None) -> bool:
        """Delete the matching events (master key); True.

        :param event_collection: the collection to delete from.
        :param timeframe: only events in this timeframe.
        :param timezone: the timezone of a relative timeframe.
        :param filters: only events matching these filters.
        """
        require_key(self.api, KeenKeys.MASTER)  # the key before the arguments, as 0.7.0
        params = self.get_params(timeframe=timeframe, timezone=timezone, filters=filters)
        return self.api.delete_events(event_collection, params)

    def get_collection(self, event_collection: str) -> Any:
        """The schema of one collection (read key)."""
        return self.api.get_collection(event_collection)

    def get_all_collections(self) -> Any:
        """The schemas of all collections (read key)."""
        return self.api.get_all_collections()

    # -- analyses ---------------------------------------------------------------------------
    def _analysis(self, analysis_type: str, arguments: dict[str, Any]) -> Any:
        """Run ``analysis_type`` with a method's arguments (its ``locals()``)."""
        require_key(self.api, KeenKeys.READ)  # the key before the arguments, as 0.7.0
        all_keys = arguments.pop("all_keys", False)
        del arguments["self"]
        _params.require(analysis_type, arguments, _REQUIRED)
        return self.api.query(analysis_type, self.get_params(**arguments), all_keys=all_keys)

    @_documented("Count the events that match.")
    def count(self, event_collection: str, timeframe: Timeframe = None, timezone: Timezone = None,
              interval: str | None = None, filters: Filters = None, group_by: GroupBy = None,
              order_by: OrderBy = None, max_age: int | None = None,
              limit: int | None = None, all_keys: bool = False) -> Any:
        return self._analysis("count", locals())

    @_documented("Add up the target property of the events that match.")
    def sum(self, event_collection: str, target_property: str, timeframe: Timeframe = None,
            timezone: Timezone = None, interval: str | None = None, filters: Filters = None,
            group_by: GroupBy = None, order_by: OrderBy = None, max_age: int | None = None,
            limit: int | None = None, all_keys: bool = False) -> Any:
        return self._analysis("sum", locals())

    @_documented("The smallest value of the target property among the events that match.")
    def minimum(self, event_collection: str, target_property: str, timeframe: Timeframe = None,
                timezone: Timezone = None, interval: str | None = None,
                filters: Filters = None, group_by: GroupBy = None, order_by: OrderBy = None,
                max_age: int | None = None, limit: int | None = None,
                all_keys: bool = False) -> Any:
        return self._analysis("minimum", locals())

    @_documented("The largest value of the target property among the events that match.")
    def maximum(self, event_collection: str, target_property: str, timeframe: Timeframe = None,
                timezone: Timezone = None, interval: str | None = None,
                filters: Filters = None, group_by: GroupBy = None, order_by: OrderBy = None,
                max_age: int | None = None, limit: int | None = None,
                all_keys: bool = False) -> Any:
        return self._analysis("maximum", locals())

    @_documented("The mean of the target property over the events that match.")
    def average(self, event_collection: str, target_property: str, timeframe: Timeframe = None,
                timezone: Timezone = None, interval: str | None = None,
                filters: Filters = None, group_by: GroupBy = None, order_by: OrderBy = None,
                max_age: int | None = None, limit: int | None = None,
                all_keys: bool = False) -> Any:
        return self._analysis("average", locals())

    @_documented("The median of the target property over the events that match.")
    def median(self, event_collection: str, target_property: str, timeframe: Timeframe = None,
               timezone: Timezone = None, interval: str | None = None,
               filters: Filters = None, group_by: GroupBy = None, order_by: OrderBy = None,
               max_age: int | None = None, limit: int | None = None,
               all_keys: bool = False) -> Any:
        return self._analysis("median", locals())

    @_documented("A percentile of the target property over the events that match.")
    def percentile(self, event_collection: str, target_property: str, percentile: float,
                   timeframe: Timeframe = None, timezone: Timezone = None,
                   interval: str | None = None, filters: Filters = None,
                   group_by: GroupBy = None, order_by: OrderBy = None,
                   max_age: int | None = None, limit: int | None = None,
                   all_keys: bool = False) -> Any:
        return self._analysis("percentile", locals())

    @_documented("The standard deviation of the target property over the events that match.")
    def standard_deviation(self, event_collection: str, target_property: str,
                           timeframe: Timeframe = None, timezone: Timezone = None,
                           interval: str | None = None, filters: Filters = None,
                           group_by: GroupBy = None, order_by: OrderBy = None,
                           max_age: int | None = None, limit: int | None = None,
                           all_keys: bool = False) -> Any:
        return self._analysis("standard_deviation", locals())

    @_documented("The number of distinct values of the target property among the events.")
    def count_unique(self, event_collection: str, target_property: str,
                     timeframe: Timeframe = None, timezone: Timezone = None,
                     interval: str | None = None, filters: Filters = None,
                     group_by: GroupBy = None, order_by: OrderBy = None,
                     max_age: int | None = None, limit: int | None = None,
                     all_keys: bool = False) -> Any:
        return self._analysis("count_unique", locals())

    @_documented("The list of distinct values of the target property among the events.")
    def select_unique(self, event_collection: str, target_property: str,
                      timeframe: Timeframe = None, timezone: Timezone = None,
                      interval: str | None = None, filters: Filters = None,
                      group_by: GroupBy = None, order_by: OrderBy = None,
                      max_age: int | None = None, limit: int | None = None,
                      all_keys: bool = False) -> Any:
        return self._analysis("select_unique", locals())

    @_documented("The matching events themselves (or an e-mail with them).")
    def extraction(self, event_collection: str, timeframe: Timeframe = None,
                   timezone: Timezone = None, filters: Filters = None,
                   latest: int | None = None, email: str | None = None,
                   property_names: Sequence[str] | None = None, all_keys: bool = False) -> Any:
        return self._analysis("extraction", locals())

    @_documented("How many actors went through each step of a funnel.")
    def funnel(self, steps: Steps, timeframe: Timeframe = None,
               timezone: Timezone = None, max_age: int | None = None,
               all_keys: bool = False) -> Any:
        return self._analysis("funnel", locals())

    @_documented("Several analyses over the same events in one query; a dict by label.")
    def multi_analysis(self, event_collection: str, analyses: Mapping[str, Any],
                       timeframe: Timeframe = None, interval: str | None = None,
                       timezone: Timezone = None, filters: Filters = None,
                       group_by: GroupBy = None, order_by: OrderBy = None,
                       max_age: int | None = None, limit: int | None = None,
                       all_keys: bool = False) -> Any:
        return self._analysis("multi_analysis", locals())

    def get_params(self, event_collection: str | None = None, timeframe: Timeframe = None,
                   timezone: Timezone = None, interval: str | None = None,
                   filters: Filters = None, group_by: GroupBy = None, order_by: OrderBy = None,
                   target_property: str | None = None, latest: int | None = None,
                   email: str | None = None, analyses: Mapping[str, Any] | None = None,
                   steps: Steps | None = None,
                   property_names: Sequence[str] | None = None,
                   percentile: float | None = None, max_age: int | None = None,
                   limit: int | None = None) -> dict[str, Any]:
        """The query-string parameters for these values (None = leave out); see keen._params."""
        return _params.wire_params(**locals())

    # -- access keys (master key) -----------------------------------------------------------
    def create_access_key(self, name: str, is_active: bool = True,
                          permitted: list[str] | None = None,
                          options: dict[str, Any] | None = None) -> Any:
        """Create an access key; ``permitted`` lists operation types ("writes", "queries",
        "saved_queries", "cached_queries", "datasets", "schema"); ``options`` restricts them."""
        return self.api.create_access_key(name=name, is_active=is_active, permitted=permitted,
                                          options=options)

    def list_access_keys(self) -> Any:
        """All access keys of the project."""
        return self.api.list_access_keys()

    def get_access_key(self, key: str) -> Any:
        """One access key."""
        return self.api.get_access_key(key)

    def update_access_key_name(self, key: str, name: str) -> Any:
        """Rename an access key, keeping the rest."""
        return self.api.update_access_key_name(key, name)

    def add_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Add permissions to an access key, keeping the rest."""
        return self.api.add_access_key_permissions(key, permissions)

    def remove_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Remove permissions from an access key (not a revocation), keeping the rest."""
        return self.api.remove_access_key_permissions(key, permissions)

    def update_access_key_permissions(self, key: str, permissions: list[str]) -> Any:
        """Replace the permissions of an access key, keeping the rest."""
        return self.api.update_access_key_permissions(key, permissions)

    def update_access_key_options(self, key: str, options: dict[str, Any]) -> Any:
        """Replace the options of an access key, keeping the rest."""
        return self.api.update_access_key_options(key, options)

    def update_access_key_full(self, key: str, name: str, is_active: bool,
                               permitted: list[str], options: dict[str, Any]) -> Any:
        """Replace name, is_active, permitted and options of an access key."""
        return self.api.update_access_key_full(key, name, is_active, permitted, options)

    def revoke_access_key(self, key: str) -> Any:
        """Deactivate an access key."""
        return self.api.revoke_access_key(key)

    def unrevoke_access_key(self, key: str) -> Any:
        """Reactivate an access key."""
        return self.api.unrevoke_access_key(key)

    def delete_access_key(self, key: str) -> Any:
        """Delete an access key; True."""
        return self.api.delete_access_key(key)

    # -- delivery ---------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued events are delivered (background delivery); True when they are."""
        return self.persistence_strategy.flush(timeout)

    def stats(self) -> dict[str, int | float | None]:
        """Delivery counters of the persistence strategy (empty for direct delivery)."""
        return self.persistence_strategy.stats()

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (within ``timeout``), then release the connection pool."""
        try:
            self.persistence_strategy.close(timeout)
        finally:
            close = getattr(self.api, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> KeenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
