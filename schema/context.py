"""What every resolver gets in `info.context`: the mediator, the request's context, loaders."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from domain.orders import OrderStatus
from handlers.customers import CustomerView, GetCustomers
from handlers.orders import (
    FirstOrderPages,
    GetOrderLines,
    GetOrders,
    OrderLineView,
    OrderSort,
    OrderView,
)
from handlers.paging import Page
from handlers.products import GetProducts, ProductView
from mediator import Context, Mediator, Query

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CustomerOrdersKey:
    """A customer's first page of orders, as `Customer.orders` asks for it."""

    customer_id: str
    first: int
    status: OrderStatus | None
    sort: OrderSort


async def _first_order_pages(
    mediator: Mediator, ctx: Context, keys: list[CustomerOrdersKey]
) -> list[Page[OrderView]]:
    """One FirstOrderPages (one statement) per distinct page shape; usually there is one."""
    shapes: dict[tuple[int, OrderStatus | None, OrderSort], list[str]] = {}
    for key in keys:
        shapes.setdefault((key.first, key.status, key.sort), []).append(key.customer_id)
    pages: dict[CustomerOrdersKey, Page[OrderView]] = {}
    for (first, status, sort), customer_ids in shapes.items():
        found = await mediator.send(
            FirstOrderPages(tuple(dict.fromkeys(customer_ids)), first, status, sort), ctx
        )
        for customer_id, page in found.items():
            pages[CustomerOrdersKey(customer_id, first, status, sort)] = page
    return [pages[key] for key in keys]


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

        async def load_customer_orders(keys: list[CustomerOrdersKey]) -> list[Page[OrderView]]:
            return await _first_order_pages(mediator, ctx, keys)

        self.customer_orders = DataLoader[CustomerOrdersKey, Page[OrderView]](
            load_fn=load_customer_orders
        )

    def forget(self, entity_id: str) -> None:
        """Drop what this request cached of an entity it has just changed."""
        loaders: tuple[DataLoader[str, Any], ...] = (self.products, self.customers, self.orders)
        for loader in loaders:
            # Strawberry's clear() raises KeyError for a key it never loaded.
            with contextlib.suppress(KeyError):
                loader.clear(entity_id)
        # Keyed by customer and page shape: any change may move an order between pages.
        self.customer_orders.clear_all()


@dataclass
class RequestContext:
    """One per HTTP request, or one per websocket connection.

    A websocket runs many operations at once over one RequestContext, so its loaders are
    the operation's own (`start_operation`, in each operation's task): a cache shared by
    the whole connection would serve stale rows for as long as the socket lives.
    """

    mediator: Mediator
    ctx: Context
    request_loaders: Loaders
    issue_customer_token: Callable[[str], str]
    request: Any = None
    response: Any = None
    # Set by Strawberry on websockets from the `connection_init` payload.
    connection_params: dict[str, object] | None = field(default=None)

    @property
    def loaders(self) -> Loaders:
        return _operation_loaders.get() or self.request_loaders

    @loaders.setter
    def loaders(self, loaders: Loaders) -> None:
        _operation_loaders.set(loaders)

    def start_operation(self) -> None:
        """Fresh loaders for the operation this task runs (call it in that task)."""
        _operation_loaders.set(Loaders(self.mediator, self.ctx))


_operation_loaders: ContextVar[Loaders | None] = ContextVar("operation_loaders", default=None)


Info: TypeAlias = strawberry.Info[RequestContext, None]
