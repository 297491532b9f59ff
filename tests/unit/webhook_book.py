"""The webhook deliveries book in memory, for the fan-out's and the courier's unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from handlers.webhooks.deliveries import Attempt, ClaimedDelivery, NewDelivery


@dataclass
class FakeBook:
    """The deliveries book in memory, keyed and claimed as the SQL one is."""

    deliveries: dict[tuple[str, str], NewDelivery] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    async def add(self, deliveries: Sequence[NewDelivery]) -> None:
        for delivery in deliveries:
            self.deliveries.setdefault((delivery.webhook_id, delivery.event_id), delivery)

    async def claim(
        self, *, now: datetime, until: datetime, token: str, limit: int
    ) -> list[ClaimedDelivery]:
        return []

    async def record(self, attempt: Attempt, *, token: str) -> None:
        self.attempts.append(attempt)

    async def cancel(self, delivery_id: str, *, token: str, now: datetime, reason: str) -> None:
        self.cancelled.append(delivery_id)

    async def release(self, token: str) -> None:
        self.released.append(token)

    async def failures_in_a_row(self, webhook_id: str) -> int:
        run = 0
        for attempt in self.attempts:
            if attempt.webhook_id == webhook_id:
                run = 0 if attempt.succeeded else run + 1
        return run

    async def next_due(self, now: datetime) -> datetime | None:
        return None
