"""What a client reads in a refusal, through the real HTTP endpoint: each rule in the domain's
words at the field's GraphQL path, and every entity named by the global id the API gave
it, never by the internal id inside (which is for the service's own logs)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.read_side import catalog_reads_failing
from tests.served import Served, serve

FRAGMENTS = {
    "ValidationError": "fields { path message }",
    "NotFoundError": "id",
    "ConflictError": "expectedVersion actualVersion",
    "OutOfStockError": "productId requested available",
    "InvalidTransitionError": "from to",
    "NotAuthorizedError": "__typename",
}


def mutation(name: str, input_type: str, success: str, *errors: str) -> str:
    """A mutation selecting every field of each error its result may be."""
    selected = " ".join(f"... on {error} {{ {FRAGMENTS[error]} }}" for error in errors)
    return f"""mutation($input: {input_type}!) {{ {name}(input: $input) {{
        __typename ... on Error {{ message }} {selected} {success} }} }}"""


ON_PRODUCT = ("ValidationError", "NotFoundError", "ConflictError", "NotAuthorizedError")
ON_ORDER = (*ON_PRODUCT, "InvalidTransitionError")
REGISTER = mutation(
    "registerCustomer",
    "RegisterCustomerInput",
    "... on RegisterCustomerSuccess { accessToken customer { id } }",
    "ValidationError",
)
CREATE = mutation(
    "createProduct",
    "CreateProductInput",
    "... on CreateProductSuccess { product { id } }",
    "ValidationError",
    "NotAuthorizedError",
)
UPDATE = mutation(
    "updateProduct",
    "UpdateProductInput",
    "... on UpdateProductSuccess { product { id } }",
    *ON_PRODUCT,
)
RESTOCK = mutation(
    "restockProduct",
    "RestockProductInput",
    "... on RestockProductSuccess { product { id stock } }",
    *ON_PRODUCT,
)
PLACE = mutation(
    "placeOrder",
    "PlaceOrderInput",
    "... on PlaceOrderSuccess { order { id version } }",
    "ValidationError",
    "NotFoundError",
    "OutOfStockError",
    "NotAuthorizedError",
)
CANCEL = mutation(
    "cancelOrder", "CancelOrderInput", "... on CancelOrderSuccess { order { status } }", *ON_ORDER
)
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
COUNTRY = 'a two-letter ISO country code, e.g. "DE"'

INTERNAL_ID = re.compile(r"[0-9a-f]{32}")
PYDANTIC_PHRASING = ("should be", "after validation", "Input should", "String should")


def move(name: str) -> str:
    return mutation(name, "ChangeOrderInput", "", *ON_ORDER)


def internal_id(global_id: str) -> str:
    """The entity's own id inside its global id: what no client should ever read."""
    _, local = base64.b64decode(global_id).decode().split(":", 1)
    return local


def a_global_id(kind: str) -> str:
    """A well-formed global id of `kind` that names nothing."""
    return base64.b64encode(f"{kind}:{uuid.uuid4().hex}".encode()).decode()


def texts(value: object) -> Iterator[str]:
    """Every string in a response: messages, paths, ids, extensions."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def leaks(response: JSON) -> list[str]:
    """What in a response names an entity by its internal id or speaks pydantic."""
    return [
        text
        for text in texts(response)
        if INTERNAL_ID.search(text) or any(phrase in text for phrase in PYDANTIC_PHRASING)
    ]


async def customer(client: GraphQLClient, name: str = "Ada") -> GraphQLClient:
    registered = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": name, "email": f"{name.lower()}@example.com"}}
        )
    )["registerCustomer"]
    return client.as_customer(registered["accessToken"])


async def product(client: GraphQLClient, sku: str, stock: int) -> str:
    created = await client.execute(
        CREATE, {"input": {"sku": sku, "name": sku.title(), "price": "2.50", "stock": stock}}
    )
    found: str = created["createProduct"]["product"]["id"]
    return found


def placing(*lines: tuple[str, int], **extra: Any) -> JSON:
    return {
        "input": {
            "lines": [{"productId": p, "quantity": q} for p, q in lines],
            "shippingAddress": ADDRESS,
            **extra,
        }
    }


async def test_an_order_without_lines_is_told_it_needs_one(client: GraphQLClient) -> None:
    ada = await customer(client)
    events = await client.event_count()
    refused = (await ada.execute(PLACE, placing()))["placeOrder"]
    assert refused == {
        "__typename": "ValidationError",
        "message": "Invalid input: lines: an order needs at least one line",
        "fields": [{"path": ["lines"], "message": "an order needs at least one line"}],
    }
    assert await client.event_count() == events


async def test_a_bad_country_is_told_the_iso_code_it_should_be(client: GraphQLClient) -> None:
    ada = await customer(client)
    anvil = await product(client, "anvil", 5)
    for country in ("USA", "de", "", "U" * 15_000):
        address = {**ADDRESS, "country": country}
        refused = (await ada.execute(PLACE, placing((anvil, 1), shippingAddress=address)))[
            "placeOrder"
        ]
        assert refused["fields"] == [{"path": ["shippingAddress", "country"], "message": COUNTRY}]


async def test_each_broken_rule_of_an_order_is_told_in_the_domains_words(
    client: GraphQLClient,
) -> None:
    ada = await customer(client)
    anvil = await product(client, "anvil", 5)
    events = await client.event_count()
    order = placing(
        (anvil, 0),
        (a_global_id("Product"), 1001),
        shippingAddress={**ADDRESS, "street": "", "postalCode": "1" * 21},
        specialInstructions="i" * 2001,
    )
    refused = (await ada.execute(PLACE, order))["placeOrder"]
    assert refused["fields"] == [
        {"path": ["shippingAddress", "street"], "message": "a street is required"},
        {
            "path": ["shippingAddress", "postalCode"],
            "message": "a postal code is at most 20 characters",
        },
        {"path": ["lines", "0", "quantity"], "message": "a quantity is at least 1"},
        {"path": ["lines", "1", "quantity"], "message": "a quantity is at most 1000"},
    ]
    too_many = (await ada.execute(PLACE, placing(*[(anvil, 1)] * 51)))["placeOrder"]
    assert too_many["fields"] == [{"path": ["lines"], "message": "an order has at most 50 lines"}]
    twice = (await ada.execute(PLACE, placing((anvil, 1), (anvil, 2))))["placeOrder"]
    assert twice["fields"] == [
        {"path": ["lines", "1", "productId"], "message": "this product is on another line already"}
    ]
    unknown = (await ada.execute(PLACE, placing((a_global_id("Product"), 1))))["placeOrder"]
    assert unknown["fields"] == [
        {"path": ["lines", "0", "productId"], "message": "no product has this id"}
    ]
    assert await client.event_count() == events


async def test_registration_and_catalog_refusals_say_the_rule(client: GraphQLClient) -> None:
    anonymous = client.anonymous()
    registration = {"name": "", "email": "ada.example.com"}
    registered = (await anonymous.execute(REGISTER, {"input": registration}))["registerCustomer"]
    assert registered["fields"] == [
        {"path": ["name"], "message": "a name is required"},
        {"path": ["email"], "message": "a valid email address"},
    ]
    created = (
        await client.execute(
            CREATE,
            {"input": {"sku": "-", "name": "Anvil", "price": "-1", "currency": "usd"}},
        )
    )["createProduct"]
    assert created["fields"] == [
        {
            "path": ["sku"],
            "message": "a SKU is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        },
        {"path": ["price"], "message": "a price cannot be negative"},
        {"path": ["currency"], "message": 'a three-letter ISO currency code, e.g. "USD"'},
    ]
    anvil = await product(client, "anvil", 5)
    restocked = (await client.execute(RESTOCK, {"input": {"id": anvil, "quantity": 0}}))[
        "restockProduct"
    ]
    assert restocked["fields"] == [{"path": ["quantity"], "message": "a quantity is at least 1"}]


async def test_out_of_stock_names_the_product_by_the_id_the_api_gave(
    client: GraphQLClient,
) -> None:
    ada = await customer(client)
    scarce = await product(client, "scarce", 1)
    response = (await ada.post(PLACE, placing((scarce, 2)))).json()
    refused = response["data"]["placeOrder"]
    assert refused == {
        "__typename": "OutOfStockError",
        "message": f"product {scarce} has 1 in stock, fewer than the 2 asked for",
        "productId": scarce,
        "requested": 2,
        "available": 1,
    }
    assert internal_id(scarce) not in str(response)


async def test_not_found_names_the_global_id_asked_for(client: GraphQLClient) -> None:
    missing = a_global_id("Order")
    refused = (await client.execute(move("confirmOrder"), {"input": {"id": missing}}))[
        "confirmOrder"
    ]
    assert refused == {
        "__typename": "NotFoundError",
        "message": f"there is no order with the id {missing}",
        "id": missing,
    }
    gone = await product(client, "gone", 1)
    await client.execute(
        """mutation($id: ID!) { deleteProduct(input: {id: $id}) { __typename } }""", {"id": gone}
    )
    restocked = (await client.execute(RESTOCK, {"input": {"id": gone, "quantity": 1}}))[
        "restockProduct"
    ]
    assert (restocked["id"], restocked["message"]) == (
        gone,
        f"there is no product with the id {gone}",
    )


async def test_no_refusal_names_an_internal_id_or_speaks_pydantic(client: GraphQLClient) -> None:
    """A set of failing mutations, one of each kind of refusal; every string of each answer
    (messages, fields, ids, extensions) is scanned."""
    ada = await customer(client)
    bob = await customer(client, "Bob")
    anvil = await product(client, "anvil", 5)
    placed = (await ada.execute(PLACE, placing((anvil, 1))))["placeOrder"]["order"]
    order = placed["id"]
    await client.execute(move("confirmOrder"), {"input": {"id": order}})
    await client.execute(move("shipOrder"), {"input": {"id": order}})
    key = {"idempotencyKey": "k-1"}
    await ada.execute(PLACE, placing((anvil, 1), **key))
    failing: list[tuple[GraphQLClient, str, JSON, str]] = [
        (ada, PLACE, placing(), "ValidationError"),
        (ada, PLACE, placing((anvil, 0), (anvil, 1)), "ValidationError"),
        (ada, PLACE, placing((anvil, 1), idempotencyKey=""), "ValidationError"),
        (ada, PLACE, placing((anvil, 2), **key), "ValidationError"),
        (ada, PLACE, placing((anvil, 99)), "OutOfStockError"),
        (ada, PLACE, placing((anvil, 1), customerId=a_global_id("Customer")), "NotAuthorizedError"),
        (client, PLACE, placing((anvil, 1), customerId=a_global_id("Customer")), "NotFoundError"),
        (client, PLACE, placing((anvil, 1)), "ValidationError"),
        (bob, CANCEL, {"input": {"id": order}}, "NotFoundError"),
        (ada, CANCEL, {"input": {"id": order}}, "InvalidTransitionError"),
        (ada, CANCEL, {"input": {"id": order, "reason": "r" * 501}}, "ValidationError"),
        (client, move("shipOrder"), {"input": {"id": order}}, "InvalidTransitionError"),
        (
            client,
            move("deliverOrder"),
            {"input": {"id": order, "expectedVersion": 1}},
            "ConflictError",
        ),
        (ada, move("confirmOrder"), {"input": {"id": order}}, "NotAuthorizedError"),
        (
            client,
            UPDATE,
            {"input": {"id": anvil, "expectedVersion": 9, "name": "A"}},
            "ConflictError",
        ),
        (
            client,
            UPDATE,
            {"input": {"id": anvil, "name": "", "price": "1.00001"}},
            "ValidationError",
        ),
        (client, UPDATE, {"input": {"id": a_global_id("Product"), "name": "A"}}, "NotFoundError"),
        (client, RESTOCK, {"input": {"id": anvil, "quantity": 10**9}}, "ValidationError"),
        (client, CREATE, {"input": {"sku": "anvil", "name": "A", "price": "1"}}, "ValidationError"),
        (
            client.anonymous(),
            REGISTER,
            {"input": {"name": "N" * 201, "email": "a" * 300}},
            "ValidationError",
        ),
    ]
    for caller, mutation, variables, typename in failing:
        response: JSON = (await caller.post(mutation, variables)).json()
        [result] = response["data"].values()
        assert result["__typename"] == typename, (variables, response)
        assert result["message"], response
        assert leaks(response) == [], response


@pytest.fixture
def uncached(tmp_path: Path) -> Iterator[Served]:
    # Without the query cache, reading a write back reaches the read models' engine.
    with serve(sqlite_settings(tmp_path, query_cache=False)) as running:
        yield running


async def test_a_committed_write_that_cannot_be_shown_names_it_by_its_global_id(
    uncached: Served,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, uncached)
        anvil = await product(client, "anvil", 1)
        with catalog_reads_failing(uncached):
            response = (await client.post(RESTOCK, {"input": {"id": anvil, "quantity": 5}})).json()
    [error] = response["errors"]
    assert error["extensions"] == {"code": "READ_MODEL_LAGGING", "id": anvil, "version": 2}
    assert error["message"] == (
        f"product {anvil} was saved at version 2 but cannot be shown yet; read it again "
        "shortly, without repeating the mutation"
    )
    assert leaks(response) == []


async def test_another_types_id_is_named_as_sent_with_its_kind(client: GraphQLClient) -> None:
    anvil = await product(client, "anvil", 5)
    someone = a_global_id("Customer")
    ada = await customer(client)
    events = await client.event_count()
    confirmed = (await client.execute(move("confirmOrder"), {"input": {"id": anvil}}))[
        "confirmOrder"
    ]
    assert confirmed == {
        "__typename": "NotFoundError",
        "message": f'"{anvil}" is a Product id, not an Order id',
        "id": anvil,
    }
    deleted = (
        await client.execute(
            """mutation($id: ID!) { deleteProduct(input: {id: $id}) {
                __typename ... on NotFoundError { id message } } }""",
            {"id": someone},
        )
    )["deleteProduct"]
    assert deleted == {
        "__typename": "NotFoundError",
        "message": f'"{someone}" is a Customer id, not a Product id',
        "id": someone,
    }
    updated = (await client.execute(UPDATE, {"input": {"id": someone, "name": "A"}}))[
        "updateProduct"
    ]
    assert (updated["__typename"], updated["id"]) == ("NotFoundError", someone)
    placed = (await ada.execute(PLACE, placing((someone, 1))))["placeOrder"]
    assert placed["fields"] == [
        {
            "path": ["lines", "0", "productId"],
            "message": f'"{someone}" is a Customer id, not a Product id',
        }
    ]
    assert await client.event_count() == events


async def test_an_id_that_names_nothing_is_named_as_sent(client: GraphQLClient) -> None:
    """Not re-encoded: the id in the answer is the text the client sent."""
    empty = base64.b64encode(b"Order:").decode()
    too_long = base64.b64encode(b"Order:" + b"x" * 300).decode()
    for sent, shown in ((empty, empty), (too_long, too_long[:80] + "…")):
        refused = (await client.execute(move("shipOrder"), {"input": {"id": sent}}))["shipOrder"]
        assert refused == {
            "__typename": "NotFoundError",
            "message": f'there is no order with the id "{shown}"',
            "id": sent,
        }


async def test_text_that_is_no_id_is_bad_user_input_naming_it_trimmed(
    client: GraphQLClient,
) -> None:
    # "!" is outside base64's alphabet: read leniently, the text would be another id.
    anvil = await product(client, "anvil", 5)
    for sent, shown in (
        ("garbage!", "garbage!"),
        (anvil + "!", anvil + "!"),
        ("x" * 5000, "x" * 80 + "…"),
    ):
        response = (await client.post(move("confirmOrder"), {"input": {"id": sent}})).json()
        [error] = response["errors"]
        assert error["message"] == f'"{shown}" is not an Order id, nor any id this API gives'
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert response["data"] is None
    read = (
        await client.post("query($id: ID!) { order(id: $id) { id } }", {"id": "x" * 5000})
    ).json()
    assert read["data"] == {"order": None}
    assert (
        read["errors"][0]["message"]
        == f'"{"x" * 80}…" is not an Order id, nor any id this API gives'
    )


async def test_a_list_filtered_by_another_types_id_says_which_kind_it_is(
    client: GraphQLClient,
) -> None:
    anvil = await product(client, "anvil", 5)
    response = (
        await client.post(
            "query($id: ID!) { orders(customerId: $id) { totalCount } }", {"id": anvil}
        )
    ).json()
    [error] = response["errors"]
    reason = f'"{anvil}" is a Product id, not a Customer id'
    assert error["message"] == reason
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "fields": [{"path": ["customerId"], "message": reason}],
    }
