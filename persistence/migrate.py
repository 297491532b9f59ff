"""Brings the write and read databases to the newest schema with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
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


async def migrate(engine: AsyncEngine, target: Target) -> None:
    """Upgrade one database to head; a no-op when it is already there."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(target, connection), "head")

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
