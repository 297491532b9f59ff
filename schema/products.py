"""Products in GraphQL: `product` and `products`, the catalog's mutations and the
productEvents subscription. The product type is in schema/nodes.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay

from domain.products import MAX_DESCRIPTION, MAX_NAME
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.paging import DEFAULT_PAGE_SIZE, MAX_SEARCH_LENGTH
from handlers.products import (
    CreateProduct,
    DeleteProduct,
    ListProducts,
    ProductChangeType,
    ProductSort,
    RestockProduct,
    UpdateProduct,
    WatchProducts,
)
from handlers.written import Written
from schema.context import Info
from schema.errors import CommandError, UserInputError
from schema.ids import local_id
from schema.messages import ask, read_back, run_command, watch
from schema.nodes import PRODUCT, Product, ProductConnection
from schema.pagination import AFTER, Edge, page_info, parse_position


async def present_product(info: Info, written: Written) -> Product:
    loaders = info.context.loaders
    return Product.from_view(await read_back(loaders, loaders.products, written))


strawberry.enum(ProductSort, name="ProductSort")


@strawberry.type
class ProductQueries:
    @strawberry.field(description="A product by its id; null if there is none (or it was deleted).")
    async def product(self, info: Info, id: relay.GlobalID) -> Product | None:
        if id.type_name != PRODUCT:
            return None
        view = await info.context.loaders.products.load(id.node_id)
        return Product.from_view(view) if view is not None and not view.deleted else None

    @strawberry.field(description="The catalog, a page at a time (at most 100 per page).")
    async def products(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Name or SKU contains this, case-insensitively; at most "
                f"{MAX_SEARCH_LENGTH} characters."
            ),
        ] = None,
        in_stock: bool | None = None,
        sort: ProductSort = ProductSort.NAME_ASC,
    ) -> ProductConnection:
        page = await ask(
            info,
            ListProducts(first=first, after=after, search=search, in_stock=in_stock, sort=sort),
        )
        for _, view in page.items:
            info.context.loaders.products.prime(view.id, view)
        return ProductConnection(
            edges=[
                Edge(cursor=cursor, node=Product.from_view(view)) for cursor, view in page.items
            ],
            page_info=page_info(page),
            total_count=page.total_count,
        )


SKU = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
NAME = f"1 to {MAX_NAME} characters."
DESCRIPTION = f"At most {MAX_DESCRIPTION} characters."
CURRENCY = "A three-letter ISO 4217 code such as USD."
CREATE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input returns the "
    "first product, as it is now, and creates no other."
)
CHANGE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input changes "
    "nothing and returns the product as it is now."
)


@strawberry.input
class CreateProductInput:
    sku: str = strawberry.field(description=SKU)
    name: str = strawberry.field(description=NAME)
    price: Decimal
    currency: str = strawberry.field(default="USD", description=CURRENCY)
    description: str = strawberry.field(default="", description=DESCRIPTION)
    stock: int = 0
    idempotency_key: str | None = strawberry.field(default=None, description=CREATE_KEY)

    def command(self) -> CreateProduct:
        return CreateProduct(**asdict(self))


@strawberry.input
class UpdateProductInput:
    id: relay.GlobalID
    expected_version: int | None = None
    name: str | None = strawberry.field(default=None, description=NAME)
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    price: Decimal | None = None
    currency: str | None = strawberry.field(default=None, description=CURRENCY)
    idempotency_key: str | None = strawberry.field(default=None, description=CHANGE_KEY)

    def command(self) -> UpdateProduct:
        fields = dict(vars(self))  # not asdict: it would take the GlobalID apart
        return UpdateProduct(product_id=local_id(fields.pop("id"), PRODUCT), **fields)


@strawberry.input
class RestockProductInput:
    id: relay.GlobalID
    quantity: int
    expected_version: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=CHANGE_KEY)

    def command(self) -> RestockProduct:
        fields = dict(vars(self))
        return RestockProduct(product_id=local_id(fields.pop("id"), PRODUCT), **fields)


@strawberry.input
class DeleteProductInput:
    id: relay.GlobalID
    expected_version: int | None = None

    def command(self) -> DeleteProduct:
        return DeleteProduct(local_id(self.id, PRODUCT), expected_version=self.expected_version)


@strawberry.type
class CreateProductSuccess:
    product: Product


@strawberry.type
class UpdateProductSuccess:
    product: Product


@strawberry.type
class RestockProductSuccess:
    product: Product


@strawberry.type
class DeleteProductSuccess:
    deleted_id: strawberry.ID


CreateProductResult = Annotated[
    CreateProductSuccess | CommandError, strawberry.union("CreateProductResult")
]
UpdateProductResult = Annotated[
    UpdateProductSuccess | CommandError, strawberry.union("UpdateProductResult")
]
RestockProductResult = Annotated[
    RestockProductSuccess | CommandError, strawberry.union("RestockProductResult")
]
DeleteProductResult = Annotated[
    DeleteProductSuccess | CommandError, strawberry.union("DeleteProductResult")
]


@strawberry.type
class ProductMutations:
    """Each mutation: its input makes the command, `success` shows what it wrote."""

    @strawberry.mutation
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductResult:
        async def success(written: Written) -> CreateProductSuccess:
            return CreateProductSuccess(product=await present_product(info, written))

        return await run_command(info, input.command, success)

    @strawberry.mutation
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductResult:
        async def success(written: Written) -> UpdateProductSuccess:
            return UpdateProductSuccess(product=await present_product(info, written))

        return await run_command(info, input.command, success)

    @strawberry.mutation
    async def restock_product(self, info: Info, input: RestockProductInput) -> RestockProductResult:
        async def success(written: Written) -> RestockProductSuccess:
            return RestockProductSuccess(product=await present_product(info, written))

        return await run_command(info, input.command, success)

    @strawberry.mutation
    async def delete_product(self, info: Info, input: DeleteProductInput) -> DeleteProductResult:
        async def success(written: Written) -> DeleteProductSuccess:
            info.context.loaders.forget(written.entity_id)
            return DeleteProductSuccess(deleted_id=strawberry.ID(str(input.id)))

        return await run_command(info, input.command, success)


# In place, as the other enums (schema/nodes.py): an event type added is in the schema.
strawberry.enum(ProductChangeType, name="ProductEventType")


@strawberry.type(
    description="A change to a product, with the product as the read model shows it when the "
    "event is delivered: it includes this change, and may include later ones (in a burst of "
    "changes, or when replayed with `after`)."
)
class ProductEvent:
    position: str = strawberry.field(description="Pass as `after` to resume after this event.")
    occurred_at: datetime
    type: ProductChangeType
    product: Product


@strawberry.type
class ProductSubscriptions:
    @strawberry.subscription(
        description="Product events as they happen; with `after`, the missed ones first."
    )
    async def product_events(
        self, info: Info, product_id: relay.GlobalID | None = None, after: str | None = None
    ) -> AsyncGenerator[ProductEvent, None]:
        # Not a generator itself: its arguments are checked before the stream exists, so a
        # bad one is the protocol's `error` message rather than a `next` with errors.
        watched = None
        if product_id is not None:
            if product_id.type_name != PRODUCT:
                raise UserInputError(f"{product_id} is not a product id")
            watched = product_id.node_id
        request = WatchProducts(product_id=watched, after=parse_position(after))
        return _product_events(info, request)


async def _product_events(info: Info, request: WatchProducts) -> AsyncGenerator[ProductEvent, None]:
    async for change in watch(info, request):
        yield ProductEvent(
            position=str(change.position),
            occurred_at=change.occurred_at,
            type=change.type,
            product=Product.from_view(change.product),
        )
