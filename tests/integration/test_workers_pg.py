"""`orderdesk serve --workers N` on PostgreSQL, as an operator runs it: every worker comes up
on a fresh database, and under concurrent writes the workers' projectors keep the read
models in step without failing, deadlocking or leaving a mutation waiting for them."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.bootstrap import bootstrap
from orderdesk.settings import Settings
from tests.databases import postgres_database_url, redis_url
from tests.graphql_client import JSON, TEST_SECRET, GraphQLClient
from tests.served_processes import STARTUP_COMPLETE, WORKER_STARTED, ServedProcess, serve_process
from tests.ws_client import ADDRESS, ERRORS, new_product, register

FRESH_STARTS = 10
HOLD_WITHIN = 15.0
"""Seconds the checkpoint writes are held at most, waiting for both workers to come."""
START_UP_TROUBLE = re.compile(r"Traceback|UniqueViolation|\berror\b|startup failed", re.IGNORECASE)
"""What no start-up may print (`\\b` keeps a column such as parked_error from matching)."""


def _trouble(log: str, pattern: re.Pattern[str]) -> list[str]:
    return [line for line in log.splitlines() if pattern.search(line)]


# ------------------------------------------------------------------ fresh starts


@pytest.mark.postgres
async def test_ten_fresh_starts_of_two_workers_all_come_up(tmp_path: Path) -> None:
    # Two workers of a fresh database create the projections' checkpoint rows at the same
    # moment; once, the second insert of a row failed its worker's start-up
    # (UniqueViolation) and uvicorn stopped the server. Left to chance the race is rare
    # here (the workers come up tens of milliseconds apart, the inserts take a few), so
    # every other start finds the schema migrated, as after `orderdesk migrate`, and
    # holds the checkpoint inserts until both workers are at them; the others migrate on
    # start, as a first deployment does.
    for start in range(FRESH_STARTS):
        log_path = tmp_path / f"start-{start}.log"
        racing = start % 2 == 1
        async with postgres_database_url() as database_url:
            if racing:
                await _migrate(database_url)
            env = {"ORDERDESK_MIGRATE_ON_START": "false"} if racing else {}
            async with (
                _checkpoint_inserts_held(database_url, workers=2 if racing else 0) as held,
                serve_process(database_url, log_path, workers=2, env=env) as running,
            ):
                assert running.process.poll() is None
        log = log_path.read_text(errors="replace")
        context = f"start {start + 1} of {FRESH_STARTS}:\n{log}"
        if racing:
            assert held.waiting == 2, f"{held.waiting} workers came to the checkpoints\n{context}"
        assert log.count(WORKER_STARTED) == 2, context  # a third: a worker was replaced
        assert log.count(STARTUP_COMPLETE) == 2, context
        assert not _trouble(log, START_UP_TROUBLE), context
        assert running.process.returncode == 0, context


async def _migrate(database_url: str) -> None:
    """What `orderdesk migrate` does, without the second or two a process takes to start."""
    services = bootstrap(Settings(database_url=database_url, jwt_secret=SecretStr(TEST_SECRET)))
    try:
        await services.migrate()
    finally:
        await services.stop()


@dataclass
class Held:
    waiting: int = 0
    """How many sessions were waiting to write the checkpoints when they were let go."""


WAITING_FOR_CHECKPOINTS = text(
    "SELECT count(*) FROM pg_locks "
    "WHERE relation = 'projection_checkpoints'::regclass AND NOT granted"
)


@asynccontextmanager
async def _checkpoint_inserts_held(database_url: str, *, workers: int) -> AsyncIterator[Held]:
    """Hold every write to projection_checkpoints (reads go on) until `workers` sessions
    wait to write, or HOLD_WITHIN has passed; with `workers` 0, hold nothing.

    A SHARE lock on the table conflicts with the ROW EXCLUSIVE lock an insert takes and
    with nothing a read takes: each worker reads the checkpoints, finds none, and waits
    at its first insert; let go together, they insert the same rows at once.
    """
    held = Held()
    if not workers:
        yield held
        return
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("LOCK TABLE projection_checkpoints IN SHARE MODE"))

            async def let_go() -> None:
                deadline = time.monotonic() + HOLD_WITHIN
                while time.monotonic() < deadline:
                    held.waiting = int(await connection.scalar(WAITING_FOR_CHECKPOINTS) or 0)
                    if held.waiting >= workers:
                        break
                    await asyncio.sleep(0.02)
                await connection.commit()

            releasing = asyncio.create_task(let_go())
            try:
                yield held
            finally:
                await releasing
    finally:
        await engine.dispose()


# ------------------------------------------------------------------ four workers under load

WORKERS = 4
SHOPPERS = 8
LOAD_SECONDS = 12.0
PRODUCTS = 4
INITIAL_STOCK = 1_000_000
"""Far more than the load can order: an OutOfStockError would be right, but is not tested."""
SETTLE_WITHIN = 10.0
"""Seconds the read models may take to show the last writes once the load has stopped."""

PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
    {ERRORS} ... on PlaceOrderSuccess {{ order {{ id }} }} }} }}"""
RESTOCK = f"""mutation($input: RestockProductInput!) {{ restockProduct(input: $input) {{
    {ERRORS} ... on RestockProductSuccess {{ product {{ id }} }} }} }}"""
CONFIRM = f"""mutation($input: ChangeOrderInput!) {{ confirmOrder(input: $input) {{
    {ERRORS} ... on ConfirmOrderSuccess {{ order {{ id }} }} }} }}"""
STOCK = "query($id: ID!) { product(id: $id) { stock } }"
ORDER_COUNT = "query($id: ID!) { customer(id: $id) { orderCount } }"
CONFIRMED = "{ orders(status: CONFIRMED, first: 1) { totalCount } }"

PROJECTION_FAILED = re.compile(r"projection \S+ (failed|is parked)")
DEADLOCK = re.compile(r"deadlock", re.IGNORECASE)
TRACEBACK = re.compile(r"Traceback")
EXCEPTION = re.compile(r"[\w.]+(Error|Exception|Violation)\w*: ")
"""The last line of a traceback: the exception's qualified name and message."""
ROUND_FAILED = re.compile(r"projector round failed")
SAMPLES = 3


@dataclass
class Tally:
    """What the shoppers were answered, and what was committed for certain."""

    answers: Counter[str] = field(default_factory=Counter)
    lagging: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    ordered: Counter[str] = field(default_factory=Counter)
    """Units ordered, by product: a success, or READ_MODEL_LAGGING (committed all the same)."""
    restocked: Counter[str] = field(default_factory=Counter)
    orders: Counter[str] = field(default_factory=Counter)
    """Orders placed, by customer."""
    confirmed: int = 0
    unknown_outcomes: int = 0
    """Writes whose answer did not say whether they were committed (a fault, a timeout)."""

    def record(self, mutation: str, response: httpx.Response | None) -> JSON | None:
        """Classify one answer; the written entity ({"id": ...}) when the write was
        committed, else None."""
        if response is None:
            self.answers[f"{mutation}: no answer"] += 1
            self.unknown_outcomes += 1
            return None
        payload = _json_object(response)
        errors: list[JSON] = payload.get("errors") or []
        if errors:
            codes = [str((error.get("extensions") or {}).get("code")) for error in errors]
            self.answers[f"{mutation}: {','.join(codes)}"] += 1
            sample = f"{mutation}: {codes} {errors[0].get('message')}"
            for error in errors:
                extensions = error.get("extensions") or {}
                if extensions.get("code") == "READ_MODEL_LAGGING":
                    # Committed, only not shown yet: the error names what was written.
                    self.lagging.append(sample)
                    return {"id": extensions.get("id")}
            self.faults.append(sample)
            self.unknown_outcomes += 1
            return None
        if response.status_code != 200 or not payload.get("data"):
            self.answers[f"{mutation}: HTTP {response.status_code}"] += 1
            self.faults.append(f"{mutation}: HTTP {response.status_code} {response.text[:200]}")
            self.unknown_outcomes += 1
            return None
        result: JSON = payload["data"][mutation]
        self.answers[f"{mutation}: {result['__typename']}"] += 1
        if not result["__typename"].endswith("Success"):
            self.refusals.append(f"{mutation}: {result}")
            return None
        written: JSON = result.get("order") or result["product"]
        return written


def _json_object(response: httpx.Response) -> JSON:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


async def _send(
    client: GraphQLClient, tally: Tally, mutation: str, document: str, given: JSON
) -> JSON | None:
    try:
        response = await client.post(document, {"input": given})
    except httpx.HTTPError as error:
        tally.faults.append(f"{mutation}: {type(error).__name__} {error}")
        tally.record(mutation, None)
        return None
    return tally.record(mutation, response)


async def _shop(
    staff: GraphQLClient,
    customer: GraphQLClient,
    customer_id: str,
    products: list[str],
    tally: Tally,
    until: float,
    seed: int,
) -> None:
    """One shopper's loop: mostly orders, some restocks, and staff confirming its orders."""
    rng = random.Random(seed)
    pending: list[str] = []
    while time.monotonic() < until:
        product = rng.choice(products)
        roll = rng.random()
        if roll < 0.25 and pending:
            order_id = pending.pop(0)
            if await _send(staff, tally, "confirmOrder", CONFIRM, {"id": order_id}) is not None:
                tally.confirmed += 1
        elif roll < 0.45:
            quantity = rng.randint(1, 5)
            given = {"id": product, "quantity": quantity}
            if await _send(staff, tally, "restockProduct", RESTOCK, given) is not None:
                tally.restocked[product] += quantity
        else:
            quantity = rng.randint(1, 3)
            lines = [{"productId": product, "quantity": quantity}]
            given = {"lines": lines, "shippingAddress": ADDRESS}
            order = await _send(customer, tally, "placeOrder", PLACE, given)
            if order is not None:
                tally.ordered[product] += quantity
                tally.orders[customer_id] += 1
                if order.get("id"):
                    pending.append(order["id"])


async def _read_models_disagree(
    staff: GraphQLClient, tally: Tally, products: list[str], customers: list[str]
) -> list[str]:
    """How the read models differ from what the load committed; empty once they agree."""
    differences = []
    for product in products:
        stock = (await staff.execute(STOCK, {"id": product}))["product"]["stock"]
        expected = INITIAL_STOCK + tally.restocked[product] - tally.ordered[product]
        if stock != expected:
            differences.append(
                f"product {product}: stock {stock}, expected {INITIAL_STOCK} "
                f"+ {tally.restocked[product]} restocked - {tally.ordered[product]} ordered "
                f"= {expected}"
            )
    for customer in customers:
        count = (await staff.execute(ORDER_COUNT, {"id": customer}))["customer"]["orderCount"]
        if count != tally.orders[customer]:
            differences.append(
                f"customer {customer}: orderCount {count}, placed {tally.orders[customer]}"
            )
    confirmed = (await staff.execute(CONFIRMED))["orders"]["totalCount"]
    if confirmed != tally.confirmed:
        differences.append(f"{confirmed} orders read as CONFIRMED, {tally.confirmed} confirmed")
    return differences


def _lines(headline: str, lines: list[str]) -> str:
    """A headline and a few distinct samples: the same line a hundred times says no more."""
    shown = "\n    ".join(list(dict.fromkeys(lines))[:SAMPLES])
    return f"{headline}; e.g.\n    {shown}"


def _tracebacks(log: str) -> tuple[int, list[str]]:
    """How many tracebacks the log holds, and the exceptions they end with (the workers'
    lines interleave, so what logged each is not told from its neighbours)."""
    lines = log.splitlines()
    count = sum(1 for line in lines if TRACEBACK.search(line))
    return count, [line for line in lines if EXCEPTION.match(line)]


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["listen-notify", "redis"])
async def test_four_workers_under_load_log_no_projection_failure_and_answer_no_lagging(
    broker: str, tmp_path: Path
) -> None:
    env = {"ORDERDESK_BROKER_URL": redis_url()} if broker == "redis" else {}
    tally = Tally()
    async with (
        postgres_database_url() as database_url,
        serve_process(database_url, tmp_path / "serve.log", workers=WORKERS, env=env) as running,
    ):
        differences = await _shop_for_a_while(running, tally)
        log = running.log()

    problems = []
    writes = sum(tally.answers.values())
    for what, answers in [
        ("READ_MODEL_LAGGING", tally.lagging),
        ("other errors", tally.faults),
        ("typed refusals", tally.refusals),
    ]:
        if answers:
            problems.append(_lines(f"{len(answers)} of {writes} answers were {what}", answers))
    failed = _trouble(log, PROJECTION_FAILED)
    if failed:
        by_projection = Counter(
            match.group(0) for line in failed if (match := PROJECTION_FAILED.search(line))
        )
        problems.append(_lines(f"{len(failed)} log lines {dict(by_projection)}", failed))
    for what, lines in [
        ("log lines mention a deadlock", _trouble(log, DEADLOCK)),
        ("failed projector rounds in the log", _trouble(log, ROUND_FAILED)),
    ]:
        if lines:
            problems.append(_lines(f"{len(lines)} {what}", lines))
    tracebacks, exceptions = _tracebacks(log)
    if tracebacks:
        problems.append(_lines(f"{tracebacks} tracebacks in the log, ending in", exceptions))
    if differences:
        problems.append(
            _lines(
                f"{len(differences)} read-model differences after {SETTLE_WITHIN} s "
                f"({tally.unknown_outcomes} writes of unknown outcome)",
                differences,
            )
        )
    print("\n".join(problems) or "no problems")
    assert not problems, f"log: {running.log_path}\n" + "\n".join(problems)
    assert tally.confirmed > 0
    assert sum(tally.ordered.values()) > 0
    assert sum(tally.restocked.values()) > 0


async def _shop_for_a_while(running: ServedProcess, tally: Tally) -> list[str]:
    """Products and shoppers, LOAD_SECONDS of shopping, then how the read models differ
    from what was committed once they have had SETTLE_WITHIN to catch up."""
    async with httpx.AsyncClient(timeout=30) as http:
        staff = GraphQLClient(http, running.served)
        products = [
            await new_product(staff, f"LOAD-{n}", stock=INITIAL_STOCK) for n in range(PRODUCTS)
        ]
        customers = [await register(staff, f"Shopper{n}") for n in range(SHOPPERS)]
    # A connection of its own for each shopper: uvicorn's workers share the listening
    # socket, so the shoppers' keep-alive connections land on different workers.
    clients = [httpx.AsyncClient(timeout=30) for _ in range(SHOPPERS)]
    try:
        until = time.monotonic() + LOAD_SECONDS
        async with asyncio.TaskGroup() as shoppers:
            for n, (http, (customer_id, token)) in enumerate(zip(clients, customers, strict=True)):
                staff = GraphQLClient(http, running.served)
                shopper = staff.as_customer(token)
                shoppers.create_task(
                    _shop(staff, shopper, customer_id, products, tally, until, seed=n)
                )
        writes = sum(tally.answers.values())
        print(f"{writes} writes in {LOAD_SECONDS} s by {SHOPPERS} shoppers on {WORKERS} workers:")
        for answer, count in sorted(tally.answers.items()):
            print(f"  {count:6d}  {answer}")
        staff = GraphQLClient(clients[0], running.served)
        customer_ids = [customer_id for customer_id, _ in customers]
        deadline = time.monotonic() + SETTLE_WITHIN
        while True:
            differences = await _read_models_disagree(staff, tally, products, customer_ids)
            if not differences or time.monotonic() > deadline:
                return differences
            await asyncio.sleep(0.2)
    finally:
        for http in clients:
            await http.aclose()
