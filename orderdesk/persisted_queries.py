"""Automatic persisted queries (Apollo's APQ): query texts kept under their SHA-256, so that a
client sends a 64-character hash instead of a query it has sent once.

Kept in the process or in Redis for every process. Anyone may register a text, so the
store is written as an attacker would fill it: a text is stored only once it has run (the
view's rule: it parsed and validated), only if it is no longer than a query may be (in UTF-8
bytes, what Redis keeps), only within its sender's budget of new texts
(settings.rate_limit_persisted_queries), and either store holds at most
settings.apq_max_documents texts, the least recently used dropped first: what it takes is
at most that many times max_query_length, whatever a stranger sends. A text read back from
Redis is hashed again: whoever can write to Redis cannot make a hash run another document.
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

from orderdesk.rate_limits import admit_persisted_query
from orderdesk.settings import Settings

logger = logging.getLogger("orderdesk.persisted_queries")

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
REDIS_TTL = 86_400
"""Seconds a text lives in Redis after its last use; a client whose hash has expired is told
PersistedQueryNotFound and sends the text again."""
REDIS_PREFIX = "orderdesk:apq:v1:"
REDIS_INDEX = "orderdesk:apq:last-used:v1"
"""A sorted set of the stored hashes, scored by their last use in ms (Redis's clock): the
count is read and trimmed there, and the evicted texts deleted, in one script."""
STORE_TIMEOUT = 0.5
"""Seconds one Redis call may take: the store saves bandwidth, it must not cost latency."""


def document_hash(text: str) -> str:
    """The hash Apollo's PersistedQueryLink and the manifest generators send: hex SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()


def storable(text: str, max_text: int) -> bool:
    """At most max_text bytes in UTF-8 (so at most max_text characters too): the bound on
    what one stored text takes is then the same in the process and in Redis."""
    return len(text) <= max_text and len(text.encode()) <= max_text


class PersistedQueries(Protocol):
    """Where registered texts are kept. `find` answers None for a hash it does not know
    (or cannot tell: the client then sends the text, which runs as any text does)."""

    where: str

    async def find(self, sha256: str) -> str | None: ...

    async def remember(self, sha256: str, text: str) -> None:
        """Store a text that has run under its hash; a known hash is only marked used, and
        a new text is stored within its sender's budget of new texts, else not at all."""
        ...

    async def close(self) -> None: ...


class LocalPersistedQueries:
    """In this process: right for one process; with several, each learns a text on its own
    (a client's first hash-only request to each is answered PersistedQueryNotFound)."""

    where = "in this process"

    def __init__(self, *, max_text: int, max_documents: int) -> None:
        self.max_text = max_text
        self.max_documents = max_documents
        self._texts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    async def find(self, sha256: str) -> str | None:
        text = self._texts.get(sha256)
        if text is not None:
            self._texts.move_to_end(sha256)
        return text

    async def remember(self, sha256: str, text: str) -> None:
        if not storable(text, self.max_text):
            return
        if sha256 in self._texts:
            self._texts.move_to_end(sha256)
            return
        if await admit_persisted_query() is not None:
            return
        self._texts[sha256] = text
        while len(self._texts) > self.max_documents:
            self._texts.popitem(last=False)

    async def close(self) -> None:
        self._texts.clear()


_MARK_USED = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
"""
# Each script is one atomic step: a text and its place in the index come and go together, so
# that every stored text is counted and none outlives its eviction. The index is renewed with
# every use, so it outlives every text; entries whose texts expired are the oldest, and so
# the first trimmed.
FIND = (
    """
local text = redis.call('GETEX', KEYS[1], 'EX', ARGV[1])
if text then
"""
    + _MARK_USED
    + """
end
return text
"""
)
MARK_USED = (
    """
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 0 then
  return 0
end
"""
    + _MARK_USED
    + """
return 1
"""
)
STORE = (
    """
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])
"""
    + _MARK_USED
    + """
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  for _, dropped in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess - 1)) do
    redis.call('DEL', ARGV[5] .. dropped)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
"""
)


class RedisPersistedQueries:
    """In Redis, shared by every process: a text registered through one is found by all.

    Each text lives REDIS_TTL after its last use, and REDIS_INDEX counts them: storing one
    past max_documents deletes the least recently used, in the same script (Redis 6.2 or
    later, for GETEX). A sorted set rather than Redis's own eviction: the store usually
    shares its Redis with the broker and the rate limits, whose keys a maxmemory policy
    would evict too, or (noeviction) refuse to write.

    When Redis does not answer, lookups find nothing and registrations are dropped (logged
    once per outage): clients fall back to sending their texts, which costs bandwidth only.
    """

    def __init__(
        self, url: str, *, max_text: int, max_documents: int, ttl: int = REDIS_TTL
    ) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT
        )
        self._find = self._redis.register_script(FIND)
        self._mark_used = self._redis.register_script(MARK_USED)
        self._store = self._redis.register_script(STORE)
        self.max_text = max_text
        self.max_documents = max_documents
        self.ttl = ttl
        parts = urlsplit(url)
        self.where = f"in Redis at {parts.hostname}:{parts.port or 6379}{parts.path}"
        self._down = False

    async def find(self, sha256: str) -> str | None:
        try:
            # Read and renewed in one round trip: a text in use does not expire.
            raw = await self._find(keys=self._keys(sha256), args=[self.ttl, sha256])
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        self._answered()
        if not isinstance(raw, bytes) or len(raw) > self.max_text:
            return None
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return None
        if document_hash(text) != sha256:
            logger.warning("a persisted query in Redis did not match its hash and was ignored")
            return None
        return text

    async def remember(self, sha256: str, text: str) -> None:
        if not storable(text, self.max_text):
            return
        keys = self._keys(sha256)
        try:
            if await self._mark_used(keys=keys, args=[self.ttl, sha256]):
                self._answered()
                return
            # Not known: a new text, within its sender's budget. (Two processes storing the
            # same new text at once each spend one; the text is stored once.)
            if await admit_persisted_query() is not None:
                return
            await self._store(
                keys=keys,
                args=[self.ttl, sha256, text.encode(), self.max_documents, REDIS_PREFIX],
            )
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._answered()

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    def _keys(sha256: str) -> list[str]:
        return [REDIS_PREFIX + sha256, REDIS_INDEX]

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
    bounds = {"max_text": settings.max_query_length, "max_documents": settings.apq_max_documents}
    if url is None:
        return LocalPersistedQueries(**bounds)
    if not _is_redis(url):
        raise ValueError(f"ORDERDESK_APQ_URL must be a redis:// URL, not {url!r}")
    return RedisPersistedQueries(url, **bounds)


def _is_redis(url: str | None) -> bool:
    return url is not None and url.startswith(("redis://", "rediss://"))
