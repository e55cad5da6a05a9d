"""What every connection of the graph shares: its page info and cursor argument."""

from __future__ import annotations

from typing import Any

import strawberry

from domains.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor, page_size


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Cursor of the last row (Relay).")
    next_cursor: str | None = strawberry.field(description="Cursor for the next page; null on the last page.")

    @classmethod
    def of(cls, page: Page[Any]) -> PageInfo:
        end = page.items[-1].id if page.items else None
        return cls(has_next_page=page.has_more, end_cursor=encode_cursor(end) if end else None,
                   next_cursor=page.next_cursor)


def decode_after(after: str | None) -> str | None:
    """The id an `after` cursor points past; a cursor we did not issue is refused naming `after`."""
    return decode_cursor(after, "after") if after else None


def page_arguments(first: int | None, after: str | None, *, maximum: int = MAX_PAGE_SIZE) -> tuple[int, str | None]:
    """A connection's `first` and `after`, checked and named as the graph names them."""
    return page_size(first, maximum=maximum, field="first"), decode_after(after)
