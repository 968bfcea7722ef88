"""The Keen API resources of one project, one module each; ``ROUTES`` gathers their routes.

Each module answers the paths below ``/3.0/projects/<id>`` that its ``ROUTES`` name; ``KeenApp``
picks the route whose pattern matches with the most literal segments, so
``queries/saved`` is never taken for an analysis named ``saved``.
"""

from __future__ import annotations

from keen.server.resources import (
    access_keys,
    datasets,
    events,
    projects,
    queries,
    saved_queries,
)
from keen.server.resources._base import Route

ROUTES: list[Route] = [
    *projects.ROUTES,
    *events.ROUTES,
    *queries.ROUTES,
    *saved_queries.ROUTES,
    *datasets.ROUTES,
    *access_keys.ROUTES,
]

__all__ = ["ROUTES"]
