"""Publishing strategies: how ``publish`` runs the handlers of one notification.

A strategy receives deliveries that never raise an ``Exception`` (each returns its failure
instead), so isolation, logging and ``PublishError`` are the mediator's job and hold whatever
the strategy; a strategy only decides the order and how many run at once.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mediator.context import Context
from mediator.errors import ConfigurationError
from mediator.messages import Notification
from mediator.types import Delivery


class Publisher(Protocol):
    """Runs every delivery once and returns their outcomes in the order given."""

    async def __call__(
        self, deliveries: Sequence[Delivery], notification: Notification, ctx: Context
    ) -> list[Exception | None]: ...


@dataclass(frozen=True, slots=True)
class Sequential:
    """One handler after another, in subscription order."""

    async def __call__(
        self, deliveries: Sequence[Delivery], notification: Notification, ctx: Context
    ) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for deliver in deliveries:
            outcomes.append(await deliver(notification, ctx))
        return outcomes


@dataclass(frozen=True, slots=True)
class Concurrent:
    """Handlers run concurrently as asyncio tasks, at most ``limit`` at a time."""

    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ConfigurationError(f"Concurrent(limit={self.limit}): limit must be 1 or more")

    async def __call__(
        self, deliveries: Sequence[Delivery], notification: Notification, ctx: Context
    ) -> list[Exception | None]:
        if len(deliveries) <= 1 or self.limit == 1:
            return [await deliver(notification, ctx) for deliver in deliveries]
        outcomes: list[Exception | None] = [None] * len(deliveries)
        # ``limit`` workers share one iterator of indexes: no semaphore, and never more than
        # ``limit`` tasks, however many handlers there are.
        pending = iter(range(len(deliveries)))

        async def work() -> None:
            for index in pending:
                outcomes[index] = await deliveries[index](notification, ctx)

        # Deliveries return their failures, so the group only ever sees cancellation, which
        # it passes on to every worker and then to the caller.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.limit, len(deliveries))):
                group.create_task(work())
        return outcomes
