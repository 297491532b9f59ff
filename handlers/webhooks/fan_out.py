"""The webhook reactions: an offered event becomes one delivery per webhook that takes it,
and a disabled webhook's waiting deliveries are cancelled.

The fan-out only writes rows (the courier sends them), keyed by webhook and event, so an
event redelivered after a crash adds nothing, and it rings the courier's doorbell so that a
new delivery goes out at once rather than at the courier's next look.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.webhooks import OFFERED_EVENTS, WebhookDisabled, graphql_name
from handlers.reactions import Committed
from handlers.webhooks.deliveries import DeliveryBook, NewDelivery, SqlDeliveries
from handlers.webhooks.payloads import delivery_body, delivery_id, event_data
from mediator import Context
from persistence.webhooks import subscribed_webhooks

Subscribers = Callable[[str, datetime], Awaitable[Sequence[str]]]
"""The ids of the active webhooks that take an event type (its GraphQL name) that happened
at a time."""

WEBHOOK_DISABLED = "the webhook was disabled before this was delivered"


class Doorbell:
    """Tells this process's courier that deliveries were added (other processes' couriers
    find them at their next look)."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when rung, or after `timeout` seconds, whichever comes first."""
        if timeout > 0 and not self._rung.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._rung.wait()
        self._rung.clear()


_DOORBELLS: WeakKeyDictionary[AsyncEngine, Doorbell] = WeakKeyDictionary()


def doorbell_for(engine: AsyncEngine) -> Doorbell:
    """The doorbell of the couriers and fan-outs that keep their book on `engine`: the
    feature's reactions and its worker are made apart, and meet here."""
    doorbell = _DOORBELLS.get(engine)
    if doorbell is None:
        doorbell = _DOORBELLS[engine] = Doorbell()
    return doorbell


def sql_subscribers(engine: AsyncEngine) -> Subscribers:
    async def subscribers(event_type: str, occurred_at: datetime) -> Sequence[str]:
        async with engine.connect() as connection:
            return await subscribed_webhooks(connection, event_type, occurred_at)

    return subscribers


async def fan_out(
    notification: Committed[Any],
    ctx: Context,
    *,
    subscribers: Subscribers,
    book: DeliveryBook,
    clock: Callable[[], datetime],
    doorbell: Doorbell,
) -> None:
    event_type = graphql_name(type(notification.event))
    if event_type not in OFFERED_EVENTS:
        return
    webhook_ids = await subscribers(event_type, notification.occurred_at)
    if not webhook_ids:
        return
    data = event_data(notification.event)
    now = clock()
    deliveries = []
    for webhook_id in webhook_ids:
        local = delivery_id(webhook_id, notification.event_id)
        body = delivery_body(
            local,
            event_type=event_type,
            occurred_at=notification.occurred_at,
            position=notification.position,
            data=data,
        )
        deliveries.append(
            NewDelivery(
                local,
                webhook_id,
                notification.event_id,
                event_type,
                notification.position,
                notification.correlation_id,
                body,
                now,
            )
        )
    await book.add(deliveries)
    doorbell.ring()


async def cancel_deliveries(
    notification: Committed[WebhookDisabled],
    ctx: Context,
    *,
    book: SqlDeliveries,
    clock: Callable[[], datetime],
) -> None:
    await book.cancel_pending(notification.event.webhook_id, now=clock(), reason=WEBHOOK_DISABLED)
