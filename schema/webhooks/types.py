"""Webhooks' GraphQL types: the webhook, its deliveries and their attempts, and the enums
of the events it takes and of where a delivery is."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Self

import strawberry
from strawberry import relay

from domain.webhooks import OFFERED_EVENTS
from domain.webhooks import Webhook as WebhookAggregate
from handlers.access import identity_of
from handlers.webhooks import (
    AttemptView,
    CountWebhookDeliveries,
    DeliveryStatus,
    DeliveryView,
    GetWebhooks,
    WebhookView,
)
from handlers.webhooks.payloads import DELIVERY_KIND
from schema.context import Info
from schema.enums import described_enum
from schema.ids import global_id
from schema.messages import ask
from schema.pagination import Edge, PageInfo

WEBHOOK = WebhookAggregate.kind

# The offered events, as the domain derives them (domain/webhooks.py): a new event class
# that qualifies is in the enum at once, described by its name.
WebhookEvent = enum.Enum(  # type: ignore[misc]
    "WebhookEvent", {name: name for name in OFFERED_EVENTS}
)


def _what_happened(event_type: type) -> str:
    """`OrderPlaced` as a sentence: "An order was placed." """
    name = event_type.__name__
    split = next(i for i in range(1, len(name)) if name[i].isupper())
    kind, verb = name[:split].lower(), name[split:].lower()
    return f"{'An' if kind[0] in 'aeiou' else 'A'} {kind} was {verb}."


described_enum(
    WebhookEvent,
    name="WebhookEvent",
    description="An event a webhook may be sent, named as its body's `type` names it.",
    values={member: _what_happened(OFFERED_EVENTS[member.name]) for member in WebhookEvent},
)
described_enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="Where a delivery of one event to one webhook is.",
    values={
        DeliveryStatus.PENDING: "Not delivered yet: its first attempt or a retry is due at "
        "nextAttemptAt.",
        DeliveryStatus.DELIVERED: "The endpoint answered an attempt with a 2xx status.",
        DeliveryStatus.FAILED: "Given up: every attempt failed until the retry period "
        "(ORDERDESK_WEBHOOK_RETRY_FOR) had passed.",
        DeliveryStatus.CANCELLED: "Not sent again: the webhook was disabled first.",
    },
)


@strawberry.type(
    description="An endpoint of another system that is sent the shop's events as signed JSON "
    "POSTs. Staff only; its signing secret is shown once, when it is registered."
)
class Webhook(relay.Node):
    id: relay.NodeID[str]
    url: str = strawberry.field(description="Where the events are POSTed.")
    events: list[WebhookEvent] = strawberry.field(description="The events it is sent.")
    active: bool = strawberry.field(
        description="False once disabled (by staff, or after too many failures in a row): it "
        "is sent nothing more."
    )
    disabled_reason: str | None = strawberry.field(
        description="Why it was disabled; null while active."
    )
    created_at: datetime = strawberry.field(description="When it was registered.")
    disabled_at: datetime | None = strawberry.field(
        description="When it was disabled; null while active."
    )
    version: int = strawberry.field(
        description="Starts at 1 and increases by one with every change."
    )

    @classmethod
    def from_view(cls, view: WebhookView) -> Self:
        return cls(
            id=view.id,
            url=view.url,
            events=[WebhookEvent[name] for name in view.events],
            active=view.active,
            disabled_reason=view.disabled_reason,
            created_at=view.created_at,
            disabled_at=view.disabled_at,
            version=view.version,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        ids = list(node_ids)
        caller = identity_of(info.context.ctx)
        if caller is None or not caller.is_staff:
            # What a caller may not see reads as null.
            return [None for _ in ids]
        found = await ask(info, GetWebhooks(tuple(sorted(set(ids)))))
        return [cls.from_view(found[i]) if i in found else None for i in ids]


@strawberry.type(description="A page of webhooks, the newest first.")
class WebhookConnection:
    edges: list[Edge[Webhook]] = strawberry.field(
        description="The webhooks on this page, each with its cursor; empty past the end."
    )
    page_info: PageInfo = strawberry.field(description="Where this page is in the list.")
    total_count: int = strawberry.field(description="How many webhooks there are.")


@strawberry.type(description="One try at sending a delivery.")
class WebhookAttempt:
    number: int = strawberry.field(description="1 for the first attempt, 2 for the first retry…")
    attempted_at: datetime = strawberry.field(description="When it was sent.")
    succeeded: bool = strawberry.field(description="True when the endpoint answered 2xx.")
    status_code: int | None = strawberry.field(
        description="The HTTP status the endpoint answered; null when there was no answer "
        "(a timeout, a refused connection, an address webhooks may not reach)."
    )
    error: str | None = strawberry.field(
        description="Why it failed, in a few words; null when it succeeded."
    )
    response_excerpt: str | None = strawberry.field(
        description="The start of the endpoint's answer (at most 200 printable characters); "
        "null when it sent none."
    )
    duration_ms: int = strawberry.field(description="How long the attempt took, in milliseconds.")
    next_retry_at: datetime | None = strawberry.field(
        description="When it is retried after this failure; null after a success, or when "
        "the delivery was given up."
    )

    @classmethod
    def from_view(cls, view: AttemptView) -> Self:
        return cls(
            number=view.number,
            attempted_at=view.attempted_at,
            succeeded=view.succeeded,
            status_code=view.status_code,
            error=view.error,
            response_excerpt=view.response_excerpt,
            duration_ms=view.duration_ms,
            next_retry_at=view.next_retry_at,
        )


@strawberry.type(description="One event owed to one webhook, and every attempt at sending it.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="The delivery's id, the same at every attempt: the Orderdesk-Delivery "
        "header and the body's `id`, by which a receiver drops a repeat."
    )
    event_type: WebhookEvent = strawberry.field(description="What happened.")
    position: str = strawberry.field(
        description="The event's place in the event log, a string of digits (the body's "
        "`position`): later events have higher ones."
    )
    status: DeliveryStatus = strawberry.field(description="Where the delivery is.")
    created_at: datetime = strawberry.field(description="When the event was owed to it.")
    attempt_count: int = strawberry.field(description="How many attempts were made.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt (the first, or a retry) is due; null once it is "
        "delivered, given up or cancelled."
    )
    last_status_code: int | None = strawberry.field(
        description="The status of the latest attempt's answer; null before any, or when "
        "there was no answer."
    )
    last_error: str | None = strawberry.field(
        description="Why the latest attempt failed, or why the delivery was cancelled."
    )
    finished_at: datetime | None = strawberry.field(
        description="When it was delivered, given up or cancelled; null while pending."
    )
    attempts: list[WebhookAttempt] = strawberry.field(
        description="Its latest attempts, oldest first (at most 50; attemptCount counts all)."
    )

    @classmethod
    def from_view(cls, view: DeliveryView) -> Self:
        return cls(
            id=strawberry.ID(global_id(DELIVERY_KIND, view.id)),
            event_type=WebhookEvent[view.event_type],
            position=str(view.position),
            status=view.status,
            created_at=view.created_at,
            attempt_count=view.attempt_count,
            next_attempt_at=view.next_attempt_at,
            last_status_code=view.last_status_code,
            last_error=view.last_error,
            finished_at=view.finished_at,
            attempts=[WebhookAttempt.from_view(a) for a in view.attempts],
        )


@strawberry.type(description="A page of one webhook's deliveries, the newest event first.")
class WebhookDeliveryConnection:
    edges: list[Edge[WebhookDelivery]] = strawberry.field(
        description="The deliveries on this page, each with its cursor; empty past the end."
    )
    page_info: PageInfo = strawberry.field(description="Where this page is in the list.")
    webhook_id: strawberry.Private[str]

    @strawberry.field(description="How many deliveries the webhook has had, all pages together.")
    async def total_count(self, info: Info) -> int:
        return await ask(info, CountWebhookDeliveries(self.webhook_id))
