"""Builds the service from settings: engines, the event log, the projector, the tail and the
mediator with every handler and behavior. The app, the command line and the tests all start
here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import customers, orders, products, sign_in, webhooks
from handlers.access import Policy, authorize, authorize_streams
from handlers.feature import Feature, Wiring, Worker, merged, new_id
from handlers.idempotency import idempotent
from handlers.metrics import measure_messages
from handlers.pipeline import database_unavailable, log_messages, read_your_writes
from handlers.query_cache import Cached, CacheInvalidation, cache_queries
from handlers.rate_limit import limit_per_address
from handlers.reactions import Reactions
from handlers.tracing import Behavior, observed, trace_messages
from handlers.transaction import in_transaction
from handlers.validation import validate_command
from mediator import Command, ConfigurationError, Mediator, Query, Registry, Request
from orderdesk import tracing
from orderdesk.mail_transport import mailer_for
from orderdesk.operational_metrics import Lags, OperationalMetrics, ReactionLags
from orderdesk.persisted_queries import PersistedQueries, persisted_queries_for
from orderdesk.rate_limits import RateLimits, rate_limits_for
from orderdesk.reacting import reacting_for, reactor_for
from orderdesk.service_secrets import service_key, tokens_for
from orderdesk.settings import Settings
from orderdesk.tokens import Tokens
from persistence.database import create_engine, is_sqlite
from persistence.event_codec import EventCodec
from persistence.event_log import EventLog
from persistence.event_tail import EventTail
from persistence.migrate import migrate
from persistence.projector import Projection, Projector
from persistence.query_cache import LocalQueryCache, QueryCache, RedisQueryCache
from persistence.reactor import Reactor
from persistence.tail_events import ViewLoader
from persistence.unit_of_work import CommandStore, SqlCommandStore
from persistence.wakeup import NoWakeUps, WakeUps, wake_ups_for

FEATURES: tuple[Feature, ...] = (
    products.FEATURE,
    customers.FEATURE,
    orders.FEATURE,
    sign_in.FEATURE,
    webhooks.FEATURE,
)
PROJECTIONS = [projection for feature in FEATURES for projection in feature.projections]
PROJECTION_NAMES = tuple(p.name for p in PROJECTIONS)
TAIL_READS = PROJECTION_NAMES
"""The read models the event tail's views read (an order's view reads its customer's
summary too): while one is parked, subscribers are held back."""
POLICIES: dict[type, Policy] = merged(FEATURES, lambda feature: feature.policies)
IDEMPOTENT: dict[type, str] = merged(FEATURES, lambda feature: feature.idempotent)
CACHED: dict[type, Cached] = merged(FEATURES, lambda feature: feature.cached)
VIEWS: dict[str, ViewLoader] = merged(FEATURES, lambda feature: feature.views)
EVENT_TYPES = [event for feature in FEATURES for event in feature.event_types]

logger = logging.getLogger("orderdesk")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    write_engine: AsyncEngine
    log_engine: AsyncEngine
    read_engine: AsyncEngine
    read_model_engine: AsyncEngine
    scan_engine: AsyncEngine
    log: EventLog
    projector: Projector
    tail: EventTail
    mediator: Mediator
    reactor: Reactor
    metrics: CollectorRegistry
    operations: OperationalMetrics
    """HTTP, websockets, subscriptions, fan-out, lags (orderdesk/operational_metrics.py)."""
    wake_ups: WakeUps = field(default_factory=NoWakeUps)
    workers: Sequence[Worker] = ()
    """The features' background loops (a webhook courier, a timer), run after the reactor."""
    _uninstrument: Callable[[], None] | None = field(default=None, init=False, repr=False)
    """Takes SQL tracing off the engines again (set by `start` when tracing is on)."""
    query_cache: QueryCache | None = None
    rate_limits: RateLimits | None = None
    persisted_queries: PersistedQueries | None = None
    """Automatic persisted queries' texts; None when settings.apq is off."""

    @cached_property
    def tokens(self) -> Tokens:
        # Made on first use: a command that never handles a token makes no secret file.
        return tokens_for(self.settings)

    def _engines(self) -> list[AsyncEngine]:
        engines = (
            self.write_engine,
            self.log_engine,
            self.read_engine,
            self.read_model_engine,
            self.scan_engine,
        )
        return list({id(e): e for e in engines}.values())

    async def migrate(self) -> None:
        await migrate(self.write_engine, "write")
        await migrate(self.read_model_engine, "read")

    async def start(self) -> None:
        """Migrate if asked, bring the read models up to date, then follow the log."""
        if self.settings.migrate_on_start:
            await self.migrate()
        if self.query_cache is not None:
            await self.query_cache.open()
        if self.rate_limits is not None:
            await self.rate_limits.open()
        self._uninstrument = tracing.instrument_engines(self._engines())
        await self.projector.start()
        self.tail.start(self.projector.applied_by(TAIL_READS))
        self.projector.watch(TAIL_READS, self.tail.advance_to)
        # The reactor delivers what the read models show (Reactor's `up_to`): each time
        # one moves, it looks; one at a time, so that a parked one holds up no wake-up.
        for name in PROJECTION_NAMES:
            self.projector.watch([name], lambda _position, _parked: self.reactor.wake())
        await self.reactor.start()
        for worker in self.workers:
            await worker.start()
        await self.wake_ups.start(self.wake)

    def wake(self, position: int | None = None) -> None:
        """Another process committed events (up to `position`, if known)."""
        self.projector.wake(position)
        self.reactor.wake(position)

    async def stop(self) -> None:
        await self.wake_ups.stop()
        for worker in reversed(self.workers):
            await worker.stop()
        await self.reactor.stop()
        await self.tail.stop()
        await self.projector.stop()
        for engine in self._engines():
            await engine.dispose()
        if self._uninstrument is not None:
            self._uninstrument()
            self._uninstrument = None
        if self.query_cache is not None:
            await self.query_cache.close()
        if self.rate_limits is not None:
            await self.rate_limits.close()
        if self.persisted_queries is not None:
            await self.persisted_queries.close()


def query_cache_for(settings: Settings) -> QueryCache | None:
    """The query cache these settings ask for, or None.

    In the process only where this process is the only one: on PostgreSQL several
    processes serve one database, and another's write would reach this process's cache a
    moment after that process answered its mutation. There it takes Redis (cache_url).
    """
    if not settings.query_cache:
        return None
    if settings.cache_url is not None:
        # Its own key, derived from the token secret that every process shares.
        key = service_key(settings)("orderdesk query cache")
        return RedisQueryCache(settings.cache_url, secret=key, ttl=settings.query_cache_ttl)
    if is_sqlite(settings.database_url):
        database = make_url(settings.database_url).database
        on_disk = database not in (None, "", ":memory:")
        return LocalQueryCache(
            max_weight=settings.query_cache_rows,
            sole_writer_lock=Path(f"{database}.query-cache.lock") if on_disk else None,
        )
    logger.warning(
        "the query cache is off: on PostgreSQL it needs ORDERDESK_CACHE_URL (redis://...), "
        "which every process shares"
    )
    return None


def engines_for(
    settings: Settings,
) -> tuple[AsyncEngine, AsyncEngine, AsyncEngine, AsyncEngine, AsyncEngine]:
    """The write, log, read, read-model and scan engines; one where two would be the same."""
    timeout = settings.database_timeout
    write_engine = create_engine(settings.database_url, for_writes=True, timeout=timeout)
    log_engine = create_engine(settings.database_url, timeout=timeout)
    separate_reads = settings.read_models_url != settings.database_url
    read_engine = (
        create_engine(settings.read_models_url, timeout=timeout) if separate_reads else log_engine
    )
    read_model_engine = (
        create_engine(settings.read_models_url, for_writes=True, timeout=timeout)
        if separate_reads
        else write_engine
    )
    scan_engine = (
        create_engine(settings.read_models_url, for_scans=True, timeout=timeout)
        if is_sqlite(settings.read_models_url)
        else read_engine
    )

    return write_engine, log_engine, read_engine, read_model_engine, scan_engine


def bootstrap(
    settings: Settings,
    *,
    store: CommandStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    ids: Callable[[str], str] = new_id,
    extra_projections: Sequence[Projection] = (),
    extra_reactions: Sequence[Callable[[Registry], None]] = (),
) -> Services:
    """Wire everything; nothing connects until `Services.start`.

    Commands write to `store`, the SQL store on the settings' database unless one is given
    (unit tests give an in-memory one, and run this same pipeline over it). `clock` stamps
    the events, `ids` names new entities by kind. `extra_reactions` subscribe reaction
    handlers beside the features', and `extra_projections` projections (tests add failing
    ones).
    """
    write_engine, log_engine, read_engine, read_model_engine, scan_engine = engines_for(settings)

    codec = EventCodec()
    codec.register(EVENT_TYPES)
    log = EventLog(codec)
    metrics = CollectorRegistry()
    operations = OperationalMetrics(metrics)
    tracer = tracing.tracer()
    projections = [*PROJECTIONS, *extra_projections]
    query_cache = query_cache_for(settings)
    rate_limits = rate_limits_for(settings, metrics=metrics)
    projector = Projector(
        log=log,
        log_engine=log_engine,
        read_model_engine=read_model_engine,
        checkpoint_engine=read_engine,
        projections=projections,
        poll_interval=settings.poll_interval,
        lease_timeout=settings.projection_lease_timeout,
        changes=(
            None if query_cache is None else CacheInvalidation(query_cache, projections, metrics)
        ),
        tracer=tracer,
    )
    tail = EventTail(
        log=log,
        log_engine=log_engine,
        read_engine=read_engine,
        views=VIEWS,
        reads=TAIL_READS,
        queue_size=settings.subscriber_queue_size,
        max_replay_events=settings.max_replay_events,
        fanned_out=operations.tail_fanned_out,
    )
    metrics.register(Lags(projector, tail))

    wake_ups = wake_ups_for(settings.database_url, settings.broker_url)

    def committed(position: int) -> None:
        projector.wake(position)
        wake_ups.publish(position)

    if store is None:
        store = SqlCommandStore(
            write_engine,
            log,
            outcomes_engine=log_engine,
            clock=clock,
            on_commit=committed,
            read_models_at=projector.wait_for,
        )

    registry = Registry()

    def behavior(step: Behavior, applies_to: type) -> None:
        # With tracing on, each behavior notes when it refuses, for the message's span.
        registry.behavior(step if tracer is None else observed(step), applies_to=applies_to)

    if tracer is not None:
        registry.behavior(trace_messages(tracer), applies_to=object)
    # Outermost first. Read-your-writes waits after the commit, so it wraps the transaction.
    if rate_limits is not None:
        # Before logging and metrics: a flood of refused registrations costs one counter
        # each (orderdesk_rate_limited_total), not a log line and a timing each.
        behavior(
            limit_per_address(rate_limits.admit_registration),
            applies_to=customers.RegisterCustomer,
        )
        # Per client address and per email address asked for, so that neither many
        # addresses at one mailbox nor one address at many mailboxes gets far.
        limits = rate_limits
        for sign_in_command, per_address, per_email in (
            (sign_in.RequestSignInCode, limits.admit_sign_in_code, limits.admit_sign_in_code_to),
            (sign_in.SignIn, limits.admit_sign_in, limits.admit_sign_in_as),
        ):
            behavior(limit_per_address(per_address), applies_to=sign_in_command)
            behavior(sign_in.limit_per_email(per_email), applies_to=sign_in_command)
    behavior(log_messages(settings.slow_message_ms), applies_to=object)
    # Requests only: what a reaction handler's own connection refuses is not the database.
    behavior(database_unavailable, applies_to=Request)
    behavior(measure_messages(metrics), applies_to=object)
    behavior(
        read_your_writes(
            store.read_models_at,
            settings.read_your_writes_timeout,
            waited=operations.read_your_writes_waited,
            timed_out=operations.read_your_writes_timed_out,
        ),
        applies_to=Command,
    )
    behavior(authorize(POLICIES), applies_to=Request)
    if query_cache is not None:
        behavior(cache_queries(query_cache, CACHED, metrics), applies_to=Query)
    behavior(validate_command, applies_to=Command)
    behavior(idempotent(store.outcome, IDEMPOTENT), applies_to=Command)
    behavior(in_transaction(store), applies_to=Command)
    registry.stream_behavior(authorize_streams(POLICIES))
    wiring = Wiring(
        read_engine=read_engine,
        scan_engine=scan_engine,
        tail=tail,
        public_stock_events=settings.public_stock_events,
        ids=ids,
        mailer=mailer_for(settings, read_model_engine, clock=clock),
        reacting=reacting_for(settings),
        effects_engine=read_model_engine,
        write_reads_engine=log_engine,
        clock=clock,
        service_key=service_key(settings),
        webhook_attempted=operations.webhook_attempted,
    )
    for feature in FEATURES:
        feature.register(registry, wiring)
    for subscribe in extra_reactions:
        subscribe(registry)
    mediator = registry.build()
    check_policies(mediator, POLICIES)
    reactor = reactor_for(
        settings,
        Reactions(mediator, EVENT_TYPES),
        log=log,
        log_engine=log_engine,
        engine=read_model_engine,
        checkpoint_engine=read_engine,
        projector=projector,
        operations=operations,
        tracer=tracer,
    )
    metrics.register(ReactionLags(reactor))

    return Services(
        settings=settings,
        write_engine=write_engine,
        log_engine=log_engine,
        read_engine=read_engine,
        read_model_engine=read_model_engine,
        scan_engine=scan_engine,
        log=log,
        projector=projector,
        tail=tail,
        mediator=mediator,
        reactor=reactor,
        workers=[make(wiring, mediator) for feature in FEATURES for make in feature.workers],
        wake_ups=wake_ups,
        metrics=metrics,
        operations=operations,
        query_cache=query_cache,
        rate_limits=rate_limits,
        persisted_queries=persisted_queries_for(settings),
    )


def check_policies(mediator: Mediator, policies: Mapping[type, Policy]) -> None:
    """Every message a caller can send must say who may send it, and every policy must be
    for a message something handles; a gap either way is a start-up error."""
    missing = sorted(
        route.message_type.__name__
        for route in mediator.describe()
        if route.kind != "notification" and route.message_type not in policies
    )
    if missing:
        raise ConfigurationError(f"no access policy for {', '.join(missing)}")
    # And the other way: a policy for a message nothing handles is a forgotten registration.
    routed = {route.message_type for route in mediator.describe()}
    unhandled = sorted(message.__name__ for message in policies if message not in routed)
    if unhandled:
        raise ConfigurationError(f"nothing handles {', '.join(unhandled)}, which has a policy")
