"""Webhooks: endpoints of other systems that staff register to be told of the shop's events.

Registering and disabling are commands on the Webhook aggregate (domain/webhooks.py), whose
signing secret stays on the write side. Each offered event fans out, as a reaction, to one
delivery per webhook that takes it (fan_out.py); the courier, a worker, sends the deliveries,
signed, retries them with backoff and disables an endpoint that keeps failing (courier.py).
Staff read the webhooks from their read model and every delivery's attempts (queries.py).
"""

from __future__ import annotations

import contextlib
from functools import partial

from domain.errors import NotFound
from domain.webhooks import OFFERED_EVENTS, WEBHOOK_EVENTS, Webhook, WebhookDisabled
from handlers.access import Policy, staff
from handlers.feature import Feature, Wiring
from handlers.reactions import SYSTEM, committed
from handlers.transaction import CAUSED_BY, writes
from handlers.webhooks.commands import (
    CheckWebhookUrl,
    DisableWebhook,
    RegisteredWebhook,
    RegisterWebhook,
    check_webhook_url,
    disable_webhook,
    register_webhook,
)
from handlers.webhooks.courier import Courier
from handlers.webhooks.deliveries import ClaimedDelivery, DeliveryStatus, SqlDeliveries
from handlers.webhooks.fan_out import cancel_deliveries, doorbell_for, fan_out, sql_subscribers
from handlers.webhooks.posting import Poster
from handlers.webhooks.projection import WEBHOOK_SUMMARIES
from handlers.webhooks.queries import (
    MAX_SHOWN_ATTEMPTS,
    AttemptView,
    CountWebhookDeliveries,
    DeliveryView,
    GetWebhooks,
    ListWebhookDeliveries,
    ListWebhooks,
    WebhookView,
    count_webhook_deliveries,
    get_webhooks,
    list_webhook_deliveries,
    list_webhooks,
)
from mediator import ConfigurationError, Context, Mediator, Registry
from persistence.webhooks import DeliveryTarget, delivery_target

__all__ = [
    "FEATURE",
    "MAX_SHOWN_ATTEMPTS",
    "OFFERED_EVENTS",
    "AttemptView",
    "CheckWebhookUrl",
    "CountWebhookDeliveries",
    "DeliveryStatus",
    "DeliveryView",
    "DisableWebhook",
    "GetWebhooks",
    "ListWebhookDeliveries",
    "ListWebhooks",
    "RegisterWebhook",
    "RegisteredWebhook",
    "WebhookView",
    "courier_for",
    "register",
]


def register(registry: Registry, wiring: Wiring) -> None:
    reacting = wiring.reacting
    registry.handle(
        RegisterWebhook,
        writes(
            partial(
                register_webhook,
                new_id=partial(wiring.ids, Webhook.kind),
                clock=wiring.clock,
                allow_private=reacting.webhook_allow_private,
            )
        ),
    )
    registry.handle(DisableWebhook, writes(disable_webhook))
    registry.handle(
        CheckWebhookUrl,
        partial(
            check_webhook_url,
            allow_private=reacting.webhook_allow_private,
            timeout=reacting.webhook_connect_timeout,
        ),
    )
    registry.handle(GetWebhooks, partial(get_webhooks, read_engine=wiring.read_engine))
    registry.handle(ListWebhooks, partial(list_webhooks, read_engine=wiring.scan_engine))
    # A webhook's deliveries grow without bound: a read whose cost grows with the data.
    scans = wiring.scan_engine
    registry.handle(ListWebhookDeliveries, partial(list_webhook_deliveries, read_engine=scans))
    registry.handle(CountWebhookDeliveries, partial(count_webhook_deliveries, read_engine=scans))
    if wiring.effects_engine is None or wiring.write_reads_engine is None:
        return
    book = SqlDeliveries(wiring.effects_engine)
    deliver = partial(
        fan_out,
        subscribers=sql_subscribers(wiring.write_reads_engine),
        book=book,
        clock=wiring.clock,
        doorbell=doorbell_for(wiring.effects_engine),
    )
    for event_type in OFFERED_EVENTS.values():
        registry.subscribe(committed(event_type), deliver, name="webhooks.fan_out")
    registry.subscribe(
        committed(WebhookDisabled),
        partial(cancel_deliveries, book=book, clock=wiring.clock),
        name="webhooks.cancel_deliveries",
    )


def courier_for(wiring: Wiring, mediator: Mediator) -> Courier:
    """The courier of this service: its book on the effects engine, the webhooks' URLs and
    secrets read from the write side, and DisableWebhook sent through `mediator`."""
    effects, write_reads = wiring.effects_engine, wiring.write_reads_engine
    if effects is None or write_reads is None:
        raise ConfigurationError("the webhook courier needs the effects and write-read engines")
    reacting = wiring.reacting
    poster = Poster(
        connect_timeout=reacting.webhook_connect_timeout,
        read_timeout=reacting.webhook_read_timeout,
        allow_private=reacting.webhook_allow_private,
    )

    async def targets(webhook_id: str) -> DeliveryTarget | None:
        async with write_reads.connect() as connection:
            return await delivery_target(connection, webhook_id)

    async def disable(delivery: ClaimedDelivery, reason: str) -> None:
        # As the system, for the request whose event it was delivering, and caused by that
        # event: `orderdesk trace` shows why the webhook went quiet.
        ctx = Context(identity=SYSTEM, correlation_id=delivery.correlation_id)
        ctx.set(CAUSED_BY, delivery.event_id)
        # Not found: gone from under us, and there is nothing left to disable.
        with contextlib.suppress(NotFound):
            await mediator.send(DisableWebhook(delivery.webhook_id, reason), ctx)

    return Courier(
        book=SqlDeliveries(effects, reads=wiring.read_engine),
        targets=targets,
        post=poster,
        disable=disable,
        reacting=reacting,
        clock=wiring.clock,
        doorbell=doorbell_for(effects),
        attempt_deadline=poster.deadline,
        on_stop=poster.aclose,
        attempted=wiring.webhook_attempted,
    )


EVENT_TYPES = WEBHOOK_EVENTS
# Staff only, every one: a webhook's URL and deliveries tell where the shop's data goes.
POLICIES: dict[type, Policy] = {
    RegisterWebhook: staff,
    DisableWebhook: staff,
    CheckWebhookUrl: staff,
    GetWebhooks: staff,
    ListWebhooks: staff,
    ListWebhookDeliveries: staff,
    CountWebhookDeliveries: staff,
}

FEATURE = Feature(
    "webhooks",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
    projections=(WEBHOOK_SUMMARIES,),
    workers=(courier_for,),
)
