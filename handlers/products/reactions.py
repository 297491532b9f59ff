"""The low-stock alert: staff hear when a product's stock falls to the threshold or below.

One email per crossing, not one per order: only the reservation that takes the stock from
above the threshold to at or below it sends one, and the later ones below it do not. A
restock (or a cancelled order's release) that lifts it above the threshold again makes the
next fall a new crossing, with its own alert. Each reservation is its own event with its
own id, so the alert is keyed by the crossing itself.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.products import StockReserved
from handlers.feature import Wiring
from handlers.mail import Mailer, render
from handlers.products.queries import load_product_views
from handlers.reactions import Committed, committed, effect_key
from mediator import Context, Registry

TEMPLATES = Path(__file__).parent / "templates"


def crosses(event: StockReserved, threshold: int) -> bool:
    """Whether this reservation took the stock from above `threshold` to at or below it."""
    return event.stock <= threshold < event.stock + event.quantity


async def alert_low_stock(
    notification: Committed[StockReserved],
    ctx: Context,
    *,
    mailer: Mailer,
    read_engine: AsyncEngine,
    staff_email: str,
    threshold: int,
) -> None:
    event = notification.event
    if not crosses(event, threshold):
        return
    async with read_engine.connect() as connection:
        found = (await load_product_views(connection, [event.product_id])).get(event.product_id)
    if found is None:
        # Reserved, so it exists: the catalog has not caught up yet, and a retry will find it.
        raise LookupError(f"product {event.product_id} is not in the catalog yet")
    email = render(
        TEMPLATES,
        "low_stock",
        staff_email,
        product=found,
        stock=event.stock,
        quantity=event.quantity,
        threshold=threshold,
    )
    await mailer.send(
        email, key=effect_key(notification, ctx), correlation_id=notification.correlation_id
    )


def subscribe_alerts(registry: Registry, wiring: Wiring) -> None:
    """Subscribe the low-stock alert where email is sent and someone is there to read it
    (ORDERDESK_STAFF_EMAIL)."""
    staff_email = wiring.reacting.staff_email
    if wiring.mailer is None or not staff_email:
        return
    registry.subscribe(
        committed(StockReserved),
        partial(
            alert_low_stock,
            mailer=wiring.mailer,
            read_engine=wiring.read_engine,
            staff_email=staff_email,
            threshold=wiring.reacting.low_stock_threshold,
        ),
        name="products.low_stock_alert",
    )
