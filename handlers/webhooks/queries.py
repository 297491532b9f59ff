"""Webhooks: reading them and their deliveries, staff only. The webhooks come from their read
model (webhook_summaries), the deliveries and attempts from the reactions' own tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from handlers.paging import (
    DEFAULT_PAGE_SIZE,
    Page,
    Slice,
    check_page_size,
    decode_cursor,
    encode_cursor,
)
from handlers.webhooks.deliveries import DeliveryStatus
from mediator import Context, Query
from persistence.tables import webhook_attempts, webhook_deliveries, webhook_summaries

MAX_SHOWN_ATTEMPTS = 50
"""A delivery shows its latest attempts, at most this many (its count says how many)."""


@dataclass(frozen=True, slots=True)
class WebhookView:
    id: str
    url: str
    events: tuple[str, ...]
    active: bool
    disabled_reason: str | None
    created_at: datetime
    disabled_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class GetWebhooks(Query[dict[str, WebhookView]]):
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListWebhooks(Query[Page[WebhookView]]):
    """The webhooks, newest first."""

    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptView:
    number: int
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int
    next_retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    webhook_id: str
    event_type: str
    position: int
    status: DeliveryStatus
    created_at: datetime
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    finished_at: datetime | None
    attempts: tuple[AttemptView, ...]
    """The latest MAX_SHOWN_ATTEMPTS, oldest first."""


@dataclass(frozen=True, slots=True)
class ListWebhookDeliveries(Query[Slice[DeliveryView]]):
    """One webhook's deliveries, the newest event first, each with its attempts."""

    webhook_id: str
    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None


@dataclass(frozen=True, slots=True)
class CountWebhookDeliveries(Query[int]):
    webhook_id: str


def _webhook_view(row: Row[tuple[object, ...]]) -> WebhookView:
    w = row._mapping
    return WebhookView(
        id=w["id"],
        url=w["url"],
        events=tuple(w["events"]),
        active=w["active"],
        disabled_reason=w["disabled_reason"],
        created_at=w["created_at"],
        disabled_at=w["disabled_at"],
        version=w["version"],
    )


_w = webhook_summaries.c
_BY_IDS = select(webhook_summaries).where(_w.id.in_(bindparam("ids", expanding=True)))
_WEBHOOKS_CURSOR = "webhooks.NEWEST"
_DELIVERIES_CURSOR = "webhook_deliveries.NEWEST"


async def get_webhooks(
    query: GetWebhooks, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, WebhookView]:
    ids = [i for i in query.ids if is_possible_id(i)]
    if not ids:
        return {}
    async with read_engine.connect() as connection:
        rows = await connection.execute(_BY_IDS, {"ids": ids})
        return {row.id: _webhook_view(row) for row in rows}


async def list_webhooks(
    query: ListWebhooks, ctx: Context, *, read_engine: AsyncEngine
) -> Page[WebhookView]:
    check_page_size(query.first)
    conditions = []
    if query.after is not None:
        (position,) = decode_cursor(query.after, _WEBHOOKS_CURSOR, (int,))
        conditions.append(_w.created_position < position)
    statement = (
        select(webhook_summaries)
        .where(*conditions)
        .order_by(_w.created_position.desc())
        .limit(query.first + 1)
    )
    async with read_engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
        total = await connection.scalar(select(func.count()).select_from(webhook_summaries))
    items = [
        (encode_cursor(_WEBHOOKS_CURSOR, [row.created_position]), _webhook_view(row))
        for row in rows
    ]
    return Page(
        items=items[: query.first],
        has_next_page=len(items) > query.first,
        has_previous_page=query.after is not None,
        total_count=int(total or 0),
    )


_d = webhook_deliveries.c
_a = webhook_attempts.c


async def list_webhook_deliveries(
    query: ListWebhookDeliveries, ctx: Context, *, read_engine: AsyncEngine
) -> Slice[DeliveryView]:
    check_page_size(query.first)
    conditions = [_d.webhook_id == query.webhook_id]
    if query.after is not None:
        (position,) = decode_cursor(query.after, _DELIVERIES_CURSOR, (int,))
        conditions.append(_d.position < position)
    if not is_possible_id(query.webhook_id):
        return Slice(items=[], has_next_page=False, has_previous_page=query.after is not None)
    statement = (
        select(webhook_deliveries)
        .where(*conditions)
        .order_by(_d.position.desc())
        .limit(query.first + 1)
    )
    async with read_engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
        shown = rows[: query.first]
        attempts = await _attempts_of(connection, [row.id for row in shown])
    items = [
        (
            encode_cursor(_DELIVERIES_CURSOR, [row.position]),
            DeliveryView(
                id=row.id,
                webhook_id=row.webhook_id,
                event_type=row.event_type,
                position=row.position,
                status=DeliveryStatus(row.status),
                created_at=row.created_at,
                attempt_count=row.attempts,
                next_attempt_at=row.due_at,
                last_status_code=row.last_status_code,
                last_error=row.last_error,
                finished_at=row.finished_at,
                attempts=tuple(attempts.get(row.id, ())[-MAX_SHOWN_ATTEMPTS:]),
            ),
        )
        for row in shown
    ]
    return Slice(
        items=items,
        has_next_page=len(rows) > query.first,
        has_previous_page=query.after is not None,
    )


async def _attempts_of(
    connection: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, list[AttemptView]]:
    if not delivery_ids:
        return {}
    rows = await connection.execute(
        select(webhook_attempts)
        .where(_a.delivery_id.in_(delivery_ids))
        .order_by(_a.delivery_id, _a.number, _a.id)
    )
    found: dict[str, list[AttemptView]] = {}
    for row in rows:
        found.setdefault(row.delivery_id, []).append(
            AttemptView(
                number=row.number,
                attempted_at=row.attempted_at,
                succeeded=row.succeeded,
                status_code=row.status_code,
                error=row.error,
                response_excerpt=row.response_excerpt,
                duration_ms=row.duration_ms,
                next_retry_at=row.next_retry_at,
            )
        )
    return found


async def count_webhook_deliveries(
    query: CountWebhookDeliveries, ctx: Context, *, read_engine: AsyncEngine
) -> int:
    if not is_possible_id(query.webhook_id):
        return 0
    statement = (
        select(func.count())
        .select_from(webhook_deliveries)
        .where(_d.webhook_id == query.webhook_id)
    )
    async with read_engine.connect() as connection:
        return int((await connection.scalar(statement)) or 0)
