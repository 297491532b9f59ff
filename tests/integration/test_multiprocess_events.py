"""Two server processes on one PostgreSQL database: a mutation handled by one reaches the
other's subscribers through the wake-up broker (LISTEN/NOTIFY, or Redis), far sooner than
the poll interval, which is set long so that the broker is what these tests prove."""

from __future__ import annotations

import time
from contextlib import ExitStack

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import postgres_database_url, redis_url
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import serve
from tests.ws_client import move_order, new_product, open_socket, place_order, register

POLL = 30.0
"""Long enough that an event arriving within seconds cannot have come by polling."""
PROMPTLY = 2.0


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["listen-notify", "redis"])
async def test_a_mutation_on_one_process_reaches_subscribers_on_the_other(broker: str) -> None:
    broker_url = redis_url() if broker == "redis" else None
    async with postgres_database_url() as database_url:
        settings = Settings(
            database_url=database_url,
            poll_interval=POLL,
            jwt_secret=SecretStr(TEST_SECRET),
            broker_url=broker_url,
        )
        with ExitStack() as stack:
            # Two apps, each with its own engines, projector, tail and broker connection:
            # what two processes have. Only the log and the broker join them.
            one = stack.enter_context(serve(settings))
            other = stack.enter_context(serve(settings))
            async with httpx.AsyncClient(timeout=30) as http:
                writer = GraphQLClient(http, one)
                product = await new_product(writer, "ANV-1")
                _, token = await register(writer, "Ada")
                async with open_socket(other.ws_url) as socket:
                    await socket.init()
                    await socket.subscribe("orders")
                    await socket.send({"type": "ping"})
                    assert await socket.receive() == {"type": "pong"}
                    started = time.monotonic()
                    placed = await place_order(writer.as_customer(token), product)
                    event = await socket.next_data("orders", wait=PROMPTLY)
                    placed_after = time.monotonic() - started
                    assert (event["type"], event["order"]["id"]) == ("PLACED", placed["id"])

                    started = time.monotonic()
                    await move_order(writer, "confirmOrder", placed["id"])
                    event = await socket.next_data("orders", wait=PROMPTLY)
                    confirmed_after = time.monotonic() - started
                    assert (event["type"], event["order"]["status"]) == ("CONFIRMED", "CONFIRMED")
    assert max(placed_after, confirmed_after) < PROMPTLY < POLL
