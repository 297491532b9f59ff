"""Orders: placing them, moving them along, reading them, and their read models."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated

from pydantic import Field
from sqlalchemy import ColumnElement, Row, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.customers import Customer
from domain.errors import FieldIssue, NotFound, ValidationFailed
from domain.orders import (
    MAX_INSTRUCTIONS,
    MAX_LINES,
    MAX_QUANTITY,
    ORDER_EVENTS,
    Address,
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    Wanted,
)
from handlers.access import Identity, Policy, anyone, identity_of, signed_in, staff
from handlers.customers import IdempotencyKey
from handlers.transaction import unit_of_work
from handlers.written import Written
from mediator import Command, Context, Query, Registry
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import order_lines, order_summaries
from persistence.unit_of_work import UnitOfWork

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class LineRequest:
    product_id: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


@dataclass(frozen=True, slots=True)
class AddressRequest:
    street: Annotated[str, Field(min_length=1, max_length=200)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    state: Annotated[str, Field(max_length=100)] = ""


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[Written]):
    customer_id: str
    lines: Annotated[tuple[LineRequest, ...], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: AddressRequest
    special_instructions: Annotated[str, Field(max_length=MAX_INSTRUCTIONS)] = ""
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class ConfirmOrder(Command[Written]):
    order_id: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class ShipOrder(Command[Written]):
    order_id: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class DeliverOrder(Command[Written]):
    order_id: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder(Command[Written]):
    order_id: str
    reason: Annotated[str, Field(max_length=500)] = ""
    expected_version: int | None = None


async def place_order(command: PlaceOrder, ctx: Context, *, new_id: Callable[[], str]) -> Written:
    work = unit_of_work(ctx)
    customer = await work.customers.get(command.customer_id)
    if customer is None:
        raise NotFound(Customer.kind, command.customer_id)
    products = await work.products.get_many(line.product_id for line in command.lines)
    unknown = [
        FieldIssue(("lines", str(index), "productId"), "names no product")
        for index, line in enumerate(command.lines)
        if line.product_id not in products
    ]
    if unknown:
        raise ValidationFailed(unknown)
    address = command.shipping_address
    order = Order.place(
        new_id(),
        customer=customer,
        wanted=[Wanted(products[line.product_id], line.quantity) for line in command.lines],
        shipping_address=Address(
            street=address.street,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
            state=address.state,
        ),
        special_instructions=command.special_instructions,
    )
    work.orders.add(order)
    return Written(order.id, order.version)


async def _order_for(work: UnitOfWork, order_id: str, ctx: Context, expected: int | None) -> Order:
    """The order, if the caller may act on it; another customer's order does not exist."""
    order = await work.orders.get(order_id)
    if order is None or not may_see_order(identity_of(ctx), order.customer_id):
        raise NotFound(Order.kind, order_id)
    order.check_version(expected)
    return order


async def confirm_order(command: ConfirmOrder, ctx: Context) -> Written:
    order = await _order_for(unit_of_work(ctx), command.order_id, ctx, command.expected_version)
    order.confirm()
    return Written(order.id, order.version)


async def ship_order(command: ShipOrder, ctx: Context) -> Written:
    order = await _order_for(unit_of_work(ctx), command.order_id, ctx, command.expected_version)
    order.ship()
    return Written(order.id, order.version)


async def deliver_order(command: DeliverOrder, ctx: Context) -> Written:
    order = await _order_for(unit_of_work(ctx), command.order_id, ctx, command.expected_version)
    order.deliver()
    return Written(order.id, order.version)


async def cancel_order(command: CancelOrder, ctx: Context) -> Written:
    work = unit_of_work(ctx)
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    products = await work.products.get_many(line.product_id for line in order.lines)
    order.cancel(command.reason, products)
    return Written(order.id, order.version)


# ---------------------------------------------------------------- queries


def may_see_order(caller: Identity | None, customer_id: str) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == customer_id)


@dataclass(frozen=True, slots=True)
class OrderView:
    id: str
    customer_id: str
    customer_name: str
    customer_email: str
    status: OrderStatus
    line_count: int
    total: Decimal
    currency: str
    shipping_address: Address
    special_instructions: str
    placed_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class OrderLineView:
    order_id: str
    product_id: str
    product_name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class GetOrders(Query[dict[str, OrderView]]):
    """The orders with these ids that the caller may see, keyed by id."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetOrderLines(Query[dict[str, list[OrderLineView]]]):
    """The lines of each of these orders the caller may see, in order, keyed by order id."""

    order_ids: tuple[str, ...]


def order_view(row: Row[tuple[object, ...]]) -> OrderView:
    c = row._mapping
    return OrderView(
        id=c["id"],
        customer_id=c["customer_id"],
        customer_name=c["customer_name"],
        customer_email=c["customer_email"],
        status=OrderStatus(c["status"]),
        line_count=c["line_count"],
        total=c["total"],
        currency=c["currency"],
        shipping_address=Address(
            street=c["street"],
            city=c["city"],
            state=c["state"],
            postal_code=c["postal_code"],
            country=c["country"],
        ),
        special_instructions=c["special_instructions"],
        placed_at=c["placed_at"],
        updated_at=c["updated_at"],
        version=c["version"],
    )


def visible_to(caller: Identity | None) -> ColumnElement[bool]:
    """Rows of order_summaries the caller may read."""
    if caller is not None and caller.is_staff:
        return true()
    return order_summaries.c.customer_id == (caller.customer_id if caller else None)


async def load_order_views(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, OrderView]:
    rows = await connection.execute(select(order_summaries).where(order_summaries.c.id.in_(ids)))
    return {row.id: order_view(row) for row in rows}


async def get_orders(
    query: GetOrders, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, OrderView]:
    if not query.ids:
        return {}
    statement = select(order_summaries).where(
        order_summaries.c.id.in_(query.ids), visible_to(identity_of(ctx))
    )
    async with read_engine.connect() as connection:
        return {row.id: order_view(row) for row in await connection.execute(statement)}


async def get_order_lines(
    query: GetOrderLines, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, list[OrderLineView]]:
    lines: dict[str, list[OrderLineView]] = {order_id: [] for order_id in query.order_ids}
    if not query.order_ids:
        return lines
    statement = (
        select(order_lines)
        .join(order_summaries, order_summaries.c.id == order_lines.c.order_id)
        .where(order_lines.c.order_id.in_(query.order_ids), visible_to(identity_of(ctx)))
        .order_by(order_lines.c.order_id, order_lines.c.line_number)
    )
    async with read_engine.connect() as connection:
        for row in await connection.execute(statement):
            lines[row.order_id].append(
                OrderLineView(
                    order_id=row.order_id,
                    product_id=row.product_id,
                    product_name=row.product_name,
                    unit_price=row.unit_price,
                    quantity=row.quantity,
                    line_total=row.line_total,
                    currency=row.currency,
                )
            )
    return lines


# ---------------------------------------------------------------- read models

_STATUS_AFTER = {
    OrderConfirmed: OrderStatus.CONFIRMED,
    OrderShipped: OrderStatus.SHIPPED,
    OrderDelivered: OrderStatus.DELIVERED,
    OrderCancelled: OrderStatus.CANCELLED,
}


async def project_orders(connection: AsyncConnection, stored: StoredEvent) -> None:
    """order_summaries and order_lines, kept together: a summary never lacks its lines."""
    event = stored.event
    if isinstance(event, OrderPlaced):
        address = event.shipping_address
        await connection.execute(
            insert(order_summaries).values(
                id=event.order_id,
                customer_id=event.customer_id,
                customer_name=event.customer_name,
                customer_email=event.customer_email,
                status=OrderStatus.PENDING.value,
                line_count=len(event.lines),
                total=event.total,
                currency=event.currency,
                street=address.street,
                city=address.city,
                state=address.state,
                postal_code=address.postal_code,
                country=address.country,
                special_instructions=event.special_instructions,
                placed_at=stored.occurred_at,
                updated_at=stored.occurred_at,
                version=stored.stream_version,
                placed_position=stored.position,
                last_position=stored.position,
            )
        )
        await connection.execute(
            insert(order_lines),
            [
                {
                    "order_id": event.order_id,
                    "line_number": number,
                    "product_id": line.product_id,
                    "product_name": line.product_name,
                    "unit_price": line.unit_price,
                    "quantity": line.quantity,
                    "line_total": line.line_total,
                    "currency": event.currency,
                }
                for number, line in enumerate(event.lines)
            ],
        )
    elif (status := _STATUS_AFTER.get(type(event))) is not None:
        await connection.execute(
            update(order_summaries)
            .where(order_summaries.c.id == stored.stream_id)
            .values(
                status=status.value,
                version=stored.stream_version,
                updated_at=stored.occurred_at,
                last_position=stored.position,
            )
        )


ORDERS = Projection("orders", project_orders)


# ---------------------------------------------------------------- wiring


def new_order_id() -> str:
    return uuid.uuid4().hex


def _own_order(message: PlaceOrder, caller: Identity | None) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == message.customer_id)


EVENT_TYPES = ORDER_EVENTS
POLICIES: dict[type, Policy] = {
    PlaceOrder: _own_order,
    ConfirmOrder: staff,
    ShipOrder: staff,
    DeliverOrder: staff,
    # A customer may cancel its own orders; the handler finds only those.
    CancelOrder: signed_in,
    GetOrders: anyone,
    GetOrderLines: anyone,
}
IDEMPOTENT: dict[type, str] = {PlaceOrder: Order.kind}


def register(
    registry: Registry,
    *,
    read_engine: AsyncEngine,
    new_id: Callable[[], str] = new_order_id,
) -> None:
    registry.handle(PlaceOrder, partial(place_order, new_id=new_id))
    registry.handle(ConfirmOrder, confirm_order)
    registry.handle(ShipOrder, ship_order)
    registry.handle(DeliverOrder, deliver_order)
    registry.handle(CancelOrder, cancel_order)
    registry.handle(GetOrders, partial(get_orders, read_engine=read_engine))
    registry.handle(GetOrderLines, partial(get_order_lines, read_engine=read_engine))
