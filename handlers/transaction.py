"""The transaction behavior: a command commits entirely, events included, or not at all; and
`writes`, which hands a command handler the unit of work that behavior opened."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from handlers.idempotency import CLAIM
from handlers.written import Written
from mediator import Context, ContextKey, Next
from persistence.unit_of_work import CommandStore, UnitOfWork

C = TypeVar("C")
R = TypeVar("R")

_CURRENT = ContextKey[UnitOfWork | None]("unit of work")
CAUSED_BY = ContextKey[str]("caused by")
"""The id of the event a reaction was handling when it sent this command (handlers/reactions.py):
its events record it, so that `orderdesk trace` can follow a request to all it caused."""


def in_transaction(store: CommandStore) -> Callable[[object, Next[object], Context], Any]:
    """Open a unit of work around the handler and commit it once the handler returns.

    A handler that raises, at any point, leaves nothing behind: the unit of work rolls
    back. The commit's log position is filled into the handler's `Written`, so outer
    behaviors (read-your-writes) know what to wait for.
    """

    async def transaction(message: object, call_next: Next[object], ctx: Context) -> object:
        new = store.unit_of_work(
            correlation_id=ctx.correlation_id,
            claim=ctx.find(CLAIM),
            command=type(message).__name__,
            causation_id=ctx.find(CAUSED_BY),
        )
        async with new as work:
            ctx.set(_CURRENT, work)
            try:
                result = await call_next()
            finally:
                ctx.set(_CURRENT, None)
            position = await work.commit()
        if isinstance(result, Written) and position:
            return dataclasses.replace(result, position=position)
        return result

    return transaction


def writes(
    handler: Callable[[C, Context, UnitOfWork], Awaitable[R]],
) -> Callable[[C, Context], Awaitable[R]]:
    """The command handler as the mediator calls it: given its command, its context and the
    unit of work of the transaction around it, as a parameter it cannot forget to ask for."""

    @functools.wraps(handler)
    async def handle(command: C, ctx: Context) -> R:
        work = ctx.find(_CURRENT)
        if work is None:
            raise RuntimeError("a command handler ran outside the transaction behavior")
        return await handler(command, ctx, work)

    return handle
