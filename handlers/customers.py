"""Customers: registering, reading, and the customer summaries read model."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated

from pydantic import EmailStr, Field
from sqlalchemy import Row, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.customers import CUSTOMER_EVENTS, Customer, CustomerRegistered
from domain.orders import OrderCancelled, OrderPlaced
from handlers.access import Identity, Policy, anyone, identity_of
from handlers.transaction import unit_of_work
from handlers.written import Written
from mediator import Command, Context, Query, Registry
from persistence.customers import email_taken
from persistence.event_log import StoredEvent
from persistence.projector import Projection
from persistence.tables import customer_summaries

IdempotencyKey = Annotated[str | None, Field(min_length=1, max_length=200)]

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class RegisterCustomer(Command[Written]):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: EmailStr
    idempotency_key: IdempotencyKey = None


async def register_customer(
    command: RegisterCustomer, ctx: Context, *, new_id: Callable[[], str]
) -> Written:
    work = unit_of_work(ctx)
    customer = Customer.register(new_id(), name=command.name, email=command.email)
    if await work.customers.email_taken(customer.email):
        raise email_taken()
    work.customers.add(customer)
    return Written(customer.id, customer.version)


# ---------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: str
    name: str
    email: str
    order_count: int
    lifetime_value: Decimal
    currency: str
    registered_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class GetCustomers(Query[dict[str, CustomerView]]):
    """The customers with these ids that the caller may see (staff: all; a customer: itself)."""

    ids: tuple[str, ...]


def may_see_customer(caller: Identity | None, customer_id: str) -> bool:
    return caller is not None and (caller.is_staff or caller.customer_id == customer_id)


def customer_view(row: Row[tuple[object, ...]]) -> CustomerView:
    c = row._mapping
    return CustomerView(
        id=c["id"],
        name=c["name"],
        email=c["email"],
        order_count=c["order_count"],
        lifetime_value=c["lifetime_value"],
        currency=c["currency"],
        registered_at=c["registered_at"],
        version=c["version"],
    )


async def load_customer_views(
    connection: AsyncConnection, ids: Sequence[str]
) -> dict[str, CustomerView]:
    rows = await connection.execute(
        select(customer_summaries).where(customer_summaries.c.id.in_(ids))
    )
    return {row.id: customer_view(row) for row in rows}


async def get_customers(
    query: GetCustomers, ctx: Context, *, read_engine: AsyncEngine
) -> dict[str, CustomerView]:
    caller = identity_of(ctx)
    visible = [i for i in query.ids if may_see_customer(caller, i)]
    if not visible:
        return {}
    async with read_engine.connect() as connection:
        return await load_customer_views(connection, visible)


# ---------------------------------------------------------------- read model


async def project_customer_summaries(connection: AsyncConnection, stored: StoredEvent) -> None:
    event = stored.event
    c = customer_summaries.c
    if isinstance(event, CustomerRegistered):
        await connection.execute(
            insert(customer_summaries).values(
                id=event.customer_id,
                name=event.name,
                email=event.email,
                search_text=f"{event.name}\n{event.email}".lower(),
                order_count=0,
                lifetime_value=Decimal(0),
                currency="",
                registered_at=stored.occurred_at,
                registered_position=stored.position,
                version=stored.stream_version,
                last_position=stored.position,
            )
        )
    elif isinstance(event, OrderPlaced):
        await connection.execute(
            update(customer_summaries)
            .where(c.id == event.customer_id)
            .values(
                order_count=c.order_count + 1,
                lifetime_value=c.lifetime_value + event.total,
                # The first order fixes the currency lifetime value is counted in.
                currency=case((c.currency == "", event.currency), else_=c.currency),
                last_position=stored.position,
            )
        )
    elif isinstance(event, OrderCancelled):
        await connection.execute(
            update(customer_summaries)
            .where(c.id == event.customer_id)
            .values(lifetime_value=c.lifetime_value - event.total, last_position=stored.position)
        )


CUSTOMER_SUMMARIES = Projection("customer_summaries", project_customer_summaries)


# ---------------------------------------------------------------- wiring


def new_customer_id() -> str:
    return uuid.uuid4().hex


EVENT_TYPES = CUSTOMER_EVENTS
POLICIES: dict[type, Policy] = {RegisterCustomer: anyone, GetCustomers: anyone}
IDEMPOTENT: dict[type, str] = {RegisterCustomer: Customer.kind}


def register(
    registry: Registry, *, read_engine: AsyncEngine, new_id: Callable[[], str] = new_customer_id
) -> None:
    registry.handle(RegisterCustomer, partial(register_customer, new_id=new_id))
    registry.handle(GetCustomers, partial(get_customers, read_engine=read_engine))
