"""Sort directions for ``order_by``: ``{"property_name": "result", "direction": DESCENDING}``."""

from __future__ import annotations

from typing import Any

__all__ = ["ASCENDING", "DESCENDING", "is_valid_direction"]

ASCENDING = "ASC"
DESCENDING = "DESC"


def is_valid_direction(direction_string: Any) -> bool:
    """Whether ``direction_string`` is one of the two directions the API accepts."""
    return direction_string in (ASCENDING, DESCENDING)
