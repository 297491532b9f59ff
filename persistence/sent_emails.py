"""The emails reactions sent (`sent_emails`), one row per effect key.

The mailer looks a key up before it sends and records it after the server accepted the
message; the row is how a redelivered event finds its email already sent, and how
`orderdesk trace` lists the emails one request caused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import insert_or_nothing
from persistence.tables import sent_emails

_table = sent_emails.c


@dataclass(frozen=True, slots=True)
class SentEmail:
    key: str
    """The reaction's effect key, "<handler>:<event id>"."""
    handler: str
    event_id: str
    correlation_id: str
    recipient: str
    subject: str
    message_id: str
    sent_at: datetime
    refused: str | None = None
    """The mail server's answer, when it refused the message for good."""


async def was_sent(connection: AsyncConnection, key: str) -> bool:
    found = await connection.execute(select(_table.key).where(_table.key == key))
    return found.first() is not None


def record_sent(connection: AsyncConnection, sent: SentEmail) -> Insert:
    """The row of an email just sent; nothing when a row for its key is there already (a
    redelivery that raced this one)."""
    values = {
        "key": sent.key,
        "handler": sent.handler,
        "event_id": sent.event_id,
        "correlation_id": sent.correlation_id,
        "recipient": sent.recipient,
        "subject": sent.subject,
        "message_id": sent.message_id,
        "sent_at": sent.sent_at,
        "refused": sent.refused,
    }
    return insert_or_nothing(connection.dialect.name, sent_emails, values)


async def emails_for(connection: AsyncConnection, correlation_id: str) -> list[SentEmail]:
    """The emails one request caused, in the order they were sent."""
    rows = (
        await connection.execute(
            select(sent_emails)
            .where(_table.correlation_id == correlation_id)
            .order_by(_table.sent_at, _table.key)
        )
    ).mappings()
    return [
        SentEmail(
            row["key"],
            row["handler"],
            row["event_id"],
            row["correlation_id"],
            row["recipient"],
            row["subject"],
            row["message_id"],
            row["sent_at"],
            row["refused"],
        )
        for row in rows
    ]
