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
from domain.orders import MAX_ADDRESS_FIELD, MAX_INSTRUCTIONS, MAX_REASON, Address
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.orders import (
    CancelOrder,
    ConfirmOrder,
    DeliverOrder,
    LineRequest,
    ListOrders,
    OrderEventView,
    OrderFilter,
    PlaceOrder,
    ShipOrder,
    WatchOrders,
)
from handlers.paging import DEFAULT_PAGE_SIZE
from handlers.written import Written
from mediator import Command
from schema.context import Info, Loaders
from schema.enums import OrderChangeType, OrderSort, OrderStatus
from schema.errors import (
    ConflictError,
    Error,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OutOfStockError,
    UserInputError,
    ValidationError,
)
from schema.ids import local_id
from schema.messages import ask, read_back, run_command, watch
from schema.nodes import CUSTOMER, ORDER, PRODUCT, Order, OrderConnection, order_connection
from schema.pagination import AFTER, AFTER_POSITION, FIRST, POSITION, parse_position


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
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        customer_id: Annotated[
            relay.GlobalID | None,
            strawberry.argument(
                description="Only this customer's orders (Customer.id); null for all the caller "
                "may see. Another type's id is BAD_USER_INPUT."
            ),
        ] = None,
        status: Annotated[
            OrderStatus | None,
            strawberry.argument(description="Only orders in this status; null for all."),
        ] = None,
        placed_after: Annotated[
            datetime | None,
            strawberry.argument(description="Only orders placed at or after this instant."),
        ] = None,
        placed_before: Annotated[
            datetime | None,
            strawberry.argument(description="Only orders placed before this instant."),
        ] = None,
        sort: Annotated[
            OrderSort, strawberry.argument(description="The order of the list (newest first).")
        ] = OrderSort.NEWEST,
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
    async def order(
        self,
        info: Info,
        id: Annotated[
            relay.GlobalID, strawberry.argument(description="The order's global id (Order.id).")
        ],
    ) -> Order | None:
        if id.type_name != ORDER:
            return None
        view = await info.context.loaders.orders.load(id.node_id)
        return Order.from_view(view) if view is not None else None


@strawberry.input(description="One product of a new order.")
class OrderLineInput:
    product_id: relay.GlobalID = strawberry.field(
        description="The product's global id (Product.id); each product on one line only. A "
        "deleted or unknown product is a ValidationError on this field."
    )
    quantity: int = strawberry.field(description="How many units: 1 to 1000.")


def _up_to(field: str) -> str:
    return f"1 to {MAX_ADDRESS_FIELD[field]} characters."


@strawberry.input(description="Where to ship an order.")
class AddressInput:
    street: str = strawberry.field(description=_up_to("street"))
    city: str = strawberry.field(description=_up_to("city"))
    postal_code: str = strawberry.field(description=_up_to("postal_code"))
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, such as US or DE.")
    state: str = strawberry.field(
        default="", description=f"At most {MAX_ADDRESS_FIELD['state']} characters."
    )


@strawberry.input(description="A new order.")
class PlaceOrderInput:
    lines: list[OrderLineInput] = strawberry.field(
        description="1 to 50 lines, all of products priced in one currency."
    )
    shipping_address: AddressInput = strawberry.field(description="Where to ship the order.")
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


ORDER_ID = "The order's global id (Order.id)."
EXPECTED_VERSION = (
    "The order's `version` as you last read it: the move is refused with a ConflictError if "
    "the order has changed since. Null moves it whatever its version."
)


@strawberry.input(description="An order to move to its next status.")
class ChangeOrderInput:
    id: relay.GlobalID = strawberry.field(description=ORDER_ID)
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self, move: type[ConfirmOrder | ShipOrder | DeliverOrder]) -> Command[Written]:
        return move(
            local_id(self.id, ORDER),
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input(description="An order to cancel.")
class CancelOrderInput:
    id: relay.GlobalID = strawberry.field(description=ORDER_ID)
    reason: str = strawberry.field(
        default="", description=f"Why, for the record: at most {MAX_REASON} characters."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self) -> CancelOrder:
        return CancelOrder(
            local_id(self.id, ORDER),
            reason=self.reason,
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )


@strawberry.type(description="The order was placed and its stock reserved.")
class PlaceOrderSuccess:
    order: Order = strawberry.field(description="The new order, PENDING, at version 1.")


@strawberry.type(description="The order was confirmed.")
class ConfirmOrderSuccess:
    order: Order = strawberry.field(description="The order, now CONFIRMED.")


@strawberry.type(description="The order was shipped.")
class ShipOrderSuccess:
    order: Order = strawberry.field(description="The order, now SHIPPED.")


@strawberry.type(description="The order was delivered.")
class DeliverOrderSuccess:
    order: Order = strawberry.field(description="The order, now DELIVERED.")


@strawberry.type(description="The order was cancelled and its stock given back.")
class CancelOrderSuccess:
    order: Order = strawberry.field(description="The order, now CANCELLED.")


# Each union lists the errors its mutation can return, and only those (schema/results.py).
PlaceOrderResult = Annotated[
    PlaceOrderSuccess | ValidationError | NotFoundError | OutOfStockError | NotAuthorizedError,
    strawberry.union(
        "PlaceOrderResult",
        description="The new order, or why it was not placed: ValidationError (the lines, the "
        "address, an unknown or deleted product), NotFoundError (no such customer), "
        "OutOfStockError, or NotAuthorizedError (signed out, or a customer ordering for "
        "another).",
    ),
]
_MOVE_ERRORS = (
    "ValidationError (the idempotencyKey), NotFoundError (no such order), ConflictError (a "
    "stale expectedVersion), InvalidTransitionError (not from its current status) or "
    "NotAuthorizedError"
)
ConfirmOrderResult = Annotated[
    ConfirmOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "ConfirmOrderResult",
        description=f"The confirmed order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
ShipOrderResult = Annotated[
    ShipOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "ShipOrderResult",
        description=f"The shipped order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
DeliverOrderResult = Annotated[
    DeliverOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "DeliverOrderResult",
        description=f"The delivered order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
CancelOrderResult = Annotated[
    CancelOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "CancelOrderResult",
        description="The cancelled order, or why not: ValidationError (the reason or the "
        "idempotencyKey), NotFoundError (no such order, or another customer's), ConflictError, "
        "InvalidTransitionError (already shipped, delivered or cancelled) or "
        "NotAuthorizedError (signed out).",
    ),
]


async def present_order(info: Info, written: Written) -> Order:
    loaders = info.context.loaders
    return Order.from_view(await read_back(loaders, loaders.orders, written))


STAFF_MOVE = " Staff only: others get a NotAuthorizedError."


@strawberry.type
class OrderMutations:
    """Each mutation: its input makes the command, `success` shows what it wrote."""

    @strawberry.mutation(
        graphql_type=PlaceOrderResult,
        description="Place an order and reserve its stock, all lines or none. A customer "
        "orders for itself; staff name the customer (`customerId`).",
    )
    async def place_order(
        self,
        info: Info,
        input: Annotated[PlaceOrderInput, strawberry.argument(description="The order.")],
    ) -> PlaceOrderSuccess | Error:
        async def success(written: Written) -> PlaceOrderSuccess:
            return PlaceOrderSuccess(order=await present_order(info, written))

        return await run_command(info, input.command, success, PlaceOrderResult)

    @strawberry.mutation(
        graphql_type=ConfirmOrderResult,
        description="Move a PENDING order to CONFIRMED." + STAFF_MOVE,
    )
    async def confirm_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> ConfirmOrderSuccess | Error:
        async def success(written: Written) -> ConfirmOrderSuccess:
            return ConfirmOrderSuccess(order=await present_order(info, written))

        return await run_command(
            info, lambda: input.command(ConfirmOrder), success, ConfirmOrderResult
        )

    @strawberry.mutation(
        graphql_type=ShipOrderResult,
        description="Move a CONFIRMED order to SHIPPED." + STAFF_MOVE,
    )
    async def ship_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> ShipOrderSuccess | Error:
        async def success(written: Written) -> ShipOrderSuccess:
            return ShipOrderSuccess(order=await present_order(info, written))

        return await run_command(info, lambda: input.command(ShipOrder), success, ShipOrderResult)

    @strawberry.mutation(
        graphql_type=DeliverOrderResult,
        description="Move a SHIPPED order to DELIVERED." + STAFF_MOVE,
    )
    async def deliver_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> DeliverOrderSuccess | Error:
        async def success(written: Written) -> DeliverOrderSuccess:
            return DeliverOrderSuccess(order=await present_order(info, written))

        return await run_command(
            info, lambda: input.command(DeliverOrder), success, DeliverOrderResult
        )

    @strawberry.mutation(
        graphql_type=CancelOrderResult,
        description="Cancel a PENDING or CONFIRMED order and give its stock back. Staff cancel "
        "any order, a customer its own.",
    )
    async def cancel_order(
        self,
        info: Info,
        input: Annotated[CancelOrderInput, strawberry.argument(description="The order.")],
    ) -> CancelOrderSuccess | Error:
        async def success(written: Written) -> CancelOrderSuccess:
            return CancelOrderSuccess(order=await present_order(info, written))

        return await run_command(info, input.command, success, CancelOrderResult)


# ---------------------------------------------------------------- subscription (orderEvents)


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
            relay.GlobalID | None,
            strawberry.argument(description="Only this order's events (Order.id)."),
        ] = None,
        customer_id: Annotated[
            relay.GlobalID | None,
            strawberry.argument(
                description="Only this customer's orders (Customer.id); a customer may name "
                "only itself."
            ),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_POSITION)] = None,
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
