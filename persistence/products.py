"""Where products are kept on the write side."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.errors import FieldIssue, ValidationFailed, VersionConflict
from domain.money import Money
from domain.products import Product
from persistence.repository import SqlRepository
from persistence.tables import products


class ProductRepository(Protocol):
    async def get(self, product_id: str) -> Product | None: ...

    async def sku_taken(self, sku: str) -> bool: ...

    def add(self, product: Product) -> None: ...


def sku_taken() -> ValidationFailed:
    return ValidationFailed([FieldIssue(("sku",), "is already used by another product")])


class SqlProductRepository(SqlRepository[Product]):
    async def get(self, product_id: str) -> Product | None:
        if product_id in self._seen:
            return self._seen[product_id]
        query = select(products).where(products.c.id == product_id)
        if self._locks_rows:
            query = query.with_for_update()
        row = (await self._connection.execute(query)).one_or_none()
        if row is None:
            return None
        return self._track(
            Product(
                row.id,
                sku=row.sku,
                name=row.name,
                description=row.description,
                price=Money(row.price, row.currency),
                stock=row.stock,
                deleted=row.deleted,
                version=row.version,
            )
        )

    async def sku_taken(self, sku: str) -> bool:
        query = select(products.c.id).where(products.c.sku == sku)
        return (await self._connection.execute(query)).first() is not None

    async def save(self, aggregate: Product) -> None:
        values: dict[str, Any] = {
            "name": aggregate.name,
            "description": aggregate.description,
            "price": aggregate.price.amount,
            "currency": aggregate.price.currency,
            "stock": aggregate.stock,
            "deleted": aggregate.deleted,
            "version": aggregate.version,
        }
        if aggregate.stored_version == 0:
            try:
                await self._connection.execute(
                    insert(products).values(id=aggregate.id, sku=aggregate.sku, **values)
                )
            except IntegrityError as error:
                # Two products created with one sku at once: the later insert loses here.
                if "sku" in str(error.orig):
                    raise sku_taken() from None
                raise
            return
        result = await self._connection.execute(
            update(products)
            .where(products.c.id == aggregate.id, products.c.version == aggregate.stored_version)
            .values(**values)
        )
        if result.rowcount == 0:
            actual = await self._connection.scalar(
                select(products.c.version).where(products.c.id == aggregate.id)
            )
            raise VersionConflict(
                aggregate.kind, aggregate.id, aggregate.stored_version, actual or 0
            )
