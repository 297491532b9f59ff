"""The statements on `projection_checkpoints`: one row per projection with its position,
its parked error, its rebuild count and its lease (leader and beat).

The projector decides when; this module says how, in one place, each write naming the
row's expected state where another process may have changed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Insert, Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import insert_or_nothing
from persistence.tables import projection_checkpoints

ADVANCE = (
    update(projection_checkpoints)
    .where(
        projection_checkpoints.c.name == bindparam("b_name"),
        projection_checkpoints.c.position == bindparam("b_from"),
        projection_checkpoints.c.leader == bindparam("b_leader"),
    )
    # Each batch applied is a beat of the lease (persistence/projection_leases.py).
    .values(beat=projection_checkpoints.c.beat + 1)
)
"""Move a checkpoint from `b_from` to `position`, for its leader only (compare and set)."""

LOCK = (
    select(projection_checkpoints.c.position, projection_checkpoints.c.leader)
    .where(projection_checkpoints.c.name == bindparam("b_name"))
    .with_for_update()
)
"""The row lock a batch takes before any read-model row (PostgreSQL)."""


async def checkpoint_rows(
    connection: AsyncConnection, name: str | None = None
) -> dict[str, Row[Any]]:
    statement = select(projection_checkpoints)
    if name is not None:
        statement = statement.where(projection_checkpoints.c.name == name)
    return {row.name: row for row in await connection.execute(statement)}


async def ensure_checkpoint_rows(
    connection: AsyncConnection, names: Iterable[str], *, at: int = 0
) -> dict[str, Row[Any]]:
    """Every checkpoint row, those of `names` that were missing inserted at `at` first."""
    rows = await checkpoint_rows(connection)
    missing = set(names) - set(rows)
    if missing:
        # Every worker of a fresh database gets here at once: the rows one inserts
        # are the others' to skip, and what counts is what is stored afterwards.
        for name in sorted(missing):
            await connection.execute(new_checkpoint(connection, name, position=at))
        rows = await checkpoint_rows(connection)
    return rows


def new_checkpoint(
    connection: AsyncConnection,
    name: str,
    *,
    position: int = 0,
    rebuilds: int = 0,
    leader: str | None = None,
) -> Insert:
    """A checkpoint row at `position` that another process may have inserted first: then
    nothing."""
    values = {"name": name, "position": position, "rebuilds": rebuilds, "leader": leader}
    return insert_or_nothing(connection.dialect.name, projection_checkpoints, values)


async def reset_for_rebuild(connection: AsyncConnection, name: str, *, leader: str) -> None:
    """Back to 0, not parked, its lease taken by `leader`, a rebuild counted."""
    reset = await connection.execute(
        update(projection_checkpoints)
        .where(projection_checkpoints.c.name == name)
        .values(
            position=0,
            parked_error=None,
            rebuilds=projection_checkpoints.c.rebuilds + 1,
            leader=leader,
            beat=projection_checkpoints.c.beat + 1,
        )
    )
    if reset.rowcount != 1:
        await connection.execute(new_checkpoint(connection, name, rebuilds=1, leader=leader))


async def count_rebuilt(connection: AsyncConnection, names: Iterable[str]) -> None:
    await connection.execute(
        update(projection_checkpoints)
        .where(projection_checkpoints.c.name.in_(list(names)))
        .values(rebuilds=projection_checkpoints.c.rebuilds + 1)
    )


async def mark_parked(
    connection: AsyncConnection, name: str, reason: str, *, at: int, leader: str
) -> None:
    """Parked with `reason`, unless the row has moved from `at` or from `leader` since (a
    rebuild took it over): then it is not this process's to park."""
    await connection.execute(
        update(projection_checkpoints)
        .where(
            projection_checkpoints.c.name == name,
            projection_checkpoints.c.position == at,
            projection_checkpoints.c.leader == leader,
        )
        .values(parked_error=reason)
    )


async def clear_parked(connection: AsyncConnection, names: Iterable[str]) -> list[str]:
    """Clear the parked errors of `names`; returns those that were parked."""
    parked = list(
        await connection.scalars(
            select(projection_checkpoints.c.name).where(
                projection_checkpoints.c.name.in_(list(names)),
                projection_checkpoints.c.parked_error.is_not(None),
            )
        )
    )
    await connection.execute(
        update(projection_checkpoints)
        .where(projection_checkpoints.c.name.in_(parked))
        .values(parked_error=None)
    )
    return sorted(parked)
