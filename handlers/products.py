"""Products: the catalog's commands, queries, subscription stream and read model."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import is_possible_id
from domain.errors import NotFound
from domain.products import (
    PRODUCT_EVENTS,
    Product,
    ProductCreated,
    ProductDeleted,
    ProductRestocked,
    ProductUpdated,
    StockReleased,
    StockReserved,
)
from handlers.access import Policy, anyone, identity_of, staff
from handlers.feature import Feature, Wiring
from handlers.idempotency import IdempotencyKey
from handlers.paging import (
    CursorKey,
    Page,
    check_page_size,
    check_search,
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
from persistence.products import sku_taken
from persistence.projector import Projection
from persistence.tables import product_catalog

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class CreateProduct(Command[Written]):
    sku: str
    name: str
    price: Decimal
    currency: str = "USD"
    description: str = ""
    stock: int = 0
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class UpdateProduct(Command[Written]):
    """Changes the given fields; None leaves a field as it is."""

    product_id: str
    expected_version: int | None = None
    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class RestockProduct(Command[Written]):
    product_id: str
    quantity: int
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class DeleteProduct(Command[Written]):
    product_id: str
    expected_version: int | None = None


async def create_product(
    command: CreateProduct, ctx: Context, *, new_id: Callable[[], str]
) -> Written:
    work = unit_of_work(ctx)
    product = Product.create(
        new_id(),
        sku=command.sku,
        name=command.name,
        description=command.description,
        price=command.price,
        currency=command.currency,
        stock=command.stock,
    )
    if await work.products.sku_taken(product.sku):
        raise sku_taken()
    work.products.add(product)
    return Written.of(product)


async def _change_product(
    product_id: str,
    expected_version: int | None,
    change: Callable[[Product], None],
    ctx: Context,
) -> Written:
    product = await unit_of_work(ctx).products.get(product_id)
    if product is None:
        raise NotFound(Product.kind, product_id)
    product.ensure_exists()
    product.check_version(expected_version)
    change(product)
    return Written.of(product)


async def update_product(command: UpdateProduct, ctx: Context) -> Written:
    def change(product: Product) -> None:
        product.update(
            name=command.name,
            description=command.description,
            price=command.price,
            currency=command.currency,
        )

    return await _change_product(command.product_id, command.expected_version, change, ctx)


async def restock_product(command: RestockProduct, ctx: Context) -> Written:
    def change(product: Product) -> None:
        product.restock(command.quantity)

    return await _change_product(command.product_id, command.expected_version, change, ctx)


async def delete_product(command: DeleteProduct, ctx: Context) -> Written:
    return await _change_product(command.product_id, command.expected_version, Product.delete, ctx)


# ---------------------------------------------------------------- queries


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


# ---------------------------------------------------------------- subscription


class ProductChangeType(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    RESTOCKED = "RESTOCKED"
    DELETED = "DELETED"


_CHANGE_TYPES = {
    ProductCreated: ProductChangeType.CREATED,
    ProductUpdated: ProductChangeType.UPDATED,
    # Stock taken or given back by orders changes the product as clients see it.
    StockReserved: ProductChangeType.UPDATED,
    StockReleased: ProductChangeType.UPDATED,
    ProductRestocked: ProductChangeType.RESTOCKED,
    ProductDeleted: ProductChangeType.DELETED,
}


@dataclass(frozen=True, slots=True)
class ProductChange:
    position: int
    occurred_at: datetime
    type: ProductChangeType
    product: ProductView


@dataclass(frozen=True, slots=True)
class WatchProducts(StreamRequest[ProductChange]):
    """Product events, live, for one product or all; `after` replays from that position first."""

    product_id: str | None = None
    after: int | None = None


# Each names an order and the quantity it took or gave back: who buys what, and when.
_STOCK_MOVES = frozenset({StockReserved, StockReleased})


async def watch_products(
    request: WatchProducts, ctx: Context, *, tail: EventTail, public_stock_events: bool = True
) -> AsyncIterator[ProductChange]:
    """With `public_stock_events` off, only staff see the stock orders move; everyone still
    sees the catalog's own changes (restocks included: the shop's doing, not a customer's),
    and every product view still shows the stock level, as the product queries do."""
    caller = identity_of(ctx)
    wanted = (
        set(_CHANGE_TYPES)
        if public_stock_events or (caller is not None and caller.is_staff)
        else set(_CHANGE_TYPES) - _STOCK_MOVES
    )

    def matches(event: TailEvent) -> bool:
        return type(event.stored.event) in wanted and (
            request.product_id is None or event.stored.stream_id == request.product_id
        )

    async for event in tail.subscribe(matches, after=request.after):
        if isinstance(event.view, ProductView):
            yield ProductChange(
                event.position,
                event.stored.occurred_at,
                _CHANGE_TYPES[type(event.stored.event)],
                event.view,
            )


# ---------------------------------------------------------------- read model


_CATALOG_ROW_UPDATE = update(product_catalog).where(product_catalog.c.id == bindparam("b_id"))


async def project_product_catalog(connection: AsyncConnection, stored: StoredEvent) -> None:
    event = stored.event
    c = product_catalog.c
    row = c.id == stored.stream_id
    bookkeeping = {
        "version": stored.stream_version,
        "updated_at": stored.occurred_at,
        "last_position": stored.position,
    }
    if isinstance(event, ProductCreated):
        await connection.execute(
            insert(product_catalog).values(
                id=event.product_id,
                sku=event.sku,
                name=event.name,
                search_text=f"{event.name}\n{event.sku}".lower(),
                description=event.description,
                price=event.price,
                currency=event.currency,
                stock=event.stock,
                deleted=False,
                created_at=stored.occurred_at,
                created_position=stored.position,
                **bookkeeping,
            )
        )
    elif isinstance(event, ProductUpdated):
        sku = await connection.scalar(select(c.sku).where(row))
        await connection.execute(
            update(product_catalog)
            .where(row)
            .values(
                name=event.name,
                search_text=f"{event.name}\n{sku}".lower(),
                description=event.description,
                price=event.price,
                currency=event.currency,
                **bookkeeping,
            )
        )
    elif isinstance(event, ProductRestocked | StockReserved | StockReleased):
        # The commonest event by far (every order line): a statement built once.
        await connection.execute(
            _CATALOG_ROW_UPDATE, {"b_id": stored.stream_id, "stock": event.stock, **bookkeeping}
        )
    elif isinstance(event, ProductDeleted):
        await connection.execute(
            update(product_catalog).where(row).values(deleted=true(), **bookkeeping)
        )


_CATALOG_EVENTS = (
    ProductCreated,
    ProductUpdated,
    ProductRestocked,
    StockReserved,
    StockReleased,
    ProductDeleted,
)


def catalog_rows_touched(stored: StoredEvent) -> list[str]:
    return [stored.stream_id] if isinstance(stored.event, _CATALOG_EVENTS) else []


PRODUCT_CATALOG = Projection(
    "product_catalog", project_product_catalog, (product_catalog,), catalog_rows_touched
)


# ---------------------------------------------------------------- wiring


def new_product_id() -> str:
    return uuid.uuid4().hex


def register(
    registry: Registry,
    *,
    read_engine: AsyncEngine,
    tail: EventTail | None = None,
    scan_engine: AsyncEngine | None = None,
    new_id: Callable[[], str] = new_product_id,
    public_stock_events: bool = True,
) -> None:
    registry.handle(CreateProduct, partial(create_product, new_id=new_id))
    registry.handle(UpdateProduct, update_product)
    registry.handle(RestockProduct, restock_product)
    registry.handle(DeleteProduct, delete_product)
    registry.handle(GetProducts, partial(get_products, read_engine=read_engine))
    # Lists count and search: reads whose cost grows with the data (database.create_engine).
    scans = scan_engine or read_engine
    registry.handle(ListProducts, partial(list_products, read_engine=scans))
    if tail is not None:
        registry.stream(
            WatchProducts,
            partial(watch_products, tail=tail, public_stock_events=public_stock_events),
        )


EVENT_TYPES = PRODUCT_EVENTS
POLICIES: dict[type, Policy] = {
    CreateProduct: staff,
    UpdateProduct: staff,
    RestockProduct: staff,
    DeleteProduct: staff,
    GetProducts: anyone,
    ListProducts: anyone,
    WatchProducts: anyone,
}
# Not DeleteProduct: deleting again changes nothing (it is NotFound), so a retry is harmless.
IDEMPOTENT: dict[type, str] = {
    CreateProduct: Product.kind,
    UpdateProduct: Product.kind,
    RestockProduct: Product.kind,
}
VIEWS: Mapping[str, ViewLoader] = {Product.kind: load_product_views}
# The catalog reads the same for every caller.
CACHED: dict[type, Cached] = {
    GetProducts: Cached(("product_catalog",), lambda q: q.ids, per_caller=False),
    ListProducts: Cached(("product_catalog",), per_caller=False),
}


def _register(registry: Registry, wiring: Wiring) -> None:
    register(
        registry,
        read_engine=wiring.read_engine,
        scan_engine=wiring.scan_engine,
        tail=wiring.tail,
        public_stock_events=wiring.public_stock_events,
    )


FEATURE = Feature(
    "products",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=_register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(PRODUCT_CATALOG,),
    views=VIEWS,
)
