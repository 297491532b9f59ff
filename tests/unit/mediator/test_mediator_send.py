"""send(): one handler per request type, found through the MRO, most specific first."""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

import pytest

from mediator import (
    Command,
    Context,
    MediatorError,
    NoHandlerError,
    Query,
    Registry,
    Request,
)


@dataclass(frozen=True, slots=True)
class GetGreeting(Query[str]):
    name: str


@dataclass(frozen=True, slots=True)
class RenameProduct(Command[int]):
    product_id: str


@dataclass(frozen=True, slots=True)
class Unhandled(Query[None]):
    pass


async def greet(query: GetGreeting, ctx: Context) -> str:
    return f"hello {query.name}"


async def test_send_returns_what_the_handler_returns() -> None:
    registry = Registry()
    registry.handle(GetGreeting, greet)
    mediator = registry.build()

    assert await mediator.send(GetGreeting("ada")) == "hello ada"


async def test_send_passes_the_given_context_and_makes_one_when_none_is_given() -> None:
    seen: list[Context] = []

    async def remember(query: GetGreeting, ctx: Context) -> str:
        seen.append(ctx)
        return ""

    registry = Registry()
    registry.handle(GetGreeting, remember)
    mediator = registry.build()
    ctx = Context(correlation_id="c-1")

    await mediator.send(GetGreeting("a"), ctx)
    await mediator.send(GetGreeting("b"))
    await mediator.send(GetGreeting("c"))

    assert seen[0] is ctx
    assert isinstance(seen[1], Context)
    assert seen[1] is not seen[2]
    assert seen[1].correlation_id != seen[2].correlation_id


async def test_sending_a_type_without_handler_raises_no_handler_error_naming_it() -> None:
    registry = Registry()
    registry.handle(GetGreeting, greet)
    mediator = registry.build()

    with pytest.raises(NoHandlerError, match=r"test_mediator_send\.Unhandled") as caught:
        await mediator.send(Unhandled())

    assert isinstance(caught.value, MediatorError)
    assert caught.value.message_type is Unhandled


async def test_a_handler_for_a_base_type_serves_its_subclasses() -> None:
    @dataclass(frozen=True, slots=True)
    class Audited(Command[str]):
        pass

    @dataclass(frozen=True, slots=True)
    class ArchiveOrder(Audited):
        order_id: str

    async def audit(command: Audited, ctx: Context) -> str:
        return f"audited {type(command).__name__}"

    registry = Registry()
    registry.handle(Audited, audit)
    mediator = registry.build()

    assert await mediator.send(ArchiveOrder("o1")) == "audited ArchiveOrder"


async def test_the_most_specific_registered_type_wins() -> None:
    @dataclass(frozen=True, slots=True)
    class Animal(Query[str]):
        pass

    @dataclass(frozen=True, slots=True)
    class Dog(Animal):
        pass

    @dataclass(frozen=True, slots=True)
    class Puppy(Dog):
        pass

    async def animal(query: Animal, ctx: Context) -> str:
        return "animal"

    async def dog(query: Dog, ctx: Context) -> str:
        return "dog"

    registry = Registry()
    # Registered base first and subclass second, and the other way round for a check that
    # the order of registration plays no part.
    registry.handle(Dog, dog)
    registry.handle(Animal, animal)
    mediator = registry.build()

    assert await mediator.send(Animal()) == "animal"
    assert await mediator.send(Dog()) == "dog"
    assert await mediator.send(Puppy()) == "dog"
    assert await mediator.send(Puppy()) == "dog"  # second time from the cache


async def test_a_subclass_defined_after_build_is_served() -> None:
    async def rename(command: RenameProduct, ctx: Context) -> int:
        return len(command.product_id)

    registry = Registry()
    registry.handle(RenameProduct, rename)
    mediator = registry.build()

    @dataclass(frozen=True, slots=True)
    class RenameProductQuickly(RenameProduct):
        pass

    assert await mediator.send(RenameProductQuickly("abc")) == 3


async def test_send_makes_a_coroutine_that_tasks_and_gather_accept() -> None:
    registry = Registry()
    registry.handle(GetGreeting, greet)
    mediator = registry.build()

    task = asyncio.create_task(mediator.send(GetGreeting("task")))
    gathered = await asyncio.gather(
        mediator.send(GetGreeting("a")), mediator.send(GetGreeting("b"))
    )

    assert await task == "hello task"
    assert list(gathered) == ["hello a", "hello b"]


async def test_handlers_may_be_async_callable_objects_or_return_other_awaitables() -> None:
    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        async def __call__(self, query: GetGreeting, ctx: Context) -> str:
            return f"{self.greeting} {query.name}"

    def rename_later(command: RenameProduct, ctx: Context) -> Awaitable[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(7)
        return future

    registry = Registry()
    registry.handle(GetGreeting, Greeter("hi"))
    registry.handle(RenameProduct, rename_later)
    mediator = registry.build()

    assert await mediator.send(GetGreeting("bo")) == "hi bo"
    # A real coroutine even though the handler returns a Future: create_task needs one.
    assert await asyncio.create_task(mediator.send(RenameProduct("p"))) == 7


async def test_a_handler_exception_propagates_unchanged() -> None:
    failure = LookupError("product p1 does not exist")

    async def fail(command: RenameProduct, ctx: Context) -> int:
        raise failure

    registry = Registry()
    registry.handle(RenameProduct, fail)
    mediator = registry.build()

    with pytest.raises(LookupError) as caught:
        await mediator.send(RenameProduct("p1"))
    assert caught.value is failure


async def test_a_handler_registered_for_request_serves_commands_and_queries() -> None:
    @dataclass(frozen=True, slots=True)
    class Describe(Command[str]):
        pass

    async def anything(request: Request[object], ctx: Context) -> str:
        return type(request).__name__

    registry = Registry()
    registry.handle(Request, anything)
    mediator = registry.build()

    assert await mediator.send(GetGreeting("x")) == "GetGreeting"
    assert await mediator.send(Describe()) == "Describe"
