"""A real SMTP server in the test process (aiosmtpd, in a thread of its own), which the
served app's reactions send to, and which tests ask what arrived.

    with running_mail_server() as mail_server:
        settings = sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url))
        ...
        [confirmation] = await mail_server.wait_for(lambda m: m["To"] == "ada@example.com")

It can also misbehave on purpose: `refuse_next(n)` answers the next n messages' DATA with a
temporary failure (451), and `hold()` keeps every DATA waiting for an answer until
`release()`, so that a test can kill a sender in the middle of a delivery.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

_POLL = 0.02


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted, with its envelope."""

    message: EmailMessage
    mail_from: str
    recipients: tuple[str, ...]
    """The envelope's RCPT TO addresses (Bcc included), as the sender gave them."""
    login: str | None
    """Who signed in (SMTP AUTH) to send it; None without authentication."""
    tls: bool
    """Whether the message came over an encrypted connection (STARTTLS or TLS)."""


class _LoopbackController(Controller):
    """aiosmtpd's threaded controller on a port the system picks, so that parallel tests
    never fight over one."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class MailServer:
    """What the test's SMTP server received, and knobs to make it refuse or stall.

    Its handler runs on the server's own thread; everything here is safe to call from the
    test's event loop (the state is behind a lock).
    """

    def __init__(
        self,
        *,
        login: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`login` (user, password) makes authentication required; `starttls` (a server
        context with its certificate) offers STARTTLS, and `require_starttls` refuses mail
        before it; `tls` speaks TLS from the first byte instead (smtps://)."""
        self._implicit_tls = tls is not None
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._refuse: list[tuple[str, Callable[[EmailMessage], bool]]] = []
        self._holding = False
        self._held = 0
        self._release_accepts = True
        self._attempts = 0
        self._login = login
        self.refusals = 0
        """How many messages' DATA it answered with a refusal."""
        kwargs: dict[str, Any] = {
            "server_hostname": "mail.test",  # spares a reverse lookup of the host's name
            "tls_context": starttls,
            "require_starttls": require_starttls,
            "enable_SMTPUTF8": True,
        }
        if login is not None:
            # Required by handle_MAIL rather than aiosmtpd's auth_required, which warns
            # (on every connection) when AUTH is allowed without TLS: on 127.0.0.1 in a test
            # that is what lets plain smtp://user:pass@ URLs be tried.
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _LoopbackController(
            self, hostname="127.0.0.1", ssl_context=tls, **kwargs
        )

    # ---- lifecycle

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        with self._lock:
            self._holding = False
        self._controller.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        port: int = self._controller.port
        return port

    @property
    def url(self) -> str:
        """The server as ORDERDESK_SMTP_URL names it (no credentials: add them for a server
        that requires them, e.g. `smtp://user:pass@127.0.0.1:PORT`)."""
        scheme = "smtps" if self._implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    # ---- what arrived

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def messages(self) -> list[EmailMessage]:
        """Every message accepted so far, in the order they arrived."""
        return [each.message for each in self.received()]

    def to(self, address: str) -> list[EmailMessage]:
        """The messages one address received (by the envelope, so Bcc counts)."""
        wanted = address.lower()
        return [
            each.message
            for each in self.received()
            if wanted in (recipient.lower() for recipient in each.recipients)
        ]

    @property
    def attempts(self) -> int:
        """How many times a sender got as far as DATA, refused or not."""
        with self._lock:
            return self._attempts

    async def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool] = lambda message: True,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[EmailMessage]:
        """The first `count` messages matching `predicate`, once that many have arrived;
        an AssertionError saying what did arrive if they have not within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [message for message in self.messages() if predicate(message)]
            if len(matching) >= count:
                return matching[:count]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} matching email(s) within {timeout}s, "
                    f"{len(matching)} matched; arrived: {self.describe()}"
                )
            await asyncio.sleep(_POLL)

    def describe(self) -> str:
        """Each message received, by subject and recipients (for failure messages)."""
        arrived = [
            f"{each.message['Subject']!r} to {', '.join(each.recipients)}"
            for each in self.received()
        ]
        return "; ".join(arrived) or "nothing"

    # ---- misbehaving on purpose

    def refuse_next(
        self,
        count: int = 1,
        reply: str = "451 4.3.0 Try again later",
        *,
        when: Callable[[EmailMessage], bool] = lambda message: True,
    ) -> None:
        """Answer the next `count` messages' DATA with `reply` (a temporary failure by
        default) instead of accepting them; with `when`, only messages it is true of (the
        others, such as another reaction's email, go through)."""
        with self._lock:
            self._refuse.extend([(reply, when)] * count)

    def hold(self) -> None:
        """From now on, keep each message's DATA waiting for an answer until `release`."""
        with self._lock:
            self._holding = True

    def release(self, *, accept: bool = True) -> None:
        """Answer the held messages: accept them (they are received), or refuse them with a
        temporary failure (they are not), and stop holding new ones."""
        with self._lock:
            self._release_accepts = accept
            self._holding = False

    @property
    def held(self) -> int:
        """How many messages are waiting for an answer now."""
        with self._lock:
            return self._held

    async def wait_held(self, count: int = 1, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Return once `count` messages are being held (a delivery is under way)."""
        deadline = time.monotonic() + timeout
        while self.held < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} held email(s) within {timeout}s, {self.held} held; "
                    f"arrived: {self.describe()}"
                )
            await asyncio.sleep(_POLL)

    # ---- aiosmtpd's hooks (on the server's thread)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            self._login is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self._login
        ):
            return AuthResult(success=True, auth_data=data.login.decode())
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self._login is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        content = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(content)
        with self._lock:
            self._attempts += 1
            for n, (reply, when) in enumerate(self._refuse):
                if when(message):
                    del self._refuse[n]
                    self.refusals += 1
                    return reply
            holding = self._holding
            if holding:
                self._held += 1
        if holding:
            while True:
                with self._lock:
                    if not self._holding:
                        self._held -= 1
                        accept = self._release_accepts
                        break
                await asyncio.sleep(_POLL)
            if not accept:
                with self._lock:
                    self.refusals += 1
                return "451 4.3.0 Try again later"
        received = Received(
            message=message,
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            # session.ssl is set by STARTTLS only; smtps:// is TLS on the transport itself.
            tls=session.ssl is not None
            or (
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None
            ),
        )
        with self._lock:
            self._received.append(received)
        return "250 2.0.0 OK"


@contextmanager
def running_mail_server(
    *,
    login: tuple[str, str] | None = None,
    starttls: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    tls: ssl.SSLContext | None = None,
) -> Iterator[MailServer]:
    """A started MailServer on a free loopback port, stopped afterwards."""
    server = MailServer(login=login, starttls=starttls, require_starttls=require_starttls, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
