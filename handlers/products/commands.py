"""Products: the catalog's commands and their handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import NotFound
from domain.products import Product
from handlers.idempotency import IdempotencyKey
from handlers.written import Written
from mediator import Command, Context
from persistence.products import sku_taken
from persistence.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CreateProduct(Command[Written]):
    sku: str
    name: str
    price: Decimal
    currency: str = "USD"
    description: str = ""
    stock: int = 0
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class UpdateProduct(Command[Written]):
    """Changes the given fields; None leaves a field as it is."""

    product_id: str
    expected_version: int | None = None
    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class RestockProduct(Command[Written]):
    product_id: str
    quantity: int
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


@dataclass(frozen=True, slots=True)
class DeleteProduct(Command[Written]):
    product_id: str
    expected_version: int | None = None


async def create_product(
    command: CreateProduct, ctx: Context, work: UnitOfWork, *, new_id: Callable[[], str]
) -> Written:
    product = Product.create(
        new_id(),
        sku=command.sku,
        name=command.name,
        description=command.description,
        price=command.price,
        currency=command.currency,
        stock=command.stock,
    )
    if await work.products.sku_taken(product.sku):
        raise sku_taken()
    work.products.add(product)
    return Written.of(product)


async def _change_product(
    work: UnitOfWork,
    product_id: str,
    expected_version: int | None,
    change: Callable[[Product], None],
) -> Written:
    product = await work.products.get(product_id)
    if product is None:
        raise NotFound(Product.kind, product_id)
    product.ensure_exists()
    product.check_version(expected_version)
    change(product)
    return Written.of(product)


async def update_product(command: UpdateProduct, ctx: Context, work: UnitOfWork) -> Written:
    def change(product: Product) -> None:
        product.update(
            name=command.name,
            description=command.description,
            price=command.price,
            currency=command.currency,
        )

    return await _change_product(work, command.product_id, command.expected_version, change)


async def restock_product(command: RestockProduct, ctx: Context, work: UnitOfWork) -> Written:
    def change(product: Product) -> None:
        product.restock(command.quantity)

    return await _change_product(work, command.product_id, command.expected_version, change)


async def delete_product(command: DeleteProduct, ctx: Context, work: UnitOfWork) -> Written:
    return await _change_product(work, command.product_id, command.expected_version, Product.delete)
