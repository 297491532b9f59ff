"""Products: the live stream of catalog changes, and the views its events carry."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from domain.products import (
    Product,
    ProductCreated,
    ProductDeleted,
    ProductRestocked,
    ProductUpdated,
    StockReleased,
    StockReserved,
)
from handlers.access import identity_of
from handlers.products.queries import ProductView, load_product_views
from mediator import Context, StreamRequest
from persistence.event_tail import EventTail
from persistence.tail_events import TailEvent, ViewLoader


class ProductChangeType(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    RESTOCKED = "RESTOCKED"
    DELETED = "DELETED"


_CHANGE_TYPES = {
    ProductCreated: ProductChangeType.CREATED,
    ProductUpdated: ProductChangeType.UPDATED,
    # Stock taken or given back by orders changes the product as clients see it.
    StockReserved: ProductChangeType.UPDATED,
    StockReleased: ProductChangeType.UPDATED,
    ProductRestocked: ProductChangeType.RESTOCKED,
    ProductDeleted: ProductChangeType.DELETED,
}


@dataclass(frozen=True, slots=True)
class ProductChange:
    position: int
    occurred_at: datetime
    type: ProductChangeType
    product: ProductView


@dataclass(frozen=True, slots=True)
class WatchProducts(StreamRequest[ProductChange]):
    """Product events, live, for one product or all; `after` replays from that position first."""

    product_id: str | None = None
    after: int | None = None


# Each names an order and the quantity it took or gave back: who buys what, and when.
_STOCK_MOVES = frozenset({StockReserved, StockReleased})


async def watch_products(
    request: WatchProducts, ctx: Context, *, tail: EventTail, public_stock_events: bool = True
) -> AsyncIterator[ProductChange]:
    """With `public_stock_events` off, only staff see the stock orders move; everyone still
    sees the catalog's own changes (restocks included: the shop's doing, not a customer's),
    and every product view still shows the stock level, as the product queries do."""
    caller = identity_of(ctx)
    wanted = (
        set(_CHANGE_TYPES)
        if public_stock_events or (caller is not None and caller.is_staff)
        else set(_CHANGE_TYPES) - _STOCK_MOVES
    )

    def matches(event: TailEvent) -> bool:
        return type(event.stored.event) in wanted and (
            request.product_id is None or event.stored.stream_id == request.product_id
        )

    async for event in tail.subscribe(matches, after=request.after):
        if isinstance(event.view, ProductView):
            yield ProductChange(
                event.position,
                event.stored.occurred_at,
                _CHANGE_TYPES[type(event.stored.event)],
                event.view,
            )


VIEWS: Mapping[str, ViewLoader] = {Product.kind: load_product_views}
