"""Products in GraphQL: `product` and `products`, the catalog's mutations and the
productEvents subscription. The product type is in schema/nodes.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Protocol, TypeVar

import strawberry

from domain.products import MAX_DESCRIPTION, MAX_NAME
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.paging import DEFAULT_PAGE_SIZE, MAX_SEARCH_LENGTH
from handlers.products import (
    CreateProduct,
    DeleteProduct,
    ListProducts,
    RestockProduct,
    UpdateProduct,
    WatchProducts,
)
from handlers.written import Written
from mediator import Command
from schema.context import Info
from schema.enums import ProductChangeType, ProductSort
from schema.errors import (
    ConflictError,
    Error,
    NotAuthorizedError,
    NotFoundError,
    ValidationError,
    filter_id,
)
from schema.ids import global_id, local_id, read_id
from schema.messages import ask, read_back, run_command, watch
from schema.nodes import PRODUCT, Product, ProductConnection, live_product
from schema.pagination import (
    AFTER,
    AFTER_POSITION,
    FIRST,
    POSITION,
    Edge,
    page_info,
    parse_position,
)


@strawberry.type
class ProductQueries:
    @strawberry.field(description="A product by its id; null if there is none (or it was deleted).")
    async def product(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The product's global id (Product.id)."),
        ],
    ) -> Product | None:
        local = read_id(id, PRODUCT)
        if local is None:
            return None
        return live_product(await info.context.loaders.products.load(local))

    @strawberry.field(description="The catalog, a page at a time (at most 100 per page).")
    async def products(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Name or SKU contains this, case-insensitively; at most "
                f"{MAX_SEARCH_LENGTH} characters."
            ),
        ] = None,
        in_stock: Annotated[
            bool | None,
            strawberry.argument(
                description="True: only products with stock above 0; false: only those with "
                "none; null: both."
            ),
        ] = None,
        sort: Annotated[
            ProductSort, strawberry.argument(description="The order of the list (by name).")
        ] = ProductSort.NAME_ASC,
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
CURRENCY = "A three-letter ISO 4217 code in capitals, such as USD."
PRICE = (
    'The unit price, a Decimal string such as "19.50": at least 0, less than 1000000000000, '
    "with at most 4 decimal places."
)
PRODUCT_ID = "The product's global id (Product.id)."
EXPECTED_VERSION = (
    "The product's `version` as you last read it: the change is refused with a ConflictError "
    "if the product has changed since. Null changes it whatever its version."
)
CREATE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input returns the "
    "first product, as it is now, and creates no other."
)
CHANGE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input changes "
    "nothing and returns the product as it is now."
)


@strawberry.input(description="A new product for the catalog.")
class CreateProductInput:
    sku: str = strawberry.field(description=f"{SKU} Unique: a taken SKU is a ValidationError.")
    name: str = strawberry.field(description=NAME)
    price: Decimal = strawberry.field(description=PRICE)
    currency: str = strawberry.field(default="USD", description=CURRENCY)
    description: str = strawberry.field(default="", description=DESCRIPTION)
    stock: int = strawberry.field(
        default=0, description="Units on hand to start with: 0 to 1000000000."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=CREATE_KEY)

    def command(self) -> CreateProduct:
        return CreateProduct(**asdict(self))


@strawberry.input(
    description="The product details to change; a field left out or null stays as it is."
)
class UpdateProductInput:
    id: strawberry.ID = strawberry.field(description=PRODUCT_ID)
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    name: str | None = strawberry.field(default=None, description=NAME)
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    price: Decimal | None = strawberry.field(default=None, description=PRICE)
    currency: str | None = strawberry.field(default=None, description=CURRENCY)
    idempotency_key: str | None = strawberry.field(default=None, description=CHANGE_KEY)

    def command(self) -> UpdateProduct:
        fields = dict(vars(self))  # not asdict: it would take the GlobalID apart
        return UpdateProduct(product_id=local_id(fields.pop("id"), PRODUCT), **fields)


@strawberry.input(description="Stock to add to a product.")
class RestockProductInput:
    id: strawberry.ID = strawberry.field(description=PRODUCT_ID)
    quantity: int = strawberry.field(
        description="Units to add: at least 1, and the stock may not exceed 1000000000."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=CHANGE_KEY)

    def command(self) -> RestockProduct:
        fields = dict(vars(self))
        return RestockProduct(product_id=local_id(fields.pop("id"), PRODUCT), **fields)


@strawberry.input(
    description="A product to take out of the catalog. Orders already placed keep their lines."
)
class DeleteProductInput:
    id: strawberry.ID = strawberry.field(
        description=f"{PRODUCT_ID} Deleting it again is a NotFoundError."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)

    def command(self) -> DeleteProduct:
        return DeleteProduct(local_id(self.id, PRODUCT), expected_version=self.expected_version)


@strawberry.type(description="The product was created.")
class CreateProductSuccess:
    product: Product = strawberry.field(description="The new product, at version 1.")


@strawberry.type(description="The product was changed.")
class UpdateProductSuccess:
    product: Product = strawberry.field(description="The product as it is after the change.")


@strawberry.type(description="The stock was added.")
class RestockProductSuccess:
    product: Product = strawberry.field(description="The product with its new stock.")


@strawberry.type(description="The product was deleted.")
class DeleteProductSuccess:
    deleted_id: strawberry.ID = strawberry.field(
        description="The deleted product's global id, to drop it from a client's cache."
    )


# Each union lists the errors its mutation can return, and only those (schema/results.py).
CreateProductResult = Annotated[
    CreateProductSuccess | ValidationError | NotAuthorizedError,
    strawberry.union(
        "CreateProductResult",
        description="The new product, or why it was refused: ValidationError (including a "
        "taken SKU) or NotAuthorizedError (staff only).",
    ),
]
UpdateProductResult = Annotated[
    UpdateProductSuccess | ValidationError | NotFoundError | ConflictError | NotAuthorizedError,
    strawberry.union(
        "UpdateProductResult",
        description="The changed product, or why it was refused: ValidationError, "
        "NotFoundError (no such product, or deleted), ConflictError (a stale "
        "expectedVersion) or NotAuthorizedError (staff only).",
    ),
]
RestockProductResult = Annotated[
    RestockProductSuccess | ValidationError | NotFoundError | ConflictError | NotAuthorizedError,
    strawberry.union(
        "RestockProductResult",
        description="The restocked product, or why it was refused: ValidationError (the "
        "quantity), NotFoundError, ConflictError or NotAuthorizedError (staff only).",
    ),
]
DeleteProductResult = Annotated[
    DeleteProductSuccess | NotFoundError | ConflictError | NotAuthorizedError,
    strawberry.union(
        "DeleteProductResult",
        description="The deleted product's id, or why it was refused: NotFoundError (no such "
        "product, or already deleted), ConflictError or NotAuthorizedError (staff only).",
    ),
]

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class _ProductSuccess(Protocol[S_co]):
    """A mutation's Success type, made from the product it wrote."""

    def __call__(self, *, product: Product) -> S_co: ...


async def product_result(
    info: Info,
    build: Callable[[], Command[Written]],
    success: _ProductSuccess[S],
    result: object,
) -> S | Error:
    """Send the command `build` makes: `success` with the product as the command wrote it,
    or the refusal as one of the errors the mutation's `result` union lists."""

    async def present(written: Written) -> S:
        loaders = info.context.loaders
        view = await read_back(loaders, loaders.products, written)
        return success(product=Product.from_view(view))

    return await run_command(info, build, present, result)


STAFF_ONLY = " Staff only: others get a NotAuthorizedError."


@strawberry.type
class ProductMutations:
    @strawberry.mutation(
        graphql_type=CreateProductResult,
        description="Add a product to the catalog." + STAFF_ONLY,
    )
    async def create_product(
        self,
        info: Info,
        input: Annotated[CreateProductInput, strawberry.argument(description="The product.")],
    ) -> CreateProductSuccess | Error:
        return await product_result(info, input.command, CreateProductSuccess, CreateProductResult)

    @strawberry.mutation(
        graphql_type=UpdateProductResult,
        description="Change a product's name, description or price." + STAFF_ONLY,
    )
    async def update_product(
        self,
        info: Info,
        input: Annotated[
            UpdateProductInput, strawberry.argument(description="The product and the changes.")
        ],
    ) -> UpdateProductSuccess | Error:
        return await product_result(info, input.command, UpdateProductSuccess, UpdateProductResult)

    @strawberry.mutation(
        graphql_type=RestockProductResult,
        description="Add stock to a product." + STAFF_ONLY,
    )
    async def restock_product(
        self,
        info: Info,
        input: Annotated[
            RestockProductInput, strawberry.argument(description="The product and the quantity.")
        ],
    ) -> RestockProductSuccess | Error:
        return await product_result(
            info, input.command, RestockProductSuccess, RestockProductResult
        )

    @strawberry.mutation(
        graphql_type=DeleteProductResult,
        description="Take a product out of the catalog: it can no longer be read or ordered, "
        "and lines of existing orders show it as null." + STAFF_ONLY,
    )
    async def delete_product(
        self,
        info: Info,
        input: Annotated[DeleteProductInput, strawberry.argument(description="The product.")],
    ) -> DeleteProductSuccess | Error:
        async def success(written: Written) -> DeleteProductSuccess:
            info.context.loaders.forget(written.entity_id)
            return DeleteProductSuccess(
                deleted_id=strawberry.ID(global_id(PRODUCT, written.entity_id))
            )

        return await run_command(info, input.command, success, DeleteProductResult)


@strawberry.type(
    description="A change to a product, with the product as the read model shows it when the "
    "event is delivered: it includes this change, and may include later ones (in a burst of "
    "changes, or when replayed with `after`)."
)
class ProductEvent:
    position: str = strawberry.field(description=POSITION)
    occurred_at: datetime = strawberry.field(description="When the change was made.")
    type: ProductChangeType = strawberry.field(description="What happened.")
    product: Product = strawberry.field(
        description="The product as the read model shows it now (see the type's description); "
        "a deleted product is shown as it was when deleted."
    )


@strawberry.type
class ProductSubscriptions:
    @strawberry.subscription(
        description="Product events as they happen; with `after`, the missed ones first."
    )
    async def product_events(
        self,
        info: Info,
        product_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this product's events; null for every product."),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_POSITION)] = None,
    ) -> AsyncGenerator[ProductEvent, None]:
        # Not a generator itself: its arguments are checked before the stream exists, so a
        # bad one is the protocol's `error` message rather than a `next` with errors.
        request = WatchProducts(
            product_id=filter_id(product_id, PRODUCT), after=parse_position(after)
        )
        return _product_events(info, request)


async def _product_events(info: Info, request: WatchProducts) -> AsyncGenerator[ProductEvent, None]:
    async for change in watch(info, request):
        yield ProductEvent(
            position=str(change.position),
            occurred_at=change.occurred_at,
            type=change.type,
            product=Product.from_view(change.product),
        )
