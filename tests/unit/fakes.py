"""In-memory stand-ins for the unit of work and its repositories: real behaviour, no I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from domain.aggregate import Aggregate
from domain.customers import Customer
from domain.errors import VersionConflict
from domain.orders import Order
from domain.products import Product

A = TypeVar("A", bound=Aggregate)


class FakeRepository(Generic[A]):
    """Hands out copies, as a database would: changes count only once committed."""

    def __init__(self, store: dict[str, A]) -> None:
        self._store = store
        self.seen: dict[str, A] = {}

    async def get(self, entity_id: str) -> A | None:
        return (await self.get_many([entity_id])).get(entity_id)

    async def get_many(self, entity_ids: Iterable[str]) -> dict[str, A]:
        found: dict[str, A] = {}
        for entity_id in entity_ids:
            if entity_id not in self.seen and entity_id in self._store:
                self.seen[entity_id] = copy.deepcopy(self._store[entity_id])
            if entity_id in self.seen:
                found[entity_id] = self.seen[entity_id]
        return found

    def add(self, aggregate: A) -> None:
        self.seen[aggregate.id] = aggregate


class FakeProducts(FakeRepository[Product]):
    async def sku_taken(self, sku: str) -> bool:
        return any(p.sku == sku for p in self._store.values())


class FakeCustomers(FakeRepository[Customer]):
    async def email_taken(self, email: str) -> bool:
        return any(c.email == email for c in self._store.values())


class FakeStore:
    """What a database would hold: committed aggregates and the event log."""

    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.customers: dict[str, Customer] = {}
        self.orders: dict[str, Order] = {}
        self.events: list[tuple[str, int, object]] = []
        self.commits = 0


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self.products = FakeProducts(store.products)
        self.customers = FakeCustomers(store.customers)
        self.orders = FakeRepository[Order](store.orders)

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
        stores: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (self._store.customers, self.customers.seen),
            (self._store.orders, self.orders.seen),
            (self._store.products, self.products.seen),
        ]
        changed = [(s, a) for s, seen in stores for a in seen.values() if a.pending_events]
        for store, aggregate in changed:
            current = store.get(aggregate.id)
            if current is not None and current.version != aggregate.stored_version:
                raise VersionConflict(
                    aggregate.kind, aggregate.id, aggregate.stored_version, current.version
                )
        for store, aggregate in changed:
            first = aggregate.stored_version + 1
            self._store.events.extend(
                (aggregate.id, first + i, e) for i, e in enumerate(aggregate.pending_events)
            )
            aggregate.mark_stored()
            store[aggregate.id] = copy.deepcopy(aggregate)
        self._store.commits += 1
        return len(self._store.events)
