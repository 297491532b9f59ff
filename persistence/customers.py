"""Where customers are kept on the write side."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from domain.customers import Customer
from domain.errors import FieldIssue, ValidationFailed
from persistence.database import violates_unique
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import customers


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...

    async def email_taken(self, email: str) -> bool: ...

    def add(self, customer: Customer) -> None: ...


def email_taken() -> ValidationFailed:
    return ValidationFailed([FieldIssue(("email",), "is already registered")])


_BY_ID = select(customers).where(customers.c.id == bindparam("id"))
_EMAIL = select(customers.c.id).where(customers.c.email == bindparam("email"))


class SqlCustomerRepository(SqlRepository[Customer]):
    table = customers
    updating = versioned_update(customers)

    async def get(self, customer_id: str) -> Customer | None:
        if customer_id in self._seen:
            return self._seen[customer_id]
        row = (await self._connection.execute(_BY_ID, {"id": customer_id})).one_or_none()
        if row is None:
            return None
        return self._track(Customer(row.id, name=row.name, email=row.email, version=row.version))

    async def email_taken(self, email: str) -> bool:
        return (await self._connection.execute(_EMAIL, {"email": email})).first() is not None

    async def save(self, aggregate: Customer) -> None:
        # Customers do not change after registering yet; a stored one is never saved again.
        try:
            await self._connection.execute(
                insert(customers),
                {
                    "id": aggregate.id,
                    "name": aggregate.name,
                    "email": aggregate.email,
                    "version": aggregate.version,
                },
            )
        except IntegrityError as error:
            # Two registrations of one email at once: the later insert loses here.
            if violates_unique(error, "customers", "email"):
                raise email_taken() from None
            raise
