"""Reading orders and customers through the real HTTP endpoint: Relay connections with keyset
cursors, filters and sorts, who sees what, and a fixed number of SQL statements per query."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handlers.paging import encode_cursor
from orderdesk.settings import Settings
from tests.graphql_client import JSON, GraphQLClient
from tests.read_side import (
    CANCEL_ORDER,
    CONFIRM_ORDER,
    Shop,
    StatementLog,
    place_order,
    register,
    seed_shop,
)

ORDERS = """query($first: Int, $after: String, $customerId: ID, $status: OrderStatus,
                  $placedAfter: DateTime, $placedBefore: DateTime, $sort: OrderSort) {
    orders(first: $first, after: $after, customerId: $customerId, status: $status,
           placedAfter: $placedAfter, placedBefore: $placedBefore, sort: $sort) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id status total { amount } placedAt customer { id } } }
    }
}"""
CUSTOMERS = """query($first: Int, $after: String, $search: String) {
    customers(first: $first, after: $after, search: $search) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { cursor node { id name } }
    }
}"""
CUSTOMER_ORDERS = """query($id: ID!, $first: Int, $after: String, $status: OrderStatus,
                          $sort: OrderSort) {
    customer(id: $id) {
        orders(first: $first, after: $after, status: $status, sort: $sort) {
            totalCount
            pageInfo { hasNextPage hasPreviousPage endCursor }
            edges { cursor node { id } }
        }
    }
}"""


async def walk(client: GraphQLClient, page_size: int, **arguments: Any) -> list[JSON]:
    """Every node of `orders`, page after page, checking the page info on the way."""
    nodes: list[JSON] = []
    after = None
    while True:
        page = (await client.execute(ORDERS, {"first": page_size, "after": after, **arguments}))[
            "orders"
        ]
        nodes += [edge["node"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]


@pytest.fixture
async def shop(client: GraphQLClient) -> Shop:
    return await seed_shop(client, customers=3, orders=12)


# ---------------------------------------------------------------- pages, filters, sorts


async def test_every_sort_walks_every_order_once_in_order(
    client: GraphQLClient, shop: Shop
) -> None:
    placed = [order["id"] for order in shop.orders]
    by_total = sorted(shop.orders, key=lambda o: (float(o["total"]["amount"]), o["id"]))
    for page_size in (1, 5, 12, 100):
        newest = [node["id"] for node in await walk(client, page_size, sort="NEWEST")]
        assert sorted(newest) == sorted(placed)
        oldest = [node["id"] for node in await walk(client, page_size, sort="OLDEST")]
        assert oldest == newest[::-1]
        totals = await walk(client, page_size, sort="TOTAL_DESC")
        amounts = [float(node["total"]["amount"]) for node in totals]
        assert amounts == sorted(amounts, reverse=True)
        assert sorted(node["id"] for node in totals) == sorted(o["id"] for o in by_total)
    # NEWEST is the default, with 20 to a page.
    first = (await client.execute(ORDERS))["orders"]
    assert first["totalCount"] == 12
    assert [e["node"]["id"] for e in first["edges"]] == newest


async def test_filters_narrow_the_list_and_its_total(client: GraphQLClient, shop: Shop) -> None:
    customer = shop.customers[1]
    mine = await walk(client, 2, customerId=customer.id)
    assert {node["customer"]["id"] for node in mine} == {customer.id}
    assert len(mine) == 4
    total = (await client.execute(ORDERS, {"first": 1, "customerId": customer.id}))["orders"]
    assert total["totalCount"] == 4

    cancelled = [shop.orders[0]["id"], shop.orders[5]["id"]]
    for order_id in cancelled:
        result = await client.execute(CANCEL_ORDER, {"input": {"id": order_id}})
        assert result["cancelOrder"]["__typename"] == "CancelOrderSuccess"
    await client.execute(CONFIRM_ORDER, {"input": {"id": shop.orders[1]["id"]}})
    assert sorted(n["id"] for n in await walk(client, 1, status="CANCELLED")) == sorted(cancelled)
    pending = await walk(client, 3, status="PENDING", sort="TOTAL_DESC")
    assert len(pending) == 9
    assert {node["status"] for node in pending} == {"PENDING"}

    # placedAfter is inclusive and placedBefore exclusive: a split loses and repeats nothing.
    middle = sorted(order["placedAt"] for order in shop.orders)[6]
    before = await walk(client, 5, placedBefore=middle)
    after = await walk(client, 5, placedAfter=middle)
    assert sorted(n["id"] for n in before + after) == sorted(o["id"] for o in shop.orders)
    assert all(node["placedAt"] >= middle for node in after)
    assert all(node["placedAt"] < middle for node in before)
    both = await walk(client, 5, placedAfter=middle, placedBefore=middle)
    assert both == []


@pytest.mark.parametrize("first", [101, -1])
async def test_a_page_beyond_the_cap_is_a_clear_error(client: GraphQLClient, first: int) -> None:
    shopper = await register(client, "Paged Person")
    for query, variables in (
        (ORDERS, {"first": first}),
        (CUSTOMERS, {"first": first}),
        (CUSTOMER_ORDERS, {"first": first, "id": shopper.id}),
    ):
        response = await client.post(query, variables)
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "between 0 and 100" in error["message"]


async def test_bad_cursors_and_ids_are_bad_user_input(client: GraphQLClient, shop: Shop) -> None:
    newest = (await client.execute(ORDERS, {"first": 1, "sort": "NEWEST"}))["orders"]
    cursor = newest["pageInfo"]["endCursor"]
    products = (await client.execute("{ products(first: 1) { pageInfo { endCursor } } }"))[
        "products"
    ]
    for variables in (
        {"after": cursor, "sort": "TOTAL_DESC"},  # a cursor of another sort
        {"after": products["pageInfo"]["endCursor"]},  # a cursor of another list
        {"after": "garbage"},
        {"after": encode_cursor("orders.TOTAL_DESC", ["NaN", "x"]), "sort": "TOTAL_DESC"},
        {"after": encode_cursor("orders.TOTAL_DESC", ["1.23456", "x"]), "sort": "TOTAL_DESC"},
        {"customerId": shop.products[0]},  # a product's id where a customer's belongs
        {"placedAfter": "2026-01-01T00:00:00"},  # no time zone
    ):
        response = await client.post(ORDERS, {"first": 1, **variables})
        errors = response.json()["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", (variables, errors)


async def test_customer_orders_page_on_from_the_batched_first_page(
    client: GraphQLClient, shop: Shop
) -> None:
    customer = shop.customers[0]
    expected = [node["id"] for node in await walk(client, 100, customerId=customer.id)]
    for sort in ("NEWEST", "TOTAL_DESC"):
        seen: list[str] = []
        after = None
        while True:
            variables = {"id": customer.id, "first": 3, "after": after, "sort": sort}
            orders = (await client.execute(CUSTOMER_ORDERS, variables))["customer"]["orders"]
            assert orders["totalCount"] == 4
            seen += [edge["node"]["id"] for edge in orders["edges"]]
            if not orders["pageInfo"]["hasNextPage"]:
                break
            after = orders["pageInfo"]["endCursor"]
        assert sorted(seen) == sorted(expected)
        if sort == "NEWEST":
            assert seen == expected
    result = await client.execute(CUSTOMER_ORDERS, {"id": customer.id, "status": "CANCELLED"})
    assert result["customer"]["orders"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "endCursor": None},
        "edges": [],
    }


async def test_customers_are_listed_by_name_and_searched(client: GraphQLClient) -> None:
    names = ["Zoe Zed", "Adam Ant", "Mia Moe", "Bob Bee", "Ann Ant"]
    for name in names:
        await register(client, name)
    walked: list[str] = []
    after = None
    while True:
        page = (await client.execute(CUSTOMERS, {"first": 2, "after": after}))["customers"]
        assert page["totalCount"] == 5
        walked += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == sorted(names)
    found = (await client.execute(CUSTOMERS, {"search": " ANT "}))["customers"]
    assert [e["node"]["name"] for e in found["edges"]] == ["Adam Ant", "Ann Ant"]
    assert found["totalCount"] == 2
    by_email = (await client.execute(CUSTOMERS, {"search": "mia.moe@"}))["customers"]
    assert [e["node"]["name"] for e in by_email["edges"]] == ["Mia Moe"]
    assert (await client.execute(CUSTOMERS, {"search": "_"}))["customers"]["totalCount"] == 0


# ---------------------------------------------------------------- who sees what


async def test_a_customer_sees_its_own_orders_only(client: GraphQLClient, shop: Shop) -> None:
    alice, bob = shop.customers[0], shop.customers[1]
    as_alice = client.as_customer(alice.token)
    mine = await walk(as_alice, 2)
    assert len(mine) == 4
    assert {node["customer"]["id"] for node in mine} == {alice.id}
    assert (await as_alice.execute(ORDERS))["orders"]["totalCount"] == 4

    theirs = (await as_alice.execute(ORDERS, {"customerId": bob.id}))["orders"]
    assert (theirs["totalCount"], theirs["edges"]) == (0, [])
    # Bob's record, and so Bob's orders through it, read as nothing.
    assert (await as_alice.execute(CUSTOMER_ORDERS, {"id": bob.id}))["customer"] is None
    me = await as_alice.execute("{ me { orders(first: 10) { totalCount edges { node { id } } } } }")
    assert me["me"]["orders"]["totalCount"] == 4
    assert sorted(e["node"]["id"] for e in me["me"]["orders"]["edges"]) == sorted(
        node["id"] for node in mine
    )

    nobody = (await client.anonymous().execute(ORDERS))["orders"]
    assert (nobody["totalCount"], nobody["edges"]) == (0, [])


async def test_only_staff_may_list_customers(client: GraphQLClient, shop: Shop) -> None:
    for caller, code in (
        (client.as_customer(shop.customers[0].token), "FORBIDDEN"),
        (client.anonymous(), "UNAUTHENTICATED"),
    ):
        response = await caller.post(CUSTOMERS)
        payload = response.json()
        assert payload["data"] is None
        assert payload["errors"][0]["extensions"]["code"] == code
    staff = (await client.execute(CUSTOMERS))["customers"]
    assert staff["totalCount"] == 3


# ---------------------------------------------------------------- keyset under writes


async def test_walking_pages_while_orders_are_placed_sees_each_old_order_once(
    client: GraphQLClient, shop: Shop
) -> None:
    existing = {order["id"] for order in shop.orders}
    placing = asyncio.Event()

    async def keep_placing() -> None:
        for n in range(12):
            customer = shop.customers[n % len(shop.customers)]
            await place_order(client, customer.id, [(shop.products[n % 5], 1)])
            placing.set()

    for sort in ("NEWEST", "OLDEST", "TOTAL_DESC"):
        placing.clear()
        writer = asyncio.create_task(keep_placing())
        await placing.wait()
        seen: list[str] = []
        after = None
        while True:
            page = (await client.execute(ORDERS, {"first": 2, "after": after, "sort": sort}))[
                "orders"
            ]
            seen += [edge["node"]["id"] for edge in page["edges"]]
            # Give the writer a turn between pages, so that orders land mid-walk.
            await asyncio.sleep(0.02)
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        await writer
        assert len(seen) == len(set(seen)), f"{sort}: a row was seen twice"
        assert existing <= set(seen), f"{sort}: rows that existed were skipped"
        existing = {node["id"] for node in await walk(client, 100)}


# ---------------------------------------------------------------- no N+1


NESTED_ORDERS = """query($first: Int!) {
    orders(first: $first) {
        totalCount
        edges { node { customer { name } lines { product { name price { amount } } } } }
    }
}"""
# orders, Order.customer, Order.lines, OrderLine.product
NESTED_ORDERS_LEVELS = 4
NESTED_CUSTOMERS = """query($first: Int!) {
    customers(first: $first) {
        totalCount
        edges { node { orders(first: 4) {
            totalCount edges { node { lines { product { name } } } }
        } } }
    }
}"""
# customers, Customer.orders, Order.lines, OrderLine.product
NESTED_CUSTOMERS_LEVELS = 4


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Pages of 100 with every line are beyond the default cost limit, and what these tests
    # count is statements, not cost.
    return settings.model_copy(update={"max_query_cost": 200_000})


async def test_nested_queries_cost_the_same_statements_for_1_10_and_100_rows(
    client: GraphQLClient,
) -> None:
    await seed_shop(client, customers=100, orders=100)
    services = client.served.services
    log = StatementLog()
    engines = (
        services.write_engine,
        services.log_engine,
        services.read_engine,
        services.read_model_engine,
        services.scan_engine,
    )
    counts: dict[str, dict[int, int]] = {"orders": {}, "customers": {}}
    with log.watching(engines):
        await log.settle()
        for name, query in (("orders", NESTED_ORDERS), ("customers", NESTED_CUSTOMERS)):
            for first in (1, 10, 100):
                # Cold: what the read models cost, not what an earlier read left cached.
                if services.query_cache is not None:
                    await services.query_cache.flush()
                log.clear()
                data = await client.execute(query, {"first": first})
                statements = log.queries()
                counts[name][first] = len(statements)
                edges = data[name]["edges"]
                assert len(edges) == first
                if name == "orders":
                    assert all(len(e["node"]["lines"]) == 2 for e in edges)
                    assert all(e["node"]["customer"]["name"] for e in edges)
                else:
                    assert all(len(e["node"]["orders"]["edges"]) == 1 for e in edges)
    assert len(set(counts["orders"].values())) == 1, counts
    assert len(set(counts["customers"].values())) == 1, counts
    assert counts["orders"][100] <= NESTED_ORDERS_LEVELS + 1, counts
    assert counts["customers"][100] <= NESTED_CUSTOMERS_LEVELS + 1, counts
