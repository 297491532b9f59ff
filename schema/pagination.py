"""Relay connection types shared by every list, and the cursors lists and subscriptions take."""

from __future__ import annotations

import re
from typing import Generic, TypeVar

import strawberry

from handlers.paging import Page, Slice
from schema.errors import UserInputError

AFTER = "The cursor of the row to continue after, from this list in this sort order."

N = TypeVar("N")
T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


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
