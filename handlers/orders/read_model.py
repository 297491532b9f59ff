"""The orders read model: the ORDERS projection, which keeps order_summaries and
order_lines from the order events, and which rows each event touches."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import order_lines, order_summaries

_STATUS_AFTER = {
    OrderConfirmed: OrderStatus.CONFIRMED,
    OrderShipped: OrderStatus.SHIPPED,
    OrderDelivered: OrderStatus.DELIVERED,
    OrderCancelled: OrderStatus.CANCELLED,
}


_STATUS_UPDATE = update(order_summaries).where(order_summaries.c.id == bindparam("b_id"))


async def project_orders(connection: AsyncConnection, stored: StoredEvent) -> None:
    """order_summaries and order_lines, kept together: a summary never lacks its lines."""
    event = stored.event
    if isinstance(event, OrderPlaced):
        await connection.execute(
            insert(order_summaries),
            {
                "id": event.order_id,
                "customer_id": event.customer_id,
                "status": OrderStatus.PENDING.value,
                "line_count": len(event.lines),
                "total": event.total,
                "currency": event.currency,
                **asdict(event.shipping_address),
                "special_instructions": event.special_instructions,
                "placed_at": stored.occurred_at,
                "updated_at": stored.occurred_at,
                "version": stored.stream_version,
                "placed_position": stored.position,
                "last_position": stored.position,
            },
        )
        await connection.execute(
            insert(order_lines),
            [
                {
                    "order_id": event.order_id,
                    "line_number": number,
                    "product_id": line.product_id,
                    "product_name": line.product_name,
                    "unit_price": line.unit_price,
                    "quantity": line.quantity,
                    "line_total": line.line_total,
                    "currency": event.currency,
                }
                for number, line in enumerate(event.lines)
            ],
        )
    elif (status := _STATUS_AFTER.get(type(event))) is not None:
        await connection.execute(
            _STATUS_UPDATE,
            {
                "b_id": stored.stream_id,
                "status": status.value,
                "version": stored.stream_version,
                "updated_at": stored.occurred_at,
                "last_position": stored.position,
            },
        )


def order_rows_touched(stored: StoredEvent) -> list[str]:
    """An order's summary and lines are one entity to the cache."""
    event = stored.event
    if isinstance(event, OrderPlaced):
        return [event.order_id]
    return [stored.stream_id] if type(event) in _STATUS_AFTER else []


ORDERS = Projection("orders", project_orders, (order_summaries, order_lines), order_rows_touched)
