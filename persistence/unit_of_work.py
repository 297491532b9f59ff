"""The unit of work: the one transaction boundary for writes.

It commits the changed aggregates and their new events, in the event log, in one
transaction (a transactional outbox): no event is published that was not committed, and
none that was committed is lost. An idempotency key, when the command carries one, is
stored in the same transaction, with the entity it wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.aggregate import Aggregate
from persistence.customers import CustomerRepository, SqlCustomerRepository
from persistence.event_log import EventLog, NewEvent
from persistence.idempotency import IdempotencyClaim, StoredOutcome, find_outcome, store_outcome
from persistence.orders import OrderRepository, SqlOrderRepository
from persistence.products import ProductRepository, SqlProductRepository
from persistence.repository import SqlRepository
from persistence.sign_in_codes import SignInCodeRepository, SqlSignInCodeRepository
from persistence.webhooks import SqlWebhookRepository, WebhookRepository


class UnitOfWork(Protocol):
    """What a command handler sees: repositories, and commit. Leaving without commit undoes all."""

    @property
    def products(self) -> ProductRepository: ...

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def sign_in_codes(self) -> SignInCodeRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> int:
        """Store every change and its events; returns the last event's log position."""
        ...


class CommandStore(Protocol):
    """Storage as the command pipeline sees it: the SQL store in service, an in-memory one in
    unit tests, handed to `bootstrap` like any other dependency."""

    def unit_of_work(
        self,
        *,
        correlation_id: str,
        claim: IdempotencyClaim | None,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> UnitOfWork:
        """A new unit of work for one command; a keyed command's claim is stored with its
        write, and its events record the command's name and the event that caused it."""
        ...

    async def outcome(self, claim: IdempotencyClaim) -> StoredOutcome | None:
        """What the command that first used the claim's key wrote, if one did."""
        ...

    async def read_models_at(self, position: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the read models show the write at `position`; TimeoutError after
        `timeout` s (read-your-writes waits on it)."""
        ...


class SqlCommandStore:
    """Units of work on the write engine, outcomes read beside the log, and the projector's
    word on when the read models have caught up."""

    def __init__(
        self,
        engine: AsyncEngine,
        log: EventLog,
        *,
        outcomes_engine: AsyncEngine,
        clock: Callable[[], datetime],
        on_commit: Callable[[int], None],
        read_models_at: Callable[[int, float], Awaitable[None]],
    ) -> None:
        self._new = partial(SqlUnitOfWork, engine, log, clock=clock, on_commit=on_commit)
        self._outcomes_engine = outcomes_engine
        self._read_models_at = read_models_at

    def unit_of_work(
        self,
        *,
        correlation_id: str,
        claim: IdempotencyClaim | None,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> UnitOfWork:
        return self._new(
            correlation_id=correlation_id, claim=claim, command=command, causation_id=causation_id
        )

    async def outcome(self, claim: IdempotencyClaim) -> StoredOutcome | None:
        # Not on the write engine: a look must not queue behind SQLite's one writer.
        async with self._outcomes_engine.connect() as connection:
            return await find_outcome(connection, claim.scope, claim.key)

    async def read_models_at(self, position: int, timeout: float) -> None:  # noqa: ASYNC109
        await self._read_models_at(position, timeout)


class SqlUnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        log: EventLog,
        *,
        clock: Callable[[], datetime],
        correlation_id: str,
        on_commit: Callable[[int], None],
        claim: IdempotencyClaim | None = None,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        self._command = command
        self._causation_id = causation_id
        self._engine = engine
        self._log = log
        self._clock = clock
        self._correlation_id = correlation_id
        self._on_commit = on_commit
        self._claim = claim
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        connection = await self._engine.connect()
        try:
            await connection.begin()
        except BaseException:
            # __aexit__ never runs for a failed __aenter__: a begin that waited out the
            # lock or was cancelled by the operation's deadline must give its connection back.
            await asyncio.shield(connection.close())
            raise
        self._connection = connection
        products = SqlProductRepository(self._connection)
        customers = SqlCustomerRepository(self._connection)
        orders = SqlOrderRepository(self._connection)
        sign_in_codes = SqlSignInCodeRepository(self._connection)
        webhooks = SqlWebhookRepository(self._connection)
        self.products: ProductRepository = products
        self.customers: CustomerRepository = customers
        self.orders: OrderRepository = orders
        self.sign_in_codes: SignInCodeRepository = sign_in_codes
        self.webhooks: WebhookRepository = webhooks
        # Saved in this order: a new customer before its orders, orders before stock.
        self._repositories: list[SqlRepository[Any]] = [
            customers,
            orders,
            products,
            sign_in_codes,
            webhooks,
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._require_connection()
        self._connection = None
        # Shielded: a second cancellation (the deadline, then shutdown) must not leave the
        # transaction open or the connection checked out.
        await asyncio.shield(_release(connection))

    async def commit(self) -> int:
        connection = self._require_connection()
        now = self._clock()
        changed = [(r, a) for r in self._repositories for a in r.seen() if a.pending_events]
        new_events: list[NewEvent] = []
        for repository, aggregate in changed:
            await repository.save(aggregate)
            first = aggregate.stored_version + 1
            new_events.extend(
                NewEvent(aggregate.kind, aggregate.id, first + i, event)
                for i, event in enumerate(aggregate.pending_events)
            )
        position = await self._log.append(
            connection,
            new_events,
            occurred_at=now,
            correlation_id=self._correlation_id,
            command=self._command,
            causation_id=self._causation_id,
        )
        if self._claim is not None:
            written = self._written(self._claim.kind, [a for _, a in changed])
            await store_outcome(
                connection,
                self._claim,
                entity_id=written.id,
                version=written.version,
                position=position,
                now=now,
            )
        await connection.commit()
        for _, aggregate in changed:
            aggregate.mark_stored()
        if position:
            self._on_commit(position)
        return position

    @staticmethod
    def _written(kind: str, changed: list[Aggregate]) -> Aggregate:
        """The entity a keyed command wrote, new or existing: the one of its kind it changed
        (placing or cancelling an order changes products too, but they are of another kind)."""
        written = [a for a in changed if a.kind == kind]
        if len(written) != 1:
            raise RuntimeError(f"an idempotent command must write one {kind}, not {len(written)}")
        return written[0]

    def _require_connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._connection


async def _release(connection: AsyncConnection) -> None:
    try:
        if connection.in_transaction():
            await connection.rollback()
    finally:
        await connection.close()
