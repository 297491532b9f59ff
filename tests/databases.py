"""Databases for tests: a temporary SQLite file, or a fresh PostgreSQL schema when
ORDERDESK_TEST_POSTGRES_URL is set (dropped afterwards), so no run depends on another."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.settings import Settings
from tests.graphql_client import TEST_SECRET

POSTGRES_ENV = "ORDERDESK_TEST_POSTGRES_URL"
REDIS_ENV = "ORDERDESK_TEST_REDIS_URL"


def sqlite_settings(directory: Path, **overrides: Any) -> Settings:
    """The suite's settings on a SQLite file in `directory`: a short poll, the test secret,
    and whatever a test changes."""
    return Settings(
        **{
            "database_url": sqlite_url(directory),
            "poll_interval": 0.2,
            "jwt_secret": SecretStr(TEST_SECRET),
            # Emails land beside the database, never in the checkout; retries come fast.
            "outbox_dir": str(directory / "outbox"),
            "reaction_retry_delay": 0.05,
            **overrides,
        }
    )


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'orderdesk.db'}"


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (set by .ci/run)")
    return url


def redis_url() -> str:
    """The test Redis, or a skip that says which variable is missing."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV} (set by .ci/run)")
    return url


@asynccontextmanager
async def postgres_database_url() -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server; it is dropped afterwards."""
    base = make_url(postgres_base_url())
    name = f"orderdesk_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
