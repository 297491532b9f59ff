"""Customers: registering, reading, and the customer summaries read model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.networks import validate_email
from sqlalchemy import ColumnElement, Row, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from domain.customers import (
    AN_EMAIL_ADDRESS,
    CUSTOMER_EVENTS,
    EMAIL_TOO_LONG,
    MAX_EMAIL,
    MAX_NAME,
    NAME_REQUIRED,
    NAME_TOO_LONG,
    Customer,
    CustomerRegistered,
)
from domain.orders import OrderPlaced, OrderWithdrawn
from handlers.access import Identity, Policy, anyone, identity_of, staff
from handlers.feature import Feature, Wiring
from handlers.idempotency import IdempotencyKey
from handlers.paging import (
    DEFAULT_PAGE_SIZE,
    Slice,
    check_page_size,
    check_search,
    decode_cursor,
    encode_cursor,
)
from handlers.query_cache import Cached
from handlers.transaction import writes
from handlers.validation import Says
from handlers.written import Written
from mediator import Command, Context, Query, Registry
from persistence.customers import email_taken
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import customer_summaries
from persistence.unit_of_work import UnitOfWork

# ---------------------------------------------------------------- commands


def _email_address(text: str) -> str:
    validate_email(text)
    return text


# The length first: the address parser would report its own, larger limit.
EmailAddress = Annotated[
    str,
    Field(max_length=MAX_EMAIL),
    AfterValidator(_email_address),
    Says(max_length=EMAIL_TOO_LONG, invalid=AN_EMAIL_ADDRESS),
]


@dataclass(frozen=True, slots=True)
class RegisterCustomer(Command[Written]):
    name: Annotated[
        str,
        Field(min_length=1, max_length=MAX_NAME),
        Says(min_length=NAME_REQUIRED, max_length=NAME_TOO_LONG),
    ]
    email: EmailAddress
    idempotency_key: IdempotencyKey = None


async def register_customer(
    command: RegisterCustomer, ctx: Context, work: UnitOfWork, *, new_id: Callable[[], str]
) -> Written:
    customer = Customer.register(new_id(), name=command.name, email=command.email)
    if await work.customers.email_taken(customer.email):
        raise email_taken()
    work.customers.add(customer)
    return Written.of(customer)


# ---------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: str
    name: str
    email: str
    order_count: int
    lifetime_value: Decimal
    currency: str
    registered_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class GetCustomers(Query[dict[str, CustomerView]]):
    """The customers with these ids that the caller may see (staff: all; a customer: itself)."""

    ids: tuple[str, ...]


def may_see_customer(caller: Identity | None, customer_id: str) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == customer_id)


def customer_view(row: Row[tuple[object, ...]]) -> CustomerView:
    c = row._mapping
    return CustomerView(
        id=c["id"],
        name=c["name"],
        email=c["email"],
        order_count=c["order_count"],
        lifetime_value=c["lifetime_value"],
        currency=c["currency"],
        registered_at=c["registered_at"],
        version=c["version"],
    )


_VIEWS_BY_ID = select(customer_summaries).where(
    customer_summaries.c.id.in_(bindparam("ids", expanding=True))
)


async def load_customer_views(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, CustomerView]:
    rows = await connection.execute(_VIEWS_BY_ID, {"ids": list(ids)})
    return {row.id: customer_view(row) for row in rows}


async def get_customers(
    query: GetCustomers, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, CustomerView]:
    caller = identity_of(ctx)
    visible = [i for i in query.ids if may_see_customer(caller, i) and is_possible_id(i)]
    if not visible:
        return {}
    async with read_engine.connect() as connection:
        return await load_customer_views(connection, visible)


# ---------------------------------------------------------------- queries: lists
#
# Staff only: a customer reads itself through `me` or `customer(id)`. Keyset pages in
# (name, id) order, served by ix_customer_summaries_name_id; the total is counted apart.


@dataclass(frozen=True, slots=True)
class ListCustomers(Query[Slice[CustomerView]]):
    """A page of customers by name; `search` matches name or email, case-insensitively."""

    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class CountCustomers(Query[int]):
    """How many customers a ListCustomers with this search walks through."""

    search: str | None = None


_CUSTOMERS_CURSOR = "customers.NAME"


def _customer_search(search: str | None) -> list[ColumnElement[bool]]:
    check_search(search)
    if not (search and search.strip()):
        return []
    escaped = search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [customer_summaries.c.search_text.like(f"%{escaped}%", escape="\\")]


async def list_customers(
    query: ListCustomers, ctx: Context, *, read_engine: AsyncEngine
) -> Slice[CustomerView]:
    check_page_size(query.first)
    c = customer_summaries.c
    conditions = _customer_search(query.search)
    if query.after is not None:
        name, key = decode_cursor(query.after, _CUSTOMERS_CURSOR, (str, str))
        conditions.append(or_(c.name > name, and_(c.name == name, c.id > key)))
    statement = (
        select(customer_summaries).where(*conditions).order_by(c.name, c.id).limit(query.first + 1)
    )
    async with read_engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    items = [
        (encode_cursor(_CUSTOMERS_CURSOR, [row.name, row.id]), customer_view(row)) for row in rows
    ]
    return Slice(
        items=items[: query.first],
        has_next_page=len(items) > query.first,
        has_previous_page=query.after is not None,
    )


async def count_customers(query: CountCustomers, ctx: Context, *, read_engine: AsyncEngine) -> int:
    statement = (
        select(func.count()).select_from(customer_summaries).where(*_customer_search(query.search))
    )
    async with read_engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


# ---------------------------------------------------------------- read model


_c = customer_summaries.c
_ORDER_COUNTED = (
    update(customer_summaries)
    .where(_c.id == bindparam("b_id"))
    .values(
        order_count=_c.order_count + 1,
        # The first order fixes the currency lifetime value is counted in; orders in
        # another currency count as orders, not as value (no rates are known here).
        lifetime_value=case(
            (
                or_(_c.currency == "", _c.currency == bindparam("b_currency")),
                _c.lifetime_value + bindparam("b_total", type_=_c.lifetime_value.type),
            ),
            else_=_c.lifetime_value,
        ),
        currency=case(
            (_c.currency == "", bindparam("b_currency", type_=_c.currency.type)),
            else_=_c.currency,
        ),
    )
)
"""Every order placed, built once (it is the commonest change to a customer)."""


async def project_customer_summaries(connection: AsyncConnection, stored: StoredEvent) -> None:
    event = stored.event
    c = customer_summaries.c
    if isinstance(event, CustomerRegistered):
        await connection.execute(
            insert(customer_summaries).values(
                id=event.customer_id,
                name=event.name,
                email=event.email,
                search_text=f"{event.name}\n{event.email}".lower(),
                order_count=0,
                lifetime_value=Decimal(0),
                currency="",
                registered_at=stored.occurred_at,
                registered_position=stored.position,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )
    elif isinstance(event, OrderPlaced):
        await connection.execute(
            _ORDER_COUNTED,
            {
                "b_id": event.customer_id,
                "b_currency": event.currency,
                "b_total": event.total,
                "last_position": stored.position,
            },
        )
    elif isinstance(event, OrderWithdrawn):
        await connection.execute(
            update(customer_summaries)
            .where(c.id == event.customer_id, c.currency == event.currency)
            .values(lifetime_value=c.lifetime_value - event.total, last_position=stored.position)
        )


def customer_rows_touched(stored: StoredEvent) -> list[str]:
    event = stored.event
    if isinstance(event, CustomerRegistered):
        return [event.customer_id]
    if isinstance(event, OrderPlaced | OrderWithdrawn):
        return [event.customer_id]
    return []


CUSTOMER_SUMMARIES = Projection(
    "customer_summaries",
    project_customer_summaries,
    (customer_summaries,),
    customer_rows_touched,
)


# ---------------------------------------------------------------- wiring


EVENT_TYPES = CUSTOMER_EVENTS
POLICIES: dict[type, Policy] = {
    RegisterCustomer: anyone,
    GetCustomers: anyone,
    # Others are refused with a GraphQL error (UNAUTHENTICATED or FORBIDDEN), not shown an
    # empty list: an empty list would read as "there are no customers".
    ListCustomers: staff,
    CountCustomers: staff,
}
IDEMPOTENT: dict[type, str] = {RegisterCustomer: Customer.kind}
# Per caller (the default): a customer sees itself only.
CACHED: dict[type, Cached] = {
    GetCustomers: Cached(("customer_summaries",), lambda q: q.ids),
    ListCustomers: Cached(("customer_summaries",)),
    CountCustomers: Cached(("customer_summaries",)),
}


def register(registry: Registry, wiring: Wiring) -> None:
    new_id = partial(wiring.ids, Customer.kind)
    registry.handle(RegisterCustomer, writes(partial(register_customer, new_id=new_id)))
    registry.handle(GetCustomers, partial(get_customers, read_engine=wiring.read_engine))
    # Lists, counts and searches grow with the data (database.create_engine).
    scans = wiring.scan_engine
    registry.handle(ListCustomers, partial(list_customers, read_engine=scans))
    registry.handle(CountCustomers, partial(count_customers, read_engine=scans))


FEATURE = Feature(
    "customers",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(CUSTOMER_SUMMARIES,),
)
