"""Each mutation's result union names exactly the errors the mutation can return.

Every error a union lists is provoked here, through the real schema, resolvers and pipeline
over the in-memory store: a listed error that no case provokes fails (it would be a branch
every client writes for nothing), and so does a provoked one the union does not list (the
resolver refuses to return it, so the case sees an internal error instead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from graphql import GraphQLUnionType

from domain.errors import OutOfStock
from domain.orders import Address
from handlers.customers import RegisterCustomer
from handlers.orders import ConfirmOrder, DeliverOrder, LineRequest, PlaceOrder, ShipOrder
from handlers.products import CreateProduct
from mediator import Context, Mediator
from schema.context import Loaders, RequestContext
from schema.ids import global_id
from schema.products import CreateProductResult
from schema.results import UnlistedRefusal, listed_errors, refusal
from schema.root import build_schema
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator

ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
PRODUCT = global_id("Product", "p1")
PENDING = global_id("Order", "o1")
DELIVERED = global_id("Order", "o2")
NO_PRODUCT = global_id("Product", "p404")
NO_ORDER = global_id("Order", "o404")
STAFF, ADA, BOB, ANONYMOUS = "staff", "c1", "c2", "anonymous"


@dataclass(frozen=True)
class Case:
    caller: str
    input: dict[str, Any]


def line(quantity: int) -> dict[str, Any]:
    return {"lines": [{"productId": PRODUCT, "quantity": quantity}], "shippingAddress": ADDRESS}


def moves(mutation: str) -> dict[str, Case]:
    """What refuses confirmOrder, shipOrder and deliverOrder alike."""
    return {
        "ValidationError": Case(STAFF, {"id": PENDING, "idempotencyKey": ""}),
        "NotFoundError": Case(STAFF, {"id": NO_ORDER}),
        "ConflictError": Case(STAFF, {"id": PENDING, "expectedVersion": 99}),
        "InvalidTransitionError": Case(STAFF, {"id": DELIVERED}),
        "NotAuthorizedError": Case(ADA, {"id": PENDING}),
    }


# Derived from the handlers: each line is the code path that gives the error.
REFUSALS: dict[str, dict[str, Case]] = {
    "createProduct": {
        # The product's rules (Product.create), a taken SKU, the idempotency key.
        "ValidationError": Case(STAFF, {"sku": "", "name": "x", "price": "1.00"}),
        # POLICIES: staff.
        "NotAuthorizedError": Case(ADA, {"sku": "new", "name": "x", "price": "1.00"}),
    },
    "updateProduct": {
        "ValidationError": Case(STAFF, {"id": PRODUCT, "name": " "}),
        # _change_product: no such product, or a deleted one (ensure_exists).
        "NotFoundError": Case(STAFF, {"id": NO_PRODUCT, "name": "x"}),
        # check_version(expected_version).
        "ConflictError": Case(STAFF, {"id": PRODUCT, "name": "x", "expectedVersion": 99}),
        "NotAuthorizedError": Case(ADA, {"id": PRODUCT, "name": "x"}),
    },
    "restockProduct": {
        "ValidationError": Case(STAFF, {"id": PRODUCT, "quantity": 0}),
        "NotFoundError": Case(STAFF, {"id": NO_PRODUCT, "quantity": 1}),
        "ConflictError": Case(STAFF, {"id": PRODUCT, "quantity": 1, "expectedVersion": 99}),
        "NotAuthorizedError": Case(ADA, {"id": PRODUCT, "quantity": 1}),
    },
    # No ValidationError: an id and a version are all it takes, and an id no product could
    # have is not found (schema/ids.py).
    "deleteProduct": {
        "NotFoundError": Case(STAFF, {"id": NO_PRODUCT}),
        "ConflictError": Case(STAFF, {"id": PRODUCT, "expectedVersion": 99}),
        "NotAuthorizedError": Case(ADA, {"id": PRODUCT}),
    },
    # Anyone may register, and it names nothing that must exist.
    "registerCustomer": {
        "ValidationError": Case(ANONYMOUS, {"name": "Eve", "email": "not an address"}),
    },
    # Customers only (a_customer); the customer's version, as for any other change.
    "updatePreferences": {
        "ValidationError": Case(ADA, {"marketingOptIn": True, "language": "English"}),
        "ConflictError": Case(
            ADA, {"marketingOptIn": True, "language": "en", "expectedVersion": 99}
        ),
        "NotAuthorizedError": Case(ANONYMOUS, {"marketingOptIn": True, "language": "en"}),
    },
    # No ConflictError: it takes no expectedVersion, and the products it reserves are locked
    # (or the database is) while it runs. No InvalidTransitionError: a new order moves nowhere.
    "placeOrder": {
        "ValidationError": Case(ADA, {"lines": [], "shippingAddress": ADDRESS}),
        "NotFoundError": Case(STAFF, {**line(1), "customerId": global_id("Customer", "c404")}),
        "OutOfStockError": Case(ADA, line(100)),
        # _own_order: signed in, and a customer for itself only.
        "NotAuthorizedError": Case(ADA, {**line(1), "customerId": global_id("Customer", BOB)}),
    },
    "confirmOrder": moves("confirmOrder"),
    "shipOrder": moves("shipOrder"),
    "deliverOrder": moves("deliverOrder"),
    # Anyone may ask, and any valid address is answered alike (known or not).
    "requestSignInCode": {
        "ValidationError": Case(ANONYMOUS, {"email": "not an address"}),
    },
    # handlers/sign_in: every code that does not sign in, for an unknown address here.
    "signIn": {
        "ValidationError": Case(ANONYMOUS, {"email": "ada@example.com", "code": "12345"}),
        "InvalidSignInCodeError": Case(ANONYMOUS, {"email": "eve@example.com", "code": "123456"}),
    },
    # Staff only. The URL's form and the events are the command's (Webhook.register); an
    # address webhooks may not reach, CheckWebhookUrl's (tests/unit/test_webhook_handlers.py).
    "registerWebhook": {
        "ValidationError": Case(STAFF, {"url": "ftp://x", "events": ["ORDER_PLACED"]}),
        "NotAuthorizedError": Case(ADA, {"url": "https://x.example", "events": ["ORDER_PLACED"]}),
    },
    "disableWebhook": {
        "ValidationError": Case(STAFF, {"id": global_id("Webhook", "w404"), "reason": "x" * 501}),
        "NotFoundError": Case(STAFF, {"id": global_id("Webhook", "w404")}),
        "NotAuthorizedError": Case(ADA, {"id": global_id("Webhook", "w404")}),
    },
    "cancelOrder": {
        "ValidationError": Case(ADA, {"id": PENDING, "reason": "x" * 501}),
        # _order_for: another customer's order does not exist for it.
        "NotFoundError": Case(BOB, {"id": PENDING}),
        "ConflictError": Case(ADA, {"id": PENDING, "expectedVersion": 99}),
        "InvalidTransitionError": Case(STAFF, {"id": DELIVERED}),
        # POLICIES: signed_in.
        "NotAuthorizedError": Case(ANONYMOUS, {"id": PENDING}),
    },
}

INPUT_TYPES = {
    "confirmOrder": "ChangeOrderInput",
    "shipOrder": "ChangeOrderInput",
    "deliverOrder": "ChangeOrderInput",
}


def context_of(caller: str) -> Context:
    if caller == STAFF:
        return as_staff()
    if caller == ANONYMOUS:
        return Context()
    return as_customer(caller)


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))  # c1
    await built.send(RegisterCustomer(name="Bob", email="bob@example.com"))  # c2
    await built.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), as_staff())
    address = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")
    for _ in range(2):  # o1 stays PENDING, o2 is DELIVERED
        await built.send(PlaceOrder((LineRequest("p1", 1),), address), as_customer(ADA))
    for move in (ConfirmOrder, ShipOrder, DeliverOrder):
        await built.send(move("o2"), as_staff())
    return built


async def result_of(mediator: Mediator, mutation: str, case: Case) -> dict[str, Any]:
    input_type = INPUT_TYPES.get(mutation, mutation[0].upper() + mutation[1:] + "Input")
    document = f"""mutation($input: {input_type}!) {{
        {mutation}(input: $input) {{ __typename ... on Error {{ message }} }} }}"""
    ctx = context_of(case.caller)
    context = RequestContext(
        mediator=mediator,
        ctx=ctx,
        request_loaders=Loaders(mediator, ctx),
        issue_customer_token=lambda customer_id: f"token-{customer_id}",
    )
    executed = await build_schema().execute(
        document, variable_values={"input": case.input}, context_value=context
    )
    assert executed.errors is None, (mutation, case, executed.errors)
    assert executed.data is not None
    answer: dict[str, Any] = executed.data[mutation]
    return answer


def declared() -> dict[str, set[str]]:
    """Each mutation's result union's members, as the schema has them, less its success."""
    schema = build_schema()._schema
    assert schema.mutation_type is not None
    unions: dict[str, set[str]] = {}
    for name, field in schema.mutation_type.fields.items():
        union = field.type.of_type
        assert isinstance(union, GraphQLUnionType), name
        unions[name] = {t.name for t in union.types if not t.name.endswith("Success")}
    return unions


def test_every_union_lists_what_its_mutation_can_refuse_with_and_nothing_else() -> None:
    assert declared() == {mutation: set(cases) for mutation, cases in REFUSALS.items()}


@pytest.mark.parametrize(
    ("mutation", "error"),
    [(mutation, error) for mutation, cases in REFUSALS.items() for error in cases],
)
async def test_each_listed_error_is_one_the_mutation_returns(
    mediator: Mediator, store: FakeStore, mutation: str, error: str
) -> None:
    events = len(store.log)
    answer = await result_of(mediator, mutation, REFUSALS[mutation][error])
    assert answer["__typename"] == error, answer
    assert answer["message"]
    assert len(store.log) == events


def test_an_error_its_union_does_not_list_is_a_fault_not_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listed = {error.__name__ for error in listed_errors(CreateProductResult)}
    assert listed == {"ValidationError", "NotAuthorizedError"}
    with caplog.at_level(logging.ERROR), pytest.raises(UnlistedRefusal):
        refusal(OutOfStock("p1", 2, 1), CreateProductResult, "createProduct")
    assert "createProduct refused with OutOfStockError" in caplog.text
