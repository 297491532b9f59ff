"""Reactions as an operator sees them, with `orderdesk serve` processes and a real SMTP server:
a server killed in the middle of sending an email loses none and repeats none once it is
started again, and two servers on one PostgreSQL database send each email once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import GraphQLClient
from tests.mail_server import MailServer, running_mail_server
from tests.served_processes import serve_process
from tests.ws_client import register

ME = "{ me { ... on Customer { email preferences { marketingOptIn language } } } }"
SETTLE = 1.0
"""Seconds to go on listening once everything expected has arrived, for a duplicate."""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def environment(mail: MailServer, tmp_path: Path) -> dict[str, str]:
    return {
        "ORDERDESK_SMTP_URL": mail.url,
        "ORDERDESK_POLL_INTERVAL": "0.2",
        "ORDERDESK_REACTION_RETRY_DELAY": "0.05",
        "ORDERDESK_OUTBOX_DIR": str(tmp_path / "outbox"),
    }


def addressed_to(address: str, message: EmailMessage) -> bool:
    return address in str(message["To"])


def welcomes(mail: MailServer, address: str) -> list[EmailMessage]:
    return [m for m in mail.to(address) if str(m["Subject"]).startswith("Welcome")]


async def preferences(client: GraphQLClient, token: str) -> object:
    me = (await client.as_customer(token).execute(ME))["me"]
    return me["preferences"]


async def until_profiles(client: GraphQLClient, tokens: list[str]) -> None:
    async with asyncio.timeout(30):
        for token in tokens:
            while await preferences(client, token) is None:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.1)


async def test_a_server_killed_mid_email_sends_it_once_after_restart(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    database = sqlite_url(tmp_path)
    names = ["Ada", "Grace", "Edsger"]
    addresses = [f"{name.lower()}@example.com" for name in names]
    with running_mail_server() as mail:
        env = environment(mail, tmp_path)
        mail.hold()  # every email waits for the server's answer to DATA
        async with serve_process(database, tmp_path / "first.log", env=env) as first:
            client = GraphQLClient(http, first.served)
            tokens = [(await register(client, name))[1] for name in names]
            await mail.wait_held(1)
            # Killed while the mail server has the first email's data and no answer yet.
            os.killpg(first.process.pid, signal.SIGKILL)
            await asyncio.to_thread(first.process.wait)
        # What was in flight was never accepted: the connection died before the answer.
        mail.release(accept=False)
        assert mail.messages() == []

        async with serve_process(database, tmp_path / "second.log", env=env) as second:
            client = GraphQLClient(http, second.served)
            for address in addresses:
                await mail.wait_for(partial(addressed_to, address), timeout=30)
            await until_profiles(client, tokens)
            await asyncio.sleep(SETTLE)
            for address in addresses:
                assert len(welcomes(mail, address)) == 1, mail.describe()
            ids = [m["Message-ID"] for m in mail.messages()]
            assert len(ids) == len(set(ids)), "an email was sent twice"
            for token in tokens:
                assert await preferences(client, token) == {
                    "marketingOptIn": False,
                    "language": "en",
                }


@pytest.mark.postgres
async def test_two_servers_on_one_database_send_each_email_once(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    customers = 12
    async with postgres_database_url() as database:
        with running_mail_server() as mail:
            env = environment(mail, tmp_path)
            async with (
                serve_process(database, tmp_path / "first.log", env=env) as first,
                serve_process(database, tmp_path / "second.log", env=env) as second,
            ):
                clients = [GraphQLClient(http, first.served), GraphQLClient(http, second.served)]
                names = [f"Customer{n}" for n in range(customers)]
                await asyncio.gather(
                    *(register(clients[n % 2], name) for n, name in enumerate(names))
                )
                await mail.wait_for(
                    lambda m: str(m["Subject"]).startswith("Welcome"), count=customers, timeout=30
                )
                await asyncio.sleep(SETTLE)
                for name in names:
                    assert len(welcomes(mail, f"{name.lower()}@example.com")) == 1, mail.describe()
                ids = [m["Message-ID"] for m in mail.messages()]
                assert len(ids) == len(set(ids)), "an email was sent twice"
