"""Automatic persisted queries (Apollo's APQ): query texts kept under their SHA-256, so that a
client sends a 64-character hash instead of a query it has sent once.

Kept in the process (bounded, least recently used dropped first) or in Redis for every
process (each text with a TTL, renewed when it is used). Anyone may register a text, so the
store is written as an attacker would fill it: a text is stored only once it has run (the
view's rule: it parsed and validated), never longer than a query may be, and the memory it
can take is bounded here or by the TTL there. A text read back from Redis is hashed again:
whoever can write to Redis cannot make a hash run another document.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from orderdesk.settings import Settings

logger = logging.getLogger("orderdesk.persisted_queries")

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
LOCAL_BUDGET = 5_000_000
"""Characters (plus ENTRY_OVERHEAD per entry) the in-process store holds at most."""
ENTRY_OVERHEAD = 200
"""What an entry costs beside its text (its hash, its slot): many tiny texts are bounded too."""
REDIS_TTL = 86_400
"""Seconds a text lives in Redis after its last use; a client whose hash has expired is told
PersistedQueryNotFound and sends the text again."""
REDIS_PREFIX = "orderdesk:apq:v1:"
STORE_TIMEOUT = 0.5
"""Seconds one Redis call may take: the store saves bandwidth, it must not cost latency."""


def document_hash(text: str) -> str:
    """The hash Apollo's PersistedQueryLink and the manifest generators send: hex SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()


class PersistedQueries(Protocol):
    """Where registered texts are kept. `find` answers None for a hash it does not know
    (or cannot tell: the client then sends the text, which runs as any text does)."""

    where: str

    async def find(self, sha256: str) -> str | None: ...

    async def remember(self, sha256: str, text: str) -> None: ...

    async def close(self) -> None: ...


class LocalPersistedQueries:
    """In this process: right for one process; with several, each learns a text on its own
    (a client's first hash-only request to each is answered PersistedQueryNotFound)."""

    where = "in this process"

    def __init__(self, *, max_text: int, budget: int = LOCAL_BUDGET) -> None:
        self.max_text = max_text
        self.budget = budget
        self.weight = 0
        self._texts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    async def find(self, sha256: str) -> str | None:
        text = self._texts.get(sha256)
        if text is not None:
            self._texts.move_to_end(sha256)
        return text

    async def remember(self, sha256: str, text: str) -> None:
        if len(text) > self.max_text or sha256 in self._texts:
            return
        self._texts[sha256] = text
        self.weight += len(text) + ENTRY_OVERHEAD
        while self.weight > self.budget:
            _, dropped = self._texts.popitem(last=False)
            self.weight -= len(dropped) + ENTRY_OVERHEAD

    async def close(self) -> None:
        self._texts.clear()
        self.weight = 0


class RedisPersistedQueries:
    """In Redis, shared by every process: a text registered through one is found by all.

    When Redis does not answer, lookups find nothing and registrations are dropped (logged
    once per outage): clients fall back to sending their texts, which costs bandwidth only.
    """

    def __init__(self, url: str, *, max_text: int, ttl: int = REDIS_TTL) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT
        )
        self.max_text = max_text
        self.ttl = ttl
        parts = urlsplit(url)
        self.where = f"in Redis at {parts.hostname}:{parts.port or 6379}{parts.path}"
        self._down = False

    async def find(self, sha256: str) -> str | None:
        try:
            # Read and renewed in one round trip: a text in use does not expire.
            raw = await self._redis.getex(REDIS_PREFIX + sha256, ex=self.ttl)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        self._answered()
        if raw is None:
            return None
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            return None
        if len(text) > self.max_text or document_hash(text) != sha256:
            logger.warning("a persisted query in Redis did not match its hash and was ignored")
            return None
        return text

    async def remember(self, sha256: str, text: str) -> None:
        if len(text) > self.max_text:
            return
        try:
            await self._redis.set(REDIS_PREFIX + sha256, text.encode(), ex=self.ttl)
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._answered()

    async def close(self) -> None:
        await self._redis.aclose()

    def _failed(self, error: Exception) -> None:
        if not self._down:
            logger.warning(
                "persisted queries: Redis does not answer (%r); hashes are not found until "
                "it does, and clients send their query texts",
                error,
            )
        self._down = True

    def _answered(self) -> None:
        if self._down:
            self._down = False
            logger.info("persisted queries: Redis answers again")


def persisted_queries_for(settings: Settings) -> PersistedQueries | None:
    """The store these settings ask for, None when APQ is off: apq_url, else the broker's
    Redis when broker_url is one, else the process."""
    if not settings.apq:
        return None
    url = settings.apq_url
    if url is None and _is_redis(settings.broker_url):
        url = settings.broker_url
    if url is None:
        return LocalPersistedQueries(max_text=settings.max_query_length)
    if not _is_redis(url):
        raise ValueError(f"ORDERDESK_APQ_URL must be a redis:// URL, not {url!r}")
    return RedisPersistedQueries(url, max_text=settings.max_query_length)


def _is_redis(url: str | None) -> bool:
    return url is not None and url.startswith(("redis://", "rediss://"))
