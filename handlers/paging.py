"""Keyset pagination: opaque cursors and pages, shared by every list query."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from domain.errors import FieldIssue, ValidationFailed

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

CursorKey = list[str | int]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: each item with its cursor, whether more follow, and the total."""

    items: list[tuple[str, T]]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """A page without its total. Counting every match costs a scan of all of them, which a
    page of a large list must not; lists whose total may be large count apart, on request."""

    items: list[tuple[str, T]]
    has_next_page: bool
    has_previous_page: bool


def check_page_size(first: int) -> None:
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise ValidationFailed(
            [FieldIssue(("first",), f"must be between 0 and {MAX_PAGE_SIZE}, not {first}")]
        )


def encode_cursor(order: str, key: CursorKey) -> str:
    """A cursor names the sort it was made for, so it cannot be misread under another."""
    raw = json.dumps([order, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str, types: tuple[type, ...]) -> CursorKey:
    """The key inside a cursor made for `order`; anything else is a ValidationFailed on `after`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == len(types) + 1
        and decoded[0] == order
        and all(type(value) is kind for value, kind in zip(decoded[1:], types, strict=True))
    ):
        key: CursorKey = decoded[1:]
        return key
    raise invalid_cursor()


def invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldIssue(("after",), "is not a cursor from this list in this sort order")]
    )
