"""The transaction behavior: a command commits entirely, events included, or not at all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from handlers.written import Written
from mediator import Context, ContextKey, Next
from persistence.unit_of_work import UnitOfWork

UnitOfWorkFactory = Callable[[Context], UnitOfWork]

_CURRENT = ContextKey[UnitOfWork | None]("unit of work")


def unit_of_work(ctx: Context) -> UnitOfWork:
    """The unit of work of the command being handled."""
    work = ctx.find(_CURRENT)
    if work is None:
        raise RuntimeError("a command handler ran outside the transaction behavior")
    return work


def in_transaction(
    new_unit_of_work: UnitOfWorkFactory,
) -> Callable[[object, Next[object], Context], Any]:
    """Open a unit of work around the handler and commit it once the handler returns.

    A handler that raises, at any point, leaves nothing behind: the unit of work rolls
    back. The commit's log position is filled into the handler's `Written`, so outer
    behaviors (read-your-writes) know what to wait for.
    """

    async def transaction(message: object, call_next: Next[object], ctx: Context) -> object:
        async with new_unit_of_work(ctx) as work:
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
