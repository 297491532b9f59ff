"""Where products are kept on the write side."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from domain.errors import FieldIssue, ValidationFailed
from domain.money import Money
from domain.products import Product
from persistence.database import violates_unique
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import products


class ProductRepository(Protocol):
    async def get(self, product_id: str) -> Product | None: ...

    async def get_many(self, product_ids: Iterable[str]) -> dict[str, Product]:
        """The products that exist among these, keyed by id (deleted ones included)."""
        ...

    async def sku_taken(self, sku: str) -> bool: ...

    def add(self, product: Product) -> None: ...


def sku_taken() -> ValidationFailed:
    return ValidationFailed([FieldIssue(("sku",), "is already used by another product")])


_BY_IDS = (
    select(products)
    .where(products.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(products.c.id)
)
_SKU = select(products.c.id).where(products.c.sku == bindparam("sku"))


class SqlProductRepository(SqlRepository[Product]):
    table = products
    updating = versioned_update(products)

    async def get(self, product_id: str) -> Product | None:
        return (await self.get_many([product_id])).get(product_id)

    async def get_many(self, product_ids: Iterable[str]) -> dict[str, Product]:
        """Load (and on PostgreSQL lock) the products, in id order.

        Stock is reserved by reading and then writing product rows. On PostgreSQL the
        rows are locked FOR UPDATE as they are read, so a concurrent order for the same
        product waits here until this transaction ends and then reads the stock it left;
        locking in id order means two orders that share products cannot deadlock. On
        SQLite the write transaction began with BEGIN IMMEDIATE (see
        persistence.database), so no other writer runs until this one commits.
        """
        wanted = sorted(set(product_ids))
        found = {i: self._seen[i] for i in wanted if i in self._seen}
        missing = [i for i in wanted if i not in found]
        if missing:
            query = _BY_IDS.with_for_update() if self._locks_rows else _BY_IDS
            for row in await self._connection.execute(query, {"ids": missing}):
                found[row.id] = self._track(
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
        return found

    async def sku_taken(self, sku: str) -> bool:
        return (await self._connection.execute(_SKU, {"sku": sku})).first() is not None

    async def save(self, aggregate: Product) -> None:
        values: dict[str, Any] = {
            "name": aggregate.name,
            "description": aggregate.description,
            "price": aggregate.price.amount,
            "currency": aggregate.price.currency,
            "stock": aggregate.stock,
            "deleted": aggregate.deleted,
        }
        if aggregate.stored_version == 0:
            try:
                await self._connection.execute(
                    insert(products),
                    {"id": aggregate.id, "sku": aggregate.sku, "version": aggregate.version}
                    | values,
                )
            except IntegrityError as error:
                # Two products created with one sku at once: the later insert loses here.
                if violates_unique(error, "products", "sku"):
                    raise sku_taken() from None
                raise
            return
        await self._update(aggregate, values)
