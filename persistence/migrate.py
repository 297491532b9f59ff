"""Brings the write and read databases to the newest schema with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"

Target = Literal["write", "read"]


def alembic_config(target: Target, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS / target))
    config.attributes["target"] = target
    config.attributes["connection"] = connection
    return config


# Any constant shared by all processes; it names the lock that serializes migrations.
_MIGRATION_LOCK_KEY = 0x0DE5_0001


async def migrate(engine: AsyncEngine, target: Target) -> None:
    """Upgrade one database to head; a no-op when it is already there.

    Every worker of `orderdesk serve --workers N` migrates on start. On PostgreSQL they
    take turns under a transaction-scoped advisory lock, so the later ones find the schema
    at head instead of racing to create it; on SQLite the write engine's BEGIN IMMEDIATE
    serializes them already.
    """

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(target, connection), "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(upgrade)
