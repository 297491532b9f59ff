"""Input strictness through the real HTTP endpoint: decimals in one spelling only, every
string bounded, and whatever is refused is a typed error that changes nothing and leaves no
traceback in the log."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from handlers.paging import encode_cursor
from orderdesk.settings import Settings
from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import JSON, TEST_SECRET, GraphQLClient
from tests.served import serve

CREATE = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
    __typename
    ... on ValidationError { fields { path message } }
    ... on CreateProductSuccess { product { id price { amount } } }
} }"""
UPDATE = """mutation($input: UpdateProductInput!) { updateProduct(input: $input) {
    __typename ... on ValidationError { fields { path message } } } }"""
REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename
    ... on ValidationError { fields { path message } }
    ... on RegisterCustomerSuccess { accessToken customer { id } }
} }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    __typename
    ... on ValidationError { fields { path message } }
    ... on PlaceOrderSuccess { order { id } }
} }"""
CANCEL = """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
    __typename
    ... on ValidationError { fields { path message } }
    ... on CancelOrderSuccess { order { status } }
} }"""
PRODUCTS = """query($search: String, $after: String, $sort: ProductSort) {
    products(search: $search, after: $after, sort: $sort) { totalCount edges { cursor } } }"""
CUSTOMERS = """query($search: String, $after: String) {
    customers(search: $search, after: $after) { totalCount edges { cursor } } }"""
ORDERS = """query($after: String, $sort: OrderSort) {
    orders(after: $after, sort: $sort) { edges { cursor } } }"""
CUSTOMER_ORDERS = """query($id: ID!, $after: String) {
    customer(id: $id) { ... on Customer { orders(after: $after) { edges { cursor } } } } }"""
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}

REFUSED_DECIMALS = [
    "\u0661\u0662\u0663",  # Arabic-Indic 123
    "\uff11\uff12\uff13",  # full-width 123
    "1_000",
    " 5",
    "5 ",
    "1e3",
    "+5",
    "5.",
    ".5",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "1,5",
    "",
]


def with_price_literal(literal: str) -> str:
    return (
        'mutation { createProduct(input: {sku: "ANV-1", name: "Anvil", price: PRICE}) '
        "{ __typename } }"
    ).replace("PRICE", literal)


def faults(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def user_input_error(payload: JSON) -> JSON:
    """The one GraphQL error of a refused operation, which must be BAD_USER_INPUT."""
    assert payload.get("data") in (None, {"products": None}, {"customers": None}), payload
    [error] = payload["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    result: JSON = error
    return result


async def product_id(client: GraphQLClient) -> str:
    created = await client.execute(
        CREATE, {"input": {"sku": "ANV-1", "name": "Anvil", "price": "19.50", "stock": 50}}
    )
    found: str = created["createProduct"]["product"]["id"]
    return found


# ---------------------------------------------------------------- decimals


@pytest.mark.parametrize("text", REFUSED_DECIMALS)
async def test_a_lenient_decimal_is_bad_user_input_as_a_variable_and_a_literal(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.DEBUG)
    events = await client.event_count()
    variable = await client.post(
        CREATE, {"input": {"sku": "ANV-1", "name": "Anvil", "price": text}}
    )
    user_input_error(variable.json())
    literal = await client.post(with_price_literal(json.dumps(text)))
    assert "Decimal" in user_input_error(literal.json())["message"]
    assert await client.event_count() == events
    assert faults(caplog) == []


@pytest.mark.parametrize("literal", ["1e3", "5", "19.5", "-1"])
async def test_a_number_is_no_decimal_as_a_literal(client: GraphQLClient, literal: str) -> None:
    response = await client.post(with_price_literal(literal))
    user_input_error(response.json())


@pytest.mark.parametrize("number", [5, 19.5, 1e3, True])
async def test_a_number_is_no_decimal_as_a_variable(client: GraphQLClient, number: float) -> None:
    id_ = await product_id(client)
    events = await client.event_count()
    for query, given in (
        (CREATE, {"sku": "ANV-2", "name": "Anvil", "price": number}),
        (UPDATE, {"id": id_, "price": number}),
    ):
        user_input_error((await client.post(query, {"input": given})).json())
    assert await client.event_count() == events


async def test_a_decimal_of_fifteen_thousand_digits_is_refused_at_once(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    huge = "1" + "0" * 15_000
    response = await client.post(CREATE, {"input": {"sku": "ANV-1", "name": "A", "price": huge}})
    error = user_input_error(response.json())
    assert len(error["message"]) < 300
    assert len(response.content) < 1_000
    assert faults(caplog) == []


async def test_plain_decimals_reach_the_domain(client: GraphQLClient) -> None:
    created = (
        await client.execute(CREATE, {"input": {"sku": "A-1", "name": "Anvil", "price": "19.50"}})
    )["createProduct"]
    assert created["product"]["price"] == {"amount": "19.50"}
    literal = await client.execute(
        'mutation { createProduct(input: {sku: "A-2", name: "Anvil", price: "0.0001"}) '
        "{ ... on CreateProductSuccess { product { price { amount } } } } }"
    )
    assert literal["createProduct"]["product"]["price"] == {"amount": "0.0001"}
    # Negative numbers are decimals; a negative price is the domain's to refuse.
    negative = (
        await client.execute(CREATE, {"input": {"sku": "A-3", "name": "Anvil", "price": "-1.5"}})
    )["createProduct"]
    assert negative["fields"] == [{"path": ["price"], "message": "a price cannot be negative"}]
    # Digits the scalar takes and the domain cannot hold: the domain says which rule.
    too_large = (
        await client.execute(CREATE, {"input": {"sku": "A-4", "name": "Anvil", "price": "9" * 28}})
    )["createProduct"]
    assert too_large["fields"][0]["path"] == ["price"]
    assert too_large["fields"][0]["message"] == "a price is less than 1000000000000"


# ---------------------------------------------------------------- query arguments


@pytest.mark.parametrize("query", [PRODUCTS, CUSTOMERS])
async def test_a_long_search_is_bad_user_input_and_leaves_no_traceback(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    caplog.set_level(logging.DEBUG)
    for search in ("%" * 15_000, "a" * 15_000, "a" * 201, "an\x00vil"):
        error = user_input_error((await client.post(query, {"search": search})).json())
        assert [f["path"] for f in error["extensions"]["fields"]] == [["search"]]
    assert faults(caplog) == []
    assert not [r for r in caplog.records if "LIKE" in r.getMessage()]
    # Up to the bound, a search is a search.
    found = await client.execute(query, {"search": "a" * 200})
    assert found[next(iter(found))]["totalCount"] == 0


async def test_a_huge_malformed_or_nul_cursor_is_bad_user_input_in_every_list(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": "Ada", "email": "ada@example.com"}}
        )
    )["registerCustomer"]
    lists: list[tuple[str, dict[str, Any]]] = [
        (PRODUCTS, {"sort": "NAME_ASC"}),
        (CUSTOMERS, {}),
        (ORDERS, {"sort": "TOTAL_DESC"}),
        (CUSTOMER_ORDERS, {"id": registered["customer"]["id"]}),
    ]
    # NUL inside a cursor's text: PostgreSQL cannot compare such text, it fails.
    nul = [
        encode_cursor("NAME_ASC", ["An\x00vil", "x"]),
        encode_cursor("customers.NAME", ["Ada\x00", "x"]),
        encode_cursor("orders.TOTAL_DESC", ["1.00", "o\x001"]),
    ]
    for cursor in ("A" * 15_000, "\u00e9" * 100, "%%%", *nul):
        for query, variables in lists:
            response = await client.post(query, {**variables, "after": cursor})
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT", (query, cursor, error)
            assert error["extensions"]["fields"][0]["path"] == ["after"]
    assert faults(caplog) == []


# ---------------------------------------------------------------- mutation inputs


PRODUCT_FIELDS = {"sku": "ANV-9", "name": "Anvil", "price": "1.00"}


@pytest.mark.parametrize(
    ("field", "longest"),
    [("sku", 64), ("name", 200), ("description", 5_000), ("currency", 3)],
)
async def test_an_overlong_product_field_is_a_validation_error_that_changes_nothing(
    client: GraphQLClient, field: str, longest: int
) -> None:
    id_ = await product_id(client)
    events = await client.event_count()
    for over in (longest + 1, 15_000):
        too_long = "A" * over
        created = (await client.execute(CREATE, {"input": {**PRODUCT_FIELDS, field: too_long}}))[
            "createProduct"
        ]
        assert [f["path"] for f in created["fields"]] == [[field]], created
        if field != "sku":
            updated = (await client.execute(UPDATE, {"input": {"id": id_, field: too_long}}))[
                "updateProduct"
            ]
            assert [f["path"] for f in updated["fields"]] == [[field]], updated
    assert await client.event_count() == events


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("name", "N" * 201, "name"),
        ("name", "N" * 15_000, "name"),
        ("email", f"{'a' * 243}@example.com", "email"),
        ("email", "a" * 15_000 + "@example.com", "email"),
        ("idempotencyKey", "k" * 201, "idempotencyKey"),
        ("idempotencyKey", "k" * 15_000, "idempotencyKey"),
    ],
)
async def test_an_overlong_registration_field_is_a_validation_error_that_changes_nothing(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture, field: str, value: str, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    events = await client.event_count()
    fields = {"name": "Ada", "email": "ada@example.com", field: value}
    refused = (await client.anonymous().execute(REGISTER, {"input": fields}))["registerCustomer"]
    assert refused["__typename"] == "ValidationError"
    assert [f["path"] for f in refused["fields"]] == [[path]]
    assert "at most" in refused["fields"][0]["message"]
    assert await client.event_count() == events
    assert faults(caplog) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"shippingAddress": {**ADDRESS, "street": "S" * 201}}, ["shippingAddress", "street"]),
        ({"shippingAddress": {**ADDRESS, "city": "C" * 101}}, ["shippingAddress", "city"]),
        ({"shippingAddress": {**ADDRESS, "state": "S" * 101}}, ["shippingAddress", "state"]),
        (
            {"shippingAddress": {**ADDRESS, "postalCode": "1" * 21}},
            ["shippingAddress", "postalCode"],
        ),
        (
            {"shippingAddress": {**ADDRESS, "country": "U" * 15_000}},
            ["shippingAddress", "country"],
        ),
        ({"specialInstructions": "i" * 2_001}, ["specialInstructions"]),
        ({"idempotencyKey": "k" * 201}, ["idempotencyKey"]),
    ],
)
async def test_an_overlong_order_field_is_a_validation_error_that_changes_nothing(
    client: GraphQLClient, change: JSON, path: list[str]
) -> None:
    registered = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": "Ada", "email": "ada@example.com"}}
        )
    )["registerCustomer"]
    ada = client.as_customer(registered["accessToken"])
    line = {"productId": await product_id(client), "quantity": 1}
    events = await client.event_count()
    order = {"lines": [line], "shippingAddress": ADDRESS, **change}
    refused = (await ada.execute(PLACE, {"input": order}))["placeOrder"]
    assert refused["__typename"] == "ValidationError"
    assert [f["path"] for f in refused["fields"]] == [path]
    assert await client.event_count() == events


async def test_an_overlong_cancellation_reason_is_a_validation_error_that_changes_nothing(
    client: GraphQLClient,
) -> None:
    registered = (
        await client.anonymous().execute(
            REGISTER, {"input": {"name": "Ada", "email": "ada@example.com"}}
        )
    )["registerCustomer"]
    ada = client.as_customer(registered["accessToken"])
    line = {"productId": await product_id(client), "quantity": 1}
    placed = (await ada.execute(PLACE, {"input": {"lines": [line], "shippingAddress": ADDRESS}}))[
        "placeOrder"
    ]
    events = await client.event_count()
    refused = (
        await ada.execute(CANCEL, {"input": {"id": placed["order"]["id"], "reason": "r" * 501}})
    )["cancelOrder"]
    assert [f["path"] for f in refused["fields"]] == [["reason"]]
    assert await client.event_count() == events
    cancelled = (
        await ada.execute(CANCEL, {"input": {"id": placed["order"]["id"], "reason": "r" * 500}})
    )["cancelOrder"]
    assert cancelled["order"]["status"] == "CANCELLED"


# ---------------------------------------------------------------- NUL, on either database


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GraphQLClient]:
    async with AsyncExitStack() as stack:
        url = (
            sqlite_url(tmp_path)
            if request.param == "sqlite"
            else await stack.enter_async_context(postgres_database_url())
        )
        settings = Settings(database_url=url, poll_interval=0.2, jwt_secret=SecretStr(TEST_SECRET))
        running = stack.enter_context(serve(settings))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
        yield GraphQLClient(http, running)


def global_id(kind: str, local: str) -> str:
    return base64.b64encode(f"{kind}:{local}".encode()).decode()


async def test_nul_in_an_argument_is_bad_user_input_or_names_nothing(
    any_store: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL cannot take NUL in text: it fails, where it should find nothing."""
    caplog.set_level(logging.DEBUG)
    client = any_store
    for query in (PRODUCTS, CUSTOMERS):
        error = user_input_error((await client.post(query, {"search": "an\x00vil"})).json())
        assert error["extensions"]["fields"][0]["path"] == ["search"]
    forged = encode_cursor("NAME_ASC", ["An\x00vil", "x"])
    error = user_input_error((await client.post(PRODUCTS, {"after": forged})).json())
    assert error["extensions"]["fields"][0]["path"] == ["after"]
    for field, kind in (("product", "Product"), ("customer", "Customer"), ("order", "Order")):
        by_id = f"query($id: ID!) {{ {field}(id: $id) {{ id }} node(id: $id) {{ id }} }}"
        found = await client.execute(by_id, {"id": global_id(kind, "a\x00b")})
        assert found == {field: None, "node": None}
    orders = "query($id: ID!) { orders(customerId: $id) { totalCount } }"
    error = (await client.post(orders, {"id": global_id("Customer", "a\x00b")})).json()
    assert user_input_error(error)["extensions"]["fields"] == [
        {"path": ["customerId"], "message": "is not a customer id"}
    ]
    assert faults(caplog) == []
