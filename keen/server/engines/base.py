"""The one interface between the local server and the database that stores its events.

The HTTP layer (``keen.server.resources``) and the query engine (``keen.server.engine``) only
talk to an :class:`EventStore`. What a query *means* (parameters, timeframes, interval buckets,
filter validation, group ordering, result shapes) is decided once, in ``keen.server.engine``;
an engine only answers the primitives below over a :class:`~keen.server._engine_sql.Scope`
(project, collection, ``[start, end)`` in UTC microseconds, optional interval buckets,
normalised filters, group_by properties). A new engine (ClickHouse, say) implements this
protocol and registers a factory in :mod:`keen.server.engines`.

Group keys (in ``aggregate`` results and funnel actors) follow one convention, decoded by
``keen.server._engine_sql.decode_group_value``: a number for numbers (``1`` and ``1.0`` are
one key), otherwise the JSON text of the value, ``'null'`` for null and missing.
``ordered_groups`` gives an engine the choice of answering group_by queries in their final
order and text instead (a group_by over 100,000 values is then no 100,000 decodings, sort keys
and dicts in Python), and ``joined_groups`` of writing a count's items whole; an engine that
cannot (or not for a scope) returns None.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keen.server._engine_sql import Scope

__all__ = ["ActorSetsLike", "DatabaseError", "EngineUnavailable", "EventStore", "Key"]

Key = tuple[int, tuple[Any, ...]]


class DatabaseError(RuntimeError):
    """The database file cannot be opened by the engine (not a database, locked, unreadable)."""


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot run here (its optional dependency is not installed)."""


class ActorSetsLike(Protocol):
    """The distinct actors of funnel steps, kept by the engine (not in Python memory)."""

    def did(self, scope: Scope, actor: str) -> str:
        """A handle on the distinct ``actor`` values (present, not null) of matching events."""

    def combine(self, previous: str, did: str, *, inverted: bool) -> str:
        """``previous`` actors who are (``inverted``: are not) in ``did``."""

    def count(self, table: str) -> int: ...

    def actors(self, table: str) -> list[Any]:
        """The group keys of a set's actors (see the module docstring)."""


class EventStore(Protocol):
    """Events, inferred schemas and JSON documents of every project, plus the query primitives.

    Events: validation and enrichment are the shared rules of ``keen.server._events``; a
    repeated ``keen.uniqueness_token`` in a collection is not stored again. Documents (saved
    queries, datasets, access keys) are JSON objects by ``(project, kind, name)``.
    """

    path: str | None
    # Seconds a query (or a delete) may run before it is stopped: its statements are
    # interrupted and the primitive raises 503 QueryTimeoutError (``keen.server.limits``).
    # None: no limit. Primitives also raise 400 QueryTooComplexError for a query the database
    # refuses for its size, never the database's own exception.
    query_time_limit: float | None

    # events and schemas
    def insert_events(
        self, project_id: str, collection: str, events: Iterable[Any], *, now: datetime,
        autofill: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    def insert_batch(
        self, project_id: str, text: str, *, now: datetime,
    ) -> dict[str, list[dict[str, Any]]] | None:
        """Store a whole ``POST /events`` body (``text``, checked by nothing yet) the engine's
        own way and return the answer (``{collection: results}``, as ``insert_events`` gives
        them); or None, having stored nothing, when the body is to be read event by event
        (``insert_events``: the exact path, which answers every malformed body). Never asked
        with autofill or ``${keen.*}`` placeholders."""

    def delete_events(
        self, project_id: str, collection: str, *, timeframe: Any = None, timezone: Any = None,
        filters: Any = None, now: datetime,
    ) -> int: ...

    def delete_property(self, project_id: str, collection: str, name: str) -> int: ...

    def count_events(self, project_id: str, collection: str | None = None) -> int: ...

    def collections(self, project_id: str) -> list[dict[str, Any]]: ...

    def collection(self, project_id: str, name: str) -> dict[str, Any] | None: ...

    # documents
    def put_doc(self, project_id: str, kind: str, name: str, doc: Mapping[str, Any]) -> None: ...

    def get_doc(self, project_id: str, kind: str, name: str) -> dict[str, Any] | None: ...

    def list_docs(self, project_id: str, kind: str) -> list[dict[str, Any]]: ...

    def delete_doc(self, project_id: str, kind: str, name: str) -> bool: ...

    # query primitives (the meaning of each is in keen.server.engine)
    def aggregate(
        self, scope: Scope, analysis: str, target: str | None, percentile: float | None,
    ) -> dict[Key, Any]:
        """``{(bucket, group_key): raw value}`` for every (bucket, group) with matching events
        (median/percentile: the nearest-rank value; select_unique: a list of values)."""

    def ordered_groups(
        self, scope: Scope, analyses: Sequence[tuple[str, str | None, float | None]],
    ) -> list[tuple[Any, ...]] | None:
        """What ``aggregate`` finds for each of ``analyses`` (``(analysis, target,
        percentile)``), already in the answer's order and text, for a scope with group_by; or
        None when the engine cannot give it for this scope (the shared path then orders and
        renders ``aggregate``'s results). Rows ``(bucket, key_1, ..., key_n, raw value of each
        analysis...)`` ordered by bucket, then by group as the answer lists them (by the first
        property's value in ``keen.server.filters.sort_key`` order, then the next's...), each
        key the exact JSON text the answer shows for that property's value (the canonical
        representative, rendered as ``keen.server._json.encode_value`` does; ``null`` for null
        and missing). Every row holds every analysis (one snapshot of the events). Not asked
        for median, percentile or select_unique."""

    def joined_groups(
        self, scope: Scope, analyses: Sequence[tuple[str, str | None, float | None]],
        pieces: Sequence[str],
    ) -> dict[int, str] | None:
        """``ordered_groups`` written whole, for analyses that are all counts: ``{bucket:
        items}`` for every bucket with groups (0 without an interval), ``items`` the texts of
        its rows in order, joined by ``,``; the text of a row is ``pieces[0] + key_1 +
        pieces[1] + ... + key_n + pieces[n] + count_1 + ... + count_m + pieces[n + m]`` (a
        count's text: its decimal digits). None when ``ordered_groups`` would give None, or
        when the engine leaves this to ``ordered_groups`` (the answer is the same text)."""

    def group_universe(self, scope: Scope) -> set[Key]:
        """Every (bucket, group) that has at least one matching event."""

    def event_bodies(
        self, scope: Scope, *, newest_first: bool, limit: int | None,
    ) -> AbstractContextManager[Iterator[str]]:
        """The JSON texts of matching events by (timestamp, insertion order), read as the
        block consumes them (memory does not grow with their number)."""

    def actor_sets(self) -> AbstractContextManager[ActorSetsLike]:
        """Funnel actor sets, released when the block ends."""

    def close(self) -> None:
        """Close the database (idempotent); never raises, waits a bounded time. Queries
        running on it are stopped with 503 ``StoreClosedError`` (``ServiceUnavailableError``),
        a write under way is let finish; any later use raises ``StoreClosedError``."""

    def __enter__(self) -> EventStore: ...

    def __exit__(self, *exc_info: object) -> None: ...

