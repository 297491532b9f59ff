"""Retrying keyed order moves through the real HTTP endpoint: a move retried with its
idempotencyKey returns its first outcome, even once the order has moved on, and changes
nothing; keys belong to their caller and to their mutation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.graphql_client import JSON, GraphQLClient
from tests.ws_client import new_product, place_order, register

ERRORS = """__typename
    ... on Error { message }
    ... on ValidationError { fields { path message } }
    ... on NotFoundError { id }
    ... on InvalidTransitionError { from to }"""
PRODUCT = "query($id: ID!) { product(id: $id) { stock } }"
ORDER = "query($id: ID!) { order(id: $id) { status version } }"
KEY_REUSED = [{"path": ["idempotencyKey"], "message": "was already used for a different request"}]


async def move(client: GraphQLClient, mutation: str, **fields: Any) -> JSON:
    """confirmOrder, shipOrder, deliverOrder or cancelOrder with these input fields."""
    input_type = "CancelOrderInput" if mutation == "cancelOrder" else "ChangeOrderInput"
    success = mutation[0].upper() + mutation[1:] + "Success"
    data = await client.execute(
        f"""mutation($input: {input_type}!) {{ {mutation}(input: $input) {{
            {ERRORS} ... on {success} {{ order {{ id status version }} }} }} }}""",
        {"input": fields},
    )
    answer: JSON = data[mutation]
    return answer


async def an_order(client: GraphQLClient, name: str = "Ada") -> tuple[GraphQLClient, str, str]:
    """A customer (as a client), a product of 10, and the customer's order of 2 of it."""
    _, token = await register(client, name)
    customer = client.as_customer(token)
    product = await new_product(client, f"SKU-{name}", stock=10)
    order = await place_order(customer, product, 2)
    return customer, product, order["id"]


async def test_a_move_retried_after_a_later_move_returns_its_first_outcome(
    client: GraphQLClient,
) -> None:
    _, _, order = await an_order(client)
    confirm = {"id": order, "expectedVersion": 1, "idempotencyKey": "confirm-1"}
    confirmed = await move(client, "confirmOrder", **confirm)
    assert confirmed["order"] == {"id": order, "status": "CONFIRMED", "version": 2}
    shipped = await move(client, "shipOrder", id=order)
    assert shipped["order"]["status"] == "SHIPPED"
    events = await client.event_count()

    again = await move(client, "confirmOrder", **confirm)

    # Not an InvalidTransitionError (nor a ConflictError for the version): the first outcome,
    # with the order as it reads now.
    assert again["__typename"] == "ConfirmOrderSuccess", again
    assert again["order"] == {"id": order, "status": "SHIPPED", "version": 3}
    assert await client.event_count() == events
    unkeyed = await move(client, "confirmOrder", id=order)
    assert (unkeyed["__typename"], unkeyed["from"]) == ("InvalidTransitionError", "SHIPPED")


async def retried_at_once(client: GraphQLClient, mutation: str) -> None:
    """Ten attempts at one keyed move, all at once: one moves the order, all answer so."""
    _, _, order = await an_order(client)
    events = await client.event_count()
    status = "CONFIRMED" if mutation == "confirmOrder" else "CANCELLED"

    answers = await asyncio.gather(
        *(move(client, mutation, id=order, idempotencyKey="move-1") for _ in range(10))
    )

    assert {a["__typename"] for a in answers} == {f"{mutation[0].upper()}{mutation[1:]}Success"}
    assert [a["order"] for a in answers] == [{"id": order, "status": status, "version": 2}] * 10
    # A cancel is the order's event and the stock given back.
    assert await client.event_count() == events + (1 if mutation == "confirmOrder" else 2)


@pytest.mark.parametrize("mutation", ["confirmOrder", "cancelOrder"])
async def test_concurrent_retries_move_the_order_once(client: GraphQLClient, mutation: str) -> None:
    await retried_at_once(client, mutation)


@pytest.mark.postgres
@pytest.mark.parametrize("mutation", ["confirmOrder", "cancelOrder"])
async def test_concurrent_retries_move_the_order_once_on_postgres(
    postgres_client: GraphQLClient, mutation: str
) -> None:
    # Side by side, not one after another: the losers wait on the order's row lock, then
    # find it moved (InvalidTransition) or the key taken, and answer with the outcome.
    await retried_at_once(postgres_client, mutation)


async def test_a_retried_cancel_gives_the_stock_back_once(client: GraphQLClient) -> None:
    customer, product, order = await an_order(client)
    cancel = {"id": order, "reason": "changed my mind", "idempotencyKey": "cancel-1"}
    first = await move(customer, "cancelOrder", **cancel)
    assert first["order"]["status"] == "CANCELLED", first
    assert (await client.execute(PRODUCT, {"id": product}))["product"]["stock"] == 10

    again = await move(customer, "cancelOrder", **cancel)

    assert again == first
    assert (await client.execute(PRODUCT, {"id": product}))["product"]["stock"] == 10
    other_reason = await move(customer, "cancelOrder", **{**cancel, "reason": "too slow"})
    assert other_reason["fields"] == KEY_REUSED


async def test_the_same_key_with_other_input_is_refused_and_changes_nothing(
    client: GraphQLClient,
) -> None:
    _, _, order = await an_order(client)
    _, _, other_order = await an_order(client, "Bob")
    await move(client, "confirmOrder", id=order, idempotencyKey="k-1")
    events = await client.event_count()

    other_version = await move(
        client, "confirmOrder", id=order, expectedVersion=1, idempotencyKey="k-1"
    )
    other_id = await move(client, "confirmOrder", id=other_order, idempotencyKey="k-1")

    assert other_version["fields"] == other_id["fields"] == KEY_REUSED
    assert (await client.execute(ORDER, {"id": other_order}))["order"] == {
        "status": "PENDING",
        "version": 1,
    }
    assert await client.event_count() == events


async def test_a_key_is_per_mutation(client: GraphQLClient) -> None:
    _, _, order = await an_order(client)
    confirmed = await move(client, "confirmOrder", id=order, idempotencyKey="k-1")
    shipped = await move(client, "shipOrder", id=order, idempotencyKey="k-1")
    delivered = await move(client, "deliverOrder", id=order, idempotencyKey="k-1")
    assert [a["order"]["status"] for a in (confirmed, shipped, delivered)] == [
        "CONFIRMED",
        "SHIPPED",
        "DELIVERED",
    ]


async def test_one_customers_key_is_not_anothers(client: GraphQLClient) -> None:
    ada, _, adas_order = await an_order(client, "Ada")
    bob, _, bobs_order = await an_order(client, "Bob")
    adas = {"id": adas_order, "idempotencyKey": "cancel-1"}
    assert (await move(ada, "cancelOrder", **adas))["order"]["status"] == "CANCELLED"
    events = await client.event_count()

    # Ada's key and input replay nothing for Bob: her order is not his to see.
    as_bob = await move(bob, "cancelOrder", **adas)
    assert as_bob["__typename"] == "NotFoundError", as_bob
    assert await client.event_count() == events
    # And his own order under the same key is cancelled, not taken for a retry of hers.
    his = await move(bob, "cancelOrder", id=bobs_order, idempotencyKey="cancel-1")
    assert his["order"] == {"id": bobs_order, "status": "CANCELLED", "version": 2}
