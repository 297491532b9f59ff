"""Orders in GraphQL: types, `order`, and the mutations that place and move orders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Self, TypeVar

import strawberry
from strawberry import relay

from domain.errors import FieldIssue, ValidationFailed
from domain.orders import MAX_ADDRESS_FIELD, MAX_INSTRUCTIONS, MAX_REASON
from domain.orders import Order as OrderAggregate
from domain.orders import OrderStatus as DomainOrderStatus
from handlers.access import NotAuthorized, identity_of
from handlers.customers import CustomerView
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.orders import (
    AddressRequest,
    CancelOrder,
    ConfirmOrder,
    CountOrders,
    DeliverOrder,
    LineRequest,
    ListOrders,
    OrderChangeType,
    OrderEventView,
    OrderFilter,
    OrderLineView,
    OrderSort,
    OrderView,
    PlaceOrder,
    ShipOrder,
    WatchOrders,
)
from handlers.paging import DEFAULT_PAGE_SIZE, Page, Slice, check_page_size
from handlers.products import ProductView
from handlers.written import Written
from mediator import Command
from schema.context import CustomerOrdersKey, Info, Loaders
from schema.customers import CUSTOMER, Customer
from schema.errors import CommandError, UserInputError
from schema.ids import local_id
from schema.messages import ask, lagging, run_command, watch
from schema.money import Address, Money
from schema.pagination import AFTER, Edge, PageInfo, page_info, parse_position
from schema.prefetch import resolved, selects, settle
from schema.products import PRODUCT, Product

S = TypeVar("S")

ORDER = OrderAggregate.kind

OrderStatus = strawberry.enum(DomainOrderStatus, name="OrderStatus")


@strawberry.type
class OrderLine:
    product_name: str = strawberry.field(description="The name when the order was placed.")
    unit_price: Money = strawberry.field(description="The price when the order was placed.")
    quantity: int
    line_total: Money
    product_id: strawberry.Private[str]

    @strawberry.field(
        description="The product as it is now; null once it is deleted.",
        graphql_type=Product | None,
    )
    def product(self, info: Info) -> Product | Awaitable[Product | None] | None:
        return resolved(info.context.loaders.products.load(self.product_id), _live_product)

    @classmethod
    def from_view(cls, view: OrderLineView) -> Self:
        return cls(
            product_name=view.product_name,
            unit_price=Money(amount=view.unit_price, currency=view.currency),
            quantity=view.quantity,
            line_total=Money(amount=view.line_total, currency=view.currency),
            product_id=view.product_id,
        )


@strawberry.type
class Order(relay.Node):
    id: relay.NodeID[str]
    status: OrderStatus  # type: ignore[valid-type]
    line_count: int
    total: Money
    shipping_address: Address
    special_instructions: str
    placed_at: datetime
    updated_at: datetime
    version: int = strawberry.field(
        description="Increases with every change; pass it as expectedVersion to change safely."
    )
    customer_id: strawberry.Private[str]

    @strawberry.field(graphql_type=Customer | None)
    def customer(self, info: Info) -> Customer | Awaitable[Customer | None] | None:
        return resolved(info.context.loaders.customers.load(self.customer_id), _customer)

    @strawberry.field(graphql_type=list[OrderLine])
    def lines(self, info: Info) -> list[OrderLine] | Awaitable[list[OrderLine]]:
        return resolved(info.context.loaders.order_lines.load(self.id), _lines)

    @classmethod
    def from_view(cls, view: OrderView) -> Self:
        address = view.shipping_address
        return cls(
            id=view.id,
            status=view.status,
            line_count=view.line_count,
            total=Money(amount=view.total, currency=view.currency),
            shipping_address=Address(
                street=address.street,
                city=address.city,
                state=address.state,
                postal_code=address.postal_code,
                country=address.country,
            ),
            special_instructions=view.special_instructions,
            placed_at=view.placed_at,
            updated_at=view.updated_at,
            version=view.version,
            customer_id=view.customer_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        views = await info.context.loaders.orders.load_many(list(node_ids))
        return [cls.from_view(v) if v is not None else None for v in views]


# ---------------------------------------------------------------- queries: lists

OrderSortOrder = strawberry.enum(OrderSort, name="OrderSort")


@strawberry.type
class OrderConnection:
    edges: list[Edge[Order]]
    page_info: PageInfo
    known_total: strawberry.Private[int | None]
    filter: strawberry.Private[OrderFilter]

    @strawberry.field(
        description="How many orders match, all pages together. Counting reads every match, "
        "so it is done only when asked for."
    )
    async def total_count(self, info: Info) -> int:
        if self.known_total is not None:
            return self.known_total
        return await ask(info, CountOrders(self.filter))


def _live_product(view: ProductView | None) -> Product | None:
    return Product.from_view(view) if view is not None and not view.deleted else None


def _customer(view: CustomerView | None) -> Customer | None:
    return Customer.from_view(view) if view is not None else None


def _lines(views: list[OrderLineView]) -> list[OrderLine]:
    return [OrderLine.from_view(view) for view in views]


async def _prefetch(info: Info, views: list[OrderView]) -> None:
    """Load what the page's orders will be asked for, a batch per level (schema/prefetch)."""
    fields = [s for field in info.selected_fields for s in field.selections]
    node = ("edges", "node")
    loaders = info.context.loaders
    wants_lines = selects(fields, *node, "lines")
    loads: list[Awaitable[object]] = []
    if wants_lines:
        loads.append(loaders.order_lines.load_many([view.id for view in views]))
    if selects(fields, *node, "customer"):
        loads.append(loaders.customers.load_many(list({view.customer_id for view in views})))
    await settle(*loads)
    if wants_lines and selects(fields, *node, "lines", "product"):
        product_ids: set[str] = set()
        for view in views:
            lines = loaders.order_lines.load(view.id)
            if (
                isinstance(lines, asyncio.Future)
                and lines.done()
                and not lines.cancelled()
                and not lines.exception()
            ):
                product_ids.update(line.product_id for line in lines.result())
        await settle(loaders.products.load_many(sorted(product_ids)))


async def _order_connection(
    info: Info, page: Page[OrderView] | Slice[OrderView], wanted: OrderFilter
) -> OrderConnection:
    for _, view in page.items:
        info.context.loaders.orders.prime(view.id, view)
    await _prefetch(info, [view for _, view in page.items])
    return OrderConnection(
        edges=[Edge(cursor=cursor, node=Order.from_view(view)) for cursor, view in page.items],
        page_info=page_info(page),
        known_total=page.total_count if isinstance(page, Page) else None,
        filter=wanted,
    )


def _checked_page_size(first: int) -> None:
    try:
        check_page_size(first)
    except ValidationFailed as error:
        fields = [{"path": list(i.path), "message": i.message} for i in error.issues]
        raise UserInputError(error.message, fields=fields) from None


async def customer_orders(
    info: Info,
    customer_id: str,
    first: int,
    after: str | None,
    status: DomainOrderStatus | None,
    sort: OrderSort,
) -> OrderConnection:
    """`Customer.orders`: the first page through a DataLoader, batched across every
    customer on the page of customers (one statement); later pages one customer at a time."""
    wanted = OrderFilter(customer_id=customer_id, status=status)
    if after is not None:
        later = await ask(info, ListOrders(first=first, after=after, filter=wanted, sort=sort))
        return await _order_connection(info, later, wanted)
    _checked_page_size(first)
    key = CustomerOrdersKey(customer_id, first, status, sort)
    first_page = await info.context.loaders.customer_orders.load(key)
    return await _order_connection(info, first_page, wanted)


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
        status: OrderStatus | None = None,  # type: ignore[valid-type]
        placed_after: datetime | None = None,
        placed_before: datetime | None = None,
        sort: OrderSortOrder = OrderSort.NEWEST,  # type: ignore[valid-type]
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
        return await _order_connection(info, page, wanted)


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


MOVE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input changes "
    "nothing and returns the order as it is now, even if it has moved on since."
)


@strawberry.input
class ChangeOrderInput:
    id: relay.GlobalID
    expected_version: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)


@strawberry.input
class CancelOrderInput:
    id: relay.GlobalID
    reason: str = strawberry.field(default="", description=f"At most {MAX_REASON} characters.")
    expected_version: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)


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
    info.context.loaders.forget(written.entity_id)
    view = await info.context.loaders.orders.load(written.entity_id)
    # Never a success that shows a version older than its own write.
    if view is None or view.version < written.version:
        raise lagging(written)
    return Order.from_view(view)


def _place_order(info: Info, data: PlaceOrderInput) -> PlaceOrder:
    caller = identity_of(info.context.ctx)
    if data.customer_id is not None:
        customer_id = local_id(data.customer_id, CUSTOMER)
    elif caller is not None and caller.customer_id is not None:
        customer_id = caller.customer_id
    elif caller is None:
        raise NotAuthorized("Sign in to place an order", signed_in=False)
    else:
        raise ValidationFailed([FieldIssue(("customerId",), "staff must name the customer")])
    wrong_kind = [
        FieldIssue(("lines", str(i), "productId"), "is not a product id")
        for i, line in enumerate(data.lines)
        if line.product_id.type_name != PRODUCT
    ]
    if wrong_kind:
        raise ValidationFailed(wrong_kind)
    address = data.shipping_address
    return PlaceOrder(
        customer_id=customer_id,
        lines=tuple(LineRequest(line.product_id.node_id, line.quantity) for line in data.lines),
        shipping_address=AddressRequest(
            street=address.street,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
            state=address.state,
        ),
        special_instructions=data.special_instructions,
        idempotency_key=data.idempotency_key,
    )


def _move(
    command: type[ConfirmOrder | ShipOrder | DeliverOrder], data: ChangeOrderInput
) -> Command[Written]:
    return command(
        local_id(data.id, ORDER),
        expected_version=data.expected_version,
        idempotency_key=data.idempotency_key,
    )


async def _order_command(
    info: Info, build: Callable[[], Command[Written]], wrap: Callable[[Order], S]
) -> S | CommandError:
    async def success(written: Written) -> S:
        return wrap(await present_order(info, written))

    return await run_command(info, build, success)


@strawberry.type
class OrderMutations:
    @strawberry.mutation
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderResult:
        return await _order_command(
            info, lambda: _place_order(info, input), lambda order: PlaceOrderSuccess(order=order)
        )

    @strawberry.mutation
    async def confirm_order(self, info: Info, input: ChangeOrderInput) -> ConfirmOrderResult:
        return await _order_command(
            info,
            lambda: _move(ConfirmOrder, input),
            lambda order: ConfirmOrderSuccess(order=order),
        )

    @strawberry.mutation
    async def ship_order(self, info: Info, input: ChangeOrderInput) -> ShipOrderResult:
        return await _order_command(
            info,
            lambda: _move(ShipOrder, input),
            lambda order: ShipOrderSuccess(order=order),
        )

    @strawberry.mutation
    async def deliver_order(self, info: Info, input: ChangeOrderInput) -> DeliverOrderResult:
        return await _order_command(
            info,
            lambda: _move(DeliverOrder, input),
            lambda order: DeliverOrderSuccess(order=order),
        )

    @strawberry.mutation
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderResult:
        return await _order_command(
            info,
            lambda: CancelOrder(
                local_id(input.id, ORDER),
                reason=input.reason,
                expected_version=input.expected_version,
                idempotency_key=input.idempotency_key,
            ),
            lambda order: CancelOrderSuccess(order=order),
        )


# ---------------------------------------------------------------- subscription (orderEvents)

OrderEventType = strawberry.enum(OrderChangeType, name="OrderEventType")


@strawberry.type(
    description="A change to an order, with the order as the read model shows it when the "
    "event is delivered: it includes this change, and may include later ones (in a burst of "
    "changes, or when replayed with `after`)."
)
class OrderEvent:
    position: str = strawberry.field(description="Pass as `after` to resume after this event.")
    occurred_at: datetime
    type: OrderEventType  # type: ignore[valid-type]
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
