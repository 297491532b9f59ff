"""Nested fields resolved without a task each: what a page will ask for is loaded up front,
through the same DataLoaders, and fields whose rows are loaded already resolve at once.

An async resolver costs graphql-core a coroutine, and every list of them a gather of tasks;
on a page of 20 orders with their customers, lines and products that is a hundred tasks
for rows that three batched statements fetched anyway. A list resolver that looks at the
selection (`selects`) loads the next levels' rows before it returns, one batch per level
as before; the nested resolvers then find them done (`resolved`) and answer synchronously.
A field whose rows were not loaded (or failed) still awaits its loader, so its error, if
any, lands on that field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from strawberry.types.nodes import FragmentSpread, InlineFragment, Selection

T = TypeVar("T")
R = TypeVar("R")


def resolved(pending: Awaitable[T], present: Callable[[T], R]) -> R | Awaitable[R]:
    """`present(value)` now if `pending` (a DataLoader's future) is done, else later."""
    if (
        isinstance(pending, asyncio.Future)
        and pending.done()
        and not pending.cancelled()
        and pending.exception() is None
    ):
        return present(pending.result())

    async def later() -> R:
        return present(await pending)

    return later()


def selects(selections: Iterable[Selection], *path: str) -> bool:
    """Whether the selection asks for the field at `path` (GraphQL names), through
    fragments too."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            found = selects(selection.selections, *path)
        else:
            found = selection.name == head and selects(selection.selections, *rest)
        if found:
            return True
    return False


async def settle(*loads: Awaitable[Any]) -> None:
    """Wait for loads started together (one batch per loader); failures are left for the
    fields that need those rows to report."""
    await asyncio.gather(*loads, return_exceptions=True)
