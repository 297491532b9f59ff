"""Where cached query results live: in this process, or in Redis for every process.

An entry is stored with a stamp: the generation of each of its tags (the read models and
entities it was read from) and the cache's epoch, as they were *before* the read began.
Invalidating a tag bumps its generation; a flush bumps the epoch. A lookup compares the
entry's stamp with the current generations, so an entry read before an invalidation is
never served after it, even when its read finished (and it was stored) later: the classic
race of a slow reader putting back what a writer has just invalidated cannot happen.

Tags are hashed into a fixed number of generation slots, so the bookkeeping stays bounded
whatever the number of entities; two tags sharing a slot only cost an extra miss.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import pickle
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import redis.asyncio as redis

logger = logging.getLogger("orderdesk.query_cache")

SLOTS = 65_536
Stamp = tuple[int, ...]


def slot(tag: str) -> int:
    """The generation slot of a tag; the same in every process (crc32, not hash())."""
    return zlib.crc32(tag.encode()) % SLOTS


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup found: the value if it is fresh (`hit`), and the stamp to store a
    freshly read value with otherwise."""

    hit: bool
    value: object
    stamp: Stamp


class QueryCache(Protocol):
    """Cached query results, keyed by query and caller, stamped by their tags."""

    async def lookup(self, key: str, tags: Sequence[str]) -> Lookup: ...

    async def store(
        self, key: str, tags: Sequence[str], stamp: Stamp, value: object, weight: int
    ) -> None: ...

    async def invalidate(self, tags: Iterable[str]) -> None:
        """Make every entry with one of these tags stale; raises if that could not be done."""
        ...

    async def flush(self) -> None:
        """Make every entry stale."""
        ...

    async def open(self) -> None:
        """Called once at start, before the first lookup."""
        ...

    async def close(self) -> None: ...


class LocalQueryCache:
    """In this process: least recently used entries go first, beyond `max_weight` rows.

    Right for one process only: another process's writes reach this one's projector, and
    so its invalidations, a moment after that process has answered its own mutation. So
    `open` takes an exclusive lock on `sole_writer_lock` (a file beside the database); a
    second process on the same database, however it was started, finds it taken and runs
    without the cache (every lookup a miss).
    """

    def __init__(self, *, max_weight: int, sole_writer_lock: Path | None = None) -> None:
        self._max_weight = max_weight
        self._lock_path = sole_writer_lock
        self._lock_file: IO[bytes] | None = None
        self.enabled = True
        self._weight = 0
        self._entries: OrderedDict[str, tuple[Stamp, object, int]] = OrderedDict()
        self._generations = [0] * SLOTS
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _stamp(self, tags: Sequence[str]) -> Stamp:
        generations = self._generations
        return (self._epoch, *[generations[slot(tag)] for tag in tags])

    async def open(self) -> None:
        if self._lock_path is None:
            return
        lock_file = self._lock_path.open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            self.enabled = False
            logger.warning(
                "the query cache is off: another process serves %s; several processes "
                "share a cache only through ORDERDESK_CACHE_URL (redis://...)",
                self._lock_path.with_suffix(""),
            )
            return
        self._lock_file = lock_file

    async def lookup(self, key: str, tags: Sequence[str]) -> Lookup:
        stamp = self._stamp(tags)
        if not self.enabled:
            return Lookup(False, None, stamp)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == stamp:
            self._entries.move_to_end(key)
            return Lookup(True, entry[1], stamp)
        return Lookup(False, None, stamp)

    async def store(
        self, key: str, tags: Sequence[str], stamp: Stamp, value: object, weight: int
    ) -> None:
        if not self.enabled or weight > self._max_weight or stamp != self._stamp(tags):
            return  # off, stale already, or too large to keep
        old = self._entries.pop(key, None)
        if old is not None:
            self._weight -= old[2]
        self._entries[key] = (stamp, value, weight)
        self._weight += weight
        while self._weight > self._max_weight:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._weight -= dropped

    async def invalidate(self, tags: Iterable[str]) -> None:
        generations = self._generations
        for index in {slot(tag) for tag in tags}:
            generations[index] += 1

    async def flush(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._weight = 0

    async def close(self) -> None:
        self._entries.clear()
        if self._lock_file is not None:
            self._lock_file.close()  # and with it the lock
            self._lock_file = None


CACHE_TIMEOUT = 0.5
"""Seconds a Redis query cache may take to connect or to answer."""


class RedisQueryCache:
    """In Redis, shared by every process: a hit is one round trip (the entry and the
    generations of its tags, pipelined), an invalidation another.

    Entries are pickled and signed with an HMAC of the service's secret, so whoever can
    write to Redis still cannot make this process unpickle something of its choosing.
    Each entry expires after `ttl` seconds; the generations have no expiry. Give Redis a
    `volatile-*` maxmemory policy (or `noeviction`): an `allkeys-*` policy could evict the
    generations and so bring invalidated entries back to life.
    """

    def __init__(
        self, url: str, *, secret: bytes, ttl: int = 300, prefix: str = "orderdesk"
    ) -> None:
        # A cache that takes longer than this to answer is worse than none: the lookup
        # fails, is logged, and the query reads the read models.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=CACHE_TIMEOUT, socket_connect_timeout=CACHE_TIMEOUT
        )
        self._secret = secret
        self._ttl = ttl
        self._entry_prefix = f"{prefix}:query-cache:entry:"
        self._generations = f"{prefix}:query-cache:generations"

    def _fields(self, tags: Sequence[str]) -> list[str]:
        return ["epoch", *[str(slot(tag)) for tag in tags]]

    async def lookup(self, key: str, tags: Sequence[str]) -> Lookup:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._entry_prefix + key)
            pipe.hmget(self._generations, self._fields(tags))
            raw, generations = await pipe.execute()
        stamp = tuple(int(g or 0) for g in generations)
        if raw is not None:
            entry = self._open(key, raw)
            if entry is not None and entry[0] == stamp:
                return Lookup(True, entry[1], stamp)
        return Lookup(False, None, stamp)

    async def store(
        self, key: str, tags: Sequence[str], stamp: Stamp, value: object, weight: int
    ) -> None:
        body = pickle.dumps((stamp, value), protocol=pickle.HIGHEST_PROTOCOL)
        await self._redis.set(
            self._entry_prefix + key, self._signature(key, body) + body, ex=self._ttl
        )

    async def invalidate(self, tags: Iterable[str]) -> None:
        fields = sorted({str(slot(tag)) for tag in tags})
        if not fields:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for field in fields:
                pipe.hincrby(self._generations, field, 1)
            await pipe.execute()

    async def flush(self) -> None:
        await self._redis.hincrby(self._generations, "epoch", 1)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self._redis.aclose()

    def _signature(self, key: str, body: bytes) -> bytes:
        """Over the key too: an entry copied to another caller's key does not verify."""
        return hmac.new(self._secret, key.encode() + b"\0" + body, hashlib.sha256).digest()

    def _open(self, key: str, raw: bytes) -> tuple[Stamp, Any] | None:
        signature, body = raw[:32], raw[32:]
        if not hmac.compare_digest(signature, self._signature(key, body)):
            logger.warning("a query cache entry with a bad signature was ignored")
            return None
        # Signed by this service (checked above): not a stranger's pickle.
        entry: tuple[Stamp, Any] = pickle.loads(body)
        return entry
