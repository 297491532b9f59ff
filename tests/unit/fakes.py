"""An in-memory command store: real behaviour, no I/O, handed to the real bootstrap.

It keeps what the SQL store keeps (committed aggregates, their events in order, the outcomes
of keyed commands) and refuses what it refuses (a stale version, a taken sku or email, an
event type the log does not know, a key stored twice), at commit as the database does, so that
unit tests of handlers and of the pipeline see the service's own behaviour, only faster.
tests/contract/test_command_stores.py holds it to the same contract as the SQL stores.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from domain.aggregate import Aggregate
from domain.customers import Customer
from domain.errors import VersionConflict
from domain.orders import Order
from domain.products import Product
from domain.sign_in import SignInCodes
from domain.webhooks import Webhook
from handlers.access import Identity, Role
from mediator import Context, Mediator
from orderdesk.bootstrap import FEATURES, bootstrap
from orderdesk.settings import Settings
from persistence.customers import email_taken
from persistence.event_codec import EventCodec
from persistence.idempotency import IdempotencyClaim, KeyAlreadyUsed, StoredOutcome
from persistence.products import sku_taken

A = TypeVar("A", bound=Aggregate)


def _event_codec() -> EventCodec:
    """The log's codec, which knows every event type of the features and nothing else."""
    codec = EventCodec()
    codec.register([event for feature in FEATURES for event in feature.event_types])
    return codec


_EVENTS = _event_codec()


class FakeRepository(Generic[A]):
    """Hands out copies, as a database would: changes count only once committed.

    Like the SQL repositories it holds one aggregate per id for its unit of work (the first
    it handed out or was given), and loads several in id order, the order they are saved in.
    """

    def __init__(self, store: dict[str, A]) -> None:
        self._store = store
        self.seen: dict[str, A] = {}

    async def get(self, entity_id: str) -> A | None:
        return (await self.get_many([entity_id])).get(entity_id)

    async def get_many(self, entity_ids: Iterable[str]) -> dict[str, A]:
        wanted = sorted(set(entity_ids))
        found = {i: self.seen[i] for i in wanted if i in self.seen}
        for entity_id in wanted:
            if entity_id not in found and entity_id in self._store:
                found[entity_id] = self.seen[entity_id] = copy.deepcopy(self._store[entity_id])
        return found

    def add(self, aggregate: A) -> None:
        self.seen.setdefault(aggregate.id, aggregate)


class FakeProducts(FakeRepository[Product]):
    async def sku_taken(self, sku: str) -> bool:
        return any(p.sku == sku for p in self._store.values())


class FakeCustomers(FakeRepository[Customer]):
    async def get_to_change(self, customer_id: str) -> Customer | None:
        # Nothing runs beside a unit test's command: there is nobody to lock out.
        return await self.get(customer_id)

    async def email_taken(self, email: str) -> bool:
        return any(c.email == email for c in self._store.values())


class FakeSignInCodes(FakeRepository[SignInCodes]):
    def __init__(self, store: dict[str, SignInCodes], customers: dict[str, Customer]) -> None:
        super().__init__(store)
        self._customers = customers

    async def customer_for(self, email: str) -> str | None:
        return next((c.id for c in self._customers.values() if c.email == email), None)

    async def of_customer(self, customer_id: str) -> SignInCodes | None:
        for codes in [*self.seen.values(), *self._store.values()]:
            if codes.customer_id == customer_id:
                return await self.get(codes.id)
        return None


@dataclass(frozen=True, slots=True)
class FakeEvent:
    stream_id: str
    version: int
    event: object
    correlation_id: str
    occurred_at: datetime
    command: str | None = None
    causation_id: str | None = None


@dataclass
class FakeStore:
    """What a database would hold: committed aggregates, the event log and the outcomes of
    keyed commands. `read_models_lag` makes every read-your-writes wait time out."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    products: dict[str, Product] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    sign_in_codes: dict[str, SignInCodes] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    log: list[FakeEvent] = field(default_factory=list)
    outcomes: dict[tuple[str, str], StoredOutcome] = field(default_factory=dict)
    commits: int = 0
    read_models_lag: bool = False

    @property
    def events(self) -> list[tuple[str, int, object]]:
        return [(e.stream_id, e.version, e.event) for e in self.log]

    def unit_of_work(
        self,
        *,
        correlation_id: str,
        claim: IdempotencyClaim | None,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> FakeUnitOfWork:
        return FakeUnitOfWork(
            self,
            correlation_id=correlation_id,
            claim=claim,
            command=command,
            causation_id=causation_id,
        )

    async def outcome(self, claim: IdempotencyClaim) -> StoredOutcome | None:
        return self.outcomes.get((claim.scope, claim.key))

    async def read_models_at(self, position: int, timeout: float) -> None:  # noqa: ASYNC109
        if self.read_models_lag:
            raise TimeoutError(f"the read models have not reached {position} within {timeout} s")


class FakeUnitOfWork:
    def __init__(
        self,
        store: FakeStore,
        *,
        correlation_id: str = "test",
        claim: IdempotencyClaim | None = None,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        self._command = command
        self._causation_id = causation_id
        self._store = store
        self._correlation_id = correlation_id
        self._claim = claim
        self._open = False
        self.products = FakeProducts(store.products)
        self.customers = FakeCustomers(store.customers)
        self.orders = FakeRepository[Order](store.orders)
        self.sign_in_codes = FakeSignInCodes(store.sign_in_codes, store.customers)
        self.webhooks = FakeRepository[Webhook](store.webhooks)

    async def __aenter__(self) -> Self:
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._open = False

    async def commit(self) -> int:
        if not self._open:
            raise RuntimeError("use the unit of work inside `async with`")
        store = self._store
        kept: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (store.customers, self.customers.seen),
            (store.orders, self.orders.seen),
            (store.products, self.products.seen),
            (store.sign_in_codes, self.sign_in_codes.seen),
            (store.webhooks, self.webhooks.seen),
        ]
        changed = [(s, a) for s, seen in kept for a in seen.values() if a.pending_events]
        written = self._refuse_conflicts(changed)
        now = store.clock()
        for _, aggregate in changed:
            first = aggregate.stored_version + 1
            store.log.extend(
                FakeEvent(
                    aggregate.id,
                    first + i,
                    event,
                    self._correlation_id,
                    now,
                    self._command,
                    self._causation_id,
                )
                for i, event in enumerate(aggregate.pending_events)
            )
        # The last event's position, as the log numbers them; 0 when nothing was appended.
        position = len(store.log) if changed else 0
        if self._claim is not None and written is not None:
            store.outcomes[(self._claim.scope, self._claim.key)] = StoredOutcome(
                self._claim.fingerprint, written.id, written.version, position
            )
        for kept_as, aggregate in changed:
            aggregate.mark_stored()
            kept_as[aggregate.id] = copy.deepcopy(aggregate)
        store.commits += 1
        return position

    def _refuse_conflicts(
        self, changed: list[tuple[dict[str, Any], Aggregate]]
    ) -> Aggregate | None:
        """Everything the database refuses, in the order it would, and all of it before
        anything is kept: each row as it is saved (a stale version, a sku or an email taken
        before or earlier in this commit), then each event as it is appended (a type the log
        does not know), then the claim (not one entity of its kind, or its key stored).
        Returns the entity the claim's command wrote."""
        store = self._store
        skus = {p.sku for p in store.products.values()}
        emails = {c.email for c in store.customers.values()}
        for kept_as, aggregate in changed:
            current = kept_as.get(aggregate.id)
            if aggregate.stored_version or current is not None:
                actual = 0 if current is None else current.version
                if actual != aggregate.stored_version:
                    raise VersionConflict(
                        aggregate.kind, aggregate.id, aggregate.stored_version, actual
                    )
                continue
            if isinstance(aggregate, Product):
                if aggregate.sku in skus:
                    raise sku_taken()
                skus.add(aggregate.sku)
            if isinstance(aggregate, Customer):
                if aggregate.email in emails:
                    raise email_taken()
                emails.add(aggregate.email)
        _refuse_second_codes(store, [a for _, a in changed if not a.stored_version])
        for _, aggregate in changed:
            for event in aggregate.pending_events:
                _EVENTS.encode(event)
        if self._claim is None:
            return None
        kind = self._claim.kind
        written = [a for _, a in changed if a.kind == kind]
        if len(written) != 1:
            raise RuntimeError(f"an idempotent command must write one {kind}, not {len(written)}")
        if (self._claim.scope, self._claim.key) in store.outcomes:
            raise KeyAlreadyUsed(self._claim.key)
        return written[0]


def _refuse_second_codes(store: FakeStore, new: list[Aggregate]) -> None:
    """A customer's first codes, stored twice at once: the later loses (one row each)."""
    coded = {codes.customer_id for codes in store.sign_in_codes.values()}
    for codes in new:
        if isinstance(codes, SignInCodes) and codes.customer_id in coded:
            raise VersionConflict(codes.kind, codes.id, 0, 1)


def counted_ids() -> Callable[[str], str]:
    """Ids that say their kind and order: the first product is p1, the second order o2."""
    counters: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    def new_id(kind: str) -> str:
        return f"{kind[0].lower()}{next(counters[kind])}"

    return new_id


def fake_mediator(store: FakeStore, settings: Settings | None = None) -> Mediator:
    """The service's own mediator and pipeline, over the store: nothing connects."""
    settings = settings or Settings(database_url="sqlite+aiosqlite:///:memory:")
    return bootstrap(settings, store=store, ids=counted_ids()).mediator


def as_staff() -> Context:
    return Context(identity=Identity("staff-1", Role.STAFF))


def as_customer(customer_id: str) -> Context:
    return Context(identity=Identity(customer_id, Role.CUSTOMER))
