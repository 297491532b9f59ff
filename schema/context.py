"""What every resolver gets in `info.context`: the mediator, the request's context, loaders."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from handlers.customers import CustomerView, GetCustomers
from handlers.orders import GetOrderLines, GetOrders, OrderLineView, OrderView
from handlers.products import GetProducts, ProductView
from mediator import Context, Mediator, Query

V = TypeVar("V")


class Loaders:
    """Per-request DataLoaders: each batch is one query (one SQL statement), whatever the
    number of keys, so a nested field costs one statement per level, not one per row."""

    def __init__(self, mediator: Mediator, ctx: Context) -> None:
        def by_id(
            ask: Callable[[tuple[str, ...]], Query[dict[str, V]]], missing: Callable[[], Any]
        ) -> Callable[[list[str]], Awaitable[list[Any]]]:
            async def load(ids: list[str]) -> list[Any]:
                found = await mediator.send(ask(tuple(ids)), ctx)
                return [found.get(key, missing()) for key in ids]

            return load

        self.products = DataLoader[str, ProductView | None](
            load_fn=by_id(GetProducts, lambda: None)
        )
        self.customers = DataLoader[str, CustomerView | None](
            load_fn=by_id(GetCustomers, lambda: None)
        )
        self.orders = DataLoader[str, OrderView | None](load_fn=by_id(GetOrders, lambda: None))
        self.order_lines = DataLoader[str, list[OrderLineView]](load_fn=by_id(GetOrderLines, list))

    def forget(self, entity_id: str) -> None:
        """Drop what this request cached of an entity it has just changed."""
        loaders: tuple[DataLoader[str, Any], ...] = (self.products, self.customers, self.orders)
        for loader in loaders:
            # Strawberry's clear() raises KeyError for a key it never loaded.
            with contextlib.suppress(KeyError):
                loader.clear(entity_id)


@dataclass
class RequestContext:
    mediator: Mediator
    ctx: Context
    loaders: Loaders
    issue_customer_token: Callable[[str], str]
    request: Any = None
    response: Any = None
    # Set by Strawberry on websockets from the `connection_init` payload.
    connection_params: dict[str, object] | None = field(default=None)


Info: TypeAlias = strawberry.Info[RequestContext, None]
