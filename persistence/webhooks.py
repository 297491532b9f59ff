"""Where webhooks are kept on the write side, with their signing secrets; and the two reads
the webhook reactions make of them outside any command (who takes an event, and where and
with what secret to send it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, insert, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.webhooks import Webhook
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import webhooks


class WebhookRepository(Protocol):
    async def get(self, webhook_id: str) -> Webhook | None: ...

    def add(self, webhook: Webhook) -> None: ...


_BY_ID = select(webhooks).where(webhooks.c.id == bindparam("id"))


class SqlWebhookRepository(SqlRepository[Webhook]):
    table = webhooks
    updating = versioned_update(webhooks)

    async def get(self, webhook_id: str) -> Webhook | None:
        if webhook_id in self._seen:
            return self._seen[webhook_id]
        query = _BY_ID.with_for_update() if self._locks_rows else _BY_ID
        row = (await self._connection.execute(query, {"id": webhook_id})).one_or_none()
        if row is None:
            return None
        return self._track(
            Webhook(
                row.id,
                url=row.url,
                events=row.events,
                secret=row.secret,
                created_at=row.created_at,
                active=row.active,
                disabled_reason=row.disabled_reason,
                version=row.version,
            )
        )

    async def save(self, aggregate: Webhook) -> None:
        values = {"active": aggregate.active, "disabled_reason": aggregate.disabled_reason}
        if aggregate.stored_version == 0:
            await self._connection.execute(
                insert(webhooks),
                {
                    "id": aggregate.id,
                    "url": aggregate.url,
                    "events": list(aggregate.events),
                    "secret": aggregate.secret,
                    "created_at": aggregate.created_at,
                    "version": aggregate.version,
                    **values,
                },
            )
            return
        await self._update(aggregate, values)


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where a delivery goes, and the secret its body is signed with."""

    url: str
    secret: str
    active: bool


_ACTIVE = select(webhooks.c.id, webhooks.c.events).where(
    webhooks.c.active == true(), webhooks.c.created_at <= bindparam("occurred_at")
)
_TARGET = select(webhooks.c.url, webhooks.c.secret, webhooks.c.active).where(
    webhooks.c.id == bindparam("id")
)


async def subscribed_webhooks(
    connection: AsyncConnection, event_type: str, occurred_at: datetime
) -> Sequence[str]:
    """The ids of the active webhooks that take `event_type` and were registered by the time
    it happened (a webhook registered while the reactor was behind gets no older event).

    Read whole and filtered here: a shop has a handful of webhooks, each of a few events.
    """
    rows = await connection.execute(_ACTIVE, {"occurred_at": occurred_at})
    return sorted(row.id for row in rows if event_type in row.events)


async def delivery_target(connection: AsyncConnection, webhook_id: str) -> DeliveryTarget | None:
    row = (await connection.execute(_TARGET, {"id": webhook_id})).one_or_none()
    if row is None:
        return None
    return DeliveryTarget(row.url, row.secret, row.active)
