"""Order commands: placing an order and moving it along (confirm, ship, deliver, cancel),
with their handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from domain.customers import Customer
from domain.errors import FieldIssue, NotFound, ValidationFailed
from domain.orders import (
    MAX_ADDRESS_FIELD,
    MAX_INSTRUCTIONS,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_REASON,
    Address,
    Order,
    Wanted,
)
from handlers.access import identity_of
from handlers.idempotency import IdempotencyKey
from handlers.orders.queries import may_see_order
from handlers.written import Written
from mediator import Command, Context
from persistence.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class LineRequest:
    product_id: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


@dataclass(frozen=True, slots=True)
class AddressRequest:
    street: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_FIELD["street"])]
    city: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_FIELD["city"])]
    postal_code: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_FIELD["postal_code"])]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    state: Annotated[str, Field(max_length=MAX_ADDRESS_FIELD["state"])] = ""


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
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class ShipOrder(Command[Written]):
    order_id: str
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class DeliverOrder(Command[Written]):
    order_id: str
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class CancelOrder(Command[Written]):
    order_id: str
    reason: Annotated[str, Field(max_length=MAX_REASON)] = ""
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


async def place_order(
    command: PlaceOrder, ctx: Context, work: UnitOfWork, *, new_id: Callable[[], str]
) -> Written:
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
    return Written.of(order)


async def _order_for(work: UnitOfWork, order_id: str, ctx: Context, expected: int | None) -> Order:
    """The order, if the caller may act on it; another customer's order does not exist."""
    order = await work.orders.get(order_id)
    if order is None or not may_see_order(identity_of(ctx), order.customer_id):
        raise NotFound(Order.kind, order_id)
    order.check_version(expected)
    return order


async def confirm_order(command: ConfirmOrder, ctx: Context, work: UnitOfWork) -> Written:
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    order.confirm()
    return Written.of(order)


async def ship_order(command: ShipOrder, ctx: Context, work: UnitOfWork) -> Written:
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    order.ship()
    return Written.of(order)


async def deliver_order(command: DeliverOrder, ctx: Context, work: UnitOfWork) -> Written:
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    order.deliver()
    return Written.of(order)


async def cancel_order(command: CancelOrder, ctx: Context, work: UnitOfWork) -> Written:
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    products = await work.products.get_many(line.product_id for line in order.lines)
    order.cancel(command.reason, products)
    return Written.of(order)
