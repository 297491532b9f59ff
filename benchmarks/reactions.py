"""Reactions: how fast the reactor delivers the log to its handlers, against the projector.

Run: ``python benchmarks/reactions.py [--events 5000] [--rounds 3] [--commits 200]``. On
SQLite in a temporary directory, in this process.

Throughput: the same log of product events (created and restocked), read from the start
once by the projector with the service's own projections and once by the reactor with three
reaction handlers that do nothing, each subscribed to both event types and published to
through the mediator. Prints each one's events per second, medians over the rounds, and
the reactor's over the projector's: the target is at least 0.5x.

Latency: with the projector and the reactor following the log as they do in service (the
reactor delivers what the read models show), one event committed at a time; the time from
its commit to a handler's call, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from pydantic import SecretStr  # noqa: E402

from domain.products import ProductCreated, ProductRestocked  # noqa: E402
from handlers.reactions import Committed, Reactions, committed  # noqa: E402
from mediator import Context, Registry  # noqa: E402
from orderdesk.bootstrap import Services, bootstrap  # noqa: E402
from orderdesk.settings import Settings  # noqa: E402
from persistence.checkpoints import ensure_checkpoint_rows  # noqa: E402
from persistence.event_log import NewEvent  # noqa: E402
from persistence.reaction_checkpoints import ROW_PREFIX  # noqa: E402
from persistence.reactor import Reactor  # noqa: E402

HANDLERS = ("bench.first", "bench.second", "bench.third")
EVENT_TYPES = (ProductCreated, ProductRestocked)


def settings_in(directory: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{directory / 'bench.db'}",
        jwt_secret=SecretStr("benchmark-secret-0123456789-0123456789-0123456789"),
        outbox_dir=str(directory / "outbox"),
        query_cache=False,
    )


async def fill(services: Services, events: int) -> int:
    """`events` product events, 100 a transaction; returns the last position."""
    position = 0
    now = datetime.now(UTC)
    for start in range(0, events, 100):
        batch: list[NewEvent] = []
        for n in range(start, min(events, start + 100), 2):
            product_id = f"p{n}"
            batch.append(
                NewEvent(
                    "Product",
                    product_id,
                    1,
                    ProductCreated(product_id, f"SKU-{n}", "Thing", "", Decimal("9.99"), "EUR", 5),
                )
            )
            batch.append(NewEvent("Product", product_id, 2, ProductRestocked(product_id, 3, 8)))
        async with services.write_engine.begin() as connection:
            position = await services.log.append(
                connection, batch, occurred_at=now, correlation_id="bench"
            )
    return position


class Calls:
    """The positions the first handler was called with, and a signal at each call."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.arrived = asyncio.Event()

    async def reached(self, position: int) -> None:
        while not self.positions or self.positions[-1] < position:
            self.arrived.clear()
            await self.arrived.wait()


def reactor_for(services: Services, calls: Calls | None = None) -> Reactor:
    """A reactor over three handlers that do nothing, through the real mediator."""
    registry = Registry()

    def make(name: str) -> object:
        async def handle(notification: Committed[object], ctx: Context) -> None:
            if calls is not None and name == HANDLERS[0]:
                calls.positions.append(notification.position)
                calls.arrived.set()

        return handle

    for name in HANDLERS:
        handler = make(name)
        for event_type in EVENT_TYPES:
            registry.subscribe(committed(event_type), handler, name=name)  # type: ignore[arg-type]
    reactions = Reactions(registry.build(), EVENT_TYPES)
    return Reactor(
        log=services.log,
        log_engine=services.log_engine,
        engine=services.read_model_engine,
        checkpoint_engine=services.read_engine,
        takes=reactions.takes,
        deliver=reactions.deliver,
        poll_interval=1.0,
        up_to=lambda: services.projector.position,
    )


async def from_zero(services: Services) -> None:
    async with services.read_model_engine.begin() as connection:
        await ensure_checkpoint_rows(connection, [ROW_PREFIX + name for name in HANDLERS], at=0)


async def caught_up(reactor: Reactor, head: int) -> None:
    # A millisecond's look at the reactor from outside: the handlers do nothing to signal.
    while any(status.position < head for status in reactor.status()):  # noqa: ASYNC110
        await asyncio.sleep(0.001)


async def throughput(events: int) -> tuple[float, float]:
    """Events per second through the projector, then through the reactor."""
    with tempfile.TemporaryDirectory() as directory:
        services = bootstrap(settings_in(Path(directory)))
        await services.migrate()
        try:
            head = await fill(services, events)
            started = time.perf_counter()
            await services.projector.start()  # applies the whole log before it returns
            projected = time.perf_counter() - started
            reactor = reactor_for(services)
            await from_zero(services)
            started = time.perf_counter()
            await reactor.start()
            await caught_up(reactor, head)
            reacted = time.perf_counter() - started
            await reactor.stop()
        finally:
            await services.stop()
    return events / projected, events / reacted


async def latency(commits: int) -> list[float]:
    """Seconds from each commit to the first handler's call, one event at a time."""
    with tempfile.TemporaryDirectory() as directory:
        services = bootstrap(settings_in(Path(directory)))
        await services.migrate()
        calls = Calls()
        reactor = reactor_for(services, calls)
        try:
            await services.projector.start()
            services.projector.watch(
                [p.name for p in services.projector.status()],
                lambda _position, _parked: reactor.wake(),
            )
            await reactor.start()
            delays = []
            for n in range(commits):
                product_id = f"live{n}"
                event = ProductCreated(product_id, f"L-{n}", "Live", "", Decimal("1.00"), "EUR", 1)
                async with services.write_engine.begin() as connection:
                    position = await services.log.append(
                        connection,
                        [NewEvent("Product", product_id, 1, event)],
                        occurred_at=datetime.now(UTC),
                        correlation_id="bench",
                    )
                committed_at = time.perf_counter()
                services.projector.wake(position)  # what a commit does in service
                await calls.reached(position)
                delays.append(time.perf_counter() - committed_at)
            return delays
        finally:
            await reactor.stop()
            await services.stop()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(events: int, rounds: int, commits: int) -> None:
    print(f"{events} events, {rounds} rounds; three handlers that do nothing\n")
    projected, reacted = [], []
    for _ in range(rounds):
        projector_rate, reactor_rate = await throughput(events)
        projected.append(projector_rate)
        reacted.append(reactor_rate)
        print(f"  projector {projector_rate:8.0f} events/s   reactor {reactor_rate:8.0f} events/s")
    projector_rate = statistics.median(projected)
    reactor_rate = statistics.median(reacted)
    print(f"\nprojector (median)   {projector_rate:8.0f} events/s")
    print(f"reactor (median)     {reactor_rate:8.0f} events/s")
    print(f"reactor / projector  {reactor_rate / projector_rate:8.2f}x   (target: at least 0.5x)")
    delays = await latency(commits)
    print(
        f"\ncommit -> handler, {commits} commits one at a time: "
        f"p50 {percentile(delays, 0.5) * 1000:.2f} ms, p99 {percentile(delays, 0.99) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commits", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.rounds, arguments.commits))
