"""The schema's shared types: products, customers, orders and their lines and connections,
which refer to one another (an order has a customer and lines of products, a customer has
orders). Each feature's module holds its queries, mutations and subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry import relay

from domain.customers import Customer as CustomerAggregate
from domain.errors import ValidationFailed
from domain.orders import Order as OrderAggregate
from domain.products import Product as ProductAggregate
from handlers.customers import CountCustomers, CustomerView
from handlers.orders import (
    CountOrders,
    ListOrders,
    OrderFilter,
    OrderLineView,
    OrderView,
)
from handlers.paging import DEFAULT_PAGE_SIZE, Page, Slice, check_page_size
from handlers.products import ProductView
from schema.context import CustomerOrdersKey, Info, Loaders
from schema.enums import OrderSort, OrderStatus
from schema.errors import bad_user_input
from schema.messages import ask
from schema.money import Address, Money
from schema.pagination import FIRST, Edge, PageInfo, page_info
from schema.preferences import Preferences
from schema.prefetch import resolved, selects, settle

PRODUCT = ProductAggregate.kind
ORDER_AFTER = (
    "The `cursor` of the last order already shown (`pageInfo.endCursor`), from this list in "
    "this sort order; null for the first page. A cursor from another list or sort is "
    "BAD_USER_INPUT."
)
# The arguments every list of orders takes (`orders`, `Customer.orders`), described once.
StatusArgument = Annotated[
    OrderStatus | None,
    strawberry.argument(description="Only orders in this status; null for all."),
]
SortArgument = Annotated[
    OrderSort, strawberry.argument(description="The order of the list (newest first).")
]
VERSION = (
    "Starts at 1 and increases by one with every change; pass it as `expectedVersion` to "
    "change the entity only if nobody else has changed it since you read it."
)


@strawberry.type(description="Something the shop sells, with its current price and stock.")
class Product(relay.Node):
    id: relay.NodeID[str]
    sku: str = strawberry.field(
        description="The stock-keeping unit: 1 to 64 letters, digits, '.', '_' or '-', unique "
        "across products (a deleted product keeps its SKU)."
    )
    name: str = strawberry.field(description="The display name, 1 to 200 characters.")
    description: str = strawberry.field(
        description="Free text of at most 5000 characters; an empty string when there is none."
    )
    price: Money = strawberry.field(
        description="The current unit price. Orders keep the price they were placed at."
    )
    stock: int = strawberry.field(
        description="Units on hand and not reserved by an order: placing an order takes its "
        "quantity off, cancelling gives it back. Never negative."
    )
    version: int = strawberry.field(
        description=f"{VERSION} An order reserving or giving back its stock is a change too."
    )
    created_at: datetime = strawberry.field(description="When the product was created.")
    updated_at: datetime = strawberry.field(
        description="When the product last changed (its details, a restock, or an order "
        "reserving or giving back stock); equals createdAt until then."
    )

    @classmethod
    def from_view(cls, view: ProductView) -> Self:
        return cls(
            id=view.id,
            sku=view.sku,
            name=view.name,
            description=view.description,
            price=Money(amount=view.price, currency=view.currency),
            stock=view.stock,
            version=view.version,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        views = await info.context.loaders.products.load_many(list(node_ids))
        return [cls.from_view(v) if v is not None and not v.deleted else None for v in views]


@strawberry.type(description="A page of products, in the order the query's `sort` asked for.")
class ProductConnection:
    edges: list[Edge[Product]] = strawberry.field(
        description="The products on this page, each with its cursor; empty past the end."
    )
    page_info: PageInfo = strawberry.field(description="Where this page is in the list.")
    total_count: int = strawberry.field(
        description="How many products match the query's filters, all pages together."
    )


CUSTOMER = CustomerAggregate.kind


@strawberry.type(
    description="Someone who places orders. Staff see every customer; a customer sees only itself."
)
class Customer(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="The name given at registration, trimmed.")
    email: str = strawberry.field(
        description="The email address given at registration, in lower case; unique."
    )
    registered_at: datetime = strawberry.field(description="When the customer registered.")
    order_count: int = strawberry.field(
        description="How many orders the customer has placed, cancelled ones included."
    )
    lifetime_value: Money = strawberry.field(
        description="What the customer's orders add up to, less those withdrawn (cancelled), "
        "in the currency of its first order (orders in other currencies are not added). "
        "0.00 USD before the first order."
    )
    version: int = strawberry.field(
        description="Increases with every change to the customer itself (registering is 1)."
    )
    preferences: Preferences | None = strawberry.field(
        description="The customer's preferences, which only the customer itself and staff "
        "see; null until its profile exists, a moment after registering (creating the profile "
        "is a change: the version goes up by one)."
    )

    @strawberry.field(
        description="The customer's orders, a page at a time (at most 100 per page). The "
        "first pages of every customer in a list are read together, in one query."
    )
    async def orders(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=ORDER_AFTER)] = None,
        status: StatusArgument = None,
        sort: SortArgument = OrderSort.NEWEST,
    ) -> OrderConnection:
        return await customer_orders(info, self.id, first, after, status, sort)

    @classmethod
    def from_view(cls, view: CustomerView) -> Self:
        return cls(
            id=view.id,
            name=view.name,
            email=view.email,
            registered_at=view.registered_at,
            order_count=view.order_count,
            lifetime_value=Money(amount=view.lifetime_value, currency=view.currency or "USD"),
            version=view.version,
            preferences=None if view.preferences is None else Preferences.of(view.preferences),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        views = await info.context.loaders.customers.load_many(list(node_ids))
        return [cls.from_view(v) if v is not None else None for v in views]


async def load_customer(loaders: Loaders, customer_id: str) -> Customer | None:
    return customer_or_none(await loaders.customers.load(customer_id))


# ---------------------------------------------------------------- queries: lists


@strawberry.type(description="A page of customers, by name (then id).")
class CustomerConnection:
    edges: list[Edge[Customer]] = strawberry.field(
        description="The customers on this page, each with its cursor; empty past the end."
    )
    page_info: PageInfo = strawberry.field(description="Where this page is in the list.")
    search: strawberry.Private[str | None]

    @strawberry.field(description="How many customers match, all pages together.")
    async def total_count(self, info: Info) -> int:
        return await ask(info, CountCustomers(self.search))


ORDER = OrderAggregate.kind


@strawberry.type(description="One product of an order, as it was when the order was placed.")
class OrderLine:
    product_name: str = strawberry.field(description="The name when the order was placed.")
    unit_price: Money = strawberry.field(description="The price when the order was placed.")
    quantity: int = strawberry.field(description="How many units were ordered: 1 to 1000.")
    line_total: Money = strawberry.field(description="unitPrice times quantity, exactly.")
    product_id: strawberry.Private[str]

    @strawberry.field(
        description="The product as it is now; null once it is deleted.",
        graphql_type=Product | None,
    )
    def product(self, info: Info) -> Product | Awaitable[Product | None] | None:
        return resolved(info.context.loaders.products.load(self.product_id), live_product)

    @classmethod
    def from_view(cls, view: OrderLineView) -> Self:
        return cls(
            product_name=view.product_name,
            unit_price=Money(amount=view.unit_price, currency=view.currency),
            quantity=view.quantity,
            line_total=Money(amount=view.line_total, currency=view.currency),
            product_id=view.product_id,
        )


@strawberry.type(
    description="A customer's order: its lines, copied from the catalog when it was placed, and "
    "where it is on its way to delivery. A customer sees only its own orders."
)
class Order(relay.Node):
    id: relay.NodeID[str]
    status: OrderStatus = strawberry.field(description="Where the order is now.")
    line_count: int = strawberry.field(
        description="How many lines the order has (1 to 50), without loading them."
    )
    total: Money = strawberry.field(
        description="The sum of the lines' totals, in the one currency of all its lines."
    )
    shipping_address: Address = strawberry.field(description="Where the order is shipped.")
    special_instructions: str = strawberry.field(
        description="The customer's note for the order, at most 2000 characters; an empty "
        "string when there is none."
    )
    placed_at: datetime = strawberry.field(description="When the order was placed.")
    updated_at: datetime = strawberry.field(
        description="When the order last changed status; equals placedAt until then."
    )
    version: int = strawberry.field(description=VERSION)
    customer_id: strawberry.Private[str]

    @strawberry.field(
        graphql_type=Customer | None,
        description="Who placed the order; null only if the caller may not see that customer.",
    )
    def customer(self, info: Info) -> Customer | Awaitable[Customer | None] | None:
        return resolved(info.context.loaders.customers.load(self.customer_id), customer_or_none)

    @strawberry.field(
        graphql_type=list[OrderLine], description="The order's lines, in the order they were given."
    )
    def lines(self, info: Info) -> list[OrderLine] | Awaitable[list[OrderLine]]:
        return resolved(info.context.loaders.order_lines.load(self.id), _lines)

    @classmethod
    def from_view(cls, view: OrderView) -> Self:
        return cls(
            id=view.id,
            status=view.status,
            line_count=view.line_count,
            total=Money(amount=view.total, currency=view.currency),
            shipping_address=Address(**asdict(view.shipping_address)),
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


@strawberry.type(description="A page of orders, in the order the query's `sort` asked for.")
class OrderConnection:
    edges: list[Edge[Order]] = strawberry.field(
        description="The orders on this page, each with its cursor; empty past the end."
    )
    page_info: PageInfo = strawberry.field(description="Where this page is in the list.")
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


def live_product(view: ProductView | None) -> Product | None:
    """A product as clients see it: a deleted one, like a missing one, is null."""
    return Product.from_view(view) if view is not None and not view.deleted else None


def customer_or_none(view: CustomerView | None) -> Customer | None:
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


async def order_connection(
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
        raise bad_user_input(error) from None


async def customer_orders(
    info: Info,
    customer_id: str,
    first: int,
    after: str | None,
    status: OrderStatus | None,
    sort: OrderSort,
) -> OrderConnection:
    """`Customer.orders`: the first page through a DataLoader, batched across every
    customer on the page of customers (one statement); later pages one customer at a time."""
    wanted = OrderFilter(customer_id=customer_id, status=status)
    if after is not None:
        later = await ask(info, ListOrders(first=first, after=after, filter=wanted, sort=sort))
        return await order_connection(info, later, wanted)
    _checked_page_size(first)
    key = CustomerOrdersKey(customer_id, first, status, sort)
    first_page = await info.context.loaders.customer_orders.load(key)
    return await order_connection(info, first_page, wanted)
