"""Customer queries: GetCustomers by id, and the staff's ListCustomers and CountCustomers,
with the customer view they answer and who may see it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Row, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from domain.customers import Preferences
from handlers.access import Identity, identity_of
from handlers.paging import (
    DEFAULT_PAGE_SIZE,
    Slice,
    check_page_size,
    check_search,
    decode_cursor,
    encode_cursor,
)
from mediator import Context, Query
from persistence.tables import customer_summaries


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
    preferences: Preferences | None = None
    """None until the profile exists (a moment after registering)."""


@dataclass(frozen=True, slots=True)
class GetCustomers(Query[dict[str, CustomerView]]):
    """The customers with these ids that the caller may see (staff: all; a customer: itself)."""

    ids: tuple[str, ...]


def may_see_customer(caller: Identity | None, customer_id: str) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == customer_id)


def customer_view(row: Row[tuple[object, ...]]) -> CustomerView:
    c = row._mapping
    opted_in = c["marketing_opt_in"]
    return CustomerView(
        id=c["id"],
        name=c["name"],
        email=c["email"],
        order_count=c["order_count"],
        lifetime_value=c["lifetime_value"],
        currency=c["currency"],
        registered_at=c["registered_at"],
        version=c["version"],
        preferences=None if opted_in is None else Preferences(opted_in, c["language"]),
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


# ---------------------------------------------------------------- lists
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
