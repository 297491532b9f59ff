"""Which commands take an idempotency key, what a key's request digests to, and the key's
bounds, checked through the real mediator over in-memory fakes."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from domain.errors import ValidationFailed
from handlers.customers import CreateCustomerProfile
from handlers.idempotency import fingerprint
from handlers.orders import CancelOrder, ConfirmOrder, DeliverOrder, ShipOrder
from handlers.products import CreateProduct, DeleteProduct, RestockProduct, UpdateProduct
from handlers.sign_in import RequestSignInCode, SignIn
from handlers.webhooks import DisableWebhook, RegisterWebhook
from handlers.written import Written
from mediator import Command, Mediator
from orderdesk.bootstrap import IDEMPOTENT, POLICIES
from tests.unit.fakes import FakeStore, as_staff, fake_mediator

COMMANDS = sorted((t for t in POLICIES if issubclass(t, Command)), key=lambda t: t.__name__)
UNKEYED: dict[type, str] = {
    DeleteProduct: "deleting again finds the product deleted: nothing to repeat",
    CreateCustomerProfile: "the system's, and a second creation changes nothing",
    RequestSignInCode: "each request is meant to void the code before it",
    SignIn: "a replay must never hand out a token again",
    RegisterWebhook: "a replay could not show the secret, which is shown once",
    DisableWebhook: "disabling a disabled webhook changes nothing",
}
"""The commands that take no idempotency key, and why each does without."""


@pytest.mark.parametrize("command", COMMANDS, ids=lambda t: t.__name__)
def test_a_command_takes_a_key_exactly_when_the_key_is_honoured(command: type) -> None:
    # A key the idempotency behavior ignored would promise a safe retry and not keep it.
    takes_key = "idempotency_key" in {f.name for f in dataclasses.fields(command)}
    assert takes_key == (command in IDEMPOTENT)
    assert takes_key == (command not in UNKEYED)


def test_the_same_request_digests_alike_whatever_its_key() -> None:
    assert fingerprint(RestockProduct("p1", 5, idempotency_key="a")) == fingerprint(
        RestockProduct("p1", 5, idempotency_key="b")
    )
    assert fingerprint(RestockProduct("p1", 5)) != fingerprint(RestockProduct("p1", 6))


def test_the_expected_version_is_part_of_the_request() -> None:
    assert fingerprint(ConfirmOrder("o1", 1)) != fingerprint(ConfirmOrder("o1"))
    assert fingerprint(ConfirmOrder("o1", 1)) != fingerprint(ConfirmOrder("o1", 2))


def test_moves_with_the_same_fields_are_different_requests() -> None:
    digests = {fingerprint(move("o1", 1)) for move in (ConfirmOrder, ShipOrder, DeliverOrder)}
    assert len(digests) == 3


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), as_staff())
    return built


def keyed(key: str) -> list[Command[Written]]:
    return [
        CreateProduct(sku="B", name="Bolt", price=Decimal(1), idempotency_key=key),
        UpdateProduct("p1", name="Big anvil", idempotency_key=key),
        RestockProduct("p1", 5, idempotency_key=key),
        ConfirmOrder("o1", idempotency_key=key),
        ShipOrder("o1", idempotency_key=key),
        DeliverOrder("o1", idempotency_key=key),
        CancelOrder("o1", idempotency_key=key),
    ]


@pytest.mark.parametrize(
    ("key", "message"), [("", "at least 1 character"), ("k" * 201, "at most 200 characters")]
)
async def test_a_key_out_of_bounds_is_refused_and_nothing_is_written(
    mediator: Mediator, store: FakeStore, key: str, message: str
) -> None:
    events = list(store.events)
    for command in keyed(key):
        with pytest.raises(ValidationFailed) as refused:
            await mediator.send(command, as_staff())
        assert [(i.path, message in i.message) for i in refused.value.issues] == [
            (("idempotency_key",), True)
        ], command
    assert store.events == events


async def test_a_key_at_its_bound_is_taken(mediator: Mediator, store: FakeStore) -> None:
    written = await mediator.send(RestockProduct("p1", 5, idempotency_key="k" * 200), as_staff())
    assert (written.version, store.products["p1"].stock) == (2, 8)
