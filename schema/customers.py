"""Customers in GraphQL: `me`, `customer` and `customers`, registerCustomer and
updatePreferences. The customer type is in schema/nodes.py, its preferences' in
schema/preferences.py."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated

import strawberry

from domain.customers import DEFAULT_LANGUAGE, MAX_EMAIL, MAX_NAME
from domain.money import canonical_amount
from handlers.access import Identity, Role, identity_of
from handlers.customers import ListCustomers, RegisterCustomer, UpdatePreferences
from handlers.idempotency import MAX_KEY_LENGTH, Replayed
from handlers.paging import DEFAULT_PAGE_SIZE, MAX_SEARCH_LENGTH
from handlers.written import Written
from mediator import Context
from schema.context import Info, Loaders
from schema.errors import ConflictError, Error, NotAuthorizedError, ValidationError
from schema.ids import read_id
from schema.messages import ask, lagging, read_back, run_command
from schema.nodes import CUSTOMER, Customer, CustomerConnection, load_customer
from schema.pagination import AFTER, FIRST, Edge, page_info
from schema.preferences import LANGUAGE, Preferences


@strawberry.type
class CustomerListQueries:
    @strawberry.field(
        description="Customers by name, a page at a time (at most 100 per page); `search` "
        "matches name or email. Staff only: others get an UNAUTHENTICATED or FORBIDDEN error."
    )
    async def customers(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Name or email contains this, case-insensitively; at most "
                f"{MAX_SEARCH_LENGTH} characters."
            ),
        ] = None,
    ) -> CustomerConnection:
        page = await ask(info, ListCustomers(first=first, after=after, search=search))
        for _, view in page.items:
            info.context.loaders.customers.prime(view.id, view)
        return CustomerConnection(
            edges=[
                Edge(cursor=cursor, node=Customer.from_view(view)) for cursor, view in page.items
            ],
            page_info=page_info(page),
            search=search,
        )


@strawberry.type
class CustomerQueries(CustomerListQueries):
    @strawberry.field(description="The signed-in customer; null for staff and anonymous callers.")
    async def me(self, info: Info) -> Customer | None:
        caller = identity_of(info.context.ctx)
        if caller is None or caller.customer_id is None:
            return None
        return await load_customer(info.context.loaders, caller.customer_id)

    @strawberry.field(description="A customer by id: staff see all, a customer only itself.")
    async def customer(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The customer's global id (Customer.id)."),
        ],
    ) -> Customer | None:
        local = read_id(id, CUSTOMER)
        if local is None:
            return None
        return await load_customer(info.context.loaders, local)


@strawberry.input(description="Who is registering.")
class RegisterCustomerInput:
    name: str = strawberry.field(description=f"1 to {MAX_NAME} characters.")
    email: str = strawberry.field(
        description=f"An email address of at most {MAX_EMAIL} characters."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and "
        "input returns the customer registered the first time, without a token (see "
        "accessToken).",
    )
    marketing_opt_in: bool = strawberry.field(
        default=False,
        description="Whether the customer agrees to hear about news and offers (the marketing "
        "team is told of those who do). It can be changed later with updatePreferences.",
    )
    language: str = strawberry.field(
        default=DEFAULT_LANGUAGE,
        description=f"The language to write to the customer in. {LANGUAGE}",
    )

    def command(self) -> RegisterCustomer:
        return RegisterCustomer(**asdict(self))


@strawberry.type(description="The customer is registered (now, or by the first of its retries).")
class RegisterCustomerSuccess:
    customer: Customer = strawberry.field(
        description="The new customer; when `replayed`, as it was when it was registered."
    )
    access_token: str | None = strawberry.field(
        description="A bearer token for the new customer (Authorization: Bearer …), given "
        "once, in the answer that registered it. Null when `replayed`: the key and input of a "
        "registration may be known to others, so a retry never hands out a credential; keep "
        "the first answer's token, or sign in another way."
    )
    replayed: bool = strawberry.field(
        description="True when this answers a retry (the same idempotencyKey and input): the "
        "customer was registered by the first request, and nothing was done now."
    )


# Anyone may register and nothing it names must exist: a refusal is only ever the input's.
RegisterCustomerResult = Annotated[
    RegisterCustomerSuccess | ValidationError,
    strawberry.union(
        "RegisterCustomerResult",
        description="The new customer with its token, or a ValidationError (the name, the "
        "email, an email already registered, or an idempotencyKey used for other input).",
    ),
]


@strawberry.input(description="The signed-in customer's new preferences.")
class UpdatePreferencesInput:
    marketing_opt_in: bool = strawberry.field(
        description="Whether the customer agrees to hear about news and offers; turning it on "
        "tells the marketing team."
    )
    language: str = strawberry.field(
        description=f"The language to write to the customer in. {LANGUAGE}"
    )
    expected_version: int | None = strawberry.field(
        default=None,
        description="The customer's version (Customer.version) the change was decided on: "
        "if the customer changed since, nothing is changed and the answer is a ConflictError. "
        "Null to change it whatever its version.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and "
        "input answers the first request's success (and changes nothing again), where a retry "
        "with the same expectedVersion alone would be a ConflictError.",
    )

    def command(self) -> UpdatePreferences:
        return UpdatePreferences(**asdict(self))


@strawberry.type(description="The preferences are saved.")
class UpdatePreferencesSuccess:
    preferences: Preferences = strawberry.field(description="The preferences as saved.")
    customer: Customer = strawberry.field(description="The customer, with its new version.")


UpdatePreferencesResult = Annotated[
    UpdatePreferencesSuccess | ValidationError | ConflictError | NotAuthorizedError,
    strawberry.union(
        "UpdatePreferencesResult",
        description="The saved preferences, or a ValidationError (a language that is not a "
        "short language tag, or an idempotencyKey used for other input), a ConflictError (a "
        "stale expectedVersion) or a NotAuthorizedError (not signed in as a customer).",
    ),
]


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(
        graphql_type=RegisterCustomerResult,
        description="Register a new customer; anyone may, signed in or not. The answer carries "
        "the customer's access token, once.",
    )
    async def register_customer(
        self,
        info: Info,
        input: Annotated[
            RegisterCustomerInput, strawberry.argument(description="The new customer.")
        ],
    ) -> RegisterCustomerSuccess | Error:
        async def success(written: Written) -> RegisterCustomerSuccess:
            # The caller may be anonymous; the new customer is read as itself.
            as_customer = Context(
                correlation_id=info.context.ctx.correlation_id,
                identity=Identity(written.entity_id, Role.CUSTOMER),
            )
            loaders = Loaders(info.context.mediator, as_customer)
            view = await read_back(loaders, loaders.customers, written)
            if isinstance(written, Replayed):
                # The first answer again, without its token: the customer as it was when
                # registered, not as it is now, since whoever replays may not be the customer.
                registered = dataclasses.replace(
                    view,
                    order_count=0,
                    lifetime_value=canonical_amount(Decimal(0)),
                    currency="",
                    version=written.version,
                    preferences=None,
                )
                return RegisterCustomerSuccess(
                    customer=Customer.from_view(registered), access_token=None, replayed=True
                )
            return RegisterCustomerSuccess(
                customer=Customer.from_view(view),
                access_token=info.context.issue_customer_token(written.entity_id),
                replayed=False,
            )

        return await run_command(info, input.command, success, RegisterCustomerResult)

    @strawberry.mutation(
        graphql_type=UpdatePreferencesResult,
        description="Change the signed-in customer's preferences (creating its profile if it "
        "has none yet). Customers only: staff and anonymous callers get a NotAuthorizedError.",
    )
    async def update_preferences(
        self,
        info: Info,
        input: Annotated[
            UpdatePreferencesInput,
            strawberry.argument(description="The customer's preferences, both of them."),
        ],
    ) -> UpdatePreferencesSuccess | Error:
        async def success(written: Written) -> UpdatePreferencesSuccess:
            loaders = info.context.loaders
            view = await read_back(loaders, loaders.customers, written)
            if view.preferences is None:
                raise lagging(written)
            return UpdatePreferencesSuccess(
                preferences=Preferences.of(view.preferences), customer=Customer.from_view(view)
            )

        return await run_command(info, input.command, success, UpdatePreferencesResult)
