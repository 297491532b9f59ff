"""Where customers' sign-in codes are kept on the write side: each code's id and what became
of it, never the code."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from domain.errors import VersionConflict
from domain.sign_in import CodeState, IssuedCode, SignInCodes
from persistence.database import violates_unique
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import customers, sign_in_codes


class SignInCodeRepository(Protocol):
    async def customer_for(self, email: str) -> str | None:
        """The id of the customer registered with this (normalized) address, if one is (on
        PostgreSQL, its row locked until the transaction ends)."""
        ...

    async def of_customer(self, customer_id: str) -> SignInCodes | None:
        """The customer's codes, if it ever asked for one (on PostgreSQL, locked until the
        transaction ends, so that two attempts at once are taken one after the other)."""
        ...

    def add(self, codes: SignInCodes) -> None: ...


_CUSTOMER = select(customers.c.id).where(customers.c.email == bindparam("email"))
_OF_CUSTOMER = select(sign_in_codes).where(sign_in_codes.c.customer_id == bindparam("customer_id"))


class SqlSignInCodeRepository(SqlRepository[SignInCodes]):
    table = sign_in_codes
    updating = versioned_update(sign_in_codes)

    async def customer_for(self, email: str) -> str | None:
        # Locked on PostgreSQL: a customer's first two requests at once would each find no
        # codes and insert some; so they queue here, and the second finds the first's.
        query = _CUSTOMER.with_for_update() if self._locks_rows else _CUSTOMER
        found: str | None = await self._connection.scalar(query, {"email": email})
        return found

    async def of_customer(self, customer_id: str) -> SignInCodes | None:
        for seen in self._seen.values():
            if seen.customer_id == customer_id:
                return seen
        query = _OF_CUSTOMER.with_for_update() if self._locks_rows else _OF_CUSTOMER
        row = (await self._connection.execute(query, {"customer_id": customer_id})).one_or_none()
        if row is None:
            return None
        code = IssuedCode(row.code_id, row.expires_at, row.attempts, CodeState(row.state))
        return self._track(
            SignInCodes(row.id, customer_id=row.customer_id, code=code, version=row.version)
        )

    async def save(self, aggregate: SignInCodes) -> None:
        code = aggregate.code
        if code is None:
            raise RuntimeError("a customer's sign-in codes are stored once one is issued")
        values = {
            "code_id": code.code_id,
            "expires_at": code.expires_at,
            "attempts": code.attempts,
            "state": code.state.value,
        }
        if aggregate.stored_version:
            await self._update(aggregate, values)
            return
        try:
            await self._connection.execute(
                insert(sign_in_codes),
                {
                    "id": aggregate.id,
                    "customer_id": aggregate.customer_id,
                    "version": aggregate.version,
                    **values,
                },
            )
        except IntegrityError as error:
            # A customer's first codes stored twice at once (customer_for locks against it):
            # the later insert loses, as a stale update does.
            if violates_unique(error, "sign_in_codes", "customer_id"):
                raise VersionConflict(aggregate.kind, aggregate.id, 0, 1) from None
            raise
