"""Order events, live (the orderEvents subscription): WatchOrders and its stream handler,
the OrderChange it yields, and the views the event tail loads for order events."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.orders import (
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
)
from handlers.access import NotAuthorized, identity_of
from handlers.customers import CustomerView, load_customer_views
from handlers.orders.queries import OrderLineView, OrderView, load_order_views, order_line_view
from mediator import Context, StreamRequest
from persistence.event_tail import EventTail
from persistence.tables import order_lines
from persistence.tail_events import TailEvent, ViewLoader


class OrderChangeType(enum.Enum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


_ORDER_CHANGE_TYPES = {
    OrderPlaced: OrderChangeType.PLACED,
    OrderConfirmed: OrderChangeType.CONFIRMED,
    OrderShipped: OrderChangeType.SHIPPED,
    OrderDelivered: OrderChangeType.DELIVERED,
    OrderCancelled: OrderChangeType.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class OrderEventView:
    """What the tail reads once per batch for every order event: the summary with its lines
    and customer, so that subscribers asking for `lines` or `customer` cost no query each."""

    order: OrderView
    lines: tuple[OrderLineView, ...]
    customer: CustomerView | None


@dataclass(frozen=True, slots=True)
class OrderChange:
    position: int
    occurred_at: datetime
    type: OrderChangeType
    order: OrderEventView


@dataclass(frozen=True, slots=True)
class WatchOrders(StreamRequest[OrderChange]):
    """Order events, live, for one order, one customer's orders, or all of them; `after`
    replays from that position first.

    A customer sees its own orders' events only. Naming another customer (`customer_id`)
    is refused (NotAuthorized); naming another customer's order (`order_id`) yields
    nothing, as that order reads as not found everywhere else.
    """

    order_id: str | None = None
    customer_id: str | None = None
    after: int | None = None


async def load_order_event_views(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, OrderEventView]:
    """The tail's view loader for orders: three statements per batch of events."""
    orders = await load_order_views(connection, ids)
    lines: dict[str, list[OrderLineView]] = {order_id: [] for order_id in orders}
    statement = (
        select(order_lines)
        .where(order_lines.c.order_id.in_(list(orders)))
        .order_by(order_lines.c.order_id, order_lines.c.line_number)
    )
    for row in await connection.execute(statement):
        lines[row.order_id].append(order_line_view(row))
    customers = await load_customer_views(
        connection, sorted({order.customer_id for order in orders.values()})
    )
    return {
        order_id: OrderEventView(order, tuple(lines[order_id]), customers.get(order.customer_id))
        for order_id, order in orders.items()
    }


async def watch_orders(
    request: WatchOrders, ctx: Context, *, tail: EventTail
) -> AsyncIterator[OrderChange]:
    caller = identity_of(ctx)
    if caller is None:  # pragma: no cover - the policy admits signed-in callers only
        raise NotAuthorized("Sign in to watch orders", signed_in=False)
    if not (caller.is_staff or request.customer_id in (None, caller.customer_id)):
        raise NotAuthorized("You may watch your own orders only", signed_in=True)
    customer_id = request.customer_id if caller.is_staff else caller.customer_id

    def matches(event: TailEvent) -> bool:
        view = event.view
        return (
            type(event.stored.event) in _ORDER_CHANGE_TYPES
            and isinstance(view, OrderEventView)
            and (request.order_id is None or event.stored.stream_id == request.order_id)
            and (customer_id is None or view.order.customer_id == customer_id)
        )

    async for event in tail.subscribe(matches, after=request.after):
        assert isinstance(event.view, OrderEventView)
        yield OrderChange(
            event.position,
            event.stored.occurred_at,
            _ORDER_CHANGE_TYPES[type(event.stored.event)],
            event.view,
        )


VIEWS: Mapping[str, ViewLoader] = {Order.kind: load_order_event_views}
