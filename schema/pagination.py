"""Relay connection types shared by every list, and the cursors lists and subscriptions take."""

from __future__ import annotations

import re
from typing import Generic, TypeVar

import strawberry

from handlers.paging import Page, Slice
from schema.errors import UserInputError

AFTER = (
    "The `cursor` of the last row already shown (`pageInfo.endCursor`), from this list in this "
    "sort order; null for the first page. A cursor from another list or sort is BAD_USER_INPUT."
)
FIRST = "How many to return: 1 to 100 (default 20); outside that range is BAD_USER_INPUT."
POSITION = (
    "The event's place in the event log, a string of digits: pass it as `after` to resume "
    "after this event, missing nothing. Positions increase, but not by one per subscription."
)
AFTER_POSITION = (
    "The `position` of the last event already seen: the events since then are sent first, "
    "then live ones. Null for live events only; a position too far back is refused with "
    "REPLAY_TOO_LONG, one beyond the newest event with BAD_USER_INPUT."
)

N = TypeVar("N")
T = TypeVar("T")


@strawberry.type(
    description="Where a page is in its list. Cursors are opaque strings: pass them back as "
    "`after`, never parse or build them."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when rows follow this page: ask again with `after: endCursor`."
    )
    has_previous_page: bool = strawberry.field(
        description="True when this page was asked for with `after`, so rows come before it."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the first row on this page; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the last row on this page, to pass as `after` for the next "
        "page; null when the page is empty."
    )


@strawberry.type(description="One row of a page: the item, and its place in the list.")
class Edge(Generic[N]):
    cursor: str = strawberry.field(
        description="An opaque position in this list and sort order: pass it as `after` to get "
        "the rows that follow this one."
    )
    node: N = strawberry.field(description="The item itself.")


def page_info(page: Page[T] | Slice[T]) -> PageInfo:
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=page.items[0][0] if page.items else None,
        end_cursor=page.items[-1][0] if page.items else None,
    )


_POSITION = re.compile(r"[0-9]{1,18}")


def parse_position(after: str | None) -> int | None:
    if after is None:
        return None
    if not _POSITION.fullmatch(after):
        shown = after if len(after) <= 40 else after[:40] + "..."
        raise UserInputError(f"after must be a position from an earlier event, not {shown!r}")
    return int(after)
