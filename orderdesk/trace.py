"""`orderdesk trace CORRELATION_ID`: everything one request caused, in order.

The request's id (its X-Request-ID) is the correlation id of every event it wrote and of
every event its reactions wrote after it, each of which also names the event that caused
it. From the log, the checkpoints and what reactions keep of their effects, this prints
each command with its events; for each event, the projections that applied it and each
reaction handler's outcome, with the emails, webhook deliveries and due times it led to;
and the commands that reactions sent, under the event that caused them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from handlers.webhooks.payloads import DELIVERY_KIND, global_id
from orderdesk.bootstrap import Services
from persistence.projection_states import ProjectionStatus
from persistence.reaction_checkpoints import ReactionStatus
from persistence.tables import (
    event_log,
    order_expiries,
    sent_emails,
    webhook_attempts,
    webhook_deliveries,
)


@dataclass(frozen=True, slots=True)
class Effect:
    """Something a reaction did for an event, as its own table records it."""

    event_id: str
    at: datetime | None
    text: str


EffectSource = Callable[[AsyncConnection, str], Awaitable[list[Effect]]]
"""The effects recorded for one correlation id, read from the read-model database."""


async def emails(connection: AsyncConnection, correlation_id: str) -> list[Effect]:
    rows = await connection.execute(
        select(sent_emails).where(sent_emails.c.correlation_id == correlation_id)
    )
    return [
        Effect(
            row.event_id,
            row.sent_at,
            f'email to {row.recipient} "{row.subject}" '
            + ("sent" if row.refused is None else f"refused by the mail server: {row.refused}"),
        )
        for row in rows
    ]


async def webhook_calls(connection: AsyncConnection, correlation_id: str) -> list[Effect]:
    deliveries = list(
        await connection.execute(
            select(webhook_deliveries).where(webhook_deliveries.c.correlation_id == correlation_id)
        )
    )
    if not deliveries:
        return []
    attempts = await connection.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_([d.id for d in deliveries]))
        .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.number)
    )
    by_delivery: dict[str, list[str]] = {}
    for attempt in attempts:
        answer = attempt.status_code if attempt.status_code is not None else attempt.error
        retry = "" if attempt.next_retry_at is None else f", next at {_time(attempt.next_retry_at)}"
        by_delivery.setdefault(attempt.delivery_id, []).append(
            f"#{attempt.number} {_time(attempt.attempted_at)}: {answer}{retry}"
        )
    return [
        Effect(
            row.event_id,
            row.created_at,
            # Global ids, as the API and the Orderdesk-Delivery header name them.
            f"webhook {global_id('Webhook', row.webhook_id)} "
            f"delivery {global_id(DELIVERY_KIND, row.id)}: {row.status.lower()}"
            + (f" (attempts {'; '.join(by_delivery[row.id])})" if row.id in by_delivery else ""),
        )
        for row in deliveries
    ]


async def expiries(connection: AsyncConnection, correlation_id: str) -> list[Effect]:
    rows = await connection.execute(
        select(order_expiries).where(order_expiries.c.correlation_id == correlation_id)
    )
    return [
        Effect(
            row.placed_event_id,
            row.settled_at,
            f"expiry of order {row.order_id} due {_time(row.due_at)}: "
            + (
                row.outcome or "pending" if row.last_error is None else f"failed ({row.last_error})"
            ),
        )
        for row in rows
    ]


EFFECTS: list[EffectSource] = [emails, webhook_calls, expiries]
"""Where reactions record what they did: emails sent, webhook deliveries, due orders."""


@dataclass(frozen=True, slots=True)
class _Event:
    position: int
    event_id: str
    event_type: str
    stream_type: str
    stream_id: str
    stream_version: int
    occurred_at: datetime
    command: str | None
    causation_id: str | None


async def trace(
    services: Services,
    correlation_id: str,
    *,
    effects: Sequence[EffectSource] = (),
) -> list[str]:
    """The lines `orderdesk trace` prints."""
    takes = services.reactor.takes
    async with services.log_engine.connect() as connection:
        rows = await connection.execute(
            select(
                event_log.c.position,
                event_log.c.event_id,
                event_log.c.event_type,
                event_log.c.stream_type,
                event_log.c.stream_id,
                event_log.c.stream_version,
                event_log.c.occurred_at,
                event_log.c.command,
                event_log.c.causation_id,
            )
            .where(event_log.c.correlation_id == correlation_id)
            .order_by(event_log.c.position)
        )
        events = [_Event(*row) for row in rows]
    if not events:
        return [f"no event in the log has the correlation id {correlation_id}"]
    projections = await services.projector.stored_status()
    reactions = await services.reactor.stored_status()
    found: list[Effect] = []
    async with services.read_model_engine.connect() as connection:
        for source in effects:
            found.extend(await source(connection, correlation_id))
    by_event: dict[str, list[Effect]] = {}
    for effect in sorted(found, key=lambda e: (e.at is None, e.at or datetime.min)):
        by_event.setdefault(effect.event_id, []).append(effect)
    commits = _commits(events)
    known = {event.event_id: event for event in events}
    lines = [
        f"request {correlation_id}: {len(commits)} commands, {len(events)} events",
    ]
    for commit in commits:
        first = commit[0]
        cause = known.get(first.causation_id or "")
        origin = (
            ""
            if first.causation_id is None
            else f" by a reaction to #{cause.position} {cause.event_type}"
            if cause is not None
            else f" by a reaction to event {first.causation_id}"
        )
        lines.append("")
        lines.append(f"{first.command or 'a command'}{origin}, at {_time(first.occurred_at)}")
        for event in commit:
            lines.append(
                f"  #{event.position} {event.event_type} "
                f"({event.stream_type} {event.stream_id}, version {event.stream_version})"
            )
            lines.append(f"      projections: {_projected(event, projections)}")
            outcomes = _reacted(event, reactions, takes)
            if outcomes:
                lines.append(f"      reactions: {outcomes}")
            for effect in by_event.get(event.event_id, []):
                at = "" if effect.at is None else f", {_time(effect.at)}"
                lines.append(f"      {effect.text}{at}")
    return lines


def _commits(events: list[_Event]) -> list[list[_Event]]:
    """Events in runs written by one command: one commit each."""
    commits: list[list[_Event]] = []
    for event in events:
        last = commits[-1][-1] if commits else None
        if last is not None and (last.command, last.causation_id, last.occurred_at) == (
            event.command,
            event.causation_id,
            event.occurred_at,
        ):
            commits[-1].append(event)
        else:
            commits.append([event])
    return commits


def _projected(event: _Event, projections: list[ProjectionStatus]) -> str:
    shown = []
    for status in projections:
        if status.position >= event.position:
            shown.append(f"{status.name} applied")
        elif status.parked_error:
            shown.append(f"{status.name} PARKED ({status.parked_error})")
        else:
            shown.append(f"{status.name} not yet")
    return ", ".join(shown)


def _reacted(
    event: _Event, reactions: list[ReactionStatus], takes: Mapping[str, frozenset[str]]
) -> str:
    shown = []
    for status in reactions:
        if event.event_type not in takes.get(status.name, frozenset()):
            continue
        if status.position >= event.position:
            shown.append(f"{status.name} done")
        elif status.parked_error:
            shown.append(f"{status.name} PARKED ({status.parked_error})")
        else:
            shown.append(f"{status.name} pending")
    return ", ".join(shown)


def _time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="milliseconds")
