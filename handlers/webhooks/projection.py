"""Webhooks: the webhook_summaries projection, the read model the webhook queries read. It
holds no secret: there is none in the events it is made from."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.webhooks import WebhookDisabled, WebhookRegistered
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import webhook_summaries


async def project_webhook_summaries(connection: AsyncConnection, stored: StoredEvent) -> None:
    event = stored.event
    if isinstance(event, WebhookRegistered):
        await connection.execute(
            insert(webhook_summaries).values(
                id=event.webhook_id,
                url=event.url,
                events=list(event.events),
                active=True,
                disabled_reason=None,
                created_at=stored.occurred_at,
                disabled_at=None,
                created_position=stored.position,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )
    elif isinstance(event, WebhookDisabled):
        await connection.execute(
            update(webhook_summaries)
            .where(webhook_summaries.c.id == event.webhook_id)
            .values(
                active=False,
                disabled_reason=event.reason,
                disabled_at=stored.occurred_at,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )


def webhook_rows_touched(stored: StoredEvent) -> list[str]:
    event = stored.event
    if isinstance(event, WebhookRegistered | WebhookDisabled):
        return [event.webhook_id]
    return []


WEBHOOK_SUMMARIES = Projection(
    "webhook_summaries",
    project_webhook_summaries,
    (webhook_summaries,),
    webhook_rows_touched,
)
