"""JSON answers of the local server, with parts already rendered as JSON text.

A large group_by answer is rendered as text in one go (``keen.server.engine``) instead of being
built as one dict per group and encoded again: such a part is a :class:`JsonText` inside the
answer, and :func:`encode` writes it as it is. Everything else is encoded as ``json.dumps``
with compact separators and ``ensure_ascii=False`` (the text of every answer of the server).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = ["JsonText", "encode", "encode_value", "plain"]

encode_value = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class JsonText:
    """A value already rendered as JSON text (as ``encode_value`` renders it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JsonText({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


def encode(payload: Any) -> bytes:
    """The UTF-8 JSON text of ``payload``, its ``JsonText`` parts written as they are."""
    texts: list[str] = []
    # Each JsonText is first written as one marker string (NULs, \\u0000 in JSON, around 128
    # random bits drawn for this call, which no value of the answer can hold but by guessing
    # them); json calls ``default`` in the order it writes, so the k-th marker of the text is
    # the k-th JsonText.
    marker = f"\x00{secrets.token_hex(16)}\x00"

    def default(value: Any) -> Any:
        if isinstance(value, JsonText):
            texts.append(value.text)
            return marker
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=default)
    if texts:
        parts = text.split(encode_value(marker))
        assert len(parts) == len(texts) + 1
        text = "".join(part for pair in zip(parts, [*texts, ""]) for part in pair)
    return text.encode("utf-8")


def plain(value: Any) -> Any:
    """``value`` with every ``JsonText`` inside it decoded."""
    if isinstance(value, JsonText):
        return json.loads(value.text)
    if isinstance(value, dict):
        return {key: plain(item) if isinstance(item, _NESTED) else item
                for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) if isinstance(item, _NESTED) else item for item in value]
    return value


_NESTED = (JsonText, dict, list)
