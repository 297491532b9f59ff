"""Exception handlers: outside every behavior, most specific exception class first."""

from dataclasses import dataclass
from typing import Any

import pytest

from mediator import Command, Context, Next, Query, Registry, Request


class DomainError(Exception):
    pass


class NotFound(DomainError):
    pass


class OutOfStock(DomainError):
    pass


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[object]):
    product_id: str


@dataclass(frozen=True, slots=True)
class GetOrder(Query[object]):
    order_id: str


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    message: str


def raising(exc: Exception) -> Any:
    async def handler(message: object, ctx: Context) -> object:
        raise exc

    return handler


async def as_domain_failure(exc: DomainError, message: object, ctx: Context) -> Failure:
    return Failure("domain", str(exc))


async def as_not_found(exc: NotFound, message: object, ctx: Context) -> Failure:
    return Failure("not found", str(exc))


async def test_an_exception_handler_turns_the_exception_into_the_result() -> None:
    seen: list[tuple[BaseException, object, Context]] = []

    async def record(exc: OutOfStock, message: object, ctx: Context) -> Failure:
        seen.append((exc, message, ctx))
        return Failure("out of stock", str(exc))

    failure = OutOfStock("p1: 0 left")
    registry = Registry()
    registry.handle(PlaceOrder, raising(failure))
    registry.on_exception(OutOfStock, record)
    mediator = registry.build()
    ctx = Context()
    command = PlaceOrder("p1")

    assert await mediator.send(command, ctx) == Failure("out of stock", "p1: 0 left")
    assert seen == [(failure, command, ctx)]


async def test_the_most_specific_exception_class_wins() -> None:
    registry = Registry()
    registry.handle(PlaceOrder, raising(NotFound("no product p1")))
    registry.handle(GetOrder, raising(OutOfStock("p2")))
    registry.on_exception(NotFound, as_not_found)
    registry.on_exception(DomainError, as_domain_failure)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("p1")) == Failure("not found", "no product p1")
    assert await mediator.send(GetOrder("o1")) == Failure("domain", "p2")


async def test_exception_handlers_wrap_outside_every_behavior() -> None:
    journal: list[str] = []

    async def transaction(message: object, next: Next[Any], ctx: Context) -> Any:
        journal.append("begin")
        try:
            result = await next()
        except Exception:
            journal.append("rollback")
            raise
        journal.append("commit")
        return result

    registry = Registry()
    registry.handle(PlaceOrder, raising(OutOfStock("p1")))
    registry.behavior(transaction, applies_to=Command)
    registry.on_exception(DomainError, as_domain_failure)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("p1")) == Failure("domain", "p1")
    assert journal == ["begin", "rollback"]


async def test_an_exception_nothing_handles_propagates_unchanged() -> None:
    failure = RuntimeError("disk full")
    registry = Registry()
    registry.handle(PlaceOrder, raising(failure))
    registry.on_exception(DomainError, as_domain_failure)
    mediator = registry.build()

    with pytest.raises(RuntimeError) as caught:
        await mediator.send(PlaceOrder("p1"))
    assert caught.value is failure
    assert caught.value.__cause__ is None


async def test_applies_to_scopes_exception_handlers() -> None:
    registry = Registry()
    registry.handle(PlaceOrder, raising(NotFound("p1")))
    registry.handle(GetOrder, raising(NotFound("o1")))
    registry.on_exception(NotFound, as_not_found, applies_to=Command)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("p1")) == Failure("not found", "p1")
    with pytest.raises(NotFound):
        await mediator.send(GetOrder("o1"))


async def test_for_one_exception_class_the_narrowest_scope_wins() -> None:
    async def for_place_order(exc: NotFound, message: PlaceOrder, ctx: Context) -> Failure:
        return Failure("place order", str(exc))

    registry = Registry()
    registry.handle(PlaceOrder, raising(NotFound("p1")))
    registry.handle(GetOrder, raising(NotFound("o1")))
    registry.on_exception(NotFound, for_place_order, applies_to=PlaceOrder)
    registry.on_exception(NotFound, as_not_found, applies_to=Request)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("p1")) == Failure("place order", "p1")
    assert await mediator.send(GetOrder("o1")) == Failure("not found", "o1")


async def test_an_exception_handler_may_raise_something_else() -> None:
    class GraphQLFault(Exception):
        pass

    async def translate(exc: NotFound, message: object, ctx: Context) -> object:
        raise GraphQLFault(f"not found: {exc}") from exc

    registry = Registry()
    registry.handle(GetOrder, raising(NotFound("o1")))
    registry.on_exception(NotFound, translate)
    mediator = registry.build()

    with pytest.raises(GraphQLFault, match="not found: o1") as caught:
        await mediator.send(GetOrder("o1"))
    assert isinstance(caught.value.__cause__, NotFound)
