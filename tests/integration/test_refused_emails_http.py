"""An address the mail server refuses for good (550 to its message) is recorded as refused
and passed by: the handler is not parked behind it, and every customer after it gets
their email. A stranger who registers an undeliverable address stops no one's mail_server."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.settings import Settings
from persistence.tables import sent_emails
from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.mail_server import MailServer
from tests.served import Served
from tests.ws_client import register


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url), reaction_max_attempts=2)


def to_bounce(message: EmailMessage) -> bool:
    return "bounce@example.com" in str(message["To"])


async def test_an_address_refused_for_good_holds_up_no_one(
    served: Served, client: GraphQLClient, mail_server: MailServer, settings: Settings
) -> None:
    mail_server.refuse_next(5, "550 5.1.1 No such user here", when=to_bounce)
    await register(client, "Bounce")
    await register(client, "Good")
    await mail_server.wait_for(lambda m: "good@example.com" in str(m["To"]), timeout=20)
    assert mail_server.to("bounce@example.com") == []
    assert not [s.name for s in served.services.reactor.status() if s.parked_error]

    engine = create_async_engine(settings.read_models_url)
    try:
        async with engine.connect() as connection:
            rows = {
                row.recipient: row.refused
                for row in await connection.execute(
                    select(sent_emails.c.recipient, sent_emails.c.refused)
                )
            }
    finally:
        await engine.dispose()
    assert rows["good@example.com"] is None
    refused = rows["bounce@example.com"]
    assert refused is not None
    assert "550" in refused
    assert mail_server.attempts >= 2, "one refused attempt for bounce, one accepted for good"
