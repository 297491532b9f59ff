"""What a stranger can make the automatic persisted query store hold, through a served app:
at most apq_max_documents texts in Redis, the least recently used evicted with their keys;
and new texts per client address within rate_limit_persisted_queries, past which a text still
runs but is not stored, while known hashes keep answering."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis

from orderdesk.persisted_queries import REDIS_INDEX, REDIS_PREFIX, REDIS_TTL
from orderdesk.settings import Settings
from tests.databases import REDIS_ENV
from tests.graphql_client import JSON
from tests.served import Served, serve

REDIS_DB = 11
"""A database of its own, emptied before and after (persisted queries' HTTP tests use 13,
rate limits 12, the query cache 14 and 15)."""
ROOMY = "1000/minute"
ANSWER = {"data": {"products": {"totalCount": 0}}}


def query(n: int) -> str:
    return f"query Q{n} {{ products(first: 1) {{ totalCount }} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> JSON:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


async def register(served: Served, http: httpx.AsyncClient, text: str) -> JSON:
    """What PersistedQueryLink sends after PERSISTED_QUERY_NOT_FOUND: hash and text."""
    response = await http.post(served.http_url, json={"query": text, "extensions": persisted(text)})
    assert response.status_code == 200, response.text
    body: JSON = response.json()
    return body


async def by_hash(served: Served, http: httpx.AsyncClient, text: str) -> JSON:
    response = await http.post(served.http_url, json={"extensions": persisted(text)})
    assert response.status_code == 200, response.text
    body: JSON = response.json()
    return body


def not_found(body: JSON) -> bool:
    return [error["extensions"]["code"] for error in body.get("errors", [])] == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"the persisted query store in Redis needs {REDIS_ENV} (set by .ci/run)")
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


async def stored_texts(connection: redis.Redis) -> list[bytes]:
    # Bytes: the connection does not decode.
    return sorted(
        key for key in await connection.keys(f"{REDIS_PREFIX}*") if isinstance(key, bytes)
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_redis_keeps_at_most_its_count_of_texts_the_most_recently_used(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    url = redis_url()
    async with empty_redis_database(url) as connection:
        capped = settings.model_copy(update={"apq_url": url, "apq_max_documents": 3})
        with serve(capped) as served:
            for n in range(3):
                assert await register(served, http, query(n)) == ANSWER
            # Used by its hash: the most recently used, kept over the two registered after.
            assert await by_hash(served, http, query(0)) == ANSWER
            for n in (3, 4):
                assert await register(served, http, query(n)) == ANSWER

            assert await stored_texts(connection) == sorted(
                f"{REDIS_PREFIX}{sha256(query(n))}".encode() for n in (0, 3, 4)
            )
            for n in (0, 3, 4):
                assert await by_hash(served, http, query(n)) == ANSWER
            for n in (1, 2):
                assert not_found(await by_hash(served, http, query(n)))

            for n in range(5, 40):
                assert await register(served, http, query(n)) == ANSWER
            texts = await stored_texts(connection)
            assert texts == sorted(
                f"{REDIS_PREFIX}{sha256(query(n))}".encode() for n in (37, 38, 39)
            )
            assert await connection.zcard(REDIS_INDEX) == 3
            for key in [*texts, REDIS_INDEX.encode()]:
                assert 0 < await connection.ttl(key) <= REDIS_TTL


@pytest.fixture(params=["in this process", "in Redis"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "in Redis":
        return settings.model_copy(update={"apq_url": redis_url()})
    return settings


async def test_new_texts_past_an_address_s_budget_run_but_are_not_stored(
    store_settings: Settings, http: httpx.AsyncClient
) -> None:
    budgeted = store_settings.model_copy(
        update={
            "rate_limits": True,
            "rate_limit_per_address": ROOMY,
            "rate_limit_per_identity": ROOMY,
            "rate_limit_registrations": ROOMY,
            "rate_limit_failed_auth": ROOMY,
            "rate_limit_persisted_queries": "2/minute",
        }
    )
    async with AsyncExitStack() as stack:
        if budgeted.apq_url is not None:
            await stack.enter_async_context(empty_redis_database(budgeted.apq_url))
        with serve(budgeted) as served:
            assert await register(served, http, query(1)) == ANSWER
            # Sent again with its text (a client that missed the first answer): known, free.
            assert await register(served, http, query(1)) == ANSWER
            assert await register(served, http, query(2)) == ANSWER
            # Over the budget: answered as any text is, and not stored.
            assert await register(served, http, query(3)) == ANSWER
            assert not_found(await by_hash(served, http, query(3)))
            assert await register(served, http, query(3)) == ANSWER
            assert not_found(await by_hash(served, http, query(3)))
            # Known hashes keep answering, as often as the requests' own budget allows.
            for _ in range(5):
                assert await by_hash(served, http, query(1)) == ANSWER
                assert await by_hash(served, http, query(2)) == ANSWER

            metrics = await http.get(served.http_url.replace("/graphql", "/metrics"))
            assert 'orderdesk_rate_limited_total{budget="persisted_query"} 2.0' in metrics.text
