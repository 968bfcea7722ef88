"""What every SQL engine of the local server stores the same way: collection schemas and
documents (saved queries, cached datasets, access keys).

Both engines keep them in two tables of the same shape, ``properties (project, collection, path,
type)`` and ``documents (project, kind, name, body)``, and the ``events`` table has ``project``
and ``collection`` columns, so one class answers these parts of the ``EventStore`` interface for
both. A subclass gives ``_read()`` (a context manager yielding something with DB-API
``execute``) and ``_write()`` (the same, inside one transaction).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

from keen.server.limits import check_json

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """The compact JSON text the engines store."""
    return _ENCODER.encode(value)


class SqlCatalog:
    """Schemas, documents and event counts over the engines' shared tables."""

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def count_events(self, project_id: str, collection: str | None = None) -> int:
        """How many events are stored for a project (or one of its collections)."""
        sql = "SELECT count(*) FROM events WHERE project = ?"
        params: list[Any] = [project_id]
        if collection is not None:
            sql += " AND collection = ?"
            params.append(collection)
        with self._read() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    # ------------------------------------------------------------------ schemas

    def collections(self, project_id: str) -> list[dict[str, Any]]:
        """Every collection of a project as ``{"name", "properties", "url"}``, by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT collection, path, type FROM properties WHERE project = ? "
                "ORDER BY collection, path", [project_id],
            ).fetchall()
        by_name: dict[str, dict[str, str]] = {}
        for name, path, kind in rows:
            by_name.setdefault(name, {})[path] = kind
        return [_describe(project_id, name, props) for name, props in by_name.items()]

    def collection(self, project_id: str, name: str) -> dict[str, Any] | None:
        """One collection's ``{"name", "properties", "url"}``, or None if it has no events."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT path, type FROM properties WHERE project = ? AND collection = ? "
                "ORDER BY path", [project_id, name],
            ).fetchall()
        if not rows:
            return None
        return _describe(project_id, name, dict(rows))

    # ------------------------------------------------------------------ documents

    def put_doc(self, project_id: str, kind: str, name: str, doc: Mapping[str, Any]) -> None:
        """Create or replace a JSON document (400 when it cannot be stored: too deep, or a
        lone surrogate)."""
        check_json(dict(doc), "The definition")
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO documents (project, kind, name, body) VALUES (?, ?, ?, ?)",
                [project_id, kind, name, dumps(doc)],
            )

    def get_doc(self, project_id: str, kind: str, name: str) -> dict[str, Any] | None:
        """A stored document, or None."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT body FROM documents WHERE project = ? AND kind = ? AND name = ?",
                [project_id, kind, name],
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def list_docs(self, project_id: str, kind: str) -> list[dict[str, Any]]:
        """Every document of a kind in a project, sorted by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT body FROM documents WHERE project = ? AND kind = ? ORDER BY name",
                [project_id, kind],
            ).fetchall()
        return [dict(json.loads(body)) for (body,) in rows]

    def delete_doc(self, project_id: str, kind: str, name: str) -> bool:
        """Delete a document; False when there was none."""
        where = "FROM documents WHERE project = ? AND kind = ? AND name = ?"
        params = [project_id, kind, name]
        with self._write() as conn:
            found = int(conn.execute(f"SELECT count(*) {where}", params).fetchone()[0])
            conn.execute(f"DELETE {where}", params)
        return found > 0


def _describe(project_id: str, name: str, properties: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": properties,
        "url": f"/3.0/projects/{quote(project_id, safe='')}/events/{quote(name, safe='')}",
    }
