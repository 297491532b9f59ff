"""The orderEvents subscription: each change to an order, with the order as it is now."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from handlers.orders import OrderEventView, WatchOrders
from schema.context import Info, Loaders
from schema.enums import OrderChangeType
from schema.errors import filter_id
from schema.messages import watch
from schema.nodes import CUSTOMER, ORDER, Order
from schema.pagination import AFTER_POSITION, POSITION, parse_position


@strawberry.type(
    description="A change to an order, with the order as the read model shows it when the "
    "event is delivered: it includes this change, and may include later ones (in a burst of "
    "changes, or when replayed with `after`)."
)
class OrderEvent:
    position: str = strawberry.field(description=POSITION)
    occurred_at: datetime = strawberry.field(description="When the change was made.")
    type: OrderChangeType = strawberry.field(description="What happened.")
    order: Order = strawberry.field(
        description="The order as the read model shows it now (see the type's description)."
    )


def _fresh_loaders(info: Info, change: OrderEventView) -> None:
    """A socket lives long: give each event loaders of its own, primed with what the tail read
    once for every subscriber, so nested fields cost no query and nothing piles up."""
    context = info.context
    context.loaders = Loaders(context.mediator, context.ctx)
    context.loaders.order_lines.prime(change.order.id, list(change.lines))
    if change.customer is not None:
        context.loaders.customers.prime(change.customer.id, change.customer)


@strawberry.type
class OrderSubscriptions:
    @strawberry.subscription(
        description="Order events as they happen; with `after`, the missed ones first. A "
        "customer sees its own orders only: another customer's order yields nothing, "
        "another customer's customerId is FORBIDDEN. A subscriber that falls too far "
        "behind is cut off with SUBSCRIBER_TOO_SLOW and `extensions.resumeAfter`."
    )
    async def order_events(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this order's events (Order.id)."),
        ] = None,
        customer_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this customer's orders (Customer.id); a customer may name "
                "only itself."
            ),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_POSITION)] = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        # Not a generator itself: its arguments are checked before the stream exists, so a
        # bad one is the protocol's `error` message rather than a `next` with errors.
        request = WatchOrders(
            order_id=filter_id(order_id, ORDER),
            customer_id=filter_id(customer_id, CUSTOMER),
            after=parse_position(after),
        )
        return _order_events(info, request)


async def _order_events(info: Info, request: WatchOrders) -> AsyncGenerator[OrderEvent, None]:
    async for change in watch(info, request):
        _fresh_loaders(info, change.order)
        yield OrderEvent(
            position=str(change.position),
            occurred_at=change.occurred_at,
            type=change.type,
            order=Order.from_view(change.order.order),
        )
