"""The emails an order's customer gets: a confirmation when it is placed, a note when it
ships, and one when it is cancelled (its stock given back).

OrderPlaced carries all the confirmation needs. OrderShipped and OrderCancelled carry only
ids, so those emails read the order and its customer from the read models, which the
projector may not have brought up to the event yet: a row that is not there raises, and the
reactor tries again a moment later, rather than sending an email with a gap in it. What they
read (lines, total, address, the customer's email) is fixed when the order is placed, so a
read model behind by an event or two still shows it right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.orders import Address, OrderCancelled, OrderLine, OrderPlaced, OrderShipped
from handlers.customers import load_customer_views
from handlers.feature import Wiring
from handlers.mail import Mailer, render
from handlers.orders.queries import OrderLineView, load_order_lines, load_order_views
from handlers.reactions import Committed, committed, effect_key
from mediator import Context, Registry

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class OrderShown:
    """An order as its emails show it."""

    order_id: str
    customer_name: str
    customer_email: str
    lines: Sequence[OrderLine | OrderLineView]
    """As placed (the event's), or as the read model keeps them: the same fields."""
    total: Decimal
    currency: str
    address: Address


async def email_confirmation(
    notification: Committed[OrderPlaced], ctx: Context, *, mailer: Mailer
) -> None:
    event = notification.event
    order = OrderShown(
        order_id=event.order_id,
        customer_name=event.customer_name,
        customer_email=event.customer_email,
        lines=event.lines,
        total=event.total,
        currency=event.currency,
        address=event.shipping_address,
    )
    await _send(mailer, notification, ctx, "confirmation", order)


async def email_shipping(
    notification: Committed[OrderShipped], ctx: Context, *, mailer: Mailer, read_engine: AsyncEngine
) -> None:
    order = await _order_shown(read_engine, notification.event.order_id)
    await _send(mailer, notification, ctx, "shipping", order)


async def email_cancellation(
    notification: Committed[OrderCancelled],
    ctx: Context,
    *,
    mailer: Mailer,
    read_engine: AsyncEngine,
) -> None:
    order = await _order_shown(read_engine, notification.event.order_id)
    await _send(mailer, notification, ctx, "cancellation", order, reason=notification.event.reason)


async def _send(
    mailer: Mailer,
    notification: Committed[Any],
    ctx: Context,
    template: str,
    order: OrderShown,
    **more: object,
) -> None:
    email = render(TEMPLATES, template, order.customer_email, order=order, **more)
    await mailer.send(
        email, key=effect_key(notification, ctx), correlation_id=notification.correlation_id
    )


async def _order_shown(read_engine: AsyncEngine, order_id: str) -> OrderShown:
    """The order from the read models; LookupError while they do not show it yet."""
    async with read_engine.connect() as connection:
        order = (await load_order_views(connection, [order_id])).get(order_id)
        if order is None:
            raise LookupError(f"order {order_id} is not in the read models yet")
        customer = (await load_customer_views(connection, [order.customer_id])).get(
            order.customer_id
        )
        lines = (await load_order_lines(connection, [order_id]))[order_id]
    if customer is None:
        raise LookupError(f"the customer of order {order_id} is not in the read models yet")
    if len(lines) != order.line_count:
        raise LookupError(f"the lines of order {order_id} are not in the read models yet")
    return OrderShown(
        order_id=order_id,
        customer_name=customer.name,
        customer_email=customer.email,
        lines=lines,
        total=order.total,
        currency=order.currency,
        address=order.shipping_address,
    )


def subscribe_emails(registry: Registry, wiring: Wiring) -> None:
    """Subscribe the order emails, where the service sends email (a mailer is wired)."""
    mailer = wiring.mailer
    if mailer is None:
        return
    registry.subscribe(
        committed(OrderPlaced),
        partial(email_confirmation, mailer=mailer),
        name="orders.confirmation_email",
    )
    registry.subscribe(
        committed(OrderShipped),
        partial(email_shipping, mailer=mailer, read_engine=wiring.read_engine),
        name="orders.shipping_email",
    )
    registry.subscribe(
        committed(OrderCancelled),
        partial(email_cancellation, mailer=mailer, read_engine=wiring.read_engine),
        name="orders.cancellation_email",
    )
