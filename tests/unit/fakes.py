"""In-memory stand-ins for the unit of work and its repositories: real behaviour, no I/O."""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Self

from domain.aggregate import Aggregate
from domain.errors import VersionConflict
from domain.products import Product


class FakeProductRepository:
    def __init__(self, store: dict[str, Product]) -> None:
        self._store = store
        self.seen: dict[str, Product] = {}

    async def get(self, product_id: str) -> Product | None:
        if product_id in self.seen:
            return self.seen[product_id]
        stored = self._store.get(product_id)
        if stored is None:
            return None
        # A copy, as a database would hand out: changes count only once committed.
        product = copy.deepcopy(stored)
        self.seen[product_id] = product
        return product

    async def sku_taken(self, sku: str) -> bool:
        return any(p.sku == sku for p in self._store.values())

    def add(self, product: Product) -> None:
        self.seen[product.id] = product


class FakeStore:
    """What a database would hold: committed products and the event log."""

    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.events: list[tuple[str, int, object]] = []
        self.commits = 0


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, correlation_id: str) -> None:
        self._store = store
        self.correlation_id = correlation_id
        self.products = FakeProductRepository(store.products)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> int:
        changed: list[Aggregate] = [p for p in self.products.seen.values() if p.pending_events]
        for aggregate in changed:
            current = self._store.products.get(aggregate.id)
            if current is not None and current.version != aggregate.stored_version:
                raise VersionConflict(
                    aggregate.kind, aggregate.id, aggregate.stored_version, current.version
                )
        for aggregate in changed:
            first = aggregate.stored_version + 1
            self._store.events.extend(
                (aggregate.id, first + i, e) for i, e in enumerate(aggregate.pending_events)
            )
            aggregate.mark_stored()
            assert isinstance(aggregate, Product)
            self._store.products[aggregate.id] = copy.deepcopy(aggregate)
        self._store.commits += 1
        return len(self._store.events)
