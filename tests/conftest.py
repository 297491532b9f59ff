from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import sqlite_url
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import Served, serve


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=sqlite_url(tmp_path),
        poll_interval=0.2,
        jwt_secret=SecretStr(TEST_SECRET),
    )


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve(settings) as running:
        yield running


@pytest.fixture
async def client(served: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, served)
