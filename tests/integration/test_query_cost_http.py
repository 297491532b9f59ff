"""The query cost limit, and introspection and suggestions by caller, through the real HTTP
endpoint and a real websocket: an amplifying document is refused before any of it runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orderdesk.settings import Settings
from tests.graphql_client import JSON, GraphQLClient
from tests.read_side import REGISTER, StatementLog, create_product, place_order, register
from tests.served import Served, serve
from tests.ws_client import open_socket

LIMIT = Settings.model_fields["max_query_cost"].default

LINES = "orders(first: 100) { edges { node { lines { productName } } } }"
ONE_AMPLIFIER = f"me {{ orders(first: 100) {{ edges {{ node {{ customer {{ {LINES} }} }} }} }} }}"
FIVE_AMPLIFIERS = "{ " + " ".join(f"a{n}: {ONE_AMPLIFIER}" for n in range(5)) + " }"
STAFF_AMPLIFIER = """{ customers(first: 100) { edges { node { name
    orders(first: 100) { edges { node { lines { quantity product { name sku } } } } }
} } } }"""
PRODUCTS_PAGE = """{ products(first: 20) { totalCount edges { node {
    id sku name price { amount currency } stock } } } }"""
ORDERS_PAGE = """{ orders(first: 20) { edges { node { id status total { amount }
    lines { productName quantity unitPrice { amount } product { name } }
    customer { name email } } } } }"""
PAGE_OF_PAGES = """query($first: Int!) { customers(first: $first) { edges { node {
    orders(first: 100) { edges { node { lines { productName } } } } } } } }"""

INTROSPECTION = '{ __schema { queryType { name } } __type(name: "Order") { name } }'
TYPO = "{ produts(first: 1) { totalCount } }"
ENUM_TYPO = "query($status: OrderStatus) { orders(status: $status) { totalCount } }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No query cache: a read that ran shows as SQL, which is how these tests see that a
    # refused document ran nothing.
    return settings.model_copy(update={"query_cache": False})


@pytest.fixture
def production(settings: Settings) -> Iterator[Served]:
    with serve(settings.model_copy(update={"env": "production"})) as running:
        yield running


@pytest.fixture
async def production_client(production: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, production)


def refusal(payload: JSON) -> JSON:
    """The one error of a document refused for its cost, with nothing executed."""
    assert payload.get("data") is None, payload
    [error] = payload["errors"]
    extensions: JSON = error["extensions"]
    assert extensions["code"] == "QUERY_TOO_COMPLEX", error
    assert extensions["maxCost"] == LIMIT
    assert extensions["cost"] > LIMIT
    assert set(extensions) == {"code", "cost", "maxCost"}
    assert str(extensions["cost"]) in error["message"]
    return extensions


def engines(served: Served) -> tuple[AsyncEngine, ...]:
    services = served.services
    return (
        services.write_engine,
        services.log_engine,
        services.read_engine,
        services.read_model_engine,
        services.scan_engine,
    )


# ---------------------------------------------------------------- the reported amplifications


async def test_the_customer_s_five_aliased_amplifiers_are_refused_and_run_nothing(
    client: GraphQLClient,
) -> None:
    shopper = await register(client.anonymous(), "Mallory")
    mallory = client.as_customer(shopper.token)
    log = StatementLog()
    with log.watching(engines(client.served)):
        await log.settle()
        started = time.monotonic()
        response = await mallory.post(FIVE_AMPLIFIERS)
        elapsed = time.monotonic() - started
        ran = log.queries()
        # The same shape at one page of one order is cheap, runs, and shows in the log.
        cheap = await mallory.execute("{ " + ONE_AMPLIFIER.replace("100", "1") + " }")
        assert log.queries(), "the statement log sees nothing: it proves nothing"
    assert response.status_code == 200
    cost = refusal(response.json())["cost"]
    assert cost > 50 * LIMIT  # five aliases, each 100 x 100 orders of up to 50 lines
    assert ran == []
    assert elapsed < 2
    assert cheap["me"]["orders"]["edges"] == []

    single = await mallory.post("{ " + ONE_AMPLIFIER + " }")
    assert refusal(single.json())["cost"] * 5 == cost


async def test_the_staff_page_of_pages_of_lines_is_refused(client: GraphQLClient) -> None:
    response = await client.post(STAFF_AMPLIFIER)
    assert response.status_code == 200
    refusal(response.json())


async def test_a_refused_mutation_changes_nothing(client: GraphQLClient) -> None:
    pages = " ".join(f"p{n}: {LINES}" for n in range(10))
    register_and_read = REGISTER.replace("customer { id name }", f"customer {{ id {pages} }}")
    before = await client.event_count()
    response = await client.anonymous().post(
        register_and_read, {"input": {"name": "Eve", "email": "eve@example.com"}}
    )
    refusal(response.json())
    assert await client.event_count() == before
    assert (await client.execute("{ customers { totalCount } }"))["customers"]["totalCount"] == 0


async def test_a_refusal_is_a_request_error_for_graphql_response_clients(
    client: GraphQLClient,
) -> None:
    response = await client.post(
        STAFF_AMPLIFIER, headers={"Accept": "application/graphql-response+json"}
    )
    assert response.status_code == 400
    refusal(response.json())


# ---------------------------------------------------------------- what clients ask every day


async def test_ordinary_pages_still_work_under_the_default_limit(client: GraphQLClient) -> None:
    shopper = await register(client.anonymous(), "Ada")
    product = await create_product(client, "P-1", "2.50")
    await place_order(client, shopper.id, [(product, 2)])

    products = await client.anonymous().execute(PRODUCTS_PAGE)
    assert products["products"]["totalCount"] == 1
    orders = (await client.execute(ORDERS_PAGE))["orders"]["edges"]
    [line] = orders[0]["node"]["lines"]
    assert (line["quantity"], line["product"]["name"]) == (2, "Product P-1")
    assert orders[0]["node"]["customer"]["name"] == "Ada"


async def test_a_page_size_from_a_variable_counts(client: GraphQLClient) -> None:
    small = await client.post(PAGE_OF_PAGES, {"first": 2})
    assert "errors" not in small.json(), small.json()
    large = await client.post(PAGE_OF_PAGES, {"first": 100})
    assert refusal(large.json())["cost"] > LIMIT
    # The same text again: the refusal belonged to those variables, not to the text.
    again = await client.post(PAGE_OF_PAGES, {"first": 2})
    assert "errors" not in again.json(), again.json()


# ---------------------------------------------------------------- websockets


async def test_the_same_refusal_over_graphql_transport_ws(client: GraphQLClient) -> None:
    # Ten pages of a hundred orders of up to fifty lines for each event.
    pages = " ".join(f"p{n}: {LINES}" for n in range(10))
    subscription = f"subscription {{ orderEvents {{ order {{ customer {{ {pages} }} }} }} }}"
    async with open_socket(client.served.ws_url) as socket:
        await socket.init()
        for op_id, query in (("1", subscription), ("2", STAFF_AMPLIFIER)):
            await socket.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})
            message = await socket.receive()
            assert (message["id"], message["type"]) == (op_id, "error"), message
            refusal({"errors": message["payload"]})
        # The socket stays open for what costs less.
        await socket.send(
            {"id": "3", "type": "subscribe", "payload": {"query": "{ products { totalCount } }"}}
        )
        answer = await socket.receive()
        assert answer == {
            "id": "3",
            "type": "next",
            "payload": {"data": {"products": {"totalCount": 0}}},
        }


# ---------------------------------------------------------------- introspection, suggestions


async def test_in_production_only_staff_may_introspect(
    production_client: GraphQLClient,
) -> None:
    shopper = await register(production_client.anonymous(), "Ada")
    callers = {
        "anonymous": production_client.anonymous(),
        "customer": production_client.as_customer(shopper.token),
    }
    # The same text, staff first and last: what one kind of caller gets is not the other's.
    staff = await production_client.execute(INTROSPECTION)
    assert staff == {"__schema": {"queryType": {"name": "Query"}}, "__type": {"name": "Order"}}
    for name, caller in callers.items():
        payload = (await caller.post(INTROSPECTION)).json()
        assert payload.get("data") is None, name
        messages = [e["message"] for e in payload["errors"]]
        assert any("introspection has been disabled" in m for m in messages), (name, messages)
        codes = {e["extensions"]["code"] for e in payload["errors"]}
        assert codes == {"GRAPHQL_VALIDATION_FAILED"}, name
        assert (await caller.execute("{ __typename }")) == {"__typename": "Query"}
    assert await production_client.execute(INTROSPECTION) == staff


async def test_in_production_only_staff_are_told_what_they_meant(
    production_client: GraphQLClient,
) -> None:
    anonymous = production_client.anonymous()
    for _ in range(2):  # the second from the cache
        told = (await production_client.post(TYPO)).json()["errors"][0]["message"]
        assert "Did you mean 'products'" in told, told
        hidden = (await anonymous.post(TYPO)).json()["errors"][0]["message"]
        assert hidden == "Cannot query field 'produts' on type 'Query'."

    told = (await production_client.post(ENUM_TYPO, {"status": "PENDIN"})).json()
    assert "Did you mean the enum value 'PENDING'" in told["errors"][0]["message"], told
    hidden = (await anonymous.post(ENUM_TYPO, {"status": "PENDIN"})).json()
    assert hidden.get("data") is None
    [error] = hidden["errors"]
    assert "PENDIN" in error["message"]
    assert "Did you mean" not in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_in_development_anyone_may_introspect_and_is_told(client: GraphQLClient) -> None:
    anonymous = client.anonymous()
    assert (await anonymous.execute(INTROSPECTION))["__type"] == {"name": "Order"}
    told = (await anonymous.post(TYPO)).json()["errors"][0]["message"]
    assert "Did you mean 'products'" in told
    enum = (await anonymous.post(ENUM_TYPO, {"status": "PENDIN"})).json()["errors"][0]
    assert "Did you mean the enum value 'PENDING'" in enum["message"]
