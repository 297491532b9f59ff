"""Retrying keyed product mutations through the real HTTP endpoint: a restock, a creation or
an update retried with its idempotencyKey is applied once, however often and however
concurrently it is sent, and whatever the first answer was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.access import Identity, Role
from tests.databases import sqlite_settings
from tests.error_fields import error_fields
from tests.graphql_client import JSON, TOKENS, GraphQLClient
from tests.read_side import catalog_reads_failing
from tests.served import Served, serve
from tests.ws_client import new_product

# Each mutation's own errors: createProduct's result has no ConflictError.
CREATE_ERRORS = error_fields("ValidationError")
ERRORS = error_fields("ValidationError", "ConflictError")
PRODUCT_FIELDS = "id name stock version"
CREATE = f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
    {CREATE_ERRORS} ... on CreateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
UPDATE = f"""mutation($input: UpdateProductInput!) {{ updateProduct(input: $input) {{
    {ERRORS} ... on UpdateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
RESTOCK = f"""mutation($input: RestockProductInput!) {{ restockProduct(input: $input) {{
    {ERRORS} ... on RestockProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }} }} }}"""
PRODUCT = "query($id: ID!) { product(id: $id) { stock version } }"
CATALOG = "query($search: String!) { products(search: $search) { totalCount } }"
ANVIL = {"sku": "ANV-1", "name": "Anvil", "price": "19.50", "stock": 3}
KEY_REUSED = [{"path": ["idempotencyKey"], "message": "was already used for a different request"}]


async def send(client: GraphQLClient, mutation: str, **fields: Any) -> JSON:
    data = await client.execute(mutation, {"input": fields})
    (result,) = data.values()
    answer: JSON = result
    return answer


async def product_now(client: GraphQLClient, product_id: str) -> JSON:
    shown: JSON = (await client.execute(PRODUCT, {"id": product_id}))["product"]
    return shown


async def test_a_retried_restock_adds_the_stock_once(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-7c1e"}
    first = await send(client, RESTOCK, **restock)
    assert first["__typename"] == "RestockProductSuccess", first
    assert (first["product"]["stock"], first["product"]["version"]) == (8, 2)
    events = await client.event_count()

    retries = await asyncio.gather(*(send(client, RESTOCK, **restock) for _ in range(10)))

    assert all(retry == first for retry in retries), retries
    assert await product_now(client, anvil) == {"stock": 8, "version": 2}
    assert await client.event_count() == events


@pytest.mark.parametrize("expected_version", [None, 1])
async def test_concurrent_first_attempts_of_a_keyed_restock_add_the_stock_once(
    client: GraphQLClient, expected_version: int | None
) -> None:
    # Each attempt finds no outcome yet, and only one can store it: the others meet its
    # key (or, with expectedVersion, its version) and answer with its outcome.
    anvil = await new_product(client, "ANV-1", stock=3)
    events = await client.event_count()
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-1"}
    if expected_version is not None:
        restock["expectedVersion"] = expected_version

    answers = await asyncio.gather(*(send(client, RESTOCK, **restock) for _ in range(10)))

    assert {a["__typename"] for a in answers} == {"RestockProductSuccess"}, answers
    assert {(a["product"]["stock"], a["product"]["version"]) for a in answers} == {(8, 2)}
    assert await product_now(client, anvil) == {"stock": 8, "version": 2}
    assert await client.event_count() == events + 1


@pytest.fixture
def uncached(tmp_path: Path) -> Iterator[Served]:
    # Without the query cache, reading the result back reaches the failing engine.
    with serve(sqlite_settings(tmp_path, query_cache=False)) as running:
        yield running


async def test_a_restock_answered_with_an_error_is_safe_to_retry_with_its_key(
    uncached: Served,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, uncached)
        anvil = await new_product(client, "ANV-1", stock=3)
        restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-storm"}
        with catalog_reads_failing(uncached):
            failed = (await client.post(RESTOCK, {"input": restock})).json()
        assert failed["errors"][0]["extensions"]["code"] == "READ_MODEL_LAGGING"
        events = await client.event_count()

        retried = await send(client, RESTOCK, **restock)

        assert retried["__typename"] == "RestockProductSuccess", retried
        assert retried["product"]["stock"] == 8
        assert await product_now(client, anvil) == {"stock": 8, "version": 2}
        assert await client.event_count() == events


async def test_a_retried_creation_returns_the_same_product_and_creates_one(
    client: GraphQLClient,
) -> None:
    creation = {**ANVIL, "idempotencyKey": "create-anvil"}
    answers = await asyncio.gather(*(send(client, CREATE, **creation) for _ in range(5)))
    assert {a["__typename"] for a in answers} == {"CreateProductSuccess"}, answers
    ids = {a["product"]["id"] for a in answers}
    assert len(ids) == 1
    events = await client.event_count()

    again = await send(client, CREATE, **creation)

    assert again["product"]["id"] in ids
    assert (await client.execute(CATALOG, {"search": "ANV-1"}))["products"]["totalCount"] == 1
    assert await client.event_count() == events
    # Without the key, the same input is a second creation: refused, as the SKU is taken.
    unkeyed = await send(client, CREATE, **ANVIL)
    assert unkeyed["__typename"] == "ValidationError"
    assert [f["path"] for f in unkeyed["fields"]] == [["sku"]]


async def test_a_retried_update_bumps_the_version_once(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    update = {"id": anvil, "expectedVersion": 1, "name": "Big anvil", "idempotencyKey": "u-1"}
    first = await send(client, UPDATE, **update)
    assert first["__typename"] == "UpdateProductSuccess", first
    assert (first["product"]["name"], first["product"]["version"]) == ("Big anvil", 2)
    events = await client.event_count()

    # Its expectedVersion is stale now; the retry is not refused for it, it is a retry.
    again = await send(client, UPDATE, **update)

    assert again == first
    assert await product_now(client, anvil) == {"stock": 3, "version": 2}
    assert await client.event_count() == events


async def test_a_replay_shows_the_product_as_it_is_now(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-1"}
    await send(client, RESTOCK, **restock)
    await send(client, RESTOCK, id=anvil, quantity=1)

    again = await send(client, RESTOCK, **restock)

    assert again["__typename"] == "RestockProductSuccess", again
    assert (again["product"]["stock"], again["product"]["version"]) == (9, 3)


@pytest.mark.parametrize(
    "other",
    [
        {"quantity": 6},
        {"expectedVersion": 1},
        {"expectedVersion": 2},
    ],
)
async def test_the_same_key_with_other_input_is_refused_and_changes_nothing(
    client: GraphQLClient, other: JSON
) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-1"}
    await send(client, RESTOCK, **restock)
    events = await client.event_count()

    refused = await send(client, RESTOCK, **{**restock, **other})

    assert refused["__typename"] == "ValidationError", refused
    assert refused["fields"] == KEY_REUSED
    assert await product_now(client, anvil) == {"stock": 8, "version": 2}
    assert await client.event_count() == events


async def test_another_product_under_the_same_key_is_refused(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    bolt = await new_product(client, "BOLT-1", stock=3)
    await send(client, UPDATE, id=anvil, name="Big anvil", idempotencyKey="rename")
    events = await client.event_count()

    refused = await send(client, UPDATE, id=bolt, name="Big anvil", idempotencyKey="rename")

    assert refused["fields"] == KEY_REUSED
    assert await product_now(client, bolt) == {"stock": 3, "version": 1}
    assert await client.event_count() == events


async def test_keys_belong_to_their_caller_and_their_mutation(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "k-1"}
    await send(client, RESTOCK, **restock)
    other_staff = client.as_customer(TOKENS.issue(Identity("staff-2", Role.STAFF)))

    theirs = await send(other_staff, RESTOCK, **restock)
    renamed = await send(client, UPDATE, id=anvil, name="Big anvil", idempotencyKey="k-1")

    # Another caller's key is its own: the same input under it is a restock of its own.
    assert (theirs["product"]["stock"], theirs["product"]["version"]) == (13, 3)
    # Another mutation's key is its own too.
    assert (renamed["product"]["name"], renamed["product"]["version"]) == ("Big anvil", 4)


async def test_keys_are_optional_and_bounded(client: GraphQLClient) -> None:
    anvil = await new_product(client, "ANV-1", stock=3)
    events = await client.event_count()
    for key in ("", "k" * 201):
        refused = await send(client, RESTOCK, id=anvil, quantity=5, idempotencyKey=key)
        assert [f["path"] for f in refused["fields"]] == [["idempotencyKey"]], refused
    assert await client.event_count() == events
    # Unkeyed, each restock is a restock of its own, as before.
    await send(client, RESTOCK, id=anvil, quantity=5)
    await send(client, RESTOCK, id=anvil, quantity=5)
    assert await product_now(client, anvil) == {"stock": 13, "version": 3}


@pytest.mark.postgres
async def test_concurrent_keyed_restocks_add_the_stock_once_on_postgres(
    postgres_client: GraphQLClient,
) -> None:
    # PostgreSQL runs the attempts' transactions side by side (row locks, not a file lock):
    # the second to store the key waits for the first and then finds it taken.
    client = postgres_client
    anvil = await new_product(client, "ANV-1", stock=3)
    events = await client.event_count()
    restock = {"id": anvil, "quantity": 5, "idempotencyKey": "restock-1"}

    answers = await asyncio.gather(*(send(client, RESTOCK, **restock) for _ in range(10)))

    assert {a["__typename"] for a in answers} == {"RestockProductSuccess"}, answers
    assert await product_now(client, anvil) == {"stock": 8, "version": 2}
    assert await client.event_count() == events + 1
