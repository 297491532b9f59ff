"""The mailer over real SMTP to the test's server: signing in with the URL's credentials,
STARTTLS when offered or insisted on, TLS from the start, and what a refusal leaves."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.mail import Email
from orderdesk.mail_transport import KeyedMailer, SmtpTransport, mailer_for, smtp_server
from orderdesk.settings import Settings
from persistence.database import create_engine
from persistence.migrate import migrate
from persistence.sent_emails import emails_for, record_sent
from persistence.tables import read_metadata
from tests.databases import postgres_database_url
from tests.mail_server import MailServer, running_mail_server

EMAIL = Email("ada@example.com", "We have your order", "Plain words\n", "<p>Rich words</p>\n")
KEY = "orders.confirmation_email:e1"


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1, and contexts for each side to use it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("making a test certificate needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return Certificate(server=server, client=ssl.create_default_context(cafile=str(cert)))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}", for_writes=True)
    async with engine.begin() as connection:
        await connection.run_sync(read_metadata.create_all)
    yield engine
    await engine.dispose()


def mailer(url: str, engine: AsyncEngine, tls_context: ssl.SSLContext | None = None) -> KeyedMailer:
    transport = SmtpTransport(smtp_server(url), timeout=5, tls_context=tls_context)
    return KeyedMailer(transport, engine, mail_from="Shop <shop@example.com>")


def with_login(server: MailServer, login: str, query: str = "") -> str:
    return server.url.replace("://", f"://{login}@") + query


async def test_the_mailer_signs_in_with_the_urls_credentials(engine: AsyncEngine) -> None:
    with running_mail_server(login=("shop", "s3 cret")) as server:
        url = with_login(server, "shop:s3%20cret")
        settings = Settings(
            database_url="sqlite://", smtp_url=SecretStr(url), mail_from="shop@example.com"
        )

        await mailer_for(settings, engine).send(EMAIL, key=KEY, correlation_id="request-1")

        [received] = server.received()
        assert received.login == "shop"
        assert received.recipients == ("ada@example.com",)
        assert received.mail_from == "shop@example.com"


async def test_a_wrong_password_sends_nothing_and_records_nothing(engine: AsyncEngine) -> None:
    with running_mail_server(login=("shop", "s3cret")) as server:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await mailer(with_login(server, "shop:wrong"), engine).send(
                EMAIL, key=KEY, correlation_id="request-1"
            )

        assert server.messages() == []
        async with engine.connect() as connection:
            assert await emails_for(connection, "request-1") == []


async def test_starttls_is_used_when_the_server_offers_it(
    engine: AsyncEngine, certificate: Certificate
) -> None:
    with running_mail_server(login=("shop", "s3cret"), starttls=certificate.server) as server:
        await mailer(with_login(server, "shop:s3cret"), engine, certificate.client).send(
            EMAIL, key=KEY, correlation_id="request-1"
        )

        [received] = server.received()
        assert (received.tls, received.login) == (True, "shop")


async def test_starttls_off_stays_in_plain_text(
    engine: AsyncEngine, certificate: Certificate
) -> None:
    with running_mail_server(starttls=certificate.server) as server:
        await mailer(server.url + "?starttls=off", engine, certificate.client).send(
            EMAIL, key=KEY, correlation_id="request-1"
        )

        [received] = server.received()
        assert received.tls is False


async def test_starttls_required_of_a_server_without_it_sends_nothing(
    engine: AsyncEngine,
) -> None:
    with running_mail_server() as server:
        with pytest.raises(aiosmtplib.SMTPException):
            await mailer(server.url + "?starttls=require", engine).send(
                EMAIL, key=KEY, correlation_id="request-1"
            )

        assert server.messages() == []


async def test_smtps_is_tls_from_the_start(engine: AsyncEngine, certificate: Certificate) -> None:
    with running_mail_server(tls=certificate.server) as server:
        assert server.url.startswith("smtps://")

        await mailer(server.url, engine, certificate.client).send(
            EMAIL, key=KEY, correlation_id="request-1"
        )

        [received] = server.received()
        assert received.tls is True


async def test_a_server_certificate_nobody_vouches_for_is_refused(
    engine: AsyncEngine, certificate: Certificate
) -> None:
    with running_mail_server(starttls=certificate.server) as server:
        # The system's trust store, which has never heard of the test's certificate.
        with pytest.raises(ssl.SSLCertVerificationError):
            await mailer(server.url + "?starttls=require", engine).send(
                EMAIL, key=KEY, correlation_id="request-1"
            )

        assert server.messages() == []


@pytest.mark.postgres
async def test_each_key_is_sent_once_on_postgresql(mail_server: MailServer) -> None:
    async with postgres_database_url() as url:
        engine = create_engine(url, for_writes=True)
        try:
            await migrate(engine, "read")
            sender = mailer(mail_server.url, engine)
            await sender.send(EMAIL, key=KEY, correlation_id="request-1")
            await sender.send(EMAIL, key=KEY, correlation_id="request-1")
            async with engine.begin() as connection:
                # A second process that sent the same key concurrently records it again.
                [sent] = await emails_for(connection, "request-1")
                await connection.execute(record_sent(connection, sent))
                assert await emails_for(connection, "request-1") == [sent]
        finally:
            await engine.dispose()

    assert len(mail_server.messages()) == 1
