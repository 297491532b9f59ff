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

from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.orders import OrderCancelled, OrderPlaced, OrderShipped
from handlers.feature import Wiring
from handlers.mail import Mailer, render
from handlers.reactions import Committed, committed, effect_key
from mediator import Context, Registry
from persistence.tables import customer_summaries, order_lines, order_summaries

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class LineShown:
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True, slots=True)
class AddressShown:
    street: str
    city: str
    state: str
    postal_code: str
    country: str


@dataclass(frozen=True, slots=True)
class OrderShown:
    """An order as its emails show it."""

    order_id: str
    customer_name: str
    customer_email: str
    lines: tuple[LineShown, ...]
    total: Decimal
    currency: str
    address: AddressShown


async def email_confirmation(
    notification: Committed[OrderPlaced], ctx: Context, *, mailer: Mailer
) -> None:
    event = notification.event
    address = event.shipping_address
    order = OrderShown(
        order_id=event.order_id,
        customer_name=event.customer_name,
        customer_email=event.customer_email,
        lines=tuple(
            LineShown(line.product_name, line.quantity, line.unit_price, line.line_total)
            for line in event.lines
        ),
        total=event.total,
        currency=event.currency,
        address=AddressShown(
            address.street, address.city, address.state, address.postal_code, address.country
        ),
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
    summary = order_summaries.c
    customer = customer_summaries.c
    async with read_engine.connect() as connection:
        found = (
            await connection.execute(
                select(order_summaries, customer.name, customer.email)
                .join(customer_summaries, customer.id == summary.customer_id)
                .where(summary.id == order_id)
            )
        ).first()
        if found is None:
            raise LookupError(f"order {order_id} or its customer is not in the read models yet")
        lines = await connection.execute(
            select(order_lines)
            .where(order_lines.c.order_id == order_id)
            .order_by(order_lines.c.line_number)
        )
        shown = tuple(
            LineShown(line.product_name, line.quantity, line.unit_price, line.line_total)
            for line in lines
        )
    row = found._mapping
    if len(shown) != row["line_count"]:
        raise LookupError(f"the lines of order {order_id} are not in the read models yet")
    return OrderShown(
        order_id=order_id,
        customer_name=row["name"],
        customer_email=row["email"],
        lines=shown,
        total=row["total"],
        currency=row["currency"],
        address=AddressShown(
            row["street"], row["city"], row["state"], row["postal_code"], row["country"]
        ),
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
