"""Shared by the read-side tests: a shop seeded through the real API, a log of the SQL
statements the served app runs, and reads of the catalog made to fail."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.event_log import StoredEvent
from persistence.projector import Projection
from tests.graphql_client import JSON, GraphQLClient
from tests.served import Served


async def _take_three_seconds_per_product(_: AsyncConnection, stored: StoredEvent) -> None:
    if stored.event_type == "ProductCreated":
        await asyncio.sleep(3)


SLOW_READ_MODEL = Projection("slow", _take_three_seconds_per_product)
"""A read model that takes 3 s over each new product: a createProduct then waits that long
for its read-your-writes, which is what the execution timeout tests cut short."""

REGISTER = """mutation($input: RegisterCustomerInput!) {
    registerCustomer(input: $input) {
        __typename
        ... on Error { message }
        ... on RegisterCustomerSuccess { accessToken customer { id name } }
    }
}"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) {
    createProduct(input: $input) {
        __typename
        ... on Error { message }
        ... on CreateProductSuccess { product { id } }
    }
}"""
PLACE_ORDER = """mutation($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
        __typename
        ... on Error { message }
        ... on PlaceOrderSuccess { order { id status total { amount } placedAt } }
    }
}"""
CANCEL_ORDER = """mutation($input: CancelOrderInput!) {
    cancelOrder(input: $input) { __typename ... on Error { message } }
}"""
CONFIRM_ORDER = """mutation($input: ChangeOrderInput!) {
    confirmOrder(input: $input) { __typename ... on Error { message } }
}"""
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


@dataclass(frozen=True)
class Shopper:
    id: str
    name: str
    token: str


async def register(client: GraphQLClient, name: str) -> Shopper:
    email = f"{name.lower().replace(' ', '.')}@example.com"
    result = (await client.execute(REGISTER, {"input": {"name": name, "email": email}}))[
        "registerCustomer"
    ]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    return Shopper(result["customer"]["id"], name, result["accessToken"])


async def create_product(client: GraphQLClient, sku: str, price: str) -> str:
    values = {"sku": sku, "name": f"Product {sku}", "price": price, "stock": 100_000}
    result = (await client.execute(CREATE_PRODUCT, {"input": values}))["createProduct"]
    assert result["__typename"] == "CreateProductSuccess", result
    product_id: str = result["product"]["id"]
    return product_id


async def place_order(
    client: GraphQLClient, customer_id: str, lines: Iterable[tuple[str, int]]
) -> JSON:
    """Placed by staff on the customer's behalf; returns the order as the payload shows it."""
    payload = {
        "customerId": customer_id,
        "lines": [{"productId": product, "quantity": quantity} for product, quantity in lines],
        "shippingAddress": ADDRESS,
    }
    result = (await client.execute(PLACE_ORDER, {"input": payload}))["placeOrder"]
    assert result["__typename"] == "PlaceOrderSuccess", result
    order: JSON = result["order"]
    return order


@dataclass
class Shop:
    customers: list[Shopper]
    products: list[str]
    orders: list[JSON] = field(default_factory=list)


async def seed_shop(
    client: GraphQLClient, *, customers: int, orders: int, products: int = 5
) -> Shop:
    """`customers` customers and `orders` orders of two lines each, spread over them in
    turn; a few requests at a time, as SQLite takes one writer at a time anyway."""
    shop = Shop(
        customers=list(
            await asyncio.gather(*(register(client, f"Customer {n:03}") for n in range(customers)))
        ),
        products=[await create_product(client, f"P-{n}", f"{n + 1}.25") for n in range(products)],
    )
    limit = asyncio.Semaphore(4)

    async def one(n: int) -> JSON:
        async with limit:
            lines = [
                (shop.products[n % products], 1 + n % 3),
                (shop.products[(n + 1) % products], 1),
            ]
            return await place_order(client, shop.customers[n % customers].id, lines)

    shop.orders = list(await asyncio.gather(*(one(n) for n in range(orders))))
    return shop


# Statements that are the app's own business whatever is queried: following the event log
# and keeping checkpoints (the projector and the event tail poll), the workers' looks for
# due work (the webhook courier), and transaction control.
_BACKGROUND = ("event_log", "projection_checkpoints", "alembic_version", "webhook_deliveries")
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")


class StatementLog:
    """Every SQL statement the engines run, as SQLAlchemy's cursor-execute event sees it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statements: list[str] = []

    def _record(self, *args: Any) -> None:
        statement: str = args[2]
        with self._lock:
            self._statements.append(statement)

    @contextmanager
    def watching(self, engines: Iterable[AsyncEngine]) -> Iterator[None]:
        distinct = {id(engine.sync_engine): engine.sync_engine for engine in engines}
        for engine in distinct.values():
            event.listen(engine, "before_cursor_execute", self._record)
        try:
            yield
        finally:
            for engine in distinct.values():
                event.remove(engine, "before_cursor_execute", self._record)

    async def settle(self, quiet: float = 0.3, *, give_up_after: float = 10) -> None:
        """Wait until the app has made no query for `quiet` seconds: work that follows the
        last write (the event tail loading what subscribers would see) must not be counted
        against the next request."""
        async with asyncio.timeout(give_up_after):
            while True:
                self.clear()
                await asyncio.sleep(quiet)
                if not self.queries():
                    return

    def clear(self) -> None:
        with self._lock:
            self._statements.clear()

    def queries(self) -> list[str]:
        """The statements a request made: not transaction control, not background polls."""
        with self._lock:
            return [
                s
                for s in self._statements
                if not s.lstrip().upper().startswith(_CONTROL)
                and not any(table in s for table in _BACKGROUND)
            ]


@contextmanager
def catalog_reads_failing(served: Served) -> Iterator[None]:
    """Every read of the product catalog fails, as with a connection cut mid-request."""
    lock = threading.Lock()

    def fail(*args: Any) -> None:
        statement: str = args[2]
        with lock:
            if statement.lstrip().upper().startswith("SELECT") and "product_catalog" in statement:
                raise OperationalError(statement, {}, Exception("the connection was terminated"))

    engine = served.services.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail)
