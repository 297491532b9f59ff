"""Webhooks on PostgreSQL with two served apps on one database: the fan-out and the couriers
of both share the work, so each delivery is sent once (and retried once after a failure),
whichever process committed the event."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import postgres_database_url
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.integration.test_webhooks_http import deliveries, eventually, register_webhook
from tests.read_side import create_product
from tests.served import serve
from tests.webhook_receiver import receiving

PRODUCTS = 12


@pytest.mark.postgres
async def test_two_processes_send_each_delivery_once() -> None:
    async with postgres_database_url() as url, receiving(statuses=[500]) as receiver:
        settings = Settings(
            database_url=url,
            poll_interval=0.2,
            jwt_secret=SecretStr(TEST_SECRET),
            webhook_allow_private=True,
            webhook_retry_delay=0.2,
        )
        with serve(settings) as one, serve(settings) as other:
            async with httpx.AsyncClient(timeout=60) as http:
                first, second = GraphQLClient(http, one), GraphQLClient(http, other)
                registered = await register_webhook(first, receiver.url(), "PRODUCT_CREATED")
                await asyncio.gather(
                    *(
                        create_product((first, second)[n % 2], f"SKU-{n}", "1.00")
                        for n in range(PRODUCTS)
                    )
                )
                arrived = await receiver.wait_for(PRODUCTS + 1, timeout=20)
                ids = [r.headers["orderdesk-delivery"] for r in arrived]
                # One delivery was answered 500 and sent again; every other, once.
                assert len(set(ids)) == PRODUCTS
                assert all(r.signed_with(registered["secret"]) for r in arrived)

                async def all_delivered() -> bool:
                    found = await deliveries(second, registered["webhook"]["id"])
                    return len(found) == PRODUCTS and all(d["status"] == "DELIVERED" for d in found)

                await eventually(all_delivered, what="every delivery")
                await asyncio.sleep(0.6)
                assert len(receiver.received) == PRODUCTS + 1
