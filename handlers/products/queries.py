"""Products: the catalog's views, the queries that read them, and their paging."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, bindparam, false, func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from handlers.paging import (
    CursorKey,
    Page,
    check_page_size,
    check_search,
    decode_amount,
    decode_cursor,
    encode_cursor,
)
from mediator import Context, Query
from persistence.tables import product_catalog


@dataclass(frozen=True, slots=True)
class ProductView:
    id: str
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    stock: int
    version: int
    deleted: bool
    created_at: datetime
    updated_at: datetime


class ProductSort(enum.Enum):
    NAME_ASC = "NAME_ASC"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    NEWEST = "NEWEST"


@dataclass(frozen=True, slots=True)
class GetProducts(Query[dict[str, ProductView]]):
    """The products with these ids, deleted ones included, keyed by id; for DataLoaders."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListProducts(Query[Page[ProductView]]):
    first: int = 20
    after: str | None = None
    search: str | None = None
    in_stock: bool | None = None
    sort: ProductSort = ProductSort.NAME_ASC


def _view(row: Row[tuple[object, ...]]) -> ProductView:
    c = row._mapping
    return ProductView(
        id=c["id"],
        sku=c["sku"],
        name=c["name"],
        description=c["description"],
        price=c["price"],
        currency=c["currency"],
        stock=c["stock"],
        version=c["version"],
        deleted=c["deleted"],
        created_at=c["created_at"],
        updated_at=c["updated_at"],
    )


# Built once: building a statement costs more than SQLite's work for a lookup by id.
_VIEWS_BY_ID = select(product_catalog).where(
    product_catalog.c.id.in_(bindparam("ids", expanding=True))
)


async def load_product_views(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, ProductView]:
    rows = await connection.execute(_VIEWS_BY_ID, {"ids": list(ids)})
    return {row.id: _view(row) for row in rows}


async def get_products(
    query: GetProducts, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, ProductView]:
    ids = [i for i in query.ids if is_possible_id(i)]
    if not ids:
        return {}
    async with read_engine.connect() as connection:
        return await load_product_views(connection, ids)


def _keyset(sort: ProductSort, after: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor's row in `sort` order (ties broken by id)."""
    c = product_catalog.c
    if sort is ProductSort.NEWEST:
        (position,) = decode_cursor(after, sort.value, (int,))
        return c.created_position < position
    if sort is ProductSort.NAME_ASC:
        name, key = decode_cursor(after, sort.value, (str, str))
        return or_(c.name > name, and_(c.name == name, c.id > key))
    price_text, key = decode_cursor(after, sort.value, (str, str))
    price = decode_amount(price_text)
    if sort is ProductSort.PRICE_ASC:
        return or_(c.price > price, and_(c.price == price, c.id > key))
    return or_(c.price < price, and_(c.price == price, c.id > key))


def _cursor(sort: ProductSort, view: ProductView, created_position: int) -> str:
    key: CursorKey
    if sort is ProductSort.NEWEST:
        key = [created_position]
    elif sort is ProductSort.NAME_ASC:
        key = [view.name, view.id]
    else:
        key = [str(view.price), view.id]
    return encode_cursor(sort.value, key)


_ORDER = {
    ProductSort.NAME_ASC: (product_catalog.c.name.asc(), product_catalog.c.id.asc()),
    ProductSort.PRICE_ASC: (product_catalog.c.price.asc(), product_catalog.c.id.asc()),
    ProductSort.PRICE_DESC: (product_catalog.c.price.desc(), product_catalog.c.id.asc()),
    ProductSort.NEWEST: (product_catalog.c.created_position.desc(),),
}


def _like_pattern(search: str) -> str:
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_products(
    query: ListProducts, ctx: Context, *, read_engine: AsyncEngine
) -> Page[ProductView]:
    check_page_size(query.first)
    check_search(query.search)
    c = product_catalog.c
    filters: list[ColumnElement[bool]] = [c.deleted == false()]
    if query.search and query.search.strip():
        filters.append(c.search_text.like(_like_pattern(query.search.strip()), escape="\\"))
    if query.in_stock is True:
        filters.append(c.stock > 0)
    elif query.in_stock is False:
        filters.append(c.stock == 0)
    page_filters = list(filters)
    if query.after is not None:
        page_filters.append(_keyset(query.sort, query.after))
    rows_query = (
        select(product_catalog)
        .where(*page_filters)
        .order_by(*_ORDER[query.sort])
        .limit(query.first + 1)
    )
    count_query = select(func.count()).select_from(product_catalog).where(*filters)
    async with read_engine.connect() as connection:
        rows = (await connection.execute(rows_query)).all()
        total = (await connection.execute(count_query)).scalar_one()
    items = [(_cursor(query.sort, _view(row), row.created_position), _view(row)) for row in rows]
    return Page(
        items=items[: query.first],
        has_next_page=len(items) > query.first,
        has_previous_page=query.after is not None,
        total_count=total,
    )
