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
    MAX_LINES,
    MAX_QUANTITY,
    NEEDS_A_LINE,
    QUANTITY_TOO_LARGE,
    QUANTITY_TOO_SMALL,
    TOO_MANY_LINES,
    Address,
    Order,
    Wanted,
)
from handlers.access import identity_of
from handlers.idempotency import IdempotencyKey
from handlers.orders.queries import may_see_order
from handlers.validation import Says
from handlers.written import Written
from mediator import Command, Context
from persistence.unit_of_work import UnitOfWork

NAMES_NO_PRODUCT = "no product has this id"


@dataclass(frozen=True, slots=True)
class LineRequest:
    product_id: Annotated[
        str,
        Field(min_length=1, max_length=64),
        Says(min_length=NAMES_NO_PRODUCT, max_length=NAMES_NO_PRODUCT),
    ]
    quantity: Annotated[
        int, Field(ge=1, le=MAX_QUANTITY), Says(ge=QUANTITY_TOO_SMALL, le=QUANTITY_TOO_LARGE)
    ]


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[Written]):
    """An order for `customer_id`, or for the caller's own customer when that is None.

    The line count and quantities are checked before anything is read (so a flood of lines
    costs no lookup); the address and the rest are the order's own rules, checked as it is
    placed.
    """

    lines: Annotated[
        tuple[LineRequest, ...],
        Field(min_length=1, max_length=MAX_LINES),
        Says(min_length=NEEDS_A_LINE, max_length=TOO_MANY_LINES),
    ]
    shipping_address: Address
    special_instructions: str = ""
    customer_id: str | None = None
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
    reason: str = ""
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


async def place_order(
    command: PlaceOrder, ctx: Context, work: UnitOfWork, *, new_id: Callable[[], str]
) -> Written:
    customer_id = command.customer_id or _own_customer(ctx)
    customer = await work.customers.get(customer_id)
    if customer is None:
        raise NotFound(Customer.kind, customer_id)
    products = await work.products.get_many(line.product_id for line in command.lines)
    unknown = [
        FieldIssue(("lines", str(index), "product_id"), NAMES_NO_PRODUCT)
        for index, line in enumerate(command.lines)
        if line.product_id not in products
    ]
    if unknown:
        raise ValidationFailed(unknown)
    order = Order.place(
        new_id(),
        customer=customer,
        wanted=[Wanted(products[line.product_id], line.quantity) for line in command.lines],
        shipping_address=command.shipping_address,
        special_instructions=command.special_instructions,
    )
    work.orders.add(order)
    return Written.of(order)


def _own_customer(ctx: Context) -> str:
    """The caller's customer, for an order that names none (the policy let only customers
    and staff through)."""
    caller = identity_of(ctx)
    if caller is None or caller.customer_id is None:
        raise ValidationFailed(
            [FieldIssue(("customer_id",), "staff placing an order must name its customer")]
        )
    return caller.customer_id


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
