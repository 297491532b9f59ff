"""Registering customers through the real mediator and pipeline over in-memory fakes."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import ValidationFailed
from handlers.customers import RegisterCustomer
from mediator import Mediator
from tests.unit.fakes import FakeStore, fake_mediator


@pytest.fixture
def mediator(store: FakeStore) -> Mediator:
    return fake_mediator(store)


async def test_a_customer_at_every_bound_registers(mediator: Mediator, store: FakeStore) -> None:
    email = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com"
    assert len(email) == 254
    await mediator.send(RegisterCustomer(name="N" * 200, email=email, idempotency_key="k" * 200))
    assert store.customers["c1"].email == email


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"name": "N" * 201}, "name", "a name is at most 200 characters"),
        ({"name": ""}, "name", "a name is required"),
        ({"name": "   "}, "name", "a name is required"),
        (
            {"email": f"{'a' * 250}@example.com"},
            "email",
            "an email address is at most 254 characters",
        ),
        ({"email": "a" * 1_000_000}, "email", "an email address is at most 254 characters"),
        ({"email": "ada.example.com"}, "email", "a valid email address"),
        ({"idempotency_key": "k" * 201}, "idempotency_key", "at most 200 characters"),
        ({"language": "english"}, "language", "a language tag such as en, fr or pt-BR"),
        ({"language": "en_US"}, "language", "a language tag such as en, fr or pt-BR"),
        ({"language": "en-US\n"}, "language", "a language tag such as en, fr or pt-BR"),
        ({"language": "e" * 100_000}, "language", "a language tag such as en, fr or pt-BR"),
    ],
)
async def test_an_overlong_field_is_refused_by_name_and_nothing_is_written(
    mediator: Mediator, store: FakeStore, fields: dict[str, Any], path: str, message: str
) -> None:
    command = RegisterCustomer(**{"name": "Ada", "email": "ada@example.com", **fields})
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(command)
    assert [".".join(i.path) for i in refused.value.issues] == [path]
    assert refused.value.issues[0].message == message
    assert (store.events, store.commits) == ([], 0)
