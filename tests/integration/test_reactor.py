"""The reactor over a real database: every event reaches every handler subscribed to its type,
in order and at least once; a failing handler is retried, then parked, while the others go
on; a parked one resumes where it stopped; a new handler starts at the log's head; of two
reactors on one database one delivers, and the other takes over where the first stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest

from domain.products import ProductCreated, ProductDeleted
from orderdesk.bootstrap import Services, bootstrap
from orderdesk.settings import Settings
from persistence.event_log import NewEvent, StoredEvent
from persistence.reaction_checkpoints import NotParked, UnknownReaction
from persistence.reactor import PATIENCE, Reactor
from tests.databases import postgres_database_url, sqlite_settings

CREATED = ProductCreated.__name__
DELETED = ProductDeleted.__name__


class Handlers:
    """Records each delivery; `failing` names handlers that fail, for `times` attempts each
    (forever when None)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failing: dict[str, int | None] = {}
        self.blocked: asyncio.Event | None = None
        self.slow: dict[str, asyncio.Event] = {}

    async def deliver(self, event: StoredEvent, to: Collection[str]) -> Mapping[str, Exception]:
        failures: dict[str, Exception] = {}
        for name in to:
            if self.blocked is not None:
                await self.blocked.wait()
            if name in self.slow:
                await self.slow[name].wait()
            self.calls.append((name, event.position))
            if name in self.failing:
                left = self.failing[name]
                if left is None or left > 0:
                    self.failing[name] = None if left is None else left - 1
                    failures[name] = RuntimeError(f"{name} is broken")
        return failures

    def positions(self, name: str) -> list[int]:
        return [position for handler, position in self.calls if handler == name]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    if request.param == "sqlite":
        async with migrated(sqlite_settings(tmp_path)) as services:
            yield services
        return
    async with (
        postgres_database_url() as url,
        migrated(sqlite_settings(tmp_path, database_url=url)) as services,
    ):
        yield services


@asynccontextmanager
async def migrated(settings: Settings) -> AsyncIterator[Services]:
    services = bootstrap(settings)
    await services.migrate()
    try:
        yield services
    finally:
        await services.stop()


async def append(services: Services, count: int, *, deleted: bool = False) -> list[int]:
    """`count` events in the log, one commit each; their positions."""
    positions = []
    for _ in range(count):
        product_id = f"p{time.monotonic_ns()}"
        event: object = (
            ProductDeleted(product_id)
            if deleted
            else ProductCreated(product_id, product_id, "A", "", Decimal("1.00"), "EUR", 1)
        )
        async with services.write_engine.begin() as connection:
            positions.append(
                await services.log.append(
                    connection,
                    [NewEvent("Product", product_id, 1, event)],
                    occurred_at=datetime.now(UTC),
                    correlation_id="test",
                )
            )
    return positions


def reactor(
    services: Services,
    handlers: Handlers,
    takes: Mapping[str, frozenset[str]],
    **options: float,
) -> Reactor:
    return Reactor(
        log=services.log,
        log_engine=services.log_engine,
        engine=services.read_model_engine,
        checkpoint_engine=services.read_engine,
        takes=takes,
        deliver=handlers.deliver,
        poll_interval=options.pop("poll_interval", 0.05),
        retry_delay=options.pop("retry_delay", 0.01),
        **options,  # type: ignore[arg-type]
    )


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    started = time.monotonic()
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert time.monotonic() - started < within, "not within the time allowed"
        await asyncio.sleep(0.01)


def twice_at(handlers: Handlers, name: str, position: int) -> bool:
    """The last two deliveries to `name` were both of `position` (failed, then done)."""
    return handlers.positions(name)[-2:] == [position, position]


THREE = {
    "a": frozenset({CREATED}),
    "b": frozenset({CREATED}),
    "c": frozenset({CREATED, DELETED}),
}


async def test_each_handler_gets_each_event_of_its_types_once_in_order(services: Services) -> None:
    handlers = Handlers()
    running = reactor(services, handlers, THREE)
    await running.start()
    try:
        created = await append(services, 5)
        deleted = await append(services, 2, deleted=True)
        await until(lambda: len(handlers.calls) == 5 + 5 + 7)
        assert handlers.positions("a") == created
        assert handlers.positions("b") == created
        assert handlers.positions("c") == sorted(created + deleted)
        head = deleted[-1]
        await until(lambda: all(s.position == head for s in running.status()))
        stored = {s.name: s.position for s in await running.stored_status()}
        assert stored == {"a": head, "b": head, "c": head}
    finally:
        await running.stop()


async def test_a_failing_handler_is_retried_while_the_others_go_on(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = 2
    running = reactor(services, handlers, THREE)
    await running.start()
    try:
        positions = await append(services, 3)
        await until(lambda: handlers.positions("b")[-3:] == positions)
        assert handlers.positions("a") == positions
        # Twice failed at the first event, then delivered, and the rest once each.
        assert handlers.positions("b") == [positions[0]] * 3 + positions[1:]
        await until(
            lambda: all(s.failures == 0 and s.parked_error is None for s in running.status())
        )
    finally:
        await running.stop()


async def test_a_handler_that_keeps_failing_is_parked_then_resumed(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = None
    running = reactor(services, handlers, THREE, max_attempts=3)
    await running.start()
    try:
        positions = await append(services, 4)
        await until(lambda: any(s.parked_error for s in running.status()))
        await until(lambda: handlers.positions("a") == positions)
        assert handlers.positions("b") == [positions[0]] * 3
        stored = {s.name: s for s in await running.stored_status()}
        assert stored["b"].parked_error is not None
        assert "RuntimeError: b is broken" in stored["b"].parked_error
        assert stored["b"].position < positions[0], "stopped before the event it fails at"
        assert stored["a"].parked_error is None
        assert stored["a"].position == positions[-1]
        more = await append(services, 1)
        await until(lambda: handlers.positions("a")[-1:] == more)
        assert handlers.positions("b") == [positions[0]] * 3, "a parked handler gets nothing"

        handlers.failing.pop("b")
        assert await running.retry(["b"]) == ["b"]
        await until(lambda: handlers.positions("b")[3:] == positions + more)
        assert await running.retry() == []
        with pytest.raises(UnknownReaction):
            await running.retry(["nobody"])
    finally:
        await running.stop()


async def test_a_failure_retried_in_time_leaves_the_reactor_idle(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = 1
    running = reactor(services, handlers, THREE, poll_interval=0.5)
    await running.start()
    try:
        positions = await append(services, 1)
        await until(lambda: handlers.positions("b") == positions * 2)
        await until(lambda: all(s.position == positions[-1] for s in running.status()))
        assert all(s.retry_in is None for s in running.status())
        rounds = 0
        looked = running._catch_up  # counting rounds: an idle reactor waits for a wake-up

        async def counted() -> None:
            nonlocal rounds
            rounds += 1
            await looked()

        running._catch_up = counted  # type: ignore[method-assign]
        await asyncio.sleep(1.0)
        assert rounds <= 3, f"{rounds} rounds in a second with nothing to do"
    finally:
        await running.stop()


async def test_a_slow_retry_leaves_the_reactor_idle_while_it_runs(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = 1
    running = reactor(services, handlers, THREE, poll_interval=0.5)
    gate = asyncio.Event()
    await running.start()
    try:
        positions = await append(services, 1)
        await until(lambda: handlers.positions("b") == positions)
        handlers.slow["b"] = gate  # its retry hangs, past PATIENCE
        await asyncio.sleep(PATIENCE + 0.3)
        rounds = 0
        looked = running._catch_up

        async def counted() -> None:
            nonlocal rounds
            rounds += 1
            await looked()

        running._catch_up = counted  # type: ignore[method-assign]
        await asyncio.sleep(1.0)
        assert rounds <= 3, f"{rounds} rounds in a second while one handler runs alone"
        gate.set()
        await until(lambda: handlers.positions("b") == positions * 2)
    finally:
        await running.stop()


async def test_one_failure_at_each_of_several_events_parks_nothing(services: Services) -> None:
    handlers = Handlers()
    running = reactor(services, handlers, THREE, max_attempts=2)
    await running.start()
    try:
        for _ in range(4):
            handlers.failing["b"] = 1
            position = (await append(services, 1))[0]
            await until(partial(twice_at, handlers, "b", position))
        await until(lambda: all(s.failures == 0 for s in running.status()))
        assert not any(s.parked_error for s in running.status())
    finally:
        await running.stop()


async def test_a_parked_handler_skips_the_event_it_cannot_handle(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = None
    running = reactor(services, handlers, THREE, max_attempts=2)
    await running.start()
    try:
        first = await append(services, 1)
        await until(lambda: any(s.parked_error for s in running.status()))
        second = await append(services, 1)
        await until(lambda: handlers.positions("a") == first + second)
        with pytest.raises(NotParked):
            await running.skip("a")
        handlers.failing.pop("b")
        skipped = await running.skip("b")
        assert skipped is not None
        assert skipped.position == first[0]
        await until(lambda: handlers.positions("b")[-1:] == second)
        assert handlers.positions("b") == first * 2 + second, "the skipped one is not delivered"
        with pytest.raises(UnknownReaction):
            await running.skip("nobody")
    finally:
        await running.stop()


async def test_a_retry_from_outside_is_noticed_by_the_running_reactor(services: Services) -> None:
    handlers = Handlers()
    handlers.failing["b"] = None
    running = reactor(services, handlers, THREE, max_attempts=2)
    await running.start()
    try:
        positions = await append(services, 1)
        await until(lambda: any(s.parked_error for s in running.status()))
        handlers.failing.pop("b")
        # What `orderdesk reactions retry` does: another reactor's retry, on the database.
        command_line = reactor(services, Handlers(), THREE)
        assert await command_line.retry(["b"]) == ["b"]
        await until(lambda: handlers.positions("b")[-1:] == positions)
        await until(lambda: not any(s.parked_error for s in running.status()))
    finally:
        await running.stop()


async def test_a_slow_handler_goes_on_alone_and_holds_up_no_other(services: Services) -> None:
    handlers = Handlers()
    handlers.slow["b"] = asyncio.Event()
    running = reactor(services, handlers, THREE)
    await running.start()
    try:
        first = await append(services, 2)
        await until(lambda: handlers.positions("a") == first, within=PATIENCE + 5)
        # "b" is still on its first event; the others go on with what comes next.
        later = await append(services, 3)
        await until(lambda: handlers.positions("a") == first + later, within=PATIENCE + 5)
        await until(lambda: handlers.positions("c") == first + later)
        assert handlers.positions("b") == []
        handlers.slow["b"].set()
        await until(lambda: handlers.positions("b") == first + later)
        head = later[-1]
        await until(lambda: all(s.position == head for s in running.status()))
        await asyncio.sleep(0.2)
        assert handlers.positions("b") == first + later, "each once, in order"
    finally:
        await running.stop()


async def test_a_new_handler_starts_at_the_head(services: Services) -> None:
    before = await append(services, 3)
    handlers = Handlers()
    running = reactor(services, handlers, THREE)
    await running.start()
    try:
        after = await append(services, 1)
        await until(lambda: len(handlers.calls) == 3)
        assert {position for _, position in handlers.calls} == set(after)
        assert not set(before) & {position for _, position in handlers.calls}
    finally:
        await running.stop()


async def test_of_two_reactors_one_delivers_and_the_other_takes_over(services: Services) -> None:
    first_handlers, second_handlers = Handlers(), Handlers()
    first = reactor(services, first_handlers, THREE)
    second = reactor(services, second_handlers, THREE)
    await first.start()
    await second.start()
    try:
        early = await append(services, 4)
        await until(lambda: len(first_handlers.calls) + len(second_handlers.calls) == 12)
        await first.stop()  # hands its leases back
        late = await append(services, 3)
        await until(lambda: len(first_handlers.calls) + len(second_handlers.calls) == 21)
        for name in THREE:
            delivered = sorted(first_handlers.positions(name) + second_handlers.positions(name))
            assert delivered == early + late, f"{name} got an event twice or missed one"
        assert not any(p in late for _, p in first_handlers.calls)
    finally:
        await second.stop()


async def test_a_reactor_that_dies_mid_delivery_is_taken_over_at_least_once(
    services: Services,
) -> None:
    """Its leases are not handed back; once they expire the other reactor delivers again
    from the last checkpoint: what the first delivered in its last batch comes again (the
    handlers' keys make that harmless), and nothing is lost."""
    dying_handlers = Handlers()
    dying = reactor(services, dying_handlers, {"a": frozenset({CREATED})}, lease_timeout=0.5)
    await dying.start()
    positions = await append(services, 3)
    await until(lambda: dying_handlers.positions("a") == positions)
    # The next event's delivery hangs, and the process dies in it.
    dying_handlers.blocked = asyncio.Event()
    later = await append(services, 2)
    await asyncio.sleep(0.2)
    for task in dying._tasks:  # a crash hands nothing back
        task.cancel()
    taking_over = Handlers()
    successor = reactor(services, taking_over, {"a": frozenset({CREATED})}, lease_timeout=0.5)
    await successor.start()
    try:
        await until(lambda: taking_over.positions("a")[-2:] == later, within=10)
        assert set(taking_over.positions("a")) <= set(positions + later)
        assert sorted(set(dying_handlers.positions("a") + taking_over.positions("a"))) == (
            positions + later
        )
    finally:
        await successor.stop()
