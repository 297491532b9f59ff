"""Keyset pagination (opaque cursors and pages) and text search, shared by every list query."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from domain.errors import FieldIssue, ValidationFailed

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_SEARCH_LENGTH = 200

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


def check_search(search: str | None) -> None:
    """A search is a LIKE pattern: bounded (SQLite refuses long patterns, and each costs a
    scan), and without NUL, which PostgreSQL cannot take in text."""
    if search is None:
        return
    issues = []
    if len(search) > MAX_SEARCH_LENGTH:
        issues.append(FieldIssue(("search",), f"must be at most {MAX_SEARCH_LENGTH} characters"))
    if "\x00" in search:
        issues.append(FieldIssue(("search",), "must not contain NUL characters"))
    if issues:
        raise ValidationFailed(issues)


def encode_cursor(order: str, key: CursorKey) -> str:
    """A cursor names the sort it was made for, so it cannot be misread under another."""
    raw = json.dumps([order, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Longer than any cursor we make (a sort name, a 200-character name and an id).
MAX_CURSOR_LENGTH = 1_024
# Positions and other integer keys are BIGINT columns.
_MAX_INTEGER = 2**63 - 1
# Larger than any amount a row can hold (an order's total is capped below 10**12).
_MAX_AMOUNT = Decimal(10) ** 14


def decode_cursor(cursor: str, order: str, types: tuple[type, ...]) -> CursorKey:
    """The key inside a cursor made for `order`; anything else is a ValidationFailed on `after`.

    A cursor comes from the client, so it is checked as input: its length, its shape, and
    integers that fit the columns they are compared with.
    """
    decoded = None
    if len(cursor) <= MAX_CURSOR_LENGTH:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError, RecursionError):
            decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == len(types) + 1
        and decoded[0] == order
        and all(type(value) is kind for value, kind in zip(decoded[1:], types, strict=True))
        and all(0 <= value <= _MAX_INTEGER for value in decoded[1:] if type(value) is int)
        # PostgreSQL cannot compare text with NUL in it: it would fail, not match nothing.
        and not any("\x00" in value for value in decoded[1:] if type(value) is str)
    ):
        key: CursorKey = decoded[1:]
        return key
    raise invalid_cursor()


def decode_amount(text: str | int) -> Decimal:
    """An amount inside a cursor: finite, at most four places, within what a row can hold."""
    try:
        amount = Decimal(str(text))
        valid = amount.is_finite() and abs(amount) < _MAX_AMOUNT and amount == round(amount, 4)
    except ArithmeticError:
        valid = False
    if not valid:
        raise invalid_cursor()
    return amount


def invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldIssue(("after",), "is not a cursor from this list in this sort order")]
    )
