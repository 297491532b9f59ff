"""The customers read model: the CUSTOMER_SUMMARIES projection, which keeps
customer_summaries (profile included) from the customer and order events."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam, case, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.customers import CustomerProfileCreated, CustomerRegistered, PreferencesUpdated
from domain.orders import OrderPlaced, OrderWithdrawn
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import customer_summaries

_c = customer_summaries.c
_ORDER_COUNTED = (
    update(customer_summaries)
    .where(_c.id == bindparam("b_id"))
    .values(
        order_count=_c.order_count + 1,
        # The first order fixes the currency lifetime value is counted in; orders in
        # another currency count as orders, not as value (no rates are known here).
        lifetime_value=case(
            (
                or_(_c.currency == "", _c.currency == bindparam("b_currency")),
                _c.lifetime_value + bindparam("b_total", type_=_c.lifetime_value.type),
            ),
            else_=_c.lifetime_value,
        ),
        currency=case(
            (_c.currency == "", bindparam("b_currency", type_=_c.currency.type)),
            else_=_c.currency,
        ),
    )
)
"""Every order placed, built once (it is the commonest change to a customer)."""


async def project_customer_summaries(connection: AsyncConnection, stored: StoredEvent) -> None:
    event = stored.event
    c = customer_summaries.c
    if isinstance(event, CustomerRegistered):
        await connection.execute(
            insert(customer_summaries).values(
                id=event.customer_id,
                name=event.name,
                email=event.email,
                search_text=f"{event.name}\n{event.email}".lower(),
                order_count=0,
                lifetime_value=Decimal(0),
                currency="",
                registered_at=stored.occurred_at,
                registered_position=stored.position,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )
    elif isinstance(event, CustomerProfileCreated | PreferencesUpdated):
        await connection.execute(
            update(customer_summaries)
            .where(c.id == event.customer_id)
            .values(
                marketing_opt_in=event.marketing_opt_in,
                language=event.language,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )
    elif isinstance(event, OrderPlaced):
        await connection.execute(
            _ORDER_COUNTED,
            {
                "b_id": event.customer_id,
                "b_currency": event.currency,
                "b_total": event.total,
                "last_position": stored.position,
            },
        )
    elif isinstance(event, OrderWithdrawn):
        await connection.execute(
            update(customer_summaries)
            .where(c.id == event.customer_id, c.currency == event.currency)
            .values(lifetime_value=c.lifetime_value - event.total, last_position=stored.position)
        )


def customer_rows_touched(stored: StoredEvent) -> list[str]:
    event = stored.event
    if isinstance(
        event,
        CustomerRegistered | CustomerProfileCreated | PreferencesUpdated,
    ):
        return [event.customer_id]
    if isinstance(event, OrderPlaced | OrderWithdrawn):
        return [event.customer_id]
    return []


CUSTOMER_SUMMARIES = Projection(
    "customer_summaries",
    project_customer_summaries,
    (customer_summaries,),
    customer_rows_touched,
)
