"""The query cache behavior: answers for the queries that declare themselves cacheable.

A feature declares which of its queries may be cached and what each reads (`Cached`): the
read models, and, for a lookup by id, the entities. An entry is keyed by the query and by
what the caller may see, and tagged with what it read; the projector invalidates those
tags as it applies events, before it moves the read-your-writes mark
(`CacheInvalidation`), so a cached answer is never older than the caller's own last write.
Commands are never cached: this behavior is registered for queries only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from handlers.access import identity_of
from handlers.paging import Page, Slice
from mediator import Context, Next
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.query_cache import QueryCache

logger = logging.getLogger("orderdesk.query_cache")


@dataclass(frozen=True, slots=True)
class Cached:
    """How a query may be cached.

    `read_models` are the projections' names it reads. `entities`, for a lookup by id, gives
    the ids it reads (its entry goes stale only when one of those rows changes); without
    it, any change to the read models makes the entry stale. `per_caller` is False only for
    a query whose answer is the same for everyone (the catalog); otherwise the caller's
    identity is part of the key, so one caller is never served another's entry.
    """

    read_models: tuple[str, ...]
    entities: Callable[[Any], Iterable[str]] | None = None
    per_caller: bool = True


def read_model_tag(read_model: str) -> str:
    return read_model


def entity_tag(read_model: str, entity_id: str) -> str:
    return f"{read_model}:{entity_id}"


def everything_tag(read_model: str) -> str:
    """Carried by every entry of a read model: a rebuild, or a change nobody can pin
    down, makes them all stale at once."""
    return f"{read_model}#all"


def tags_of(cached: Cached, query: object) -> list[str]:
    tags = [everything_tag(name) for name in cached.read_models]
    if cached.entities is None:
        tags.extend(read_model_tag(name) for name in cached.read_models)
    else:
        ids = list(cached.entities(query))
        tags.extend(entity_tag(name, i) for name in cached.read_models for i in ids)
    return tags


def key_of(query: object, ctx: Context, per_caller: bool) -> str:
    """The query's type and fields, and the caller when it matters, hashed to a fixed size."""
    values = tuple(getattr(query, f.name) for f in fields(query))  # type: ignore[arg-type]
    caller = identity_of(ctx) if per_caller else None
    who = "everyone" if not per_caller else (repr(caller) if caller else "anonymous")
    text = f"{type(query).__module__}.{type(query).__qualname__}|{who}|{values!r}"
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def weight_of(result: object) -> int:
    """About how many rows an answer holds: what bounds the in-process cache."""
    if isinstance(result, Page | Slice):
        return 1 + len(result.items)
    if isinstance(result, Collection):
        return 1 + len(result)
    return 1


def cache_queries(
    cache: QueryCache, cacheable: Mapping[type, Cached], metrics: CollectorRegistry
) -> Callable[[object, Next[object], Context], Any]:
    """Answer cacheable queries from `cache`; others pass through untouched.

    A cache that fails (Redis away) is a miss: the query is answered from the read models.
    """
    lookups = Counter(
        "orderdesk_query_cache_lookups",
        "Query cache lookups, by query type and outcome (hit, miss, error).",
        ["query", "outcome"],
        registry=metrics,
    )

    async def answer_from_cache(message: object, call_next: Next[object], ctx: Context) -> object:
        cached = cacheable.get(type(message))
        if cached is None:
            return await call_next()
        name = type(message).__name__
        key = key_of(message, ctx, cached.per_caller)
        tags = tags_of(cached, message)
        try:
            found = await cache.lookup(key, tags)
        except Exception:
            logger.warning("query cache lookup failed; reading the read models", exc_info=True)
            lookups.labels(name, "error").inc()
            return await call_next()
        if found.hit:
            lookups.labels(name, "hit").inc()
            return found.value
        lookups.labels(name, "miss").inc()
        result = await call_next()
        try:
            await cache.store(key, tags, found.stamp, result, weight_of(result))
        except Exception:
            logger.warning("query cache store failed", exc_info=True)
        return result

    return answer_from_cache


class CacheInvalidation:
    """What the projector calls with each batch of events before it moves the mark.

    Each projection says which of its rows an event changes (`Projection.touches`); the
    entries tagged with those entities, and every list of that read model, go stale. A
    projection that cannot say makes its whole read model stale.

    If the cache cannot be reached, the error propagates: the projector does not move the
    mark, and hands the same events over again at its next round, so no caller is told
    its write is visible while a stale entry may still be served. Mutations meanwhile
    answer READ_MODEL_LAGGING after the bounded wait (their writes are committed), and
    queries are answered from the read models.
    """

    def __init__(
        self, cache: QueryCache, projections: Sequence[Projection], metrics: CollectorRegistry
    ) -> None:
        self._cache = cache
        self._projections = list(projections)
        self._invalidated = Counter(
            "orderdesk_query_cache_invalidations",
            "Query cache tags invalidated as the projector applied events, by read model.",
            ["read_model"],
            registry=metrics,
        )

    def tags(self, events: Sequence[StoredEvent]) -> set[str]:
        tags: set[str] = set()
        for projection in self._projections:
            name = projection.name
            before = len(tags)
            for event in events:
                touched = projection.touches(event) if projection.touches else None
                if touched is None:
                    tags.update((everything_tag(name), read_model_tag(name)))
                    break
                for entity_id in touched:
                    tags.add(entity_tag(name, entity_id))
            if len(tags) > before:
                tags.add(read_model_tag(name))
                self._invalidated.labels(name).inc(len(tags) - before)
        return tags

    async def applied(self, events: Sequence[StoredEvent]) -> None:
        tags = self.tags(events)
        if tags:
            await self._cache.invalidate(tags)

    async def rebuilt(self, names: Iterable[str]) -> None:
        await self._cache.invalidate(everything_tag(name) for name in names)
