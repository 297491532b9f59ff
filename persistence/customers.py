"""Where customers are kept on the write side."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.customers import Customer, Preferences
from domain.errors import FieldIssue, ValidationFailed
from persistence.database import violates_unique
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import customers


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...

    async def get_to_change(self, customer_id: str) -> Customer | None:
        """The customer, for a command that changes it: on PostgreSQL its row stays locked
        until the unit of work ends, so two changes of one customer (a customer's own and a
        reaction's) wait for each other instead of one failing on the version."""
        ...

    async def email_taken(self, email: str) -> bool: ...

    def add(self, customer: Customer) -> None: ...


def email_taken() -> ValidationFailed:
    return ValidationFailed([FieldIssue(("email",), "is already registered")])


_BY_ID = select(customers).where(customers.c.id == bindparam("id"))
# FOR NO KEY UPDATE: what the UPDATE would take anyway; orders placed meanwhile (whose
# foreign key takes a KEY SHARE lock on the customer) are not held up by it.
_TO_CHANGE = _BY_ID.with_for_update(key_share=True)
_EMAIL = select(customers.c.id).where(customers.c.email == bindparam("email"))


def _customer(row: Row[Any]) -> Customer:
    preferences = (
        None
        if row.marketing_opt_in is None
        else Preferences(marketing_opt_in=row.marketing_opt_in, language=row.language)
    )
    return Customer(
        row.id, name=row.name, email=row.email, preferences=preferences, version=row.version
    )


def _preference_values(customer: Customer) -> dict[str, Any]:
    preferences = customer.preferences
    if preferences is None:
        return {"marketing_opt_in": None, "language": None}
    return {"marketing_opt_in": preferences.marketing_opt_in, "language": preferences.language}


class SqlCustomerRepository(SqlRepository[Customer]):
    table = customers
    updating = versioned_update(customers)

    async def get(self, customer_id: str) -> Customer | None:
        return await self._load(customer_id, locked=False)

    async def get_to_change(self, customer_id: str) -> Customer | None:
        return await self._load(customer_id, locked=self._locks_rows)

    async def _load(self, customer_id: str, *, locked: bool) -> Customer | None:
        if customer_id in self._seen:
            return self._seen[customer_id]
        query = _TO_CHANGE if locked else _BY_ID
        row = (await self._connection.execute(query, {"id": customer_id})).one_or_none()
        if row is None:
            return None
        return self._track(_customer(row))

    async def email_taken(self, email: str) -> bool:
        return (await self._connection.execute(_EMAIL, {"email": email})).first() is not None

    async def save(self, aggregate: Customer) -> None:
        # Name and email are fixed at registration; only the profile changes afterwards.
        values = _preference_values(aggregate)
        if aggregate.stored_version == 0:
            try:
                await self._connection.execute(
                    insert(customers),
                    {
                        "id": aggregate.id,
                        "name": aggregate.name,
                        "email": aggregate.email,
                        "version": aggregate.version,
                    }
                    | values,
                )
            except IntegrityError as error:
                # Two registrations of one email at once: the later insert loses here.
                if violates_unique(error, "customers", "email"):
                    raise email_taken() from None
                raise
            return
        await self._update(aggregate, values)


async def committed_customer(engine: AsyncEngine, customer_id: str) -> Customer | None:
    """The customer as last committed, read outside any unit of work: what a reaction that
    only looks (whom to write about) reads, without taking the writer's lock."""
    async with engine.connect() as connection:
        row = (await connection.execute(_BY_ID, {"id": customer_id})).one_or_none()
    return None if row is None else _customer(row)
