"""Budgets per client address for messages that cost more than a request (registering a
customer): the behavior that refuses a message once its sender's budget is spent, and the
refusal."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from handlers.access import CLIENT_ADDRESS
from mediator import Context, Next

Admission = Callable[[str], Awaitable[float | None]]
"""Count one use by this client address: None when admitted, else the seconds to wait."""


class RateLimited(Exception):
    """The sender's budget is spent; it may try again in `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(
            message or f"Too many requests of this kind: retry after {whole_seconds(retry_after)} s"
        )
        self.retry_after = retry_after

    @property
    def seconds(self) -> int:
        """The wait as `Retry-After` and `extensions.retryAfter` give it."""
        return whole_seconds(self.retry_after)


def whole_seconds(wait: float) -> int:
    """Rounded up, and at least 1: a client told 0 would come straight back."""
    return max(1, math.ceil(wait))


def limit_per_address(
    admit: Admission,
    *,
    counted_by: Callable[[object], str | None] | None = None,
) -> Callable[[object, Next[object], Context], Awaitable[object]]:
    """Count each message against its sender's address budget before anything else is done
    for it. A message without an address was sent from inside the service (the command line,
    a reaction), not by a client, and is not counted. `counted_by` counts a client's message
    by what it names instead (the mailbox a sign-in code is for; None, not counted)."""

    async def within_budget(message: object, call_next: Next[object], ctx: Context) -> object:
        address = ctx.find(CLIENT_ADDRESS)
        if address is not None:
            key = address if counted_by is None else counted_by(message)
            wait = None if key is None else await admit(key)
            if wait is not None:
                raise RateLimited(wait)
        return await call_next()

    return within_budget
