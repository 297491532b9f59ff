"""Order lists: ListOrders, CountOrders and FirstOrderPages (each customer's first page),
sorted by OrderSort and paged by keyset cursors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.aggregate import is_possible_id
from domain.errors import FieldIssue, ValidationFailed
from domain.orders import OrderStatus
from handlers.access import Identity, identity_of
from handlers.orders.queries import OrderView, order_view, visible_to
from handlers.paging import (
    DEFAULT_PAGE_SIZE,
    CursorKey,
    Page,
    Slice,
    check_page_size,
    decode_amount,
    decode_cursor,
    encode_cursor,
)
from mediator import Context, Query
from persistence.tables import order_summaries

# Keyset pages only: a cursor holds the sort key of the last row seen, and the next page is
# the rows strictly after it in a total order (ties broken by a unique column). An order
# placed while a client walks the pages never pushes an existing row across a page
# boundary, so every row that existed when the walk began is seen exactly once. Every
# filter and sort is served by an index (persistence/tables.py), so a page costs the same
# however many orders there are; the total is counted apart, only when asked for.


class OrderSort(enum.Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    TOTAL_DESC = "TOTAL_DESC"


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Which orders a list shows, of those the caller may see."""

    customer_id: str | None = None
    status: OrderStatus | None = None
    placed_after: datetime | None = None
    """Inclusive."""
    placed_before: datetime | None = None
    """Exclusive, so that consecutive ranges split the orders without overlap."""


@dataclass(frozen=True, slots=True)
class ListOrders(Query[Slice[OrderView]]):
    """A page of the orders the caller may see: staff all, a customer its own."""

    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None
    filter: OrderFilter = OrderFilter()
    sort: OrderSort = OrderSort.NEWEST


@dataclass(frozen=True, slots=True)
class CountOrders(Query[int]):
    """How many orders a ListOrders with this filter walks through, all pages together."""

    filter: OrderFilter = OrderFilter()


@dataclass(frozen=True, slots=True)
class FirstOrderPages(Query[dict[str, Page[OrderView]]]):
    """The first page of each customer's orders, with its total, in one SQL statement.

    What the `Customer.orders` DataLoader asks for a page of customers at once; the pages
    after it are ListOrders with a customer_id, whose cursors these match.
    """

    customer_ids: tuple[str, ...]
    first: int = DEFAULT_PAGE_SIZE
    status: OrderStatus | None = None
    sort: OrderSort = OrderSort.NEWEST


_SUMMARY = order_summaries.c
_ORDER_BY = {
    OrderSort.NEWEST: (_SUMMARY.placed_position.desc(),),
    OrderSort.OLDEST: (_SUMMARY.placed_position.asc(),),
    # Both descending, so the (total, id) indexes serve it read backwards.
    OrderSort.TOTAL_DESC: (_SUMMARY.total.desc(), _SUMMARY.id.desc()),
}


def _cursor_name(sort: OrderSort) -> str:
    return f"orders.{sort.value}"


def _order_cursor(sort: OrderSort, row: Row[tuple[object, ...]]) -> str:
    c = row._mapping
    by_total: CursorKey = [str(c["total"]), c["id"]]
    by_position: CursorKey = [c["placed_position"]]
    return encode_cursor(
        _cursor_name(sort), by_total if sort is OrderSort.TOTAL_DESC else by_position
    )


def _order_keyset(sort: OrderSort, after: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor's row in `sort` order."""
    if sort is not OrderSort.TOTAL_DESC:
        (position,) = decode_cursor(after, _cursor_name(sort), (int,))
        if sort is OrderSort.NEWEST:
            return _SUMMARY.placed_position < position
        return _SUMMARY.placed_position > position
    total_text, key = decode_cursor(after, _cursor_name(sort), (str, str))
    total = decode_amount(total_text)
    return or_(_SUMMARY.total < total, and_(_SUMMARY.total == total, _SUMMARY.id < key))


def _order_conditions(caller: Identity | None, wanted: OrderFilter) -> list[ColumnElement[bool]]:
    issues = [
        FieldIssue((name,), "must give a time zone")
        for name, moment in (
            ("placed_after", wanted.placed_after),
            ("placed_before", wanted.placed_before),
        )
        if moment is not None and moment.tzinfo is None
    ]
    if wanted.customer_id is not None and not is_possible_id(wanted.customer_id):
        issues.append(FieldIssue(("customer_id",), "is not a customer id"))
    if issues:
        raise ValidationFailed(issues)
    conditions = [visible_to(caller)]
    if wanted.customer_id is not None:
        conditions.append(_SUMMARY.customer_id == wanted.customer_id)
    if wanted.status is not None:
        conditions.append(_SUMMARY.status == wanted.status.value)
    if wanted.placed_after is not None:
        conditions.append(_SUMMARY.placed_at >= wanted.placed_after)
    if wanted.placed_before is not None:
        conditions.append(_SUMMARY.placed_at < wanted.placed_before)
    return conditions


async def list_orders(
    query: ListOrders, ctx: Context, *, read_engine: AsyncEngine
) -> Slice[OrderView]:
    check_page_size(query.first)
    conditions = _order_conditions(identity_of(ctx), query.filter)
    if query.after is not None:
        conditions.append(_order_keyset(query.sort, query.after))
    statement = (
        select(order_summaries)
        .where(*conditions)
        .order_by(*_ORDER_BY[query.sort])
        .limit(query.first + 1)
    )
    async with read_engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    items = [(_order_cursor(query.sort, row), order_view(row)) for row in rows]
    return Slice(
        items=items[: query.first],
        has_next_page=len(items) > query.first,
        has_previous_page=query.after is not None,
    )


async def count_orders(query: CountOrders, ctx: Context, *, read_engine: AsyncEngine) -> int:
    statement = (
        select(func.count())
        .select_from(order_summaries)
        .where(*_order_conditions(identity_of(ctx), query.filter))
    )
    async with read_engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


async def first_order_pages(
    query: FirstOrderPages, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, Page[OrderView]]:
    """Numbers each customer's orders in sort order with a window function (SQLite and
    PostgreSQL alike) and keeps the first `first + 1` of each, with the customer's count.

    It reads every matching order of these customers, through the customer_id indexes:
    cheap for a page of customers; a customer with very many orders pays for them here.
    """
    check_page_size(query.first)
    if not query.customer_ids:
        return {}
    conditions = [
        *_order_conditions(identity_of(ctx), OrderFilter(status=query.status)),
        _SUMMARY.customer_id.in_(query.customer_ids),
    ]
    ranked = (
        select(
            order_summaries,
            func.row_number()
            .over(partition_by=_SUMMARY.customer_id, order_by=_ORDER_BY[query.sort])
            .label("row_rank"),
            func.count().over(partition_by=_SUMMARY.customer_id).label("match_count"),
        )
        .where(*conditions)
        .subquery("ranked")
    )
    statement = (
        select(ranked)
        .where(ranked.c.row_rank <= query.first + 1)
        .order_by(ranked.c.customer_id, ranked.c.row_rank)
    )
    found: dict[str, list[Row[tuple[object, ...]]]] = {}
    async with read_engine.connect() as connection:
        for row in await connection.execute(statement):
            found.setdefault(row.customer_id, []).append(row)
    pages: dict[str, Page[OrderView]] = {}
    for customer_id in query.customer_ids:
        rows = found.get(customer_id, [])
        items = [(_order_cursor(query.sort, row), order_view(row)) for row in rows]
        pages[customer_id] = Page(
            items=items[: query.first],
            has_next_page=len(items) > query.first,
            has_previous_page=False,
            total_count=int(rows[0].match_count) if rows else 0,
        )
    return pages
