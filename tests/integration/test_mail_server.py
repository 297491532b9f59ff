"""The test SMTP server that reaction tests rely on: it receives, refuses and holds as told."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.mail_server import MailServer, running_mail_server


def _message(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "orderdesk@example.com"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("hello")
    return message


async def _send(
    server: MailServer,
    message: EmailMessage,
    username: str | None = None,
    password: str | None = None,
) -> None:
    await aiosmtplib.send(
        message,
        hostname=server.host,
        port=server.port,
        start_tls=False,
        timeout=5,
        username=username,
        password=password,
    )


async def test_it_receives_and_waits_for_messages(mail_server: MailServer) -> None:
    await _send(mail_server, _message("ada@example.com", "one"))
    await _send(mail_server, _message("bob@example.com", "two"))

    [message] = await mail_server.wait_for(lambda m: m["Subject"] == "two")

    assert message["To"] == "bob@example.com"
    assert [m["Subject"] for m in mail_server.to("ADA@example.com")] == ["one"]
    assert len(mail_server.messages()) == 2


async def test_waiting_for_what_never_comes_says_what_did(mail_server: MailServer) -> None:
    await _send(mail_server, _message("ada@example.com", "welcome"))

    with pytest.raises(AssertionError, match=r"'welcome' to ada@example.com"):
        await mail_server.wait_for(lambda m: m["Subject"] == "nope", timeout=0.1)


async def test_it_refuses_the_next_messages_when_told(mail_server: MailServer) -> None:
    mail_server.refuse_next(1)

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(mail_server, _message("ada@example.com", "first"))
    await _send(mail_server, _message("ada@example.com", "second"))

    assert refused.value.code == 451
    assert [m["Subject"] for m in mail_server.messages()] == ["second"]
    assert (mail_server.refusals, mail_server.attempts) == (1, 2)


async def test_held_messages_wait_for_release(mail_server: MailServer) -> None:
    mail_server.hold()
    sending = asyncio.create_task(_send(mail_server, _message("ada@example.com", "held")))
    await mail_server.wait_held()
    assert mail_server.messages() == []

    mail_server.release()
    await sending

    assert [m["Subject"] for m in mail_server.messages()] == ["held"]


async def test_held_messages_can_be_refused_on_release(mail_server: MailServer) -> None:
    mail_server.hold()
    sending = asyncio.create_task(_send(mail_server, _message("ada@example.com", "held")))
    await mail_server.wait_held()

    mail_server.release(accept=False)

    with pytest.raises(aiosmtplib.SMTPDataError):
        await sending
    assert mail_server.messages() == []


async def test_it_requires_the_login_it_was_given() -> None:
    with running_mail_server(login=("shop", "s3cret")) as server:
        with pytest.raises(aiosmtplib.SMTPException):
            await _send(server, _message("ada@example.com", "anonymous"))
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await _send(server, _message("ada@example.com", "wrong"), username="shop", password="x")
        await _send(
            server, _message("ada@example.com", "signed"), username="shop", password="s3cret"
        )

        assert [(r.message["Subject"], r.login) for r in server.received()] == [("signed", "shop")]


async def test_it_refuses_only_the_messages_it_is_told_to(mail_server: MailServer) -> None:
    mail_server.refuse_next(1, when=lambda m: m["Subject"] == "refused")

    await _send(mail_server, _message("ada@example.com", "accepted"))
    with pytest.raises(aiosmtplib.SMTPDataError):
        await _send(mail_server, _message("ada@example.com", "refused"))
    await _send(mail_server, _message("ada@example.com", "refused"))

    assert [m["Subject"] for m in mail_server.messages()] == ["accepted", "refused"]
