"""Idempotency keys, stored in the transaction of the write they belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A command's key, what it was asked (fingerprint), and the kind of entity it writes."""

    scope: str
    key: str
    fingerprint: str
    kind: str


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    fingerprint: str
    entity_id: str
    version: int
    position: int


class KeyAlreadyUsed(Exception):
    """Another transaction stored this key first; read its outcome instead."""


_FIND = select(idempotency_keys).where(
    idempotency_keys.c.scope == bindparam("scope"), idempotency_keys.c.key == bindparam("key")
)


async def find_outcome(connection: AsyncConnection, scope: str, key: str) -> StoredOutcome | None:
    row = (await connection.execute(_FIND, {"scope": scope, "key": key})).one_or_none()
    if row is None:
        return None
    return StoredOutcome(row.fingerprint, row.entity_id, row.version, row.position)


async def store_outcome(
    connection: AsyncConnection,
    claim: IdempotencyClaim,
    *,
    entity_id: str,
    version: int,
    position: int,
    now: datetime,
) -> None:
    try:
        async with connection.begin_nested():
            await connection.execute(
                insert(idempotency_keys),
                {
                    "scope": claim.scope,
                    "key": claim.key,
                    "fingerprint": claim.fingerprint,
                    "entity_id": entity_id,
                    "version": version,
                    "position": position,
                    "created_at": now,
                },
            )
    except IntegrityError:
        raise KeyAlreadyUsed(claim.key) from None
