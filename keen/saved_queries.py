"""Saved (and cached) queries: named query definitions stored by the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from keen._params import json_text
from keen.api import HTTPMethods, _key_first
from keen.exceptions import InvalidQueryError
from keen.utilities import KeenKeys

if TYPE_CHECKING:
    from keen.api import KeenApi

__all__ = ["SavedQueriesInterface"]

#: What a 2xx answer without a JSON body (e.g. 204) is reported as (as in 0.7.0).
NO_JSON = "No JSON available."

#: Fields of a fetched definition that update() sends back (others, such as ``urls`` or
#: ``last_modified_date``, are read-only and the API refuses them).
_KEPT_FIELDS = ("query_name", "refresh_rate")


class SavedQueriesInterface:
    """Create, read, update, delete and run saved queries.

    Management needs the master key; ``results`` needs the read key.
    """

    def __init__(self, api: KeenApi) -> None:
        self.api = api

    def _url(self, *segments: str) -> str:
        return self.api.project_url("queries", "saved", *segments)

    @_key_first(KeenKeys.MASTER)
    def all(self) -> Any:
        """All saved queries of the project (a list of definitions)."""
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(), KeenKeys.MASTER)

    @_key_first(KeenKeys.MASTER)
    def get(self, query_name: str) -> Any:
        """The definition of one saved query."""
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(query_name),
                                 KeenKeys.MASTER)

    @_key_first(KeenKeys.READ)
    def results(self, query_name: str) -> Any:
        """Run a saved query (read key): its definition plus ``result``."""
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(query_name, "result"),
                                 KeenKeys.READ)

    @_key_first(KeenKeys.MASTER)
    def create(self, query_name: str, saved_query: Mapping[str, Any] | str) -> Any:
        """Create (or fully replace) a saved query.

        :param saved_query: the definition: a dict, or JSON text already encoded.
        """
        payload = json_text("saved_query", saved_query)
        return self.api._json_or(NO_JSON, HTTPMethods.PUT, self._url(query_name),
                                 KeenKeys.MASTER, data=payload)

    @_key_first(KeenKeys.MASTER)
    def update_full(self, query_name: str,
                    saved_query_full_definition: Mapping[str, Any] | str) -> Any:
        """Replace a saved query's whole definition (anything left out is removed)."""
        return self.create(query_name, saved_query_full_definition)

    @_key_first(KeenKeys.MASTER)
    def update(self, query_name: str, saved_query_attributes: Mapping[str, Any]) -> Any:
        """Change only the given attributes of a saved query (two requests: GET, then PUT).

        The name, refresh rate, metadata and the query's set fields are kept; the attributes
        are merged in depth (nested dicts are merged, other values replace).
        """
        if not isinstance(saved_query_attributes, Mapping):
            raise InvalidQueryError(f"saved_query_attributes must be a dict, "
                                    f"not {type(saved_query_attributes).__name__}.")
        old = self.get(query_name)
        new: dict[str, Any] = {field: old[field] for field in _KEPT_FIELDS if field in old}
        # unset query fields come back as null / empty, which the API refuses on update
        new["query"] = {key: value for key, value in (old.get("query") or {}).items()
                        if value is not None and value not in ("", [], {})}
        if old.get("metadata"):
            new["metadata"] = old["metadata"]
        return self.create(query_name, _deep_merge(new, saved_query_attributes))

    @_key_first(KeenKeys.MASTER)
    def delete(self, query_name: str) -> bool:
        """Delete a saved query; True."""
        self.api._json_or(NO_JSON, HTTPMethods.DELETE, self._url(query_name), KeenKeys.MASTER)
        return True


def _deep_merge(base: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` merged in: dicts merged key by key, other values replaced."""
    merged = dict(base)
    for key, value in updates.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _deep_merge(dict(current), value)
        else:
            merged[key] = value
    return merged
