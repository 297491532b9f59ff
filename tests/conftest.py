from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.mail_server import MailServer, running_mail_server
from tests.served import Served, serve


@pytest.fixture(autouse=True)
def no_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite sends far more from 127.0.0.1 than any shop's budget allows; rate limits are
    on by default in the product, and off here unless a test passes `rate_limits=True`.
    Through the environment, so that servers the tests start in processes of their own
    inherit it."""
    monkeypatch.setenv("ORDERDESK_RATE_LIMITS", "false")


@pytest.fixture(autouse=True)
def outbox_of_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Emails of any test that leaves the outbox at its default (servers in processes of
    their own, settings made from the environment) land beside the test, never in the
    working directory."""
    monkeypatch.setenv("ORDERDESK_OUTBOX_DIR", str(tmp_path / "outbox"))


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server on a free loopback port; pass `smtp_url=SecretStr(mail_server.url)`."""
    with running_mail_server() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path)


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve(settings) as running:
        yield running


@pytest.fixture
async def client(served: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, served)


@pytest.fixture
async def postgres_client() -> AsyncIterator[GraphQLClient]:
    """The app served on a new PostgreSQL database (skips without ORDERDESK_TEST_POSTGRES_URL)."""
    async with postgres_database_url() as url:
        settings = Settings(database_url=url, poll_interval=0.2, jwt_secret=SecretStr(TEST_SECRET))
        with serve(settings) as served:
            async with httpx.AsyncClient(timeout=60) as http:
                yield GraphQLClient(http, served)
