"""Rate limits as a client meets them, over real HTTP and real websockets: 429 with
Retry-After and RATE_LIMITED once an address has spent its budget, 4429 for a websocket,
probes never refused, counters shared by every process through Redis, and requests
admitted when the counters do not answer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis
from websockets.typing import Subprotocol

from orderdesk.rate_limits import rate_limits_for
from orderdesk.settings import Settings
from tests.databases import REDIS_ENV, sqlite_url
from tests.graphql_client import STAFF_TOKEN, GraphQLClient
from tests.served import Served, serve
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, open_socket, register

REDIS_DB = 12
"""A database of its own, emptied before and after (the query cache tests use 14 and 15)."""
CLOSED_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: every connection is refused at once."""
TYPENAME = "{ __typename }"
ROOMY = "1000/minute"


def limited(settings: Settings, **budgets: object) -> Settings:
    """These settings with rate limits on: roomy budgets but for those given."""
    return settings.model_copy(
        update={
            "rate_limits": True,
            "rate_limit_per_address": ROOMY,
            "rate_limit_per_identity": ROOMY,
            "rate_limit_registrations": ROOMY,
            "rate_limit_failed_auth": ROOMY,
            **budgets,
        }
    )


@asynccontextmanager
async def client_of(served: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, served)


def assert_rate_limited(response: httpx.Response) -> int:
    """A 429 as the API promises it; its Retry-After."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert f"retry after {retry_after} s" in error["message"]
    return retry_after


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"the shared rate limit tests need {REDIS_ENV} (set by .ci/run)")
    return urlsplit(url)._replace(path=f"/{REDIS_DB}").geturl()


@asynccontextmanager
async def empty_redis_database(url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(url)
    await connection.flushdb()
    try:
        yield connection
    finally:
        await connection.flushdb()
        await connection.aclose()


# ---------------------------------------------------------------- per address, in the process


async def test_an_address_over_its_budget_is_answered_429_with_retry_after(
    settings: Settings,
) -> None:
    with serve(limited(settings, rate_limit_per_address="3/minute")) as served:
        async with client_of(served) as client:
            anonymous = client.anonymous()
            for _ in range(3):
                assert (await anonymous.post(TYPENAME)).status_code == 200

            assert_rate_limited(await anonymous.post(TYPENAME))
            # Any request counts, not only GraphQL ones: the GraphiQL page too.
            response = await client.http.get(served.http_url, headers={"Accept": "text/html"})
            assert_rate_limited(response)


async def test_probes_and_scrapers_are_never_limited(settings: Settings) -> None:
    with serve(limited(settings, rate_limit_per_address="1/minute")) as served:
        async with client_of(served) as client:
            await client.anonymous().post(TYPENAME)
            assert_rate_limited(await client.anonymous().post(TYPENAME))

            base = served.http_url.removesuffix("/graphql")
            for _ in range(3):
                for path in ("/health/live", "/health/ready", "/metrics"):
                    response = await client.http.get(base + path)
                    assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_over_the_address_budget_is_closed_with_4429(
    settings: Settings, protocol: Subprotocol
) -> None:
    with serve(limited(settings, rate_limit_per_address="2/minute")) as served:
        async with client_of(served) as client:
            assert (await client.anonymous().post(TYPENAME)).status_code == 200
            async with open_socket(served.ws_url, protocol) as admitted:
                await admitted.init(STAFF_TOKEN)
                # Accepted in the client's own subprotocol (open_socket checks), then closed.
                async with open_socket(served.ws_url, protocol) as refused:
                    code, reason = await refused.closed()
                assert code == 4429
                assert "retry after" in reason
            assert_rate_limited(await client.anonymous().post(TYPENAME))


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_operations_over_one_socket_spend_the_address_budget(
    settings: Settings, protocol: Subprotocol
) -> None:
    # One socket subscribing in a loop must not be a way around the budget per request.
    with serve(limited(settings, rate_limit_per_address="4/minute")) as served:
        async with open_socket(served.ws_url, protocol) as socket:
            await socket.init(None)
            for n in range(3):
                await socket.subscribe(str(n), TYPENAME)
                assert (await socket.receive())["payload"] == {"data": {"__typename": "Query"}}
                assert await socket.receive() == {"type": "complete", "id": str(n)}
            await socket.subscribe("over", TYPENAME)
            if socket.legacy:
                refusal = await socket.receive()
                assert refusal["type"] == "connection_error"
                assert "retry after" in refusal["payload"]["message"]
            code, reason = await socket.closed()
            assert code == 4429
            assert "retry after" in reason


# ---------------------------------------------------------------- counters in Redis


async def test_every_process_spends_one_budget_in_redis(tmp_path: Path, settings: Settings) -> None:
    url = redis_url()
    async with empty_redis_database(url) as raw:
        shared = limited(settings, rate_limit_per_address="4/minute", rate_limit_url=url)
        other = shared.model_copy(update={"database_url": sqlite_url(tmp_path / "other")})
        (tmp_path / "other").mkdir()
        with ExitStack() as stack:
            one = stack.enter_context(serve(shared))
            two = stack.enter_context(serve(other))
            async with client_of(one) as at_one, client_of(two) as at_two:
                for client in (at_one, at_two, at_one, at_two):
                    assert (await client.anonymous().post(TYPENAME)).status_code == 200
                assert_rate_limited(await at_one.anonymous().post(TYPENAME))
                assert_rate_limited(await at_two.anonymous().post(TYPENAME))

        keys = [key async for key in raw.scan_iter("*")]
        assert keys
        assert all(key.startswith(b"orderdesk:rate-limits:") for key in keys), keys


async def test_the_brokers_redis_keeps_the_counters_when_no_url_is_given(
    settings: Settings,
) -> None:
    url = redis_url()
    async with empty_redis_database(url):
        on_broker = limited(settings, rate_limit_per_address="1/minute", broker_url=url)
        one, two = rate_limits_for(on_broker), rate_limits_for(on_broker)
        assert one is not None
        assert two is not None
        await one.open()
        await two.open()
        try:
            assert await one.admit_address("10.0.0.1") is None
            wait = await two.admit_address("10.0.0.1")
            assert wait is not None
            assert 0 < wait <= 60
        finally:
            await one.close()
            await two.close()


async def test_requests_are_admitted_when_the_counters_do_not_answer(settings: Settings) -> None:
    unreachable = limited(settings, rate_limit_per_address="1/minute", rate_limit_url=CLOSED_REDIS)
    with serve(unreachable) as served:
        async with client_of(served) as client:
            for _ in range(3):
                response = await client.anonymous().post(TYPENAME)
                assert response.status_code == 200, response.text
                assert response.json() == {"data": {"__typename": "Query"}}
        unchecked = served.services.metrics.get_sample_value("orderdesk_rate_limit_unchecked_total")
    assert unchecked is not None
    assert unchecked >= 3


# ---------------------------------------------------------------- budgets the HTTP view spends


class TestBudgetsTheViewSpends:
    """The budgets per caller, for refused tokens and for registrations, which the HTTP view
    spends in its context (admit_identity, auth_blocked, failed_auth, CLIENT_ADDRESS) and
    turns into 429."""

    async def test_a_signed_in_caller_over_its_budget_is_answered_429(
        self, settings: Settings
    ) -> None:
        with serve(limited(settings, rate_limit_per_identity="2/minute")) as served:
            async with client_of(served) as staff:
                for _ in range(2):
                    assert (await staff.post(TYPENAME)).status_code == 200
                assert_rate_limited(await staff.post(TYPENAME))
                # The address has budget left: others behind it are still served.
                assert (await staff.anonymous().post(TYPENAME)).status_code == 200

    async def test_an_address_that_sent_too_many_refused_tokens_is_cut_off(
        self, settings: Settings
    ) -> None:
        with serve(limited(settings, rate_limit_failed_auth="2/minute")) as served:
            async with client_of(served) as client:
                guessing = client.as_customer("not-a-token")
                for _ in range(2):
                    assert (await guessing.post(TYPENAME)).status_code == 401
                assert_rate_limited(await guessing.post(TYPENAME))
                # Blocked before any token is verified: a right guess is refused as well.
                assert_rate_limited(await client.post(TYPENAME))

    async def test_registrations_over_the_address_budget_are_answered_429(
        self, settings: Settings
    ) -> None:
        with serve(limited(settings, rate_limit_registrations="2/minute")) as served:
            async with client_of(served) as client:
                await register(client, "Ada")
                await register(client, "Bob")
                before = await client.event_count()

                response = await client.anonymous().post(REGISTER, CAROL)

                assert_rate_limited(response)
                assert await client.event_count() == before
                # Only registrations are refused; the address may still ask anything else.
                assert (await client.anonymous().post(TYPENAME)).status_code == 200


REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename } }"""
CAROL: dict[str, Any] = {"input": {"name": "Carol", "email": "carol@example.com"}}
