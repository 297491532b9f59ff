"""The slow-message warning of the service's own pipeline (over the in-memory store): a
command or query slower than `slow_message_ms` is logged at WARNING by orderdesk.messages,
with its type and duration as the extra fields the JSON log format shows."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from handlers.products import CreateProduct
from mediator import Context
from orderdesk.settings import Settings
from tests.unit.fakes import FakeStore, as_staff, fake_mediator

MEMORY = "sqlite+aiosqlite:///:memory:"


def staff(correlation_id: str) -> Context:
    ctx = as_staff()
    ctx.correlation_id = correlation_id
    return ctx


def records_of(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "orderdesk.messages" and r.levelno == level]


async def test_a_message_slower_than_the_setting_is_a_warning_with_its_type_and_duration(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    mediator = fake_mediator(store, Settings(database_url=MEMORY, slow_message_ms=0.001))
    caplog.set_level(logging.INFO, logger="orderdesk.messages")

    await mediator.send(
        CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), staff("req-slow-1")
    )

    (warning,) = records_of(caplog, logging.WARNING)
    assert warning.message_type == "CreateProduct"  # type: ignore[attr-defined]
    duration = warning.duration_ms  # type: ignore[attr-defined]
    assert isinstance(duration, float)
    assert duration > 0
    assert "slow (over 0.001 ms)" in warning.getMessage()
    assert "req-slow-1" in warning.getMessage()
    assert not records_of(caplog, logging.INFO)


async def test_a_slow_refusal_is_a_warning_too(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    mediator = fake_mediator(store, Settings(database_url=MEMORY, slow_message_ms=0.001))
    caplog.set_level(logging.INFO, logger="orderdesk.messages")

    # Anonymous: refused by the access policy.
    with pytest.raises(Exception, match="Sign in"):
        await mediator.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3))

    (warning,) = records_of(caplog, logging.WARNING)
    assert warning.message_type == "CreateProduct"  # type: ignore[attr-defined]
    assert "refused: NotAuthorized, slow" in warning.getMessage()


async def test_messages_within_the_setting_log_at_their_usual_level_with_the_same_fields(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    mediator = fake_mediator(store, Settings(database_url=MEMORY, slow_message_ms=60_000.0))
    caplog.set_level(logging.INFO, logger="orderdesk.messages")

    await mediator.send(
        CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), staff("req-fast-1")
    )
    with pytest.raises(Exception, match="Sign in"):
        await mediator.send(CreateProduct(sku="B", name="Bolt", price=Decimal(1)))

    assert not records_of(caplog, logging.WARNING)
    ok, refused = records_of(caplog, logging.INFO)
    types = (ok.message_type, refused.message_type)  # type: ignore[attr-defined]
    assert types == ("CreateProduct", "CreateProduct")
    assert isinstance(ok.duration_ms, float)  # type: ignore[attr-defined]
    assert "CreateProduct ok (" in ok.getMessage()
    assert "req-fast-1" in ok.getMessage()
    assert "refused: NotAuthorized (" in refused.getMessage()
