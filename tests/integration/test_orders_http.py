"""Customers and orders through the real HTTP endpoint: placing, moving, refusing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.tables import event_log, order_summaries, orders, products
from tests.error_fields import error_fields
from tests.graphql_client import JSON, GraphQLClient

# Each mutation's own errors: its result union lists no others.
REGISTER_ERRORS = error_fields("ValidationError")
PLACE_ERRORS = error_fields("ValidationError", "NotFoundError", "OutOfStockError")
MOVE_ERRORS = error_fields(
    "ValidationError", "NotFoundError", "ConflictError", "InvalidTransitionError"
)
ORDER_FIELDS = """id status version lineCount total { amount currency } placedAt
    customer { name email } shippingAddress { street city postalCode country }
    lines {
        productName quantity unitPrice { amount } lineTotal { amount } product { sku stock }
    }"""
REGISTER = f"""mutation($input: RegisterCustomerInput!) {{
    registerCustomer(input: $input) {{
        {REGISTER_ERRORS}
        ... on RegisterCustomerSuccess {{ accessToken customer {{ id name email orderCount }} }}
    }}
}}"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
    __typename ... on CreateProductSuccess { product { id stock } } } }"""
PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
    {PLACE_ERRORS} ... on PlaceOrderSuccess {{ order {{ {ORDER_FIELDS} }} }}
}} }}"""
ORDER = f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"
PRODUCT = "query($id: ID!) { product(id: $id) { stock version } }"
ME = "{ me { id name orderCount lifetimeValue { amount currency } } }"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


def move(name: str, success: str) -> str:
    input_type = "CancelOrderInput" if name == "cancelOrder" else "ChangeOrderInput"
    return f"""mutation($input: {input_type}!) {{
        {name}(input: $input) {{ {MOVE_ERRORS} ... on {success} {{ order {{ status version }} }} }}
    }}"""


async def register(client: GraphQLClient, name: str = "Ada", **extra: Any) -> tuple[str, str]:
    """A new customer's id and a client speaking as it."""
    email = extra.pop("email", f"{name.lower()}@example.com")
    result = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": name, "email": email, **extra}}
        )
    )["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    return result["customer"]["id"], result["accessToken"]


async def new_product(client: GraphQLClient, sku: str, stock: int, price: str = "2.50") -> str:
    result = await client.execute(
        CREATE_PRODUCT, {"input": {"sku": sku, "name": sku.title(), "price": price, "stock": stock}}
    )
    product_id: str = result["createProduct"]["product"]["id"]
    return product_id


def placing(*lines: tuple[str, int], **extra: Any) -> JSON:
    return {
        "input": {
            "lines": [{"productId": p, "quantity": q} for p, q in lines],
            "shippingAddress": ADDRESS,
            **extra,
        }
    }


async def stock_of(client: GraphQLClient, product_id: str) -> int:
    stock: int = (await client.execute(PRODUCT, {"id": product_id}))["product"]["stock"]
    return stock


async def test_register_then_place_and_read_an_order(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    anvil = await new_product(client, "anvil", 5, "10.00")
    bolt = await new_product(client, "bolt", 100, "0.25")

    placed = (await ada.execute(PLACE, placing((anvil, 2), (bolt, 4))))["placeOrder"]
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    order = placed["order"]
    assert (order["status"], order["version"], order["lineCount"]) == ("PENDING", 1, 2)
    assert order["total"] == {"amount": "21.00", "currency": "USD"}
    assert order["customer"] == {"name": "Ada", "email": "ada@example.com"}
    assert [(line["productName"], line["lineTotal"]["amount"]) for line in order["lines"]] == [
        ("Anvil", "20.00"),
        ("Bolt", "1.00"),
    ]
    assert order["lines"][0]["product"] == {"sku": "anvil", "stock": 3}
    assert (await ada.execute(ORDER, {"id": order["id"]}))["order"] == order
    me = (await ada.execute(ME))["me"]
    assert (me["orderCount"], me["lifetimeValue"]) == (1, {"amount": "21.00", "currency": "USD"})


async def test_an_order_moves_through_its_states(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    anvil = await new_product(client, "anvil", 5)
    order_id = (await ada.execute(PLACE, placing((anvil, 5))))["placeOrder"]["order"]["id"]

    for name, success, status, version in [
        ("confirmOrder", "ConfirmOrderSuccess", "CONFIRMED", 2),
        ("shipOrder", "ShipOrderSuccess", "SHIPPED", 3),
    ]:
        result = (
            await client.execute(
                move(name, success), {"input": {"id": order_id, "expectedVersion": version - 1}}
            )
        )[name]
        assert result["order"] == {"status": status, "version": version}

    refused = (
        await client.execute(move("cancelOrder", "CancelOrderSuccess"), {"input": {"id": order_id}})
    )["cancelOrder"]
    assert refused == {
        "__typename": "InvalidTransitionError",
        "message": refused["message"],
        "from": "SHIPPED",
        "to": "CANCELLED",
    }
    delivered = (
        await client.execute(
            move("deliverOrder", "DeliverOrderSuccess"), {"input": {"id": order_id}}
        )
    )["deliverOrder"]
    assert delivered["order"]["status"] == "DELIVERED"
    assert await stock_of(client, anvil) == 0


async def test_cancelling_releases_stock_and_lifetime_value(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    anvil = await new_product(client, "anvil", 5, "4.00")
    order_id = (await ada.execute(PLACE, placing((anvil, 3))))["placeOrder"]["order"]["id"]
    assert await stock_of(client, anvil) == 2
    cancelled = (
        await ada.execute(
            move("cancelOrder", "CancelOrderSuccess"), {"input": {"id": order_id, "reason": "oops"}}
        )
    )["cancelOrder"]
    assert cancelled["order"]["status"] == "CANCELLED"
    assert await stock_of(client, anvil) == 5
    me = (await ada.execute(ME))["me"]
    assert (me["orderCount"], me["lifetimeValue"]["amount"]) == (1, "0.00")


async def test_access_rules(client: GraphQLClient) -> None:
    _, ada_token = await register(client, "Ada")
    _, bob_token = await register(client, "Bob")
    ada, bob = client.as_customer(ada_token), client.as_customer(bob_token)
    anvil = await new_product(client, "anvil", 5)
    order_id = (await ada.execute(PLACE, placing((anvil, 1))))["placeOrder"]["order"]["id"]
    events = await client.event_count()

    # Another customer's order does not exist for Bob, to read or to cancel.
    assert (await bob.execute(ORDER, {"id": order_id}))["order"] is None
    cancel = move("cancelOrder", "CancelOrderSuccess")
    result = (await bob.execute(cancel, {"input": {"id": order_id}}))["cancelOrder"]
    assert result["__typename"] == "NotFoundError"
    # Customers do not move orders along, nor manage products; anonymous callers place nothing.
    confirm = move("confirmOrder", "ConfirmOrderSuccess")
    result = (await ada.execute(confirm, {"input": {"id": order_id}}))["confirmOrder"]
    assert result["__typename"] == "NotAuthorizedError"
    created = await ada.execute(CREATE_PRODUCT, {"input": {"sku": "x", "name": "x", "price": "1"}})
    assert created["createProduct"]["__typename"] == "NotAuthorizedError"
    anonymous = (await client.anonymous().execute(PLACE, placing((anvil, 1))))["placeOrder"]
    assert anonymous["__typename"] == "NotAuthorizedError"
    assert await client.event_count() == events

    forged = await client.as_customer(ada_token + "x").post(ORDER, {"id": order_id})
    assert forged.status_code == 401
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_invalid_orders_change_nothing(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    anvil = await new_product(client, "anvil", 5)
    events = await client.event_count()
    cases: list[tuple[JSON, set[str]]] = [
        (placing((anvil, 0), (anvil, -2)), {"lines.0.quantity", "lines.1.quantity"}),
        (placing(), {"lines"}),
        (placing(*[(anvil, 1)] * 51), {"lines"}),
        (placing((anvil, 1), (anvil, 1)), {"lines.1.productId"}),
        (placing(("UHJvZHVjdDpub3BlCg==", 1)), {"lines.0.productId"}),
        (placing(("Q3VzdG9tZXI6MQ==", 1)), {"lines.0.productId"}),
        (
            {
                "input": {
                    "lines": [{"productId": anvil, "quantity": 1}],
                    "shippingAddress": {**ADDRESS, "country": "USA", "street": ""},
                }
            },
            {"shippingAddress.country", "shippingAddress.street"},
        ),
    ]
    for variables, paths in cases:
        result = (await ada.execute(PLACE, variables))["placeOrder"]
        assert result["__typename"] == "ValidationError", (variables, result)
        assert {".".join(f["path"]) for f in result["fields"]} == paths, result
    assert await client.event_count() == events
    assert await stock_of(client, anvil) == 5


async def test_a_shortfall_half_way_through_an_order_reserves_nothing(
    client: GraphQLClient,
) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    plenty = await new_product(client, "plenty", 50)
    scarce = await new_product(client, "scarce", 1)
    events = await client.event_count()
    result = (await ada.execute(PLACE, placing((plenty, 10), (scarce, 2))))["placeOrder"]
    assert result == {
        "__typename": "OutOfStockError",
        "message": result["message"],
        "productId": scarce,
        "requested": 2,
        "available": 1,
    }
    assert (await stock_of(client, plenty), await stock_of(client, scarce)) == (50, 1)
    assert await client.event_count() == events


async def test_a_stale_version_is_a_conflict(client: GraphQLClient) -> None:
    _, token = await register(client)
    anvil = await new_product(client, "anvil", 5)
    order_id = (await client.as_customer(token).execute(PLACE, placing((anvil, 1))))["placeOrder"][
        "order"
    ]["id"]
    confirm = move("confirmOrder", "ConfirmOrderSuccess")
    await client.execute(confirm, {"input": {"id": order_id, "expectedVersion": 1}})
    events = await client.event_count()
    ship = move("shipOrder", "ShipOrderSuccess")
    stale = (await client.execute(ship, {"input": {"id": order_id, "expectedVersion": 1}}))[
        "shipOrder"
    ]
    assert (stale["__typename"], stale["expectedVersion"], stale["actualVersion"]) == (
        "ConflictError",
        1,
        2,
    )
    assert await client.event_count() == events


async def test_a_retried_idempotent_order_is_placed_once(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    anvil = await new_product(client, "anvil", 10)
    request = placing((anvil, 2), idempotencyKey="order-7f3a")
    first, second, third = await asyncio.gather(*(ada.execute(PLACE, request) for _ in range(3)))
    ids = {r["placeOrder"]["order"]["id"] for r in (first, second, third)}
    assert len(ids) == 1
    assert await stock_of(client, anvil) == 8
    again = (await ada.execute(PLACE, request))["placeOrder"]
    assert again["order"]["id"] in ids

    different = (await ada.execute(PLACE, placing((anvil, 3), idempotencyKey="order-7f3a")))[
        "placeOrder"
    ]
    assert different["__typename"] == "ValidationError"
    assert different["fields"][0]["path"] == ["idempotencyKey"]
    assert await stock_of(client, anvil) == 8

    # Keys belong to their caller: another customer's identical key is a new order.
    _, bob_token = await register(client, "Bob")
    bobs = (await client.as_customer(bob_token).execute(PLACE, request))["placeOrder"]
    assert bobs["order"]["id"] not in ids


async def test_a_retried_registration_returns_the_same_customer(client: GraphQLClient) -> None:
    key = {"idempotencyKey": "signup-1"}
    first_id, token = await register(client, "Ada", **key)
    ada = {"name": "Ada", "email": "ada@example.com", **key}
    again = (await client.anonymous().execute(REGISTER, {"input": ada}))["registerCustomer"]
    # A replay is no way in: it names the customer, and hands out no token.
    assert (again["customer"]["id"], again["accessToken"]) == (first_id, None)
    assert (await client.as_customer(token).execute(ME))["me"]["id"] == first_id
    # Anonymous keys belong to their input: another sign-up with the same key is its own.
    other_id, _ = await register(client, "Zed", **key)
    assert other_id != first_id
    taken = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": "Eve", "email": "ADA@example.com "}}
        )
    )["registerCustomer"]
    assert taken["__typename"] == "ValidationError"
    assert taken["fields"] == [{"path": ["email"], "message": "is already registered"}]


async def oversell(client: GraphQLClient, database_url: str) -> None:
    """50 concurrent single-unit orders for a product with 10 in stock."""
    tokens = [(await register(client, f"C{n}"))[1] for n in range(5)]
    product = await new_product(client, "hot", 10)
    results = await asyncio.gather(
        *(
            client.as_customer(tokens[n % 5]).execute(PLACE, placing((product, 1)))
            for n in range(50)
        )
    )
    kinds = Counter(r["placeOrder"]["__typename"] for r in results)
    assert kinds == {"PlaceOrderSuccess": 10, "OutOfStockError": 40}
    assert await stock_of(client, product) == 0

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            counts: dict[str, int] = dict(
                (
                    await connection.execute(
                        select(event_log.c.event_type, func.count()).group_by(
                            event_log.c.event_type
                        )
                    )
                ).all()
            )
            order_rows = await connection.scalar(select(func.count()).select_from(orders))
            summaries = await connection.scalar(select(func.count()).select_from(order_summaries))
            stock = await connection.scalar(select(products.c.stock).where(products.c.sku == "hot"))
    finally:
        await engine.dispose()
    assert (counts["OrderPlaced"], counts["StockReserved"]) == (10, 10)
    assert (order_rows, summaries, stock) == (10, 10, 0)


async def test_concurrent_orders_never_oversell_on_sqlite(client: GraphQLClient) -> None:
    await oversell(client, client.served.settings.database_url)


async def test_concurrent_orders_never_oversell_on_postgres(
    postgres_client: GraphQLClient,
) -> None:
    await oversell(postgres_client, postgres_client.served.settings.database_url)


async def test_lifetime_value_counts_one_currency(client: GraphQLClient) -> None:
    _, token = await register(client)
    ada = client.as_customer(token)
    dollars = await new_product(client, "usd", 5, "10.00")
    euros = (
        await client.execute(
            CREATE_PRODUCT,
            {"input": {"sku": "eur", "name": "Eur", "price": "10", "currency": "EUR", "stock": 5}},
        )
    )["createProduct"]["product"]["id"]
    await ada.execute(PLACE, placing((dollars, 1)))
    euro_order = (await ada.execute(PLACE, placing((euros, 1))))["placeOrder"]["order"]["id"]
    await ada.execute(move("cancelOrder", "CancelOrderSuccess"), {"input": {"id": euro_order}})
    me = (await ada.execute(ME))["me"]
    assert (me["orderCount"], me["lifetimeValue"]) == (2, {"amount": "10.00", "currency": "USD"})
