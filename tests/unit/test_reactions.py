"""How a stored event reaches its reaction handlers through the mediator: one notification
type per event type, delivery to the named handlers only, failures by name, and what a
handler finds on its context (its name, the system identity, the event as the cause)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import pytest

from domain.products import ProductCreated, ProductDeleted
from handlers.access import identity_of
from handlers.reactions import (
    SYSTEM,
    Committed,
    Reactions,
    committed,
    effect_key,
    send_command,
)
from handlers.transaction import CAUSED_BY
from mediator import Command, ConfigurationError, Context, Registry
from persistence.event_log import StoredEvent


def stored(event: object, position: int = 7) -> StoredEvent:
    return StoredEvent(
        position=position,
        event_id=f"event-{position}",
        stream_type="Product",
        stream_id="p1",
        stream_version=1,
        event_type=type(event).__name__,
        event=event,
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
        correlation_id="request-1",
    )


CREATED = ProductCreated("p1", "SKU", "Anvil", "", Decimal("5.00"), "EUR", 3)


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object, str | None, str]] = []

    async def note(self, label: str, notification: Committed[object], ctx: Context) -> None:
        self.calls.append(
            (
                label,
                effect_key(notification, ctx),
                identity_of(ctx),
                ctx.find(CAUSED_BY),
                ctx.correlation_id,
            )
        )

    async def fail(self, notification: Committed[object], ctx: Context) -> None:
        raise RuntimeError("down")


def test_each_event_type_has_one_notification_type() -> None:
    assert committed(ProductCreated) is committed(ProductCreated)
    assert committed(ProductCreated).__name__ != committed(ProductDeleted).__name__
    assert issubclass(committed(ProductCreated), Committed)
    assert committed(ProductCreated).__name__ == "ProductCreatedCommitted"


async def test_an_event_reaches_the_named_handlers_of_its_type_only() -> None:
    seen = Seen()
    registry = Registry()
    registry.subscribe(committed(ProductCreated), partial(seen.note, "a"), name="test.a")
    registry.subscribe(committed(ProductCreated), partial(seen.note, "b"), name="test.b")
    registry.subscribe(committed(ProductDeleted), partial(seen.note, "c"), name="test.c")
    reactions = Reactions(registry.build(), [ProductCreated, ProductDeleted])

    assert reactions.takes == {
        "test.a": frozenset({"ProductCreated"}),
        "test.b": frozenset({"ProductCreated"}),
        "test.c": frozenset({"ProductDeleted"}),
    }
    assert await reactions.deliver(stored(CREATED), ["test.b"]) == {}
    assert seen.calls == [("b", "test.b:event-7", SYSTEM, "event-7", "request-1")]
    assert await reactions.deliver(stored(CREATED), []) == {}
    assert len(seen.calls) == 1


async def test_failures_come_back_by_name_and_the_others_still_run() -> None:
    seen = Seen()
    registry = Registry()
    registry.subscribe(committed(ProductCreated), seen.fail, name="test.broken")
    registry.subscribe(committed(ProductCreated), partial(seen.note, "ok"), name="test.ok")
    reactions = Reactions(registry.build(), [ProductCreated])

    failures = await reactions.deliver(stored(CREATED), ["test.broken", "test.ok"])

    assert list(failures) == ["test.broken"]
    assert isinstance(failures["test.broken"], RuntimeError)
    assert [call[0] for call in seen.calls] == ["ok"]


@pytest.mark.parametrize(
    "name", [None, "NoDots", "orders.", "orders.Confirmation", "orders." + "x" * 60]
)
def test_a_reaction_handler_needs_a_name_of_its_own(name: str | None) -> None:
    seen = Seen()
    registry = Registry()
    registry.subscribe(committed(ProductCreated), partial(seen.note, "a"), name=name)
    with pytest.raises(ConfigurationError, match="needs a name of its own"):
        Reactions(registry.build(), [ProductCreated])


class Recorded(Command[str]):
    __slots__ = ()


async def test_a_reactions_command_is_the_systems_and_caused_by_the_event() -> None:
    sent: list[tuple[object, str | None, str]] = []

    async def handle(command: Recorded, ctx: Context) -> str:
        sent.append((identity_of(ctx), ctx.find(CAUSED_BY), ctx.correlation_id))
        return "done"

    async def react(notification: Committed[ProductCreated], ctx: Context) -> None:
        assert await send_command(ctx, Recorded()) == "done"

    registry = Registry()
    registry.handle(Recorded, handle)
    registry.subscribe(committed(ProductCreated), react, name="test.react")
    reactions = Reactions(registry.build(), [ProductCreated])

    assert await reactions.deliver(stored(CREATED, position=9), ["test.react"]) == {}
    assert sent == [(SYSTEM, "event-9", "request-1")]
