"""What the reactions are built from: the reactor over the mediator's reaction handlers, and
the settings the handlers and workers are handed (`Reacting`)."""

from __future__ import annotations

from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.feature import Reacting
from handlers.reactions import Reactions
from orderdesk.operational_metrics import OperationalMetrics
from orderdesk.settings import Settings
from persistence.event_log import EventLog
from persistence.projector import Projector
from persistence.reactor import Reactor


def reactor_for(
    settings: Settings,
    reactions: Reactions,
    *,
    log: EventLog,
    log_engine: AsyncEngine,
    engine: AsyncEngine,
    checkpoint_engine: AsyncEngine,
    projector: Projector,
    operations: OperationalMetrics,
    tracer: Tracer | None,
) -> Reactor:
    """The reactor over the mediator's reaction handlers; it delivers what the read models
    show already (`up_to`), so that a handler reading them finds its event applied."""
    return Reactor(
        log=log,
        log_engine=log_engine,
        engine=engine,
        checkpoint_engine=checkpoint_engine,
        takes=reactions.takes,
        deliver=reactions.deliver,
        poll_interval=settings.poll_interval,
        max_attempts=settings.reaction_max_attempts,
        retry_delay=settings.reaction_retry_delay,
        lease_timeout=settings.projection_lease_timeout,
        tracer=tracer,
        delivered=operations.reaction_delivered,
        failed=operations.reaction_failed,
        up_to=lambda: projector.position,
    )


def reacting_for(settings: Settings) -> Reacting:
    return Reacting(
        marketing_email=settings.marketing_email,
        staff_email=settings.staff_email,
        low_stock_threshold=settings.low_stock_threshold,
        pending_order_ttl=settings.pending_order_seconds,
        sign_in_code_ttl=settings.sign_in_code_ttl,
        webhook_allow_private=settings.webhook_allow_private,
        webhook_connect_timeout=settings.webhook_connect_timeout,
        webhook_read_timeout=settings.webhook_read_timeout,
        webhook_retry_for=settings.webhook_retry_for,
        webhook_retry_delay=settings.webhook_retry_delay,
        webhook_max_failures=settings.webhook_max_failures,
        poll_interval=settings.poll_interval,
    )
