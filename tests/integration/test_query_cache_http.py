"""The query cache through the served app over HTTP: a read after a write never shows the
old value, a customer never gets another's entry, the cache shows in /metrics, it can be
turned off, two servers share it through Redis, and a Redis that is away only costs misses.

SQLite tests use the in-process cache (the default). The two-server test needs PostgreSQL
and Redis; its Redis cache lives in a database number reserved for it (REDIS_DB), emptied
before and after, because the cache's key prefix cannot be set through Settings."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import ExitStack, asynccontextmanager
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from strawberry.relay import GlobalID

from handlers.access import Identity, Role
from handlers.products import UpdateProduct
from mediator import Context
from orderdesk.bootstrap import PROJECTIONS, bootstrap
from orderdesk.settings import Settings
from persistence.projector import Projector
from persistence.query_cache import LocalQueryCache
from tests.databases import POSTGRES_ENV, REDIS_ENV, postgres_database_url
from tests.graphql_client import JSON, TEST_SECRET, GraphQLClient
from tests.served import Served, serve

REDIS_DB = 15
"""Reserved for this module's Redis test: it is flushed before and after each run."""
CLOSED_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: every connection is refused at once."""

RESULT = "__typename ... on Error { message }"
PRODUCT_FIELDS = "id price { amount } stock version"
CREATE_PRODUCT = f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
    {RESULT} ... on CreateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
UPDATE_PRODUCT = f"""mutation($input: UpdateProductInput!) {{ updateProduct(input: $input) {{
    {RESULT} ... on UpdateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
RESTOCK_PRODUCT = f"""mutation($input: RestockProductInput!) {{ restockProduct(input: $input) {{
    {RESULT} ... on RestockProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
PRODUCT = f"query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"
PRODUCTS = f"{{ products(first: 10) {{ totalCount edges {{ node {{ {PRODUCT_FIELDS} }} }} }} }}"
REGISTER = f"""mutation($input: RegisterCustomerInput!) {{ registerCustomer(input: $input) {{
    {RESULT} ... on RegisterCustomerSuccess {{ accessToken customer {{ id }} }} }} }}"""
PLACE_ORDER = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
    {RESULT} ... on PlaceOrderSuccess {{ order {{ id status version }} }} }} }}"""
CONFIRM_ORDER = f"""mutation($input: ChangeOrderInput!) {{ confirmOrder(input: $input) {{
    {RESULT} ... on ConfirmOrderSuccess {{ order {{ id status version }} }} }} }}"""
ORDER = "query($id: ID!) { order(id: $id) { id status version customer { id } } }"
ORDERS = "{ orders(first: 10) { edges { node { id status } } } }"
ME = "{ me { id name orderCount orders { totalCount } } }"
CUSTOMER = "query($id: ID!) { customer(id: $id) { id name orderCount } }"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


# ---------------------------------------------------------------- helpers


async def create_product(client: GraphQLClient, sku: str, price: str = "19.50") -> JSON:
    values = {"sku": sku, "name": f"Product {sku}", "price": price, "stock": 100}
    result: JSON = (await client.execute(CREATE_PRODUCT, {"input": values}))["createProduct"]
    assert result["__typename"] == "CreateProductSuccess", result
    product: JSON = result["product"]
    return product


async def update_price(client: GraphQLClient, product_id: str, price: str) -> JSON:
    result: JSON = (
        await client.execute(UPDATE_PRODUCT, {"input": {"id": product_id, "price": price}})
    )["updateProduct"]
    assert result["__typename"] == "UpdateProductSuccess", result
    product: JSON = result["product"]
    return product


async def register(client: GraphQLClient, name: str) -> tuple[str, GraphQLClient]:
    """A new customer's id and a client speaking as it."""
    values = {"name": name, "email": f"{name.lower()}@example.com"}
    result = (await client.anonymous().execute(REGISTER, {"input": values}))["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    return result["customer"]["id"], client.as_customer(result["accessToken"])


async def place_order(customer: GraphQLClient, product_id: str) -> JSON:
    values = {"lines": [{"productId": product_id, "quantity": 1}], "shippingAddress": ADDRESS}
    result: JSON = (await customer.execute(PLACE_ORDER, {"input": values}))["placeOrder"]
    assert result["__typename"] == "PlaceOrderSuccess", result
    order: JSON = result["order"]
    return order


async def product_reads(client: GraphQLClient, product_id: str) -> tuple[JSON, JSON]:
    """The product as `product(id)` and as `products` show it."""
    by_id: JSON = (await client.execute(PRODUCT, {"id": product_id}))["product"]
    listed = (await client.execute(PRODUCTS))["products"]["edges"]
    in_list = [edge["node"] for edge in listed if edge["node"]["id"] == product_id]
    assert len(in_list) == 1, listed
    return by_id, in_list[0]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def metrics(served: Served) -> Samples:
    """Every sample at /metrics, by name and sorted labels."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(served.http_url.removesuffix("/graphql") + "/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def lookups(samples: Samples, query: str, outcome: str) -> float:
    key = ("orderdesk_query_cache_lookups_total", (("outcome", outcome), ("query", query)))
    return samples.get(key, 0.0)


def invalidations(samples: Samples, read_model: str) -> float:
    key = ("orderdesk_query_cache_invalidations_total", (("read_model", read_model),))
    return samples.get(key, 0.0)


@asynccontextmanager
async def client_of(served: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, served)


# ---------------------------------------------------------------- read after write


async def test_a_product_read_after_its_update_or_restock_shows_the_new_value(
    client: GraphQLClient,
) -> None:
    product = await create_product(client, "ANV-1", "19.50")
    for _ in range(2):  # the second round is answered from the cache
        by_id, in_list = await product_reads(client, product["id"])
        assert by_id == in_list == product
    served = await metrics(client.served)
    assert lookups(served, "GetProducts", "hit") >= 1
    assert lookups(served, "ListProducts", "hit") >= 1

    updated = await update_price(client, product["id"], "25")
    assert (updated["price"]["amount"], updated["version"]) == ("25.00", 2)
    assert await product_reads(client, product["id"]) == (updated, updated)

    restocked = (
        await client.execute(RESTOCK_PRODUCT, {"input": {"id": product["id"], "quantity": 7}})
    )["restockProduct"]
    assert restocked["product"]["stock"] == 107
    assert restocked["product"]["version"] == 3
    assert await product_reads(client, product["id"]) == (
        restocked["product"],
        restocked["product"],
    )


async def test_an_order_confirmed_by_staff_reads_confirmed_to_its_customer_at_once(
    client: GraphQLClient,
) -> None:
    product = await create_product(client, "ANV-1")
    _, ada = await register(client, "Ada")
    order = await place_order(ada, product["id"])
    for _ in range(2):
        assert (await ada.execute(ORDER, {"id": order["id"]}))["order"]["status"] == "PENDING"
        assert (await ada.execute(ORDERS))["orders"]["edges"] == [
            {"node": {"id": order["id"], "status": "PENDING"}}
        ]
    assert lookups(await metrics(client.served), "GetOrders", "hit") >= 1

    confirmed = (
        await client.execute(CONFIRM_ORDER, {"input": {"id": order["id"], "expectedVersion": 1}})
    )["confirmOrder"]

    assert confirmed["order"] == {"id": order["id"], "status": "CONFIRMED", "version": 2}
    read = (await ada.execute(ORDER, {"id": order["id"]}))["order"]
    assert (read["status"], read["version"]) == ("CONFIRMED", 2)
    assert (await ada.execute(ORDERS))["orders"]["edges"] == [
        {"node": {"id": order["id"], "status": "CONFIRMED"}}
    ]


async def test_a_customers_order_count_read_after_placing_an_order_counts_it(
    client: GraphQLClient,
) -> None:
    product = await create_product(client, "ANV-1")
    ada_id, ada = await register(client, "Ada")
    await place_order(ada, product["id"])
    for _ in range(2):
        me = (await ada.execute(ME))["me"]
        assert (me["orderCount"], me["orders"]["totalCount"]) == (1, 1)
        assert (await client.execute(CUSTOMER, {"id": ada_id}))["customer"]["orderCount"] == 1
    assert lookups(await metrics(client.served), "GetCustomers", "hit") >= 2

    await place_order(ada, product["id"])

    me = (await ada.execute(ME))["me"]
    assert (me["orderCount"], me["orders"]["totalCount"]) == (2, 2)
    assert (await client.execute(CUSTOMER, {"id": ada_id}))["customer"]["orderCount"] == 2


# ---------------------------------------------------------------- one caller, one entry


async def test_a_customer_never_gets_another_customers_cached_entry(
    client: GraphQLClient,
) -> None:
    product = await create_product(client, "ANV-1")
    ada_id, ada = await register(client, "Ada")
    bob_id, bob = await register(client, "Bob")
    order = await place_order(ada, product["id"])
    for _ in range(2):  # cached for Ada
        assert (await ada.execute(ORDER, {"id": order["id"]}))["order"]["id"] == order["id"]
        assert (await ada.execute(ME))["me"]["id"] == ada_id
        assert len((await ada.execute(ORDERS))["orders"]["edges"]) == 1
        assert (await ada.execute(CUSTOMER, {"id": ada_id}))["customer"]["id"] == ada_id

    assert (await bob.execute(ORDER, {"id": order["id"]}))["order"] is None
    assert (await bob.execute(ORDERS))["orders"]["edges"] == []
    bob_me = (await bob.execute(ME))["me"]
    assert (bob_me["id"], bob_me["name"], bob_me["orderCount"]) == (bob_id, "Bob", 0)
    assert (await bob.execute(CUSTOMER, {"id": ada_id}))["customer"] is None
    assert (await bob.execute(CUSTOMER, {"id": bob_id}))["customer"]["name"] == "Bob"
    assert (await client.anonymous().execute(ORDER, {"id": order["id"]}))["order"] is None

    seen_by_staff = (await client.execute(ORDER, {"id": order["id"]}))["order"]
    assert seen_by_staff == {
        "id": order["id"],
        "status": "PENDING",
        "version": 1,
        "customer": {"id": ada_id},
    }
    assert (await client.execute(CUSTOMER, {"id": ada_id}))["customer"]["name"] == "Ada"
    assert (await client.execute(CUSTOMER, {"id": bob_id}))["customer"]["name"] == "Bob"
    assert (await client.execute(ME))["me"] is None


# ---------------------------------------------------------------- metrics and settings


async def test_metrics_count_hits_misses_and_invalidations(client: GraphQLClient) -> None:
    before = await metrics(client.served)
    product = await create_product(client, "ANV-1")
    await client.execute(PRODUCT, {"id": product["id"]})
    await client.execute(PRODUCT, {"id": product["id"]})

    after = await metrics(client.served)

    # createProduct's payload read the product (a miss), then the two reads were hits.
    assert lookups(after, "GetProducts", "miss") - lookups(before, "GetProducts", "miss") == 1
    assert lookups(after, "GetProducts", "hit") - lookups(before, "GetProducts", "hit") == 2
    assert invalidations(after, "product_catalog") > invalidations(before, "product_catalog")
    assert lookups(after, "GetProducts", "error") == 0


async def test_with_the_query_cache_off_nothing_is_looked_up_and_reads_still_work(
    settings: Settings,
) -> None:
    with serve(settings.model_copy(update={"query_cache": False})) as served:
        assert served.services.query_cache is None
        async with client_of(served) as client:
            product = await create_product(client, "ANV-1")
            for _ in range(2):
                assert await product_reads(client, product["id"]) == (product, product)
            updated = await update_price(client, product["id"], "3")
            assert await product_reads(client, product["id"]) == (updated, updated)

            samples = await metrics(served)
    names = {name for name, _ in samples}
    assert "orderdesk_query_cache_lookups_total" not in names
    assert "orderdesk_query_cache_invalidations_total" not in names


# ---------------------------------------------------------------- a rebuild by another process


class ReadWhileRebuilding:
    """The `changes` of a rebuilding process (`orderdesk projections rebuild`): told of the
    rebuild, it reaches only its own cache, as the command's in-process cache does. It also
    stands in for a client that reads the served app while the tables are empty: the first
    `rebuilt` comes right after they were emptied, before the log is replayed into them."""

    def __init__(self, client: GraphQLClient) -> None:
        self._client = client
        self.seen_meanwhile: list[JSON] = []

    async def applied(self, events: Sequence[object]) -> None:
        return None

    async def rebuilt(self, names: Iterable[str]) -> None:
        if not self.seen_meanwhile:
            self.seen_meanwhile.append((await self._client.execute(PRODUCTS))["products"])


async def test_a_list_read_during_another_processs_rebuild_is_not_served_after_it(
    client: GraphQLClient,
) -> None:
    """README: a server running during a rebuild reads the read models empty, then filling
    up, *until the rebuild reaches the head*. With the in-process cache, what it read
    meanwhile must not outlive the rebuild by more than the server's next look at the
    checkpoints (one poll interval): another process's rebuild sends no wake-up."""
    product = await create_product(client, "ANV-1")
    rebuilding = bootstrap(client.served.settings)
    reader = ReadWhileRebuilding(client)
    projector = Projector(
        log=rebuilding.log,
        log_engine=rebuilding.log_engine,
        read_model_engine=rebuilding.read_model_engine,
        projections=PROJECTIONS,
        changes=reader,
    )
    try:
        await projector.rebuild(["product_catalog"])
    finally:
        await rebuilding.stop()
    assert reader.seen_meanwhile == [{"totalCount": 0, "edges": []}]

    poll = client.served.settings.poll_interval
    deadline = asyncio.get_running_loop().time() + 5 * poll
    while True:
        listed = (await client.execute(PRODUCTS))["products"]
        if listed["totalCount"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(poll / 4)

    assert listed == {"totalCount": 1, "edges": [{"node": product}]}


# ---------------------------------------------------------------- two servers, one Redis


def _redis_url() -> str:
    """The reserved Redis database; skips, naming what is missing, without PostgreSQL or Redis."""
    missing = [name for name in (POSTGRES_ENV, REDIS_ENV) if not os.environ.get(name)]
    if missing:
        pytest.skip(f"the shared query cache tests need {' and '.join(missing)} (set by .ci/run)")
    return urlsplit(os.environ[REDIS_ENV])._replace(path=f"/{REDIS_DB}").geturl()


@asynccontextmanager
async def empty_redis_database(url: str) -> AsyncIterator[redis.Redis]:
    """The reserved database, empty before the test and after it."""
    connection = redis.Redis.from_url(url)
    try:
        await connection.flushdb()
        yield connection
    finally:
        await connection.flushdb()
        await connection.aclose()


ROUNDS = 20


@pytest.mark.postgres
async def test_a_write_through_one_server_is_never_read_stale_through_the_other() -> None:
    """Server B caches the product; server A changes it; B, asked at once, shows the change.

    A reader on B keeps reading throughout, so that entries read from the old row are
    stored while A's projector applies and invalidates: the race the stamps must win."""
    redis_url = _redis_url()
    async with (
        postgres_database_url() as database_url,
        empty_redis_database(redis_url) as shared,
    ):
        settings = Settings(
            database_url=database_url,
            poll_interval=0.2,
            jwt_secret=SecretStr(TEST_SECRET),
            cache_url=redis_url,
        )
        with ExitStack() as stack:
            one = stack.enter_context(serve(settings))
            other = stack.enter_context(serve(settings))
            async with client_of(one) as writer, client_of(other) as reader:
                product = await create_product(writer, "ANV-1", "1.00")
                stop = asyncio.Event()

                async def keep_reading() -> int:
                    reads = 0
                    while not stop.is_set():
                        await product_reads(reader, product["id"])
                        reads += 1
                    return reads

                background = asyncio.create_task(keep_reading())
                try:
                    for n in range(2, ROUNDS + 2):
                        await product_reads(reader, product["id"])  # cached on B
                        price = f"{n}.00"
                        updated = await update_price(writer, product["id"], price)
                        assert updated["price"]["amount"] == price
                        by_id, in_list = await product_reads(reader, product["id"])
                        assert by_id["price"]["amount"] == price, f"round {n}: {by_id}"
                        assert in_list["price"]["amount"] == price, f"round {n}: {in_list}"
                        assert by_id["version"] == in_list["version"] == n
                finally:
                    stop.set()
                    background_reads = await background
                assert background_reads > 0

                read_on_b = await metrics(other)
                assert lookups(read_on_b, "GetProducts", "hit") > 0
                assert lookups(read_on_b, "GetProducts", "error") == 0
                # The entries and generations are in the shared Redis, not in either process.
                assert await shared.exists("orderdesk:query-cache:generations")
                assert [key async for key in shared.scan_iter("orderdesk:query-cache:entry:*")]


@pytest.mark.postgres
async def test_a_batch_applied_but_never_told_to_redis_is_not_served_stale_after_a_restart() -> (
    None
):
    """A server commits a batch to the read models and stops before it tells Redis (a
    crash, a deploy, Redis away at that moment). Started again, it must not serve what
    Redis still holds from before that batch: the read models have moved on.

    The untold batch is written here by the service with its cache off: the read models
    and the log end up exactly as a crash between the commit and the telling leaves them."""
    redis_url = _redis_url()
    async with (
        postgres_database_url() as database_url,
        empty_redis_database(redis_url),
    ):
        settings = Settings(
            database_url=database_url,
            poll_interval=0.2,
            jwt_secret=SecretStr(TEST_SECRET),
            cache_url=redis_url,
        )
        with serve(settings) as before:
            async with client_of(before) as client:
                product = await create_product(client, "ANV-1", "1.00")
                by_id, _ = await product_reads(client, product["id"])  # now in Redis
                assert by_id["price"]["amount"] == "1.00"

        untold = bootstrap(settings.model_copy(update={"query_cache": False}))
        await untold.start()
        try:
            staff = Context(identity=Identity("staff-1", Role.STAFF))
            product_id = GlobalID.from_id(product["id"]).node_id
            await untold.mediator.send(UpdateProduct(product_id, price=Decimal(2)), staff)
        finally:
            await untold.stop()

        with serve(settings) as after:
            async with client_of(after) as client:
                by_id, in_list = await product_reads(client, product["id"])
    assert (by_id["price"]["amount"], by_id["version"]) == ("2.00", 2)
    assert (in_list["price"]["amount"], in_list["version"]) == ("2.00", 2)


# ---------------------------------------------------------------- Redis away


async def test_with_redis_away_reads_are_answered_from_the_read_models(
    settings: Settings,
) -> None:
    # A shop written with the cache in the process, then served with an unreachable Redis.
    with serve(settings) as seeding:
        async with client_of(seeding) as client:
            product = await create_product(client, "ANV-1", "4.00")
            ada_id, ada = await register(client, "Ada")
            order = await place_order(ada, product["id"])
            ada_token = ada.token
    assert ada_token is not None

    with serve(settings.model_copy(update={"cache_url": CLOSED_REDIS})) as served:
        async with client_of(served) as client:
            ada = client.as_customer(ada_token)
            for _ in range(2):
                by_id, in_list = await product_reads(client, product["id"])
                assert by_id == in_list
                assert (by_id["price"]["amount"], by_id["stock"]) == ("4.00", 99)
                read = (await ada.execute(ORDER, {"id": order["id"]}))["order"]
                assert (read["status"], read["customer"]["id"]) == ("PENDING", ada_id)
                me = (await ada.execute(ME))["me"]
                assert (me["id"], me["orderCount"], me["orders"]["totalCount"]) == (ada_id, 1, 1)
                response = await ada.post(ORDERS)
                assert response.status_code == 200, response.text
                assert response.json()["data"]["orders"]["edges"] == [
                    {"node": {"id": order["id"], "status": "PENDING"}}
                ]

            samples = await metrics(served)
    assert lookups(samples, "GetProducts", "error") >= 2
    assert lookups(samples, "GetProducts", "hit") == 0


async def test_a_second_process_on_one_sqlite_file_runs_without_the_in_process_cache(
    client: GraphQLClient,
) -> None:
    """Its cache could not see the first process's writes in time, so it keeps none."""
    second = bootstrap(client.served.settings)
    await second.start()
    try:
        cache = second.query_cache
        assert isinstance(cache, LocalQueryCache)
        assert not cache.enabled
        first = client.served.services.query_cache
        assert isinstance(first, LocalQueryCache)
        assert first.enabled
    finally:
        await second.stop()
