"""How much one page of orders costs as the shop grows: the read side must not slow down.

Run: ``python benchmarks/read_queries.py`` (or ``--orders 10000 1000000 --runs 30``).
For each size it builds a fresh SQLite database, seeds the read models directly in bulk
(customers, products, orders of two lines each; the event log stays empty, as this measures
the read side only), then times ``orders(first: 20)`` with each order's customer and lines
and each line's product, through the real schema, mediator and DataLoaders, as staff. It
prints the median latency of each size and the ratio of the largest to the smallest; the
target is at most 1.3.
"""

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ first on sys.path; the repository root goes there.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from pydantic import SecretStr  # noqa: E402

from handlers.access import Identity, Role  # noqa: E402
from mediator import Context  # noqa: E402
from orderdesk.bootstrap import Services, bootstrap  # noqa: E402
from orderdesk.settings import Settings  # noqa: E402
from schema.context import Loaders, RequestContext  # noqa: E402
from schema.root import build_schema  # noqa: E402

QUERY = """{
    orders(first: 20) {
        pageInfo { hasNextPage endCursor }
        edges { node {
            id status total { amount currency } placedAt
            customer { name email }
            lines { productName quantity lineTotal { amount } product { name price { amount } } }
        } }
    }
}"""
TARGET_RATIO = 1.3
PRODUCTS = 50
BATCH = 20_000
SCALE = 10_000  # ScaledDecimal stores amounts as integer 1/10,000ths
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """A UtcDateTime as SQLAlchemy stores it in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(path: Path, orders: int) -> None:
    """Bulk rows in one transaction, indexes dropped during the load and built after it (one
    sort each instead of a million random inserts)."""
    customers = max(100, orders // 100)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('order_summaries', 'order_lines', 'customer_summaries')"
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    now = stamp(EPOCH)
    db.executemany(
        "INSERT INTO product_catalog VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                f"p{n:05}",
                f"SKU-{n}",
                f"Product {n}",
                f"product {n}\nsku-{n}",
                "",
                (n + 1) * SCALE,
                "USD",
                1000,
                0,
                1,
                now,
                now,
                n + 1,
                n + 1,
            )
            for n in range(PRODUCTS)
        ],
    )
    for batch in batches(
        (
            f"c{n:08}",
            f"Customer {n}",
            f"c{n}@example.com",
            f"customer {n}\nc{n}@example.com",
            orders // customers,
            0,
            "USD",
            now,
            PRODUCTS + n + 1,
            1,
            PRODUCTS + n + 1,
        )
        for n in range(customers)
    ):
        db.executemany("INSERT INTO customer_summaries VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
    first_position = PRODUCTS + customers + 1
    statuses = ("PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED")

    def order_rows() -> Iterator[tuple[Any, ...]]:
        for n in range(orders):
            customer = n % customers
            placed = stamp(EPOCH + timedelta(seconds=n))
            total = ((n % PRODUCTS) + 1 + ((n + 1) % PRODUCTS) + 1) * SCALE
            position = first_position + n
            yield (
                f"o{n:010}",
                f"c{customer:08}",
                statuses[n % 5],
                2,
                total,
                "USD",
                "1 Main St",
                "Springfield",
                "",
                "12345",
                "US",
                "",
                placed,
                placed,
                1,
                position,
                position,
            )

    for batch in batches(order_rows()):
        db.executemany(
            "INSERT INTO order_summaries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch
        )

    def line_rows() -> Iterator[tuple[Any, ...]]:
        for n in range(orders):
            for number, product in enumerate((n % PRODUCTS, (n + 1) % PRODUCTS)):
                price = (product + 1) * SCALE
                yield (
                    f"o{n:010}",
                    number,
                    f"p{product:05}",
                    f"Product {product}",
                    price,
                    1,
                    price,
                    "USD",
                )

    for batch in batches(line_rows()):
        db.executemany("INSERT INTO order_lines VALUES (?,?,?,?,?,?,?,?)", batch)
    for _name, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


async def measure(services: Services, runs: int) -> float:
    """Median milliseconds of one request: a fresh context and DataLoaders each time."""
    schema = build_schema()
    staff = Identity("bench", Role.STAFF)

    def context() -> RequestContext:
        ctx = Context(correlation_id="bench", identity=staff)
        return RequestContext(
            mediator=services.mediator,
            ctx=ctx,
            request_loaders=Loaders(services.mediator, ctx),
            issue_customer_token=services.tokens.issue_for_customer,
        )

    timings = []
    for run in range(runs + 3):
        started = time.perf_counter()
        result = await schema.execute(QUERY, context_value=context())
        elapsed = time.perf_counter() - started
        assert result.errors is None, result.errors
        assert result.data is not None
        assert len(result.data["orders"]["edges"]) == 20
        if run >= 3:  # the first runs warm the caches and the connection pool
            timings.append(elapsed * 1000)
    return statistics.median(timings)


async def one_size(orders: int, runs: int, directory: Path) -> float:
    path = directory / f"orders-{orders}.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        jwt_secret=SecretStr("benchmark-secret-benchmark-secret-0123456789"),
        log_level="WARNING",
    )
    services = bootstrap(settings)
    await services.migrate()
    started = time.perf_counter()
    await asyncio.to_thread(seed, path, orders)
    print(f"  seeded {orders:>9,} orders in {time.perf_counter() - started:6.1f} s", flush=True)
    await services.start()
    try:
        return await measure(services, runs)
    finally:
        await services.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per size")
    arguments = parser.parse_args()
    sizes = sorted(arguments.orders)
    medians: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="orderdesk-bench-") as directory:
        for orders in sizes:
            medians[orders] = await one_size(orders, arguments.runs, Path(directory))
    print("orders(first: 20) with customer, lines and products, median of", arguments.runs)
    for orders, median in medians.items():
        print(f"  {orders:>9,} orders: {median:7.2f} ms")
    ratio = medians[sizes[-1]] / medians[sizes[0]]
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"  ratio {sizes[-1]:,} / {sizes[0]:,}: {ratio:.2f} (target <= {TARGET_RATIO}) {verdict}")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
