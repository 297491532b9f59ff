"""Products: the product_catalog projection, the read model the queries read."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.products import (
    ProductCreated,
    ProductDeleted,
    ProductRestocked,
    ProductUpdated,
    StockReleased,
    StockReserved,
)
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import product_catalog

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
