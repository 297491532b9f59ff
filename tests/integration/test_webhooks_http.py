"""Webhooks through the served app on SQLite, to a receiver in the test on 127.0.0.1: each
event once and signed, retries after failures with every attempt shown, an endpoint that
keeps failing disabled, and the refusals (a private URL, a caller who is not staff)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.settings import Settings
from persistence.tables import event_log, webhook_summaries
from tests.databases import sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.read_side import CONFIRM_ORDER, create_product, place_order, register
from tests.served import serve
from tests.webhook_receiver import Received, receiving
from tests.ws_client import PRODUCT_EVENTS, open_socket

MAX_FAILURES = 3
REGISTER_WEBHOOK = """mutation($input: RegisterWebhookInput!) {
    registerWebhook(input: $input) {
        __typename
        ... on Error { message }
        ... on ValidationError { fields { path message } }
        ... on RegisterWebhookSuccess { secret webhook { id url events active version } }
    }
}"""
DISABLE_WEBHOOK = """mutation($input: DisableWebhookInput!) {
    disableWebhook(input: $input) {
        __typename
        ... on Error { message }
        ... on DisableWebhookSuccess { webhook { id active disabledReason disabledAt } }
    }
}"""
WEBHOOKS = """query($first: Int, $after: String) {
    webhooks(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node { id url events active disabledReason } }
    }
}"""
DELIVERIES = """query($id: ID!) {
    webhookDeliveries(webhookId: $id) {
        totalCount
        edges { node {
            id eventType position status attemptCount nextAttemptAt lastStatusCode lastError
            finishedAt
            attempts {
                number attemptedAt succeeded statusCode error responseExcerpt durationMs
                nextRetryAt
            }
        } }
    }
}"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(
        tmp_path,
        webhook_allow_private=True,
        webhook_retry_delay=0.2,
        webhook_max_failures=MAX_FAILURES,
        webhook_connect_timeout=2.0,
        webhook_read_timeout=2.0,
    )


async def register_webhook(client: GraphQLClient, url: str, *events: str) -> JSON:
    result: JSON = (
        await client.execute(REGISTER_WEBHOOK, {"input": {"url": url, "events": list(events)}})
    )["registerWebhook"]
    assert result["__typename"] == "RegisterWebhookSuccess", result
    return result


async def deliveries(client: GraphQLClient, webhook_id: str) -> list[JSON]:
    data = await client.execute(DELIVERIES, {"id": webhook_id})
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, what: str = "it"
) -> Any:
    """Poll `check` until it answers something true; its last answer."""
    deadline = time.monotonic() + within
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s: {answer!r}")
        await asyncio.sleep(0.05)


def of_type(kind: str) -> Callable[[Received], bool]:
    return lambda request: request.json["type"] == kind


async def test_each_event_arrives_once_signed_with_the_secret_shown_at_registration(
    client: GraphQLClient,
) -> None:
    async with receiving() as receiver:
        events = ("PRODUCT_CREATED", "CUSTOMER_REGISTERED", "ORDER_PLACED", "ORDER_CONFIRMED")
        registered = await register_webhook(client, receiver.url(), *events)
        secret, webhook = registered["secret"], registered["webhook"]
        assert webhook["events"] == list(events)
        product = await create_product(client, "ANV-1", "19.50")
        ada = await register(client, "Ada")
        order = await place_order(client, ada.id, [(product, 2)])
        await client.execute(CONFIRM_ORDER, {"input": {"id": order["id"]}})
        arrived = await receiver.wait_for(4)
        assert sorted(r.json["type"] for r in arrived) == sorted(events)
        for request in arrived:
            assert request.signed_with(secret), request.headers
            assert request.headers["content-type"] == "application/json"
            assert request.headers["orderdesk-delivery"] == request.json["id"]
            assert request.path == "/hooks/orderdesk"
        placed = next(r.json for r in arrived if r.json["type"] == "ORDER_PLACED")
        assert placed["data"]["orderId"] == order["id"]
        assert placed["data"]["customerId"] == ada.id
        assert placed["data"]["lines"][0]["productId"] == product
        assert placed["data"]["total"] == "39.00"
        created = next(r.json for r in arrived if r.json["type"] == "PRODUCT_CREATED")
        assert created["data"]["productId"] == product

        async def all_delivered() -> list[JSON] | None:
            found = await deliveries(client, webhook["id"])
            done = len(found) == 4 and all(d["status"] == "DELIVERED" for d in found)
            return found if done else None

        shown = await eventually(all_delivered, what="four deliveries")
        assert [d["attemptCount"] for d in shown] == [1, 1, 1, 1]
        assert {d["id"] for d in shown} == {r.json["id"] for r in arrived}
        # Stock reserved by the order is no event a webhook is offered; nothing else came.
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 4


async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    client: GraphQLClient,
) -> None:
    async with receiving(statuses=[500, 503]) as receiver:
        registered = await register_webhook(client, receiver.url(), "PRODUCT_CREATED")
        await create_product(client, "ANV-2", "5.00")
        first, second, third = await receiver.wait_for(3)
        assert first.body == second.body == third.body
        assert len({r.headers["orderdesk-delivery"] for r in (first, second, third)}) == 1
        assert third.signed_with(registered["secret"])

        async def delivered() -> JSON | None:
            (delivery,) = await deliveries(client, registered["webhook"]["id"])
            return delivery if delivery["status"] == "DELIVERED" else None

        delivery = await eventually(delivered, what="the delivery")
        assert delivery["eventType"] == "PRODUCT_CREATED"
        assert delivery["attemptCount"] == 3
        assert (delivery["nextAttemptAt"], delivery["lastStatusCode"]) == (None, 200)
        attempts = delivery["attempts"]
        assert [(a["number"], a["statusCode"], a["succeeded"]) for a in attempts] == [
            (1, 500, False),
            (2, 503, False),
            (3, 200, True),
        ]
        assert [a["error"] for a in attempts] == ["answered 500", "answered 503", None]
        assert attempts[0]["nextRetryAt"] is not None
        assert attempts[1]["nextRetryAt"] > attempts[0]["nextRetryAt"]
        assert attempts[2]["nextRetryAt"] is None
        assert attempts[1]["attemptedAt"] >= attempts[0]["nextRetryAt"]
        # An excerpt of what the endpoint said, without its control characters.
        assert attempts[0]["responseExcerpt"] == "not today [31m <script>"
        assert attempts[2]["responseExcerpt"] == "received"


async def test_an_endpoint_that_keeps_failing_is_disabled_and_sent_nothing_more(
    client: GraphQLClient,
) -> None:
    async with receiving(always=500) as receiver:
        registered = await register_webhook(client, receiver.url(), "PRODUCT_CREATED")
        webhook_id = registered["webhook"]["id"]
        await create_product(client, "ANV-3", "5.00")

        async def disabled() -> JSON | None:
            data = await client.execute(WEBHOOKS)
            (node,) = [e["node"] for e in data["webhooks"]["edges"]]
            return node if not node["active"] else None

        webhook = await eventually(disabled, what="disabling")
        assert webhook["disabledReason"].startswith(
            f"disabled after {MAX_FAILURES} failed attempts in a row"
        )
        assert len(receiver.received) == MAX_FAILURES

        async def cancelled() -> JSON | None:
            (delivery,) = await deliveries(client, webhook_id)
            return delivery if delivery["status"] == "CANCELLED" else None

        delivery = await eventually(cancelled, what="the cancel")
        assert delivery["attemptCount"] == MAX_FAILURES
        await create_product(client, "ANV-4", "5.00")
        await asyncio.sleep(0.6)
        assert len(receiver.received) == MAX_FAILURES
        assert len(await deliveries(client, webhook_id)) == 1


async def test_staff_disable_a_webhook_and_list_them_newest_first(client: GraphQLClient) -> None:
    async with receiving() as receiver:
        first = (await register_webhook(client, receiver.url("/a"), "ORDER_PLACED"))["webhook"]
        second = (await register_webhook(client, receiver.url("/b"), "ORDER_SHIPPED"))["webhook"]
        answer = (
            await client.execute(
                DISABLE_WEBHOOK, {"input": {"id": first["id"], "reason": "moved to /c"}}
            )
        )["disableWebhook"]
        assert answer["webhook"]["active"] is False
        assert answer["webhook"]["disabledReason"] == "moved to /c"
        page = (await client.execute(WEBHOOKS, {"first": 1}))["webhooks"]
        assert page["totalCount"] == 2
        assert [e["node"]["id"] for e in page["edges"]] == [second["id"]]
        rest = await client.execute(WEBHOOKS, {"after": page["pageInfo"]["endCursor"]})
        assert [e["node"]["id"] for e in rest["webhooks"]["edges"]] == [first["id"]]
        node = await client.execute(
            "query($id: ID!) { node(id: $id) { ... on Webhook { url active } } }",
            {"id": first["id"]},
        )
        assert node["node"] == {"url": receiver.url("/a"), "active": False}


async def test_the_secret_is_shown_once_and_kept_on_the_write_side_only(
    client: GraphQLClient, settings: Settings
) -> None:
    secret = (await register_webhook(client, "http://127.0.0.1:9/x", "ORDER_PLACED"))["secret"]
    assert secret.startswith("whsec_")
    fields = await client.execute('{ __type(name: "Webhook") { fields { name } } }')
    assert "secret" not in {f["name"] for f in fields["__type"]["fields"]}
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            logged = [str(row) for row in await connection.execute(select(event_log))]
            shown = [str(row) for row in await connection.execute(select(webhook_summaries))]
            stored = await connection.scalar(text("SELECT secret FROM webhooks"))
    finally:
        await engine.dispose()
    assert stored == secret
    assert logged
    assert shown
    assert not [row for row in logged + shown if secret in row]


REFUSED_URLS = [
    "http://127.0.0.1:9/hook",
    "http://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:127.0.0.1]/hook",
    "http://localhost/hook",
]


async def test_a_private_url_is_refused_unless_the_service_allows_it(tmp_path: Path) -> None:
    with serve(sqlite_settings(tmp_path)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            for url in REFUSED_URLS:
                result = (
                    await client.execute(
                        REGISTER_WEBHOOK, {"input": {"url": url, "events": ["ORDER_PLACED"]}}
                    )
                )["registerWebhook"]
                assert result["__typename"] == "ValidationError", (url, result)
                assert [f["path"] for f in result["fields"]] == [["url"]], url
                assert "may not reach" in result["fields"][0]["message"], url
            assert await client.event_count() == 0


async def test_customers_and_anonymous_callers_may_not_touch_webhooks(
    client: GraphQLClient,
) -> None:
    webhook = (await register_webhook(client, "http://127.0.0.1:9/x", "ORDER_PLACED"))["webhook"]
    ada = await register(client, "Ada")
    events = await client.event_count()
    for caller in (client.as_customer(ada.token), client.anonymous()):
        answer = (
            await caller.execute(
                REGISTER_WEBHOOK,
                {"input": {"url": "http://127.0.0.1:9/y", "events": ["ORDER_PLACED"]}},
            )
        )["registerWebhook"]
        assert answer["__typename"] == "NotAuthorizedError"
        answer = (await caller.execute(DISABLE_WEBHOOK, {"input": {"id": webhook["id"]}}))[
            "disableWebhook"
        ]
        assert answer["__typename"] == "NotAuthorizedError"
        for query, variables in ((WEBHOOKS, {}), (DELIVERIES, {"id": webhook["id"]})):
            payload = (await caller.post(query, variables)).json()
            assert payload["data"] is None
            assert payload["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")
        node = await caller.execute(
            "query($id: ID!) { node(id: $id) { id } }", {"id": webhook["id"]}
        )
        assert node == {"node": None}
    assert await client.event_count() == events


async def test_webhook_events_in_the_log_reach_no_subscriber_and_hold_none_back(
    client: GraphQLClient,
) -> None:
    # The event tail has no view for a webhook's stream: its events pass it by unseen.
    async with open_socket(client.served.ws_url) as socket:
        await socket.init()
        await socket.subscribe("products", PRODUCT_EVENTS)
        webhook = (await register_webhook(client, "http://127.0.0.1:9/x", "ORDER_PLACED"))[
            "webhook"
        ]
        await client.execute(DISABLE_WEBHOOK, {"input": {"id": webhook["id"]}})
        product = await create_product(client, "ANV-6", "5.00")
        event = await socket.next_data("products", "productEvents")
        assert (event["type"], event["product"]["id"]) == ("CREATED", product)
