"""The Redis query cache against a real Redis: entries are bound to their key."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis

from persistence.query_cache import RedisQueryCache
from tests.databases import REDIS_ENV

# A database of its own, emptied before and after (the shared-cache tests use 15).
REDIS_DB = 14


def _redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"the Redis query cache tests need {REDIS_ENV} (set by .ci/run)")
    return urlsplit(url)._replace(path=f"/{REDIS_DB}").geturl()


async def test_an_entry_copied_to_another_callers_key_is_not_served() -> None:
    url = _redis_url()
    raw = redis.Redis.from_url(url)
    cache = RedisQueryCache(url, secret=b"k" * 32)
    await raw.flushdb()
    try:
        tags = ["orders#all", "orders"]
        staff = await cache.lookup("staff-key", tags)
        await cache.store("staff-key", tags, staff.stamp, ["every order"], 1)
        assert (await cache.lookup("staff-key", tags)).hit

        # Whoever can write to Redis copies staff's signed entry onto a customer's key.
        keys = [key async for key in raw.scan_iter("*entry:staff-key")]
        assert len(keys) == 1
        entry = await raw.get(keys[0])
        assert entry is not None
        await raw.set(keys[0].replace(b"staff-key", b"customer-key"), entry)

        found = await cache.lookup("customer-key", tags)
        assert not found.hit
        assert found.value is None
    finally:
        await raw.flushdb()
        await raw.aclose()
        await cache.close()
