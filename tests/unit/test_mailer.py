"""The mailer behind the reactions' emails: what ORDERDESK_SMTP_URL may say, the message it
composes, the .eml outbox, and once per key."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.mail import Email
from orderdesk.mail_transport import (
    KeyedMailer,
    MailSettingsError,
    OutboxTransport,
    SmtpServer,
    mailer_for,
    message_id,
    smtp_server,
)
from orderdesk.settings import Settings
from persistence.database import create_engine
from persistence.sent_emails import emails_for
from persistence.tables import read_metadata, sent_emails

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
KEY = "orders.confirmation_email:6f1c"
EMAIL = Email(
    to="ada@example.com",
    subject="We have your order",
    text="Plain words\n",
    html="<p>Rich words</p>\n",
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}", for_writes=True)
    async with engine.begin() as connection:
        await connection.run_sync(read_metadata.create_all)
    yield engine
    await engine.dispose()


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite+aiosqlite:///:memory:",
        "outbox_dir": str(tmp_path / "outbox"),
        "mail_from": "Shop <shop@example.com>",
        **overrides,
    }
    return Settings(**values)


def outbox(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outbox").iterdir())


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# ---- ORDERDESK_SMTP_URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25, False, "auto")),
        # A password to another host: STARTTLS required, not merely taken when offered.
        (
            "smtp://shop:p%40ss@mail.example.com:587",
            SmtpServer("mail.example.com", 587, False, "require", "shop", "p@ss"),
        ),
        (
            "smtp://shop:secret@127.0.0.1:1025",
            SmtpServer("127.0.0.1", 1025, False, "auto", "shop", "secret"),
        ),
        (
            "smtp://mail.example.com:587?starttls=require",
            SmtpServer("mail.example.com", 587, False, "require"),
        ),
        ("smtp://127.0.0.1:2525?starttls=off", SmtpServer("127.0.0.1", 2525, False, "off")),
        (
            "smtps://u:p@mail.example.com",
            SmtpServer("mail.example.com", 465, True, "off", "u", "p"),
        ),
    ],
)
def test_smtp_urls_say_where_and_how(url: str, expected: SmtpServer) -> None:
    assert smtp_server(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://shop:hunter2@mail.example.com", "must start with smtp:// or smtps://"),
        ("mail.example.com:25", "must start with smtp://"),
        ("smtp://shop:hunter2@", "names no host"),
        ("smtp://shop:hunter2@mail.example.com:99999", "is not a URL"),
        ("smtp://shop:hunter2@mail.example.com:port", "is not a URL"),
        ("smtp://shop:hunter2@mail.example.com/inbox", "has a path"),
        ("smtp://shop:hunter2@mail.example.com?starttls=maybe", "starttls must be one of"),
        ("smtp://shop:hunter2@mail.example.com?tls=yes", "takes only"),
        ("smtps://shop:hunter2@mail.example.com?starttls=require", "smtps:// is TLS"),
        ("smtp://:hunter2@mail.example.com", "a password but no user"),
        ("smtp://shop@mail.example.com", "a user but no password"),
    ],
)
def test_a_bad_smtp_url_is_refused_without_showing_its_password(url: str, says: str) -> None:
    with pytest.raises(MailSettingsError, match=says) as refused:
        smtp_server(url)

    assert "hunter2" not in str(refused.value)


def test_a_password_cut_short_by_a_slash_is_not_shown_as_a_port() -> None:
    with pytest.raises(MailSettingsError, match="has a path") as refused:
        smtp_server("smtp://shop:1234/5678@mail.example.com")

    assert "1234" not in str(refused.value)
    assert "5678" not in str(refused.value)


def test_a_password_never_shows_in_the_servers_repr() -> None:
    server = smtp_server("smtp://shop:hunter2@mail.example.com")

    assert "hunter2" not in repr(server)
    assert str(server) == "smtp://shop:***@mail.example.com:25"


def test_a_bad_smtp_url_stops_the_start_not_the_first_send(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    with pytest.raises(MailSettingsError):
        mailer_for(settings(tmp_path, smtp_url=SecretStr("smtp//nowhere")), engine)


@pytest.mark.parametrize("mail_from", ["orderdesk", "Shop <>", "a@b\r\nBcc: x@y"])
def test_a_from_that_is_no_address_stops_the_start(
    tmp_path: Path, engine: AsyncEngine, mail_from: str
) -> None:
    with pytest.raises(MailSettingsError, match="ORDERDESK_MAIL_FROM"):
        mailer_for(settings(tmp_path, mail_from=mail_from), engine)


# ---- the message


def test_the_message_id_is_the_keys_alone() -> None:
    first = message_id(KEY, "example.com")

    assert first == message_id(KEY, "example.com")
    assert first != message_id("orders.shipping_email:6f1c", "example.com")
    assert first.startswith("<")
    assert first.endswith("@example.com>")


async def test_the_outbox_holds_each_email_as_one_eml_file(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    mailer = mailer_for(settings(tmp_path), engine, clock=lambda: NOW)

    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")

    [path] = outbox(tmp_path)
    assert path.name.startswith("20261201T120030")
    assert path.suffix == ".eml"
    message = read_eml(path)
    assert message["From"] == "Shop <shop@example.com>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "We have your order"
    assert message["Message-ID"] == message_id(KEY, "example.com")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content() == "Plain words\n"
    assert html.get_content() == "<p>Rich words</p>\n"


async def test_a_plain_text_email_is_not_multipart(tmp_path: Path, engine: AsyncEngine) -> None:
    mailer = mailer_for(settings(tmp_path), engine)

    await mailer.send(Email("ada@example.com", "Hi", "Only words\n"), key=KEY, correlation_id="r")

    [path] = outbox(tmp_path)
    assert read_eml(path).get_content_type() == "text/plain"


async def test_a_key_is_sent_once_and_recorded(tmp_path: Path, engine: AsyncEngine) -> None:
    mailer = mailer_for(settings(tmp_path), engine, clock=lambda: NOW)

    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")
    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")
    await mailer.send(EMAIL, key="orders.shipping_email:6f1c", correlation_id="request-2")

    assert len(outbox(tmp_path)) == 2
    async with engine.connect() as connection:
        [sent] = await emails_for(connection, "request-1")
    assert (sent.key, sent.handler, sent.event_id) == (KEY, "orders.confirmation_email", "6f1c")
    assert (sent.recipient, sent.subject) == ("ada@example.com", "We have your order")
    assert sent.message_id == message_id(KEY, "example.com")
    assert sent.sent_at == NOW


async def test_an_outbox_file_written_before_a_crash_is_not_written_again(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    mailer = mailer_for(settings(tmp_path), engine)
    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")
    async with engine.begin() as connection:
        # As if the process died between the file and its record.
        await connection.execute(delete(sent_emails))

    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")

    assert len(outbox(tmp_path)) == 1
    assert not [p for p in (tmp_path / "outbox").iterdir() if p.name.startswith(".")]


class RefusingTransport:
    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.delivered: list[EmailMessage] = []

    async def deliver(self, message: EmailMessage, *, key: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError("the mail server is down")
        self.delivered.append(message)


async def test_a_send_that_fails_records_nothing_and_the_next_try_sends(
    engine: AsyncEngine,
) -> None:
    transport = RefusingTransport(refusals=1)
    mailer = KeyedMailer(transport, engine, mail_from="shop@example.com")

    with pytest.raises(ConnectionRefusedError):
        await mailer.send(EMAIL, key=KEY, correlation_id="request-1")
    async with engine.connect() as connection:
        assert await emails_for(connection, "request-1") == []
    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")
    await mailer.send(EMAIL, key=KEY, correlation_id="request-1")

    [message] = transport.delivered
    assert message["Message-ID"] == message_id(KEY, "example.com")


async def test_the_outbox_folder_is_made_when_missing(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "outbox"
    message = EmailMessage()
    message["Subject"] = "Hi"
    message.set_content("words")

    await OutboxTransport(folder, clock=lambda: NOW).deliver(message, key=KEY)

    assert [p.suffix for p in folder.iterdir()] == [".eml"]
