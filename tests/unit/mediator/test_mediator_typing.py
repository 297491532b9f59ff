"""The mediator's types hold: ``mypy --strict`` over this file fails if inference breaks.

The ``assert_type`` calls below are checked by mypy (they do nothing at runtime); the last
test runs mypy on this file, and on a snippet with a deliberate error, to prove both that
the file is clean and that the check can fail.
"""

import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_type

import mypy.api

from mediator import (
    Command,
    Context,
    ContextKey,
    Next,
    Notification,
    Query,
    Registry,
    StreamRequest,
)


@dataclass(frozen=True, slots=True)
class ProductView:
    product_id: str
    name: str


@dataclass(frozen=True, slots=True)
class GetProduct(Query[ProductView | None]):
    product_id: str


@dataclass(frozen=True, slots=True)
class CreateProduct(Command[str]):
    name: str


@dataclass(frozen=True, slots=True)
class ProductCreated(Notification):
    product_id: str


@dataclass(frozen=True, slots=True)
class WatchProducts(StreamRequest[ProductView]):
    pass


async def get_product(query: GetProduct, ctx: Context) -> ProductView | None:
    return ProductView(query.product_id, "lamp") if query.product_id == "p1" else None


async def create_product(command: CreateProduct, ctx: Context) -> str:
    return "p1"


async def on_product_created(note: ProductCreated, ctx: Context) -> None:
    return None


async def watch_products(request: WatchProducts, ctx: Context) -> AsyncIterator[ProductView]:
    yield ProductView("p1", "lamp")


async def log_message(message: object, next: Next[Any], ctx: Context) -> Any:
    return await next()


async def test_results_are_typed_by_the_message() -> None:
    registry = Registry()
    registry.handle(GetProduct, get_product)
    registry.handle(CreateProduct, create_product)
    registry.subscribe(ProductCreated, on_product_created)
    registry.stream(WatchProducts, watch_products)
    registry.behavior(log_message, applies_to=object)
    mediator = registry.build()

    found = assert_type(await mediator.send(GetProduct("p1")), ProductView | None)
    missing = assert_type(await mediator.send(GetProduct("p2")), ProductView | None)
    created = assert_type(await mediator.send(CreateProduct("lamp")), str)
    await mediator.publish(ProductCreated(created))
    streamed = [assert_type(view, ProductView) async for view in mediator.stream(WatchProducts())]

    assert found == ProductView("p1", "lamp")
    assert missing is None
    assert created == "p1"
    assert streamed == [ProductView("p1", "lamp")]


def test_context_keys_are_typed() -> None:
    attempts = ContextKey[int]("attempts")
    ctx = Context()
    ctx.set(attempts, 3)

    assert assert_type(ctx.get(attempts), int) == 3
    assert assert_type(ctx.find(attempts), int | None) == 3


WRONG = """
    from dataclasses import dataclass
    from typing import Any

    from mediator import Command, Context, Next, Query, Registry


    @dataclass(frozen=True, slots=True)
    class CountProducts(Query[int]):
        pass


    @dataclass(frozen=True, slots=True)
    class DeleteProduct(Command[None]):
        product_id: str


    async def count(query: CountProducts, ctx: Context) -> int:
        return 3


    async def only_for_deletes(message: DeleteProduct, next: Next[Any], ctx: Context) -> Any:
        return await next()


    async def main() -> None:
        registry = Registry()
        registry.handle(CountProducts, count)
        registry.handle(DeleteProduct, count)  # error: count takes a CountProducts
        registry.behavior(only_for_deletes, applies_to=object)  # error: not every message is one
        result = await registry.build().send(CountProducts())
        label: str = result  # error: the result is an int
"""


def test_mypy_strict_passes_on_this_file_and_catches_wrong_types(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    wrong = tmp_path / "wrong_types.py"
    source = textwrap.dedent(WRONG)
    wrong.write_text(source)
    marked = [str(n) for n, line in enumerate(source.splitlines(), 1) if "# error:" in line]
    # A config of its own, so the project's plugins and file lists play no part here.
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nmypy_path = {root}\n")

    stdout, stderr, status = mypy.api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--show-error-codes",
            str(Path(__file__).resolve()),
            str(wrong),
        ]
    )

    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    # Every error is in the snippet (this file is clean), one on each line marked for one.
    assert [line.split(":")[:2] for line in errors] == [[str(wrong), n] for n in marked], stdout
    assert len(marked) == 3
    assert errors[0].endswith("[arg-type]")
    assert errors[1].startswith(f'{wrong}:{marked[1]}: error: Argument 1 to "behavior"')
    assert '(expression has type "int", variable has type "str")  [assignment]' in errors[2]
