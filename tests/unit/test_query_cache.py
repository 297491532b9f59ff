"""The query cache with real objects and no mocks: the in-process store and its stamps, the
`cache_queries` behavior inside a real mediator, the tags the projector's events invalidate,
and the projector holding its read-your-writes mark back while the cache cannot be told.

Everything here runs in memory, except the last section, which drives a real Projector over
a SQLite file in the test's temporary directory (cheap, and the only honest way to show what
the projector does with a failed invalidation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from domain.customers import CustomerRegistered
from domain.products import PRODUCT_EVENTS, ProductCreated, ProductRestocked, ProductUpdated
from handlers.access import Identity, Role
from handlers.customers import CUSTOMER_SUMMARIES
from handlers.orders import ORDERS
from handlers.products import CACHED as PRODUCT_CACHED
from handlers.products import PRODUCT_CATALOG, GetProducts
from handlers.query_cache import (
    Cached,
    CacheInvalidation,
    cache_queries,
    everything_tag,
    tags_of,
)
from mediator import Command, Context, Mediator, Query, Registry
from persistence.database import create_engine
from persistence.event_codec import EventCodec
from persistence.event_log import EventLog, NewEvent, StoredEvent
from persistence.migrate import migrate
from persistence.projector import Projection, ProjectionTimeout, Projector
from persistence.query_cache import LocalQueryCache, Lookup, Stamp
from persistence.read_model_changes import ChangesNotTold
from tests.databases import sqlite_url

ADA = Identity("customer-ada", Role.CUSTOMER)
BOB = Identity("customer-bob", Role.CUSTOMER)
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

# ---------------------------------------------------------------- LocalQueryCache


async def fill(cache: LocalQueryCache, key: str, tags: Sequence[str], value: object) -> None:
    """What the behavior does on a miss: look up (taking the stamp), then store with it."""
    found = await cache.lookup(key, tags)
    assert not found.hit
    await cache.store(key, tags, found.stamp, value, 1)


async def test_a_stored_entry_is_a_hit_with_its_value() -> None:
    cache = LocalQueryCache(max_weight=10)
    await fill(cache, "k", ["products", "products:p1"], {"p1": "Anvil"})

    found = await cache.lookup("k", ["products", "products:p1"])

    assert (found.hit, found.value) == (True, {"p1": "Anvil"})
    assert not (await cache.lookup("other", ["products"])).hit


async def test_invalidating_one_of_its_tags_makes_an_entry_a_miss() -> None:
    cache = LocalQueryCache(max_weight=10)
    await fill(cache, "p1", ["products", "products:p1"], "Anvil")
    await fill(cache, "p2", ["products", "products:p2"], "Bolt")

    await cache.invalidate(["products:p1"])

    assert not (await cache.lookup("p1", ["products", "products:p1"])).hit
    assert (await cache.lookup("p2", ["products", "products:p2"])).value == "Bolt"


async def test_a_value_read_before_an_invalidation_is_never_served_after_it() -> None:
    """The slow reader's race: it looks up (stamp), reads the old row, a write invalidates
    the tag meanwhile, and only then does the reader store what it read."""
    cache = LocalQueryCache(max_weight=10)
    tags = ["products", "products:p1"]
    before_the_write = await cache.lookup("k", tags)

    await cache.invalidate(["products:p1"])
    await cache.store("k", tags, before_the_write.stamp, "old price", 1)

    after = await cache.lookup("k", tags)
    assert not after.hit
    assert after.value is None
    # Stored with the stamp taken after the invalidation, the fresh value is served.
    await cache.store("k", tags, after.stamp, "new price", 1)
    assert (await cache.lookup("k", tags)).value == "new price"


async def test_flush_makes_every_entry_a_miss_even_one_stored_with_an_older_stamp() -> None:
    cache = LocalQueryCache(max_weight=10)
    await fill(cache, "a", ["products"], 1)
    await fill(cache, "b", ["orders"], 2)
    stamp_before_flush = (await cache.lookup("c", ["orders"])).stamp

    await cache.flush()
    await cache.store("c", ["orders"], stamp_before_flush, 3, 1)

    assert len(cache) == 0
    for key, tags in [("a", ["products"]), ("b", ["orders"]), ("c", ["orders"])]:
        assert not (await cache.lookup(key, tags)).hit


async def test_the_weight_bound_evicts_the_least_recently_used_entry_first() -> None:
    cache = LocalQueryCache(max_weight=5)
    for key in ("a", "b", "c"):
        found = await cache.lookup(key, ["t"])
        await cache.store(key, ["t"], found.stamp, key.upper(), 2)  # 6 > 5: "a" went
    assert [(await cache.lookup(k, ["t"])).hit for k in ("a", "b", "c")] == [False, True, True]

    # Reading "b" again leaves "c" the least recently used: it goes first.
    assert (await cache.lookup("b", ["t"])).hit
    found = await cache.lookup("d", ["t"])
    await cache.store("d", ["t"], found.stamp, "D", 2)

    assert [(await cache.lookup(k, ["t"])).hit for k in ("b", "c", "d")] == [True, False, True]
    assert len(cache) == 2


async def test_an_entry_heavier_than_the_bound_is_not_kept_and_evicts_nothing() -> None:
    cache = LocalQueryCache(max_weight=5)
    await fill(cache, "small", ["t"], "kept")
    found = await cache.lookup("huge", ["t"])

    await cache.store("huge", ["t"], found.stamp, list(range(100)), 6)

    assert not (await cache.lookup("huge", ["t"])).hit
    assert (await cache.lookup("small", ["t"])).value == "kept"


# ---------------------------------------------------------------- the behavior, in a mediator


@dataclass(frozen=True, slots=True)
class GetPrices(Query[dict[str, str]]):
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetMyOrders(Query[list[str]]):
    status: str


@dataclass(frozen=True, slots=True)
class GetUncached(Query[str]):
    name: str


@dataclass(frozen=True, slots=True)
class ChangePrice(Command[int]):
    product_id: str


class Handlers:
    """Real handlers that count their calls and answer what a read model would."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.changes = 0

    async def prices(self, query: GetPrices, ctx: Context) -> dict[str, str]:
        self.calls.append("GetPrices")
        return {i: f"price of {i}" for i in query.ids}

    async def my_orders(self, query: GetMyOrders, ctx: Context) -> list[str]:
        self.calls.append("GetMyOrders")
        who = ctx.identity.subject if isinstance(ctx.identity, Identity) else "nobody"
        return [f"{who}'s {query.status} order"]

    async def uncached(self, query: GetUncached, ctx: Context) -> str:
        self.calls.append("GetUncached")
        return query.name

    async def change_price(self, command: ChangePrice, ctx: Context) -> int:
        self.calls.append("ChangePrice")
        self.changes += 1
        return self.changes


CACHEABLE: dict[type, Cached] = {
    GetPrices: Cached(("prices",), lambda q: q.ids, per_caller=False),
    GetMyOrders: Cached(("orders",)),
    # A command listed by mistake: registered for queries only, the behavior never sees it.
    ChangePrice: Cached(("prices",), per_caller=False),
}


class UnreachableCache:
    """A cache whose server is away: every call raises, as redis-py does then."""

    def __init__(self) -> None:
        self.lookups = 0

    async def open(self) -> None:
        return None

    async def lookup(self, key: str, tags: Sequence[str]) -> Lookup:
        self.lookups += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    async def store(
        self, key: str, tags: Sequence[str], stamp: Stamp, value: object, weight: int
    ) -> None:
        raise ConnectionError("Connection refused.")

    async def invalidate(self, tags: Iterable[str]) -> None:
        raise ConnectionError("Connection refused.")

    async def flush(self) -> None:
        raise ConnectionError("Connection refused.")

    async def close(self) -> None:
        return None


@dataclass
class Pipeline:
    """A real mediator with the behavior in front of the handlers, and its metrics."""

    handlers: Handlers
    mediator: Mediator
    metrics: CollectorRegistry

    def lookups(self, query: str, outcome: str) -> float:
        value = self.metrics.get_sample_value(
            "orderdesk_query_cache_lookups_total", {"query": query, "outcome": outcome}
        )
        return value or 0.0


def pipeline_with(cache: LocalQueryCache | UnreachableCache) -> Pipeline:
    handlers = Handlers()
    registry = Registry()
    metrics = CollectorRegistry()
    # As bootstrap registers it: for queries only.
    registry.behavior(cache_queries(cache, CACHEABLE, metrics), applies_to=Query)
    registry.handle(GetPrices, handlers.prices)
    registry.handle(GetMyOrders, handlers.my_orders)
    registry.handle(GetUncached, handlers.uncached)
    registry.handle(ChangePrice, handlers.change_price)
    return Pipeline(handlers, registry.build(), metrics)


async def test_a_cacheable_query_runs_its_handler_once_for_two_sends() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator

    first = await mediator.send(GetPrices(("p1", "p2")), Context(identity=ADA))
    second = await mediator.send(GetPrices(("p1", "p2")), Context(identity=ADA))

    assert first == second == {"p1": "price of p1", "p2": "price of p2"}
    assert handlers.calls == ["GetPrices"]
    assert (pipeline.lookups("GetPrices", "miss"), pipeline.lookups("GetPrices", "hit")) == (1, 1)
    # Other field values are another entry.
    assert await mediator.send(GetPrices(("p3",)), Context(identity=ADA)) == {"p3": "price of p3"}
    assert handlers.calls == ["GetPrices", "GetPrices"]


async def test_a_per_caller_query_gives_each_customer_its_own_answer() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator

    ada_first = await mediator.send(GetMyOrders("PENDING"), Context(identity=ADA))
    bob_first = await mediator.send(GetMyOrders("PENDING"), Context(identity=BOB))
    ada_again = await mediator.send(GetMyOrders("PENDING"), Context(identity=ADA))
    bob_again = await mediator.send(GetMyOrders("PENDING"), Context(identity=BOB))
    anonymous = await mediator.send(GetMyOrders("PENDING"), Context())

    assert ada_first == ada_again == ["customer-ada's PENDING order"]
    assert bob_first == bob_again == ["customer-bob's PENDING order"]
    assert anonymous == ["nobody's PENDING order"]
    assert handlers.calls == ["GetMyOrders"] * 3  # Ada, Bob, anonymous; the repeats were hits


async def test_staff_and_a_customer_with_the_same_subject_do_not_share_an_entry() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator
    staff = Identity("customer-ada", Role.STAFF)

    await mediator.send(GetMyOrders("PENDING"), Context(identity=ADA))
    await mediator.send(GetMyOrders("PENDING"), Context(identity=staff))

    assert handlers.calls == ["GetMyOrders", "GetMyOrders"]


async def test_an_answer_read_while_its_tags_were_invalidated_is_not_served_again() -> None:
    """The race through the behavior: the projector invalidates the product while the
    handler is still reading the old row; the answer is returned, but never from the cache."""
    cache = LocalQueryCache(max_weight=100)
    registry = Registry()
    registry.behavior(cache_queries(cache, CACHEABLE, CollectorRegistry()), applies_to=Query)
    reads: list[str] = []

    async def slow_read(query: GetPrices, ctx: Context) -> dict[str, str]:
        value = "old price" if not reads else "new price"
        reads.append(value)
        if value == "old price":  # the write lands while this read is in flight
            await cache.invalidate(tags_of(CACHEABLE[GetPrices], query))
        return {"p1": value}

    registry.handle(GetPrices, slow_read)
    mediator = registry.build()

    assert await mediator.send(GetPrices(("p1",)), Context()) == {"p1": "old price"}
    assert await mediator.send(GetPrices(("p1",)), Context()) == {"p1": "new price"}
    assert await mediator.send(GetPrices(("p1",)), Context()) == {"p1": "new price"}
    assert reads == ["old price", "new price"]


async def test_a_query_that_is_not_per_caller_is_shared_by_every_caller() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator

    answers = [
        await mediator.send(GetPrices(("p1",)), Context(identity=caller))
        for caller in (ADA, BOB, None, Identity("staff-1", Role.STAFF))
    ]

    assert answers == [{"p1": "price of p1"}] * 4
    assert handlers.calls == ["GetPrices"]
    assert pipeline.lookups("GetPrices", "hit") == 3


async def test_a_command_is_never_cached_even_when_listed_as_cacheable() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator

    results = [await mediator.send(ChangePrice("p1"), Context(identity=ADA)) for _ in range(3)]

    assert results == [1, 2, 3]
    assert handlers.calls == ["ChangePrice"] * 3
    assert pipeline.lookups("ChangePrice", "miss") == pipeline.lookups("ChangePrice", "hit") == 0


async def test_a_query_without_a_cached_declaration_passes_through_every_time() -> None:
    pipeline = pipeline_with(LocalQueryCache(max_weight=100))
    handlers, mediator = pipeline.handlers, pipeline.mediator

    for _ in range(2):
        assert await mediator.send(GetUncached("x"), Context()) == "x"

    assert handlers.calls == ["GetUncached", "GetUncached"]


async def test_a_cache_that_fails_is_a_miss_answered_by_the_handler() -> None:
    cache = UnreachableCache()
    pipeline = pipeline_with(cache)
    handlers, mediator = pipeline.handlers, pipeline.mediator

    first = await mediator.send(GetPrices(("p1",)), Context(identity=ADA))
    second = await mediator.send(GetMyOrders("PENDING"), Context(identity=ADA))

    assert first == {"p1": "price of p1"}
    assert second == ["customer-ada's PENDING order"]
    assert handlers.calls == ["GetPrices", "GetMyOrders"]
    assert cache.lookups == 2
    assert pipeline.lookups("GetPrices", "error") == 1
    assert pipeline.lookups("GetPrices", "miss") == 0


# ---------------------------------------------------------------- what events invalidate


def stored(position: int, stream_type: str, stream_id: str, event: object) -> StoredEvent:
    return StoredEvent(
        position=position,
        event_id=f"e{position}",
        stream_type=stream_type,
        stream_id=stream_id,
        stream_version=1,
        event_type=type(event).__name__,
        event=event,
        occurred_at=NOW,
        correlation_id="c",
    )


def invalidation(projections: Sequence[Projection]) -> CacheInvalidation:
    return CacheInvalidation(LocalQueryCache(max_weight=10), projections, CollectorRegistry())


def test_an_event_a_projection_ignores_yields_no_tags() -> None:
    registered = stored(1, "Customer", "c1", CustomerRegistered("c1", "Ada", "ada@example.com"))

    assert invalidation([PRODUCT_CATALOG]).tags([registered]) == set()
    assert invalidation([PRODUCT_CATALOG, ORDERS]).tags([registered]) == set()


def test_a_product_event_yields_the_products_entity_tag_and_the_read_model_tag() -> None:
    updated = stored(
        7, "Product", "p1", ProductUpdated("p1", "Anvil", "Heavy.", Decimal("25"), "USD")
    )
    restocked = stored(8, "Product", "p2", ProductRestocked("p2", 5, 9))

    # With every feature's projection, as bootstrap wires them: only the catalog cares.
    tags = invalidation([PRODUCT_CATALOG, CUSTOMER_SUMMARIES, ORDERS]).tags([updated, restocked])

    assert tags == {"product_catalog:p1", "product_catalog:p2", "product_catalog"}


async def test_a_product_event_makes_that_product_and_every_product_list_stale() -> None:
    cache = LocalQueryCache(max_weight=10)
    cached = PRODUCT_CACHED[GetProducts]
    p1_tags, p2_tags = tags_of(cached, GetProducts(("p1",))), tags_of(cached, GetProducts(("p2",)))
    list_tags = ["product_catalog#all", "product_catalog"]
    for key, tags in [("p1", p1_tags), ("p2", p2_tags), ("list", list_tags)]:
        await fill(cache, key, tags, key)
    changes = CacheInvalidation(cache, [PRODUCT_CATALOG], CollectorRegistry())

    await changes.applied([stored(3, "Product", "p1", ProductRestocked("p1", 1, 4))])

    assert not (await cache.lookup("p1", p1_tags)).hit
    assert not (await cache.lookup("list", list_tags)).hit
    assert (await cache.lookup("p2", p2_tags)).value == "p2"


async def test_a_projection_that_cannot_say_what_it_touches_makes_its_whole_read_model_stale() -> (
    None
):
    async def apply(_connection: object, _event: StoredEvent) -> None:
        return None

    audit = Projection("audit", apply)  # no `touches`
    registered = stored(1, "Customer", "c1", CustomerRegistered("c1", "Ada", "ada@example.com"))
    cache = LocalQueryCache(max_weight=10)
    by_id = Cached(("audit",), lambda q: q.ids)
    entity_tags = tags_of(by_id, GetProducts(("c9",)))  # an entity the event does not name
    await fill(cache, "by-id", entity_tags, "row c9")
    changes = CacheInvalidation(cache, [audit, PRODUCT_CATALOG], CollectorRegistry())

    assert changes.tags([registered]) == {everything_tag("audit"), "audit"}
    await changes.applied([registered])
    assert not (await cache.lookup("by-id", entity_tags)).hit


# ---------------------------------------------------------------- the projector and the cache


class FailingOnce:
    """The cache's invalidation, failing the first time it is told (Redis away a moment)."""

    def __init__(self, changes: CacheInvalidation) -> None:
        self._changes = changes
        self.told: list[list[int]] = []

    async def applied(self, events: Sequence[StoredEvent]) -> None:
        self.told.append([event.position for event in events])
        if len(self.told) == 1:
            raise ConnectionError("the cache is away")
        await self._changes.applied(events)

    async def rebuilt(self, names: Iterable[str]) -> None:
        await self._changes.rebuilt(names)


async def test_the_mark_waits_until_the_cache_is_told_and_the_same_events_are_told_again(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    write_engine = create_engine(url, for_writes=True)
    read_engine = create_engine(url)
    codec = EventCodec()
    codec.register(PRODUCT_EVENTS)
    log = EventLog(codec)
    cache = LocalQueryCache(max_weight=100)
    changes = FailingOnce(CacheInvalidation(cache, [PRODUCT_CATALOG], CollectorRegistry()))
    projector = Projector(
        log=log,
        log_engine=read_engine,
        read_model_engine=write_engine,
        projections=[PRODUCT_CATALOG],
        changes=changes,
    )
    p1_tags = tags_of(PRODUCT_CACHED[GetProducts], GetProducts(("p1",)))
    try:
        await migrate(write_engine, "write")
        await migrate(write_engine, "read")
        await projector.start()
        await projector.stop()  # rounds by hand from here
        await fill(cache, "p1", p1_tags, "p1 as read before the write")
        async with write_engine.begin() as connection:
            await log.append(
                connection,
                [
                    NewEvent(
                        "Product",
                        "p1",
                        1,
                        ProductCreated("p1", "ANV-1", "Anvil", "", Decimal(1), "USD", 3),
                    ),
                    NewEvent("Product", "p1", 2, ProductRestocked("p1", 2, 5)),
                ],
                occurred_at=NOW,
                correlation_id="c",
            )

        with pytest.raises(ChangesNotTold):
            await projector.catch_up()

        # The read model has the rows, but no caller is told so: the mark has not moved.
        assert [s.position for s in projector.status()] == [2]
        assert projector.position == 0
        with pytest.raises(ProjectionTimeout):
            await projector.wait_for(2, timeout=0.05)
        assert (await cache.lookup("p1", p1_tags)).hit  # nobody invalidated it yet

        await projector.catch_up()

        assert changes.told == [[1, 2], [1, 2]]
        assert projector.position == 2
        await projector.wait_for(2, timeout=0.05)
        assert not (await cache.lookup("p1", p1_tags)).hit
    finally:
        await write_engine.dispose()
        await read_engine.dispose()
