"""Replaying registerCustomer through the real HTTP endpoint: the same customer comes back,
and never a way into it. A key and an input are no secret (names and emails are known,
keys are chosen by clients), so whoever replays them may be anyone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import JSON, GraphQLClient

REGISTER = """mutation($input: RegisterCustomerInput!) {
    registerCustomer(input: $input) {
        __typename
        ... on ValidationError { fields { path message } }
        ... on RegisterCustomerSuccess {
            accessToken replayed
            customer { id name email orderCount lifetimeValue { amount } version }
        }
    }
}"""
ME = "{ me { id } }"
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
    ... on CreateProductSuccess { product { id } } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    __typename
    ... on ValidationError { fields { path message } }
    ... on PlaceOrderSuccess { order { id } }
} }"""
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
VICTIM = {"name": "Cust A", "email": "a@example.com", "idempotencyKey": "k-1"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Without the registration rate limit: it slows a replay down, and this shows that a
    # replay yields nothing however often it is tried.
    return sqlite_settings(
        tmp_path,
        rate_limits=False,
    )


async def register(client: GraphQLClient, **fields: Any) -> JSON:
    result: JSON = (await client.execute(REGISTER, {"input": fields}))["registerCustomer"]
    return result


async def test_the_first_registration_gets_a_token_and_its_replay_gets_none(
    client: GraphQLClient,
) -> None:
    anonymous = client.anonymous()
    first = await register(anonymous, **VICTIM)
    assert first["__typename"] == "RegisterCustomerSuccess", first
    assert first["replayed"] is False
    token = first["accessToken"]
    assert isinstance(token, str)
    customer_id = first["customer"]["id"]
    assert (await client.as_customer(token).execute(ME))["me"]["id"] == customer_id

    events = await client.event_count()
    again = await register(anonymous, **VICTIM)
    assert again["__typename"] == "RegisterCustomerSuccess"
    assert (again["accessToken"], again["replayed"], again["customer"]["id"]) == (
        None,
        True,
        customer_id,
    )
    assert await client.event_count() == events


async def test_no_replay_of_any_kind_yields_the_customers_token(client: GraphQLClient) -> None:
    first = await register(client.anonymous(), **VICTIM)
    customer_id = first["customer"]["id"]
    other = await register(client.anonymous(), name="Bob", email="bob@example.com")
    events = await client.event_count()

    burst = [register(client.anonymous(), **VICTIM) for _ in range(30)]
    as_others = [
        register(client.as_customer(other["accessToken"]), **VICTIM),
        register(client, **VICTIM),  # staff
        register(client.anonymous(), **{**VICTIM, "email": "A@Example.com"}),
        register(client.anonymous(), **{**VICTIM, "email": " a@example.com"}),
        register(client.anonymous(), **{k: v for k, v in VICTIM.items() if k != "idempotencyKey"}),
    ]
    answers = await asyncio.gather(*burst, *as_others)

    assert [a["accessToken"] for a in answers if "accessToken" in a] == [None] * 30
    assert all(a["customer"]["id"] == customer_id for a in answers[:30])
    # Anyone else, or another spelling of the input, is a new registration of a taken email.
    assert [a["__typename"] for a in answers[30:]] == ["ValidationError"] * 5
    assert {a["fields"][0]["message"] for a in answers[30:]} == {"is already registered"}
    assert await client.event_count() == events


async def test_a_burst_of_one_new_registration_hands_out_one_token(
    client: GraphQLClient,
) -> None:
    fields = {"name": "Ada", "email": "ada@example.com", "idempotencyKey": "signup-137"}
    answers = await asyncio.gather(*(register(client.anonymous(), **fields) for _ in range(12)))
    assert {a["__typename"] for a in answers} == {"RegisterCustomerSuccess"}
    assert len({a["customer"]["id"] for a in answers}) == 1
    tokens = [a["accessToken"] for a in answers if a["accessToken"] is not None]
    assert len(tokens) == 1
    assert sorted(a["replayed"] for a in answers) == [False] + [True] * 11


async def test_a_replay_shows_the_customer_as_registered_not_as_it_is_now(
    client: GraphQLClient,
) -> None:
    first = await register(client.anonymous(), **VICTIM)
    customer = client.as_customer(first["accessToken"])
    product = await client.execute(
        CREATE_PRODUCT, {"input": {"sku": "ANV-1", "name": "Anvil", "price": "19.50", "stock": 3}}
    )
    lines = [{"productId": product["createProduct"]["product"]["id"], "quantity": 2}]
    placed = await customer.execute(PLACE, {"input": {"lines": lines, "shippingAddress": ADDRESS}})
    assert placed["placeOrder"]["__typename"] == "PlaceOrderSuccess"

    again = await register(client.anonymous(), **VICTIM)
    assert again["customer"] == first["customer"]
    assert again["customer"]["orderCount"] == 0
    assert again["customer"]["lifetimeValue"] == {"amount": "0.00"}


async def test_the_same_key_with_other_input(client: GraphQLClient) -> None:
    anonymous = client.anonymous()
    first = await register(anonymous, **VICTIM)
    # Anonymous keys belong to their input: other input under the same key is its own.
    other = await register(anonymous, name="Zed", email="zed@example.com", idempotencyKey="k-1")
    assert other["__typename"] == "RegisterCustomerSuccess"
    assert other["customer"]["id"] != first["customer"]["id"]
    assert (other["replayed"], isinstance(other["accessToken"], str)) == (False, True)

    # A signed-in caller's key is its own: a retry returns its order, other input is refused.
    zed = client.as_customer(other["accessToken"])
    product = await client.execute(
        CREATE_PRODUCT, {"input": {"sku": "ANV-1", "name": "Anvil", "price": "19.50", "stock": 9}}
    )
    line = {"productId": product["createProduct"]["product"]["id"], "quantity": 1}
    order = {"lines": [line], "shippingAddress": ADDRESS, "idempotencyKey": "order-1"}
    placed = (await zed.execute(PLACE, {"input": order}))["placeOrder"]
    retried = (await zed.execute(PLACE, {"input": order}))["placeOrder"]
    assert retried == placed
    events = await client.event_count()
    changed = {**order, "lines": [{**line, "quantity": 2}]}
    refused = (await zed.execute(PLACE, {"input": changed}))["placeOrder"]
    assert refused["__typename"] == "ValidationError"
    assert refused["fields"] == [
        {"path": ["idempotencyKey"], "message": "was already used for a different request"}
    ]
    assert await client.event_count() == events
