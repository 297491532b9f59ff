"""The mailer behind handlers/mail.py's port: over SMTP when ORDERDESK_SMTP_URL is set, as
.eml files in ORDERDESK_OUTBOX_DIR when it is not, and once per key either way.

Once per key: `send` looks the key up in `sent_emails`, hands the message to the transport,
then records the key. One window remains: a process that dies after the SMTP server accepted
the message and before the row is written sends it again when the reactor redelivers the
event. The redelivered message carries the same Message-ID (a function of the key alone), so
that a mail system downstream, or a reader, can tell it is the same email. The outbox closes
that window too: a file for the key already there is not written again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.mail import Email, Mailer
from orderdesk.settings import Settings
from persistence.sent_emails import SentEmail, record_sent, was_sent

logger = logging.getLogger("orderdesk.mail")

StartTls = Literal["auto", "require", "off"]


class MailSettingsError(ValueError):
    """ORDERDESK_SMTP_URL or ORDERDESK_MAIL_FROM cannot be used: raised at start-up, never
    at the first send, and never with the password in it."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to send, as ORDERDESK_SMTP_URL says."""

    host: str
    port: int
    implicit_tls: bool
    """smtps://: TLS from the first byte."""
    starttls: StartTls
    """smtp://: upgrade when the server offers it (auto), insist (require), or never (off)."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        login = f"{self.username}:***@" if self.username is not None else ""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{login}{self.host}:{self.port}"


_STARTTLS: dict[str, StartTls] = {"auto": "auto", "require": "require", "off": "off"}


def smtp_server(url: str) -> SmtpServer:
    """ORDERDESK_SMTP_URL parsed: `smtp://user:pass@host:port?starttls=require|off` or
    `smtps://user:pass@host:port`; credentials percent-encoded as in any URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise MailSettingsError(
            "ORDERDESK_SMTP_URL is not a URL: expected smtp://user:pass@host:port"
        ) from None
    shown = _redacted(parts.scheme, parts.hostname, port)
    if parts.scheme not in ("smtp", "smtps"):
        raise MailSettingsError(
            f"ORDERDESK_SMTP_URL must start with smtp:// or smtps://, not {parts.scheme!r}://"
        )
    if not parts.hostname:
        raise MailSettingsError(f"ORDERDESK_SMTP_URL names no host: {shown}")
    if parts.path not in ("", "/") or parts.fragment:
        # Shown without its host and port: a '/' or '#' in a password not percent-encoded
        # ends the host early, and what the parser took for the port is the password's.
        raise MailSettingsError(
            "ORDERDESK_SMTP_URL has a path, which SMTP has no use for (percent-encode a "
            "'/' or '#' in the user or password as %2F or %23)"
        )
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise MailSettingsError(f"ORDERDESK_SMTP_URL has a malformed query: {shown}") from None
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise MailSettingsError(
            f"ORDERDESK_SMTP_URL takes only ?starttls=require|off, not {', '.join(unknown)}"
        )
    implicit_tls = parts.scheme == "smtps"
    asked = query.get("starttls", ["auto"])
    starttls = _STARTTLS.get(asked[-1].lower()) if len(asked) == 1 else None
    if starttls is None:
        raise MailSettingsError("ORDERDESK_SMTP_URL's starttls must be one of require, off, auto")
    if implicit_tls and "starttls" in query:
        raise MailSettingsError(
            "ORDERDESK_SMTP_URL: smtps:// is TLS from the start; starttls is for smtp:// only"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise MailSettingsError(f"ORDERDESK_SMTP_URL has a password but no user: {shown}")
    if username is not None and password is None:
        raise MailSettingsError(f"ORDERDESK_SMTP_URL has a user but no password: {shown}")
    if starttls == "auto" and password is not None and not _is_loopback(parts.hostname):
        # A password goes to another host only encrypted: left to "whatever the server
        # offers", a man in the middle who strips the offer would read it.
        starttls = "require"
    return SmtpServer(
        host=parts.hostname,
        port=port if port is not None else (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        starttls="off" if implicit_tls else starttls,
        username=username,
        password=password,
    )


def _redacted(scheme: str, host: str | None, port: int | None) -> str:
    return f"{scheme}://{host or ''}{'' if port is None else f':{port}'}"


def message_id(key: str, domain: str) -> str:
    """The Message-ID of the email sent under `key`: the same at every redelivery."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class Refused(Exception):
    """The mail server refused this message for good (5xx to its recipient or its data):
    sent again, it would be refused again, so it is recorded, not retried."""


class Transport(Protocol):
    async def deliver(self, message: EmailMessage, *, key: str) -> None:
        """Hand `message` on; `Refused` if the server will never take it, any other error
        if it could not be handed on now."""
        ...


class SmtpTransport:
    """One SMTP connection per message: reactions send a few emails a minute, not a stream,
    and a fresh connection never meets a server that dropped an idle one."""

    def __init__(
        self, server: SmtpServer, *, timeout: float, tls_context: ssl.SSLContext | None = None
    ) -> None:
        """`tls_context` replaces the system's trust store (tests trust their own
        certificate with it)."""
        self._server = server
        self._timeout = timeout
        self._tls_context = tls_context

    async def deliver(self, message: EmailMessage, *, key: str) -> None:
        server = self._server
        starttls = {"auto": None, "require": True, "off": False}[server.starttls]
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=starttls,
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as refusal:
            # One recipient a message: a 5xx to it is about this address alone. A 4xx (a
            # full mailbox, greylisting) is worth another try.
            if all(r.code >= 500 for r in refusal.recipients):
                answers = "; ".join(f"{r.code} {r.message}" for r in refusal.recipients)
                raise Refused(answers) from refusal
            raise
        except aiosmtplib.SMTPDataError as refusal:
            # The message itself (its content, its size); the sender's refusal, a failed
            # login or TLS are the server's setup, and every other message would fail too.
            if refusal.code >= 500:
                raise Refused(f"{refusal.code} {refusal.message}") from refusal
            raise


class OutboxTransport:
    """Each message as a .eml file a newcomer can open in any mail program, named for when
    it was written and its key, so that the folder lists in the order they were sent."""

    def __init__(self, folder: Path, *, clock: Callable[[], datetime]) -> None:
        self._folder = folder
        self._clock = clock

    async def deliver(self, message: EmailMessage, *, key: str) -> None:
        await asyncio.to_thread(self._write, message.as_bytes(), key)

    def _write(self, content: bytes, key: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        if any(self._folder.glob(f"*-{digest}.eml")):
            return  # written before a crash kept its record from the database
        name = f"{self._clock().astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{digest}.eml"
        # Written aside and renamed, so that a reader never opens half a message and a
        # crash leaves only a hidden temporary file behind.
        handle, temporary = tempfile.mkstemp(dir=self._folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class KeyedMailer:
    """The Mailer: composes the message, sends each key once, and records what it sent."""

    def __init__(
        self,
        transport: Transport,
        engine: AsyncEngine,
        *,
        mail_from: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._transport = transport
        self._engine = engine
        self._from = mail_from
        self._domain = _domain_of(mail_from)
        self._clock = clock

    async def send(self, email: Email, *, key: str, correlation_id: str) -> None:
        """Skip a key already recorded; deliver; record. A crash after the server accepted
        the message and before the record is written is the one window in which the
        redelivered event sends it again (with the same Message-ID)."""
        async with self._engine.connect() as connection:
            if await was_sent(connection, key):
                return
        message = self.compose(email, key=key)
        refused: str | None = None
        try:
            await self._transport.deliver(message, key=key)
        except Refused as refusal:
            # Retrying would park the handler behind one bad address, holding up every
            # customer's email after it (an attacker need only register one).
            refused = str(refusal)[:500]
            logger.warning(
                "the mail server refused an email for good: %s",
                refused,
                extra={"key": key, "correlation_id": correlation_id},
            )
        handler, _, event_id = key.partition(":")
        sent = SentEmail(
            key=key,
            handler=handler,
            event_id=event_id,
            correlation_id=correlation_id,
            recipient=email.to,
            subject=email.subject,
            message_id=str(message["Message-ID"]),
            sent_at=self._clock(),
            refused=refused,
        )
        async with self._engine.begin() as connection:
            await connection.execute(record_sent(connection, sent))
        if refused is not None:
            return
        logger.info(
            "email sent",
            extra={"key": key, "message_id": sent.message_id, "correlation_id": correlation_id},
        )

    def compose(self, email: Email, *, key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = format_datetime(self._clock().astimezone(UTC))
        message["Message-ID"] = message_id(key, self._domain)
        # RFC 3834: sent by a program, so that vacation responders do not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(email.text)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html")
        return message


def _domain_of(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "orderdesk"


def _check_sender(mail_from: str) -> None:
    _, address = parseaddr(mail_from)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c in mail_from for c in "\r\n"):
        raise MailSettingsError(
            f"ORDERDESK_MAIL_FROM must be an address such as 'Shop <shop@example.com>', "
            f"not {mail_from!r}"
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def mailer_for(
    settings: Settings,
    engine: AsyncEngine,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Mailer:
    """The service's mailer, recording what it sent through `engine` (the read-model
    database's write engine); a bad ORDERDESK_SMTP_URL is a MailSettingsError here."""
    _check_sender(settings.mail_from)
    transport: Transport
    if settings.smtp_url is not None and settings.smtp_url.get_secret_value().strip():
        server = smtp_server(settings.smtp_url.get_secret_value())
        if (
            server.password is not None
            and server.starttls == "off"
            and not _is_loopback(server.host)
        ):
            logger.warning(
                "ORDERDESK_SMTP_URL sends its password unencrypted (starttls=off) to %s",
                server.host,
            )
        transport = SmtpTransport(server, timeout=settings.smtp_timeout)
    else:
        transport = OutboxTransport(Path(settings.outbox_dir), clock=clock)
    return KeyedMailer(transport, engine, mail_from=settings.mail_from, clock=clock)
