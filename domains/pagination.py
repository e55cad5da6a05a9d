"""Keyset pages: opaque cursors over time-ordered ids, never OFFSET."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from domains.errors import ValidationFailed
from persistence.ids import looks_like_id

T = TypeVar("T")

MAX_PAGE_SIZE = 100
_CURSOR_TAG = "k1:"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None

    @classmethod
    def from_rows(cls, rows: Sequence[Any], limit: int) -> Page[Any]:
        """A page from `limit + 1` rows fetched newest first: the extra row only says there is more."""
        has_more = len(rows) > limit
        items = list(rows[:limit])
        return cls(items=items, has_more=has_more, next_cursor=encode_cursor(items[-1].id) if has_more else None)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_TAG + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> str:
    """The id a cursor points after; a cursor we did not issue is refused, naming the field."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    last_id = text.removeprefix(_CURSOR_TAG)
    if not text.startswith(_CURSOR_TAG) or not looks_like_id(last_id):
        raise ValidationFailed(field, "is not a cursor issued by this API")
    return last_id


def page_size(value: int | None, *, default: int = 20, maximum: int = MAX_PAGE_SIZE, field: str = "limit") -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValidationFailed(field, f"must be an integer between 1 and {maximum}")
    return value
