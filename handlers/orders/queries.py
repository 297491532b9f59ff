"""Order queries by id: GetOrders and GetOrderLines, their views, and the row readers
and visibility rule the lists and the event stream share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Row, bindparam, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from domain.orders import Address, OrderStatus
from handlers.access import Identity, identity_of
from mediator import Context, Query
from persistence.tables import order_lines, order_summaries


def may_see_order(caller: Identity | None, customer_id: str) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == customer_id)


@dataclass(frozen=True, slots=True)
class OrderView:
    id: str
    customer_id: str
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
        status=OrderStatus(c["status"]),
        line_count=c["line_count"],
        total=c["total"],
        currency=c["currency"],
        # The summary's address columns are named as the address's fields.
        shipping_address=Address(**{field.name: c[field.name] for field in fields(Address)}),
        special_instructions=c["special_instructions"],
        placed_at=c["placed_at"],
        updated_at=c["updated_at"],
        version=c["version"],
    )


def order_line_view(row: Row[tuple[object, ...]]) -> OrderLineView:
    c = row._mapping
    return OrderLineView(
        order_id=c["order_id"],
        product_id=c["product_id"],
        product_name=c["product_name"],
        unit_price=c["unit_price"],
        quantity=c["quantity"],
        line_total=c["line_total"],
        currency=c["currency"],
    )


def visible_to(caller: Identity | None) -> ColumnElement[bool]:
    """Rows of order_summaries the caller may read."""
    if caller is not None and caller.is_staff:
        return true()
    return order_summaries.c.customer_id == (caller.customer_id if caller else None)


# Lookups by id, built once: building a statement costs more than SQLite's work for them.
_ORDERS_BY_ID = select(order_summaries).where(
    order_summaries.c.id.in_(bindparam("ids", expanding=True))
)
_CUSTOMERS_ORDERS_BY_ID = _ORDERS_BY_ID.where(order_summaries.c.customer_id == bindparam("owner"))


async def load_order_views(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, OrderView]:
    rows = await connection.execute(_ORDERS_BY_ID, {"ids": list(ids)})
    return {row.id: order_view(row) for row in rows}


_LINES_OF = (
    select(order_lines)
    .where(order_lines.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_lines.c.order_id, order_lines.c.line_number)
)


async def load_order_lines(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, list[OrderLineView]]:
    """Each order's lines, in order; for the service's own reads (who may see them is the
    caller's to decide, as `get_order_lines` does)."""
    lines: dict[str, list[OrderLineView]] = {order_id: [] for order_id in ids}
    for row in await connection.execute(_LINES_OF, {"ids": list(ids)}):
        lines[row.order_id].append(order_line_view(row))
    return lines


async def get_orders(
    query: GetOrders, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, OrderView]:
    ids = [i for i in query.ids if is_possible_id(i)]
    if not ids:
        return {}
    caller = identity_of(ctx)
    async with read_engine.connect() as connection:
        if caller is not None and caller.is_staff:
            rows = await connection.execute(_ORDERS_BY_ID, {"ids": ids})
        else:
            owner = caller.customer_id if caller else None
            if owner is None:
                return {}
            rows = await connection.execute(_CUSTOMERS_ORDERS_BY_ID, {"ids": ids, "owner": owner})
        return {row.id: order_view(row) for row in rows}


async def get_order_lines(
    query: GetOrderLines, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, list[OrderLineView]]:
    lines: dict[str, list[OrderLineView]] = {order_id: [] for order_id in query.order_ids}
    order_ids = [i for i in query.order_ids if is_possible_id(i)]
    if not order_ids:
        return lines
    statement = (
        select(order_lines)
        .join(order_summaries, order_summaries.c.id == order_lines.c.order_id)
        .where(order_lines.c.order_id.in_(order_ids), visible_to(identity_of(ctx)))
        .order_by(order_lines.c.order_id, order_lines.c.line_number)
    )
    async with read_engine.connect() as connection:
        for row in await connection.execute(statement):
            lines[row.order_id].append(order_line_view(row))
    return lines
