"""What list queries take from clients: searches and cursors, checked as input."""

from __future__ import annotations

import pytest

from domain.errors import ValidationFailed
from handlers.paging import MAX_SEARCH_LENGTH, check_search, decode_cursor, encode_cursor


@pytest.mark.parametrize("search", [None, "", "anv", "é" * MAX_SEARCH_LENGTH])
def test_a_search_up_to_the_bound_is_taken(search: str | None) -> None:
    check_search(search)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("a" * (MAX_SEARCH_LENGTH + 1), f"must be at most {MAX_SEARCH_LENGTH} characters"),
        ("%" * 50_000, f"must be at most {MAX_SEARCH_LENGTH} characters"),
        ("an\x00v", "must not contain NUL characters"),
    ],
)
def test_a_long_search_or_one_with_nul_is_refused_on_search(search: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_search(search)
    assert [(i.path, i.message) for i in refused.value.issues] == [(("search",), message)]


def test_a_cursor_reads_back_its_key() -> None:
    cursor = encode_cursor("NAME_ASC", ["Anvil", "p1"])
    assert decode_cursor(cursor, "NAME_ASC", (str, str)) == ["Anvil", "p1"]


@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor("NAME_ASC", ["An\x00vil", "p1"]),
        encode_cursor("NAME_ASC", ["Anvil", "p\x001"]),
        "é" * 10,
        "A" * 100_000,
        "",
    ],
)
def test_a_cursor_with_nul_or_not_ours_is_refused_on_after(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode_cursor(cursor, "NAME_ASC", (str, str))
    assert [i.path for i in refused.value.issues] == [("after",)]
