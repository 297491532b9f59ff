"""Customers in GraphQL: the type, `me`, `customer`, and registerCustomer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry import relay

from domain.customers import Customer as CustomerAggregate
from handlers.access import Identity, Role, identity_of
from handlers.customers import CustomerView, RegisterCustomer
from handlers.written import Written
from mediator import Context
from schema.context import Info, Loaders
from schema.errors import CommandError, run_command
from schema.money import Money

CUSTOMER = CustomerAggregate.kind


@strawberry.type
class Customer(relay.Node):
    id: relay.NodeID[str]
    name: str
    email: str
    registered_at: datetime
    order_count: int
    lifetime_value: Money = strawberry.field(
        description="What the customer's orders that were not cancelled add up to."
    )
    version: int

    @classmethod
    def from_view(cls, view: CustomerView) -> Self:
        return cls(
            id=view.id,
            name=view.name,
            email=view.email,
            registered_at=view.registered_at,
            order_count=view.order_count,
            lifetime_value=Money(amount=view.lifetime_value, currency=view.currency or "USD"),
            version=view.version,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        views = await info.context.loaders.customers.load_many(list(node_ids))
        return [cls.from_view(v) if v is not None else None for v in views]


async def load_customer(loaders: Loaders, customer_id: str) -> Customer | None:
    view = await loaders.customers.load(customer_id)
    return Customer.from_view(view) if view is not None else None


@strawberry.type
class CustomerQueries:
    @strawberry.field(description="The signed-in customer; null for staff and anonymous callers.")
    async def me(self, info: Info) -> Customer | None:
        caller = identity_of(info.context.ctx)
        if caller is None or caller.customer_id is None:
            return None
        return await load_customer(info.context.loaders, caller.customer_id)

    @strawberry.field(description="A customer by id: staff see all, a customer only itself.")
    async def customer(self, info: Info, id: relay.GlobalID) -> Customer | None:
        if id.type_name != CUSTOMER:
            return None
        return await load_customer(info.context.loaders, id.node_id)


@strawberry.input
class RegisterCustomerInput:
    name: str
    email: str
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key and input returns the first result."
    )


@strawberry.type
class RegisterCustomerSuccess:
    customer: Customer
    access_token: str = strawberry.field(
        description="A bearer token for the new customer (Authorization: Bearer …)."
    )


RegisterCustomerResult = Annotated[
    RegisterCustomerSuccess | CommandError, strawberry.union("RegisterCustomerResult")
]


@strawberry.type
class CustomerMutations:
    @strawberry.mutation
    async def register_customer(
        self, info: Info, input: RegisterCustomerInput
    ) -> RegisterCustomerResult:
        command = RegisterCustomer(
            name=input.name, email=input.email, idempotency_key=input.idempotency_key
        )

        async def success(written: Written) -> RegisterCustomerSuccess:
            # The caller may be anonymous; the new customer is read as itself.
            as_customer = Context(
                correlation_id=info.context.ctx.correlation_id,
                identity=Identity(written.entity_id, Role.CUSTOMER),
            )
            loaders = Loaders(info.context.mediator, as_customer)
            customer = await load_customer(loaders, written.entity_id)
            if customer is None:  # pragma: no cover - the pipeline waited for the read model
                raise RuntimeError(f"customer {written.entity_id} is missing from the read model")
            return RegisterCustomerSuccess(
                customer=customer,
                access_token=info.context.issue_customer_token(written.entity_id),
            )

        return await run_command(info, command, success)
