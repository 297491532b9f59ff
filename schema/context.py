"""What every resolver gets in `info.context`: the mediator, the request's context, loaders."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
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
    number of keys, so a nested field costs one statement per level, not one per row.

    Each is made on first use: most requests need one or two of them, and every request
    (`{__typename}` too) makes a Loaders.
    """

    def __init__(self, mediator: Mediator, ctx: Context) -> None:
        self._mediator = mediator
        self._ctx = ctx

    def _by_id(
        self, ask: Callable[[tuple[str, ...]], Query[dict[str, V]]], missing: Callable[[], Any]
    ) -> Callable[[list[str]], Awaitable[list[Any]]]:
        mediator, ctx = self._mediator, self._ctx

        async def load(ids: list[str]) -> list[Any]:
            # Sorted: the same rows asked in another order are the same query (and the same
            # query cache entry).
            found = await mediator.send(ask(tuple(sorted(set(ids)))), ctx)
            return [found.get(key, missing()) for key in ids]

        return load

    @cached_property
    def products(self) -> DataLoader[str, ProductView | None]:
        return DataLoader(load_fn=self._by_id(GetProducts, lambda: None))

    @cached_property
    def customers(self) -> DataLoader[str, CustomerView | None]:
        return DataLoader(load_fn=self._by_id(GetCustomers, lambda: None))

    @cached_property
    def orders(self) -> DataLoader[str, OrderView | None]:
        return DataLoader(load_fn=self._by_id(GetOrders, lambda: None))

    @cached_property
    def order_lines(self) -> DataLoader[str, list[OrderLineView]]:
        return DataLoader(load_fn=self._by_id(GetOrderLines, list))

    @cached_property
    def customer_orders(self) -> DataLoader[CustomerOrdersKey, Page[OrderView]]:
        mediator, ctx = self._mediator, self._ctx

        async def load(keys: list[CustomerOrdersKey]) -> list[Page[OrderView]]:
            return await _first_order_pages(mediator, ctx, keys)

        return DataLoader(load_fn=load)

    def forget(self, entity_id: str) -> None:
        """Drop what this request cached of an entity it has just changed."""
        made = self.__dict__
        for name in ("products", "customers", "orders"):
            loader: DataLoader[str, Any] | None = made.get(name)
            if loader is not None:
                # Strawberry's clear() raises KeyError for a key it never loaded.
                with contextlib.suppress(KeyError):
                    loader.clear(entity_id)
        # Keyed by customer and page shape: any change may move an order between pages.
        if "customer_orders" in made:
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
    # When the caller's token expires (POSIX seconds): a websocket outliving it is closed.
    credential_expires_at: float | None = None
    # The caller this websocket is counted for, against the cap on sockets per caller.
    socket_subject: str | None = None

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
