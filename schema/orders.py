"""Orders in GraphQL: `order` and `orders`, the mutations that place and move orders, and
the orderEvents subscription. The order types are in schema/nodes.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from domain.errors import FieldIssue, ValidationFailed
from domain.orders import MAX_ADDRESS_FIELD, MAX_INSTRUCTIONS, MAX_REASON, Address, OrderStatus
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.orders import (
    CancelOrder,
    ConfirmOrder,
    DeliverOrder,
    LineRequest,
    ListOrders,
    OrderChangeType,
    OrderEventView,
    OrderFilter,
    OrderSort,
    PlaceOrder,
    ShipOrder,
    WatchOrders,
)
from handlers.paging import DEFAULT_PAGE_SIZE
from handlers.written import Written
from mediator import Command
from schema.context import Info, Loaders
from schema.errors import CommandError, UserInputError
from schema.ids import local_id
from schema.messages import ask, read_back, run_command, watch
from schema.nodes import CUSTOMER, ORDER, PRODUCT, Order, OrderConnection, order_connection
from schema.pagination import AFTER, parse_position


@strawberry.type
class OrderListQueries:
    @strawberry.field(
        description="Orders, a page at a time (at most 100 per page): staff see all, a "
        "customer its own, anonymous callers none. `placedAfter` is inclusive, "
        "`placedBefore` exclusive."
    )
    async def orders(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        customer_id: relay.GlobalID | None = None,
        status: OrderStatus | None = None,
        placed_after: datetime | None = None,
        placed_before: datetime | None = None,
        sort: OrderSort = OrderSort.NEWEST,
    ) -> OrderConnection:
        if customer_id is not None and customer_id.type_name != CUSTOMER:
            raise UserInputError(
                f"{customer_id} is not a customer id", fields=[{"path": ["customerId"]}]
            )
        wanted = OrderFilter(
            customer_id=customer_id.node_id if customer_id is not None else None,
            status=status,
            placed_after=placed_after,
            placed_before=placed_before,
        )
        page = await ask(info, ListOrders(first=first, after=after, filter=wanted, sort=sort))
        return await order_connection(info, page, wanted)


@strawberry.type
class OrderQueries(OrderListQueries):
    @strawberry.field(description="An order by id; another customer's order reads as null.")
    async def order(self, info: Info, id: relay.GlobalID) -> Order | None:
        if id.type_name != ORDER:
            return None
        view = await info.context.loaders.orders.load(id.node_id)
        return Order.from_view(view) if view is not None else None


@strawberry.input
class OrderLineInput:
    product_id: relay.GlobalID
    quantity: int


def _up_to(field: str) -> str:
    return f"1 to {MAX_ADDRESS_FIELD[field]} characters."


@strawberry.input
class AddressInput:
    street: str = strawberry.field(description=_up_to("street"))
    city: str = strawberry.field(description=_up_to("city"))
    postal_code: str = strawberry.field(description=_up_to("postal_code"))
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, such as US or DE.")
    state: str = strawberry.field(
        default="", description=f"At most {MAX_ADDRESS_FIELD['state']} characters."
    )


@strawberry.input
class PlaceOrderInput:
    lines: list[OrderLineInput]
    shipping_address: AddressInput
    special_instructions: str = strawberry.field(
        default="", description=f"At most {MAX_INSTRUCTIONS} characters."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and "
        "input returns the first order.",
    )
    customer_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Staff only: the customer to place the order for."
    )

    def command(self) -> PlaceOrder:
        wrong_kind = [
            FieldIssue(("lines", str(i), "product_id"), "is not a product id")
            for i, line in enumerate(self.lines)
            if line.product_id.type_name != PRODUCT
        ]
        if wrong_kind:
            raise ValidationFailed(wrong_kind)
        return PlaceOrder(
            lines=tuple(LineRequest(line.product_id.node_id, line.quantity) for line in self.lines),
            shipping_address=Address(**asdict(self.shipping_address)),
            special_instructions=self.special_instructions,
            customer_id=None if self.customer_id is None else local_id(self.customer_id, CUSTOMER),
            idempotency_key=self.idempotency_key,
        )


MOVE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input changes "
    "nothing and returns the order as it is now, even if it has moved on since."
)


@strawberry.input
class ChangeOrderInput:
    id: relay.GlobalID
    expected_version: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self, move: type[ConfirmOrder | ShipOrder | DeliverOrder]) -> Command[Written]:
        return move(
            local_id(self.id, ORDER),
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class CancelOrderInput:
    id: relay.GlobalID
    reason: str = strawberry.field(default="", description=f"At most {MAX_REASON} characters.")
    expected_version: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self) -> CancelOrder:
        return CancelOrder(
            local_id(self.id, ORDER),
            reason=self.reason,
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )


@strawberry.type
class PlaceOrderSuccess:
    order: Order


@strawberry.type
class ConfirmOrderSuccess:
    order: Order


@strawberry.type
class ShipOrderSuccess:
    order: Order


@strawberry.type
class DeliverOrderSuccess:
    order: Order


@strawberry.type
class CancelOrderSuccess:
    order: Order


PlaceOrderResult = Annotated[PlaceOrderSuccess | CommandError, strawberry.union("PlaceOrderResult")]
ConfirmOrderResult = Annotated[
    ConfirmOrderSuccess | CommandError, strawberry.union("ConfirmOrderResult")
]
ShipOrderResult = Annotated[ShipOrderSuccess | CommandError, strawberry.union("ShipOrderResult")]
DeliverOrderResult = Annotated[
    DeliverOrderSuccess | CommandError, strawberry.union("DeliverOrderResult")
]
CancelOrderResult = Annotated[
    CancelOrderSuccess | CommandError, strawberry.union("CancelOrderResult")
]


async def present_order(info: Info, written: Written) -> Order:
    loaders = info.context.loaders
    return Order.from_view(await read_back(loaders, loaders.orders, written))


@strawberry.type
class OrderMutations:
    """Each mutation: its input makes the command, `success` shows what it wrote."""

    @strawberry.mutation
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderResult:
        async def success(written: Written) -> PlaceOrderSuccess:
            return PlaceOrderSuccess(order=await present_order(info, written))

        return await run_command(info, input.command, success)

    @strawberry.mutation
    async def confirm_order(self, info: Info, input: ChangeOrderInput) -> ConfirmOrderResult:
        async def success(written: Written) -> ConfirmOrderSuccess:
            return ConfirmOrderSuccess(order=await present_order(info, written))

        return await run_command(info, lambda: input.command(ConfirmOrder), success)

    @strawberry.mutation
    async def ship_order(self, info: Info, input: ChangeOrderInput) -> ShipOrderResult:
        async def success(written: Written) -> ShipOrderSuccess:
            return ShipOrderSuccess(order=await present_order(info, written))

        return await run_command(info, lambda: input.command(ShipOrder), success)

    @strawberry.mutation
    async def deliver_order(self, info: Info, input: ChangeOrderInput) -> DeliverOrderResult:
        async def success(written: Written) -> DeliverOrderSuccess:
            return DeliverOrderSuccess(order=await present_order(info, written))

        return await run_command(info, lambda: input.command(DeliverOrder), success)

    @strawberry.mutation
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderResult:
        async def success(written: Written) -> CancelOrderSuccess:
            return CancelOrderSuccess(order=await present_order(info, written))

        return await run_command(info, input.command, success)


# ---------------------------------------------------------------- subscription (orderEvents)

# In place, as the other enums (schema/nodes.py): an event type added is in the schema.
strawberry.enum(OrderChangeType, name="OrderEventType")


@strawberry.type(
    description="A change to an order, with the order as the read model shows it when the "
    "event is delivered: it includes this change, and may include later ones (in a burst of "
    "changes, or when replayed with `after`)."
)
class OrderEvent:
    position: str = strawberry.field(description="Pass as `after` to resume after this event.")
    occurred_at: datetime
    type: OrderChangeType
    order: Order


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
        order_id: relay.GlobalID | None = None,
        customer_id: relay.GlobalID | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        # Not a generator itself: its arguments are checked before the stream exists, so a
        # bad one is the protocol's `error` message rather than a `next` with errors.
        if order_id is not None and order_id.type_name != ORDER:
            raise UserInputError(f"{order_id} is not an order id")
        if customer_id is not None and customer_id.type_name != CUSTOMER:
            raise UserInputError(f"{customer_id} is not a customer id")
        request = WatchOrders(
            order_id=order_id.node_id if order_id is not None else None,
            customer_id=customer_id.node_id if customer_id is not None else None,
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
