"""A Redis broker that stops answering (its connections open and silent): each process
notices within seconds, says so in its log, and reconnects once Redis answers again; no
mutation waits on it meanwhile, and the events committed while it was frozen still reach
the other process's subscribers."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import ExitStack

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from orderdesk.settings import Settings
from tests.databases import postgres_database_url, redis_url
from tests.frozen_proxy import frozen_proxy
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import serve
from tests.ws_client import new_product, open_socket, place_order, register

POLL = 30.0
"""Long enough that an event arriving within seconds cannot have come by polling."""
NOTICED = 6.0
"""The reader pings after 1 s of silence and gives up after 3 s; with margin."""


async def _logged(caplog: pytest.LogCaptureFixture, text: str, within: float) -> float:
    started = time.monotonic()
    while not any(text in record.getMessage() for record in caplog.records):
        assert time.monotonic() - started < within, f"no log line with {text!r}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.postgres
async def test_a_frozen_redis_broker_is_noticed_and_left_for_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = make_url(redis_url())
    caplog.set_level(logging.WARNING, logger="orderdesk.wakeup")
    async with postgres_database_url() as database_url:
        with frozen_proxy(redis.host or "127.0.0.1", redis.port or 6379) as proxy:
            broker = redis.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            settings = Settings(
                database_url=database_url,
                poll_interval=POLL,
                jwt_secret=SecretStr(TEST_SECRET),
                broker_url=broker,
                query_cache=False,
            )
            with ExitStack() as stack:
                one = stack.enter_context(serve(settings))
                other = stack.enter_context(serve(settings))
                async with httpx.AsyncClient(timeout=30) as http:
                    writer = GraphQLClient(http, one)
                    product = await new_product(writer, "FRZ-1")
                    _, token = await register(writer, "Ada")
                    customer = writer.as_customer(token)
                    async with open_socket(other.ws_url) as socket:
                        await socket.init()
                        await socket.subscribe("orders")
                        placed = await place_order(customer, product)
                        event = await socket.next_data("orders", wait=2)
                        assert event["order"]["id"] == placed["id"]

                        proxy.freeze()
                        await _logged(caplog, "wake-up connection lost", within=NOTICED)
                        # Publishing is fire and forget: a frozen broker slows no write.
                        started = time.monotonic()
                        during = await place_order(customer, product)
                        assert time.monotonic() - started < 1.0

                        proxy.thaw()
                        # Reconnected: what was committed meanwhile comes at once, not
                        # at the next poll, and so do new events.
                        event = await socket.next_data("orders", wait=NOTICED)
                        assert event["order"]["id"] == during["id"]
                        after = await place_order(customer, product)
                        event = await socket.next_data("orders", wait=2)
                        assert event["order"]["id"] == after["id"]
