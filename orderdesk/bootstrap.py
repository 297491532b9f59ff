"""Builds the service from settings: engines, the event log, the projector, the tail and the
mediator with every handler. The app, the command line and the tests all start here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import products
from handlers.pipeline import log_message, read_your_writes
from mediator import Command, Mediator, Registry
from orderdesk.settings import Settings
from persistence.database import create_engine
from persistence.event_codec import EventCodec
from persistence.event_log import EventLog
from persistence.event_tail import EventTail
from persistence.migrate import migrate
from persistence.projector import Projector
from persistence.unit_of_work import SqlUnitOfWork, UnitOfWork

PROJECTIONS = [products.PRODUCT_CATALOG]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    write_engine: AsyncEngine
    log_engine: AsyncEngine
    read_engine: AsyncEngine
    read_model_engine: AsyncEngine
    log: EventLog
    projector: Projector
    tail: EventTail
    mediator: Mediator

    async def migrate(self) -> None:
        await migrate(self.write_engine, "write")
        await migrate(self.read_model_engine, "read")

    async def start(self) -> None:
        """Migrate if asked, bring the read models up to date, then follow the log."""
        if self.settings.migrate_on_start:
            await self.migrate()
        await self.projector.start()
        self.tail.start(self.projector.position)
        self.projector.on_advance(self.tail.advance_to)

    async def stop(self) -> None:
        await self.tail.stop()
        await self.projector.stop()
        for engine in {
            id(e): e
            for e in (self.write_engine, self.log_engine, self.read_engine, self.read_model_engine)
        }.values():
            await engine.dispose()


def bootstrap(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
    """Wire everything; nothing connects until `Services.start`."""
    write_engine = create_engine(settings.database_url, for_writes=True)
    log_engine = create_engine(settings.database_url)
    separate_reads = settings.read_models_url != settings.database_url
    read_engine = create_engine(settings.read_models_url) if separate_reads else log_engine
    read_model_engine = (
        create_engine(settings.read_models_url, for_writes=True) if separate_reads else write_engine
    )

    codec = EventCodec()
    codec.register(products.EVENT_TYPES)
    log = EventLog(codec)
    projector = Projector(
        log=log,
        log_engine=log_engine,
        read_model_engine=read_model_engine,
        projections=PROJECTIONS,
        poll_interval=settings.poll_interval,
    )
    tail = EventTail(
        log=log,
        log_engine=log_engine,
        read_engine=read_engine,
        views={**products.VIEWS},
        queue_size=settings.subscriber_queue_size,
    )

    def unit_of_work(correlation_id: str) -> UnitOfWork:
        return SqlUnitOfWork(
            write_engine,
            log,
            clock=clock,
            correlation_id=correlation_id,
            on_commit=lambda _position: projector.wake(),
        )

    registry = Registry()
    registry.behavior(log_message, applies_to=object)
    registry.behavior(
        read_your_writes(projector.wait_for, settings.read_your_writes_timeout),
        applies_to=Command,
    )
    products.register(registry, uow=unit_of_work, read_engine=read_engine, tail=tail)
    mediator = registry.build()

    return Services(
        settings=settings,
        write_engine=write_engine,
        log_engine=log_engine,
        read_engine=read_engine,
        read_model_engine=read_model_engine,
        log=log,
        projector=projector,
        tail=tail,
        mediator=mediator,
    )
