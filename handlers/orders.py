"""Orders: placing them, moving them along, reading them, and their read models."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated

from pydantic import Field
from sqlalchemy import ColumnElement, Row, and_, bindparam, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from domain.customers import Customer
from domain.errors import FieldIssue, NotFound, ValidationFailed
from domain.orders import (
    MAX_ADDRESS_FIELD,
    MAX_INSTRUCTIONS,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_REASON,
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
from handlers.access import (
    Identity,
    NotAuthorized,
    Policy,
    anyone,
    identity_of,
    signed_in,
    staff,
)
from handlers.customers import CustomerView, load_customer_views
from handlers.feature import Feature, Wiring
from handlers.idempotency import IdempotencyKey
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
from handlers.query_cache import Cached
from handlers.transaction import unit_of_work
from handlers.written import Written
from mediator import Command, Context, Query, Registry, StreamRequest
from persistence.event_log import StoredEvent
from persistence.event_tail import EventTail, TailEvent, ViewLoader
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
    return Written.of(order)


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
    return Written.of(order)


async def ship_order(command: ShipOrder, ctx: Context) -> Written:
    order = await _order_for(unit_of_work(ctx), command.order_id, ctx, command.expected_version)
    order.ship()
    return Written.of(order)


async def deliver_order(command: DeliverOrder, ctx: Context) -> Written:
    order = await _order_for(unit_of_work(ctx), command.order_id, ctx, command.expected_version)
    order.deliver()
    return Written.of(order)


async def cancel_order(command: CancelOrder, ctx: Context) -> Written:
    work = unit_of_work(ctx)
    order = await _order_for(work, command.order_id, ctx, command.expected_version)
    products = await work.products.get_many(line.product_id for line in order.lines)
    order.cancel(command.reason, products)
    return Written.of(order)


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


# ---------------------------------------------------------------- queries: lists
#
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
            ("placedAfter", wanted.placed_after),
            ("placedBefore", wanted.placed_before),
        )
        if moment is not None and moment.tzinfo is None
    ]
    if wanted.customer_id is not None and not is_possible_id(wanted.customer_id):
        issues.append(FieldIssue(("customerId",), "is not a customer id"))
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


# ---------------------------------------------------------------- read models

_STATUS_AFTER = {
    OrderConfirmed: OrderStatus.CONFIRMED,
    OrderShipped: OrderStatus.SHIPPED,
    OrderDelivered: OrderStatus.DELIVERED,
    OrderCancelled: OrderStatus.CANCELLED,
}


_STATUS_UPDATE = update(order_summaries).where(order_summaries.c.id == bindparam("b_id"))


async def project_orders(connection: AsyncConnection, stored: StoredEvent) -> None:
    """order_summaries and order_lines, kept together: a summary never lacks its lines."""
    event = stored.event
    if isinstance(event, OrderPlaced):
        address = event.shipping_address
        await connection.execute(
            insert(order_summaries),
            {
                "id": event.order_id,
                "customer_id": event.customer_id,
                "customer_name": event.customer_name,
                "customer_email": event.customer_email,
                "status": OrderStatus.PENDING.value,
                "line_count": len(event.lines),
                "total": event.total,
                "currency": event.currency,
                "street": address.street,
                "city": address.city,
                "state": address.state,
                "postal_code": address.postal_code,
                "country": address.country,
                "special_instructions": event.special_instructions,
                "placed_at": stored.occurred_at,
                "updated_at": stored.occurred_at,
                "version": stored.stream_version,
                "placed_position": stored.position,
                "last_position": stored.position,
            },
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
            _STATUS_UPDATE,
            {
                "b_id": stored.stream_id,
                "status": status.value,
                "version": stored.stream_version,
                "updated_at": stored.occurred_at,
                "last_position": stored.position,
            },
        )


def order_rows_touched(stored: StoredEvent) -> list[str]:
    """An order's summary and lines are one entity to the cache."""
    event = stored.event
    if isinstance(event, OrderPlaced):
        return [event.order_id]
    return [stored.stream_id] if type(event) in _STATUS_AFTER else []


ORDERS = Projection("orders", project_orders, (order_summaries, order_lines), order_rows_touched)


# ---------------------------------------------------------------- subscription (orderEvents)


class OrderChangeType(enum.Enum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


_ORDER_CHANGE_TYPES = {
    OrderPlaced: OrderChangeType.PLACED,
    OrderConfirmed: OrderChangeType.CONFIRMED,
    OrderShipped: OrderChangeType.SHIPPED,
    OrderDelivered: OrderChangeType.DELIVERED,
    OrderCancelled: OrderChangeType.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class OrderEventView:
    """What the tail reads once per batch for every order event: the summary with its lines
    and customer, so that subscribers asking for `lines` or `customer` cost no query each."""

    order: OrderView
    lines: tuple[OrderLineView, ...]
    customer: CustomerView | None


@dataclass(frozen=True, slots=True)
class OrderChange:
    position: int
    occurred_at: datetime
    type: OrderChangeType
    order: OrderEventView


@dataclass(frozen=True, slots=True)
class WatchOrders(StreamRequest[OrderChange]):
    """Order events, live, for one order, one customer's orders, or all of them; `after`
    replays from that position first.

    A customer sees its own orders' events only. Naming another customer (`customer_id`)
    is refused (NotAuthorized); naming another customer's order (`order_id`) yields
    nothing, as that order reads as not found everywhere else.
    """

    order_id: str | None = None
    customer_id: str | None = None
    after: int | None = None


async def load_order_event_views(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, OrderEventView]:
    """The tail's view loader for orders: three statements per batch of events."""
    orders = await load_order_views(connection, ids)
    lines: dict[str, list[OrderLineView]] = {order_id: [] for order_id in orders}
    statement = (
        select(order_lines)
        .where(order_lines.c.order_id.in_(list(orders)))
        .order_by(order_lines.c.order_id, order_lines.c.line_number)
    )
    for row in await connection.execute(statement):
        lines[row.order_id].append(order_line_view(row))
    customers = await load_customer_views(
        connection, sorted({order.customer_id for order in orders.values()})
    )
    return {
        order_id: OrderEventView(order, tuple(lines[order_id]), customers.get(order.customer_id))
        for order_id, order in orders.items()
    }


async def watch_orders(
    request: WatchOrders, ctx: Context, *, tail: EventTail
) -> AsyncIterator[OrderChange]:
    caller = identity_of(ctx)
    if caller is None:  # pragma: no cover - the policy admits signed-in callers only
        raise NotAuthorized("Sign in to watch orders", signed_in=False)
    if not (caller.is_staff or request.customer_id in (None, caller.customer_id)):
        raise NotAuthorized("You may watch your own orders only", signed_in=True)
    customer_id = request.customer_id if caller.is_staff else caller.customer_id

    def matches(event: TailEvent) -> bool:
        view = event.view
        return (
            type(event.stored.event) in _ORDER_CHANGE_TYPES
            and isinstance(view, OrderEventView)
            and (request.order_id is None or event.stored.stream_id == request.order_id)
            and (customer_id is None or view.order.customer_id == customer_id)
        )

    async for event in tail.subscribe(matches, after=request.after):
        assert isinstance(event.view, OrderEventView)
        yield OrderChange(
            event.position,
            event.stored.occurred_at,
            _ORDER_CHANGE_TYPES[type(event.stored.event)],
            event.view,
        )


VIEWS: Mapping[str, ViewLoader] = {Order.kind: load_order_event_views}


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
    # Lists show each caller what it may see (visible_to): anonymous callers, nothing.
    ListOrders: anyone,
    CountOrders: anyone,
    FirstOrderPages: anyone,
    # Signed in; which orders a customer sees is the stream handler's filter.
    WatchOrders: signed_in,
}
# What a retry gets back is the order, for a cancel too (which also changes products).
IDEMPOTENT: dict[type, str] = {
    PlaceOrder: Order.kind,
    ConfirmOrder: Order.kind,
    ShipOrder: Order.kind,
    DeliverOrder: Order.kind,
    CancelOrder: Order.kind,
}
# Per caller (the default): which orders a caller sees is part of every answer.
CACHED: dict[type, Cached] = {
    GetOrders: Cached(("orders",), lambda q: q.ids),
    GetOrderLines: Cached(("orders",), lambda q: q.order_ids),
    ListOrders: Cached(("orders",)),
    CountOrders: Cached(("orders",)),
    # Pages by customer: any order placed may change them.
    FirstOrderPages: Cached(("orders",)),
}


def register(
    registry: Registry,
    *,
    read_engine: AsyncEngine,
    tail: EventTail | None = None,
    scan_engine: AsyncEngine | None = None,
    new_id: Callable[[], str] = new_order_id,
) -> None:
    registry.handle(PlaceOrder, partial(place_order, new_id=new_id))
    registry.handle(ConfirmOrder, confirm_order)
    registry.handle(ShipOrder, ship_order)
    registry.handle(DeliverOrder, deliver_order)
    registry.handle(CancelOrder, cancel_order)
    registry.handle(GetOrders, partial(get_orders, read_engine=read_engine))
    registry.handle(GetOrderLines, partial(get_order_lines, read_engine=read_engine))
    # Lists, counts and pages per customer grow with the data (database.create_engine).
    scans = scan_engine or read_engine
    registry.handle(ListOrders, partial(list_orders, read_engine=scans))
    registry.handle(CountOrders, partial(count_orders, read_engine=scans))
    registry.handle(FirstOrderPages, partial(first_order_pages, read_engine=scans))
    if tail is not None:
        registry.stream(WatchOrders, partial(watch_orders, tail=tail))


def _register(registry: Registry, wiring: Wiring) -> None:
    register(
        registry, read_engine=wiring.read_engine, scan_engine=wiring.scan_engine, tail=wiring.tail
    )


FEATURE = Feature(
    "orders",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=_register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(ORDERS,),
    views=VIEWS,
)
