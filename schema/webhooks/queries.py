"""Webhooks' queries: `webhooks` and `webhookDeliveries`, staff only."""

from __future__ import annotations

from typing import Annotated

import strawberry

from handlers.paging import DEFAULT_PAGE_SIZE
from handlers.webhooks import ListWebhookDeliveries, ListWebhooks
from schema.context import Info
from schema.ids import read_id
from schema.messages import ask
from schema.pagination import AFTER, FIRST, Edge, page_info
from schema.webhooks.types import (
    WEBHOOK,
    Webhook,
    WebhookConnection,
    WebhookDelivery,
    WebhookDeliveryConnection,
)

STAFF_ONLY = " Staff only: others get an UNAUTHENTICATED or FORBIDDEN error."


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="The registered webhooks, newest first." + STAFF_ONLY)
    async def webhooks(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> WebhookConnection:
        page = await ask(info, ListWebhooks(first=first, after=after))
        return WebhookConnection(
            edges=[
                Edge(cursor=cursor, node=Webhook.from_view(view)) for cursor, view in page.items
            ],
            page_info=page_info(page),
            total_count=page.total_count,
        )

    @strawberry.field(
        description="A webhook's deliveries, the newest event first, each with its attempts "
        "(status, time, answer, next retry)." + STAFF_ONLY
    )
    async def webhook_deliveries(
        self,
        info: Info,
        webhook_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The webhook's global id (Webhook.id)."),
        ],
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> WebhookDeliveryConnection:
        # Another type's id names no webhook: its list is empty, and still staff only.
        local = read_id(webhook_id, WEBHOOK) or ""
        page = await ask(info, ListWebhookDeliveries(local, first=first, after=after))
        return WebhookDeliveryConnection(
            edges=[
                Edge(cursor=cursor, node=WebhookDelivery.from_view(view))
                for cursor, view in page.items
            ],
            page_info=page_info(page),
            webhook_id=local,
        )
