"""What every resolver gets in `info.context`: the mediator, the request's context, loaders."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry
from strawberry.dataloader import DataLoader

from handlers.products import GetProducts, ProductView
from mediator import Context, Mediator


class Loaders:
    """Per-request DataLoaders: each batch is one query, whatever the number of keys."""

    def __init__(self, mediator: Mediator, ctx: Context) -> None:
        async def load_products(ids: list[str]) -> list[ProductView | None]:
            found = await mediator.send(GetProducts(tuple(ids)), ctx)
            return [found.get(product_id) for product_id in ids]

        self.products = DataLoader[str, ProductView | None](load_fn=load_products)

    def forget_product(self, product_id: str) -> None:
        # Strawberry's clear() raises KeyError for a key it never loaded.
        with contextlib.suppress(KeyError):
            self.products.clear(product_id)


@dataclass
class RequestContext:
    mediator: Mediator
    ctx: Context
    loaders: Loaders
    request: Any = None
    response: Any = None
    # Set by Strawberry on websockets from the `connection_init` payload.
    connection_params: dict[str, object] | None = field(default=None)


Info: TypeAlias = strawberry.Info[RequestContext, None]
