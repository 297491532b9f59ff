"""Where customers are kept on the write side."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from domain.customers import Customer
from domain.errors import FieldIssue, ValidationFailed
from persistence.repository import SqlRepository
from persistence.tables import customers


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...

    async def email_taken(self, email: str) -> bool: ...

    def add(self, customer: Customer) -> None: ...


def email_taken() -> ValidationFailed:
    return ValidationFailed([FieldIssue(("email",), "is already registered")])


class SqlCustomerRepository(SqlRepository[Customer]):
    table = customers

    async def get(self, customer_id: str) -> Customer | None:
        if customer_id in self._seen:
            return self._seen[customer_id]
        row = (
            await self._connection.execute(select(customers).where(customers.c.id == customer_id))
        ).one_or_none()
        if row is None:
            return None
        return self._track(Customer(row.id, name=row.name, email=row.email, version=row.version))

    async def email_taken(self, email: str) -> bool:
        query = select(customers.c.id).where(customers.c.email == email)
        return (await self._connection.execute(query)).first() is not None

    async def save(self, aggregate: Customer) -> None:
        # Customers do not change after registering yet; a stored one is never saved again.
        try:
            await self._connection.execute(
                insert(customers).values(
                    id=aggregate.id,
                    name=aggregate.name,
                    email=aggregate.email,
                    version=aggregate.version,
                )
            )
        except IntegrityError as error:
            # Two registrations of one email at once: the later insert loses here.
            if "email" in str(error.orig):
                raise email_taken() from None
            raise
