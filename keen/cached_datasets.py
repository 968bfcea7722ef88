"""Cached datasets: a query pre-computed per value of ``index_by`` (``client.cached_datasets``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keen._params import json_text
from keen.api import HTTPMethods, _key_first
from keen.exceptions import InvalidQueryError
from keen.saved_queries import NO_JSON
from keen.utilities import KeenKeys

if TYPE_CHECKING:
    from keen.api import KeenApi

__all__ = ["CachedDatasetsInterface"]


class CachedDatasetsInterface:
    """List, create, read, query and delete cached datasets.

    Reading needs the read key; creating and deleting need the master key.
    """

    def __init__(self, api: KeenApi) -> None:
        self.api = api

    def _url(self, *segments: str) -> str:
        return self.api.project_url("datasets", *segments)

    @_key_first(KeenKeys.READ)
    def all(self, limit: int | None = None, after_name: str | None = None) -> Any:
        """One page of dataset definitions (read key).

        :param limit: at most this many datasets (the API's default page size otherwise).
        :param after_name: start after the dataset of this name (the previous page's last).
        :returns: ``{"datasets": [...], "next_page_url": url or None, "count": total}``.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise InvalidQueryError(f"limit must be a positive int, not {limit!r}.")
        params = {name: value for name, value in (("limit", limit), ("after_name", after_name))
                  if value is not None}
        extra: dict[str, Any] = {"params": params} if params else {}
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(), KeenKeys.READ, **extra)

    @_key_first(KeenKeys.READ)
    def get(self, dataset_name: str) -> Any:
        """The definition of one dataset (read key)."""
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(dataset_name),
                                 KeenKeys.READ)

    @_key_first(KeenKeys.MASTER)
    def create(self, dataset_name: str, query: dict[str, Any], index_by: str | list[str],
               display_name: str) -> Any:
        """Create a dataset (master key) from a query with an ``interval``, indexed by
        ``index_by`` (a property name or a list of them)."""
        payload = {"query": query, "index_by": index_by, "display_name": display_name}
        return self.api._json_or(NO_JSON, HTTPMethods.PUT, self._url(dataset_name),
                                 KeenKeys.MASTER, json=payload)

    @_key_first(KeenKeys.READ)
    def results(self, dataset_name: str, index_by: Any, timeframe: Any) -> Any:
        """The dataset's results for one index value over ``timeframe`` (read key).

        ``index_by`` and ``timeframe`` that are not strings are sent as JSON.
        """
        params = {"index_by": json_text("index_by", index_by),
                  "timeframe": json_text("timeframe", timeframe)}
        return self.api._json_or(NO_JSON, HTTPMethods.GET, self._url(dataset_name, "results"),
                                 KeenKeys.READ, params=params)

    @_key_first(KeenKeys.MASTER)
    def delete(self, dataset_name: str) -> bool:
        """Delete a dataset (master key); True."""
        self.api._json_or(NO_JSON, HTTPMethods.DELETE, self._url(dataset_name), KeenKeys.MASTER)
        return True
