"""Orders: placing them, moving them along, reading them, and their read models.

The package's face: the wiring (who may send what, what is idempotent or cached, and
`register`, the handlers the mediator gets) and every name other code imports from
`handlers.orders`. The messages and handlers live in one module per role:

- `commands`: PlaceOrder and the commands that move an order along;
- `queries`: GetOrders and GetOrderLines, and the order views;
- `lists`: ListOrders, CountOrders and FirstOrderPages, paged by keyset cursors;
- `read_model`: the ORDERS projection (order_summaries and order_lines);
- `events`: WatchOrders, the live order events of the orderEvents subscription.
- `expiry`: pending orders cancelled as expired (the due times and their timer).
- `reactions`: the customer's emails (confirmation, shipping, cancellation).
"""

from __future__ import annotations

from functools import partial

from domain.orders import ORDER_EVENTS, Order
from handlers.access import Identity, Policy, anyone, signed_in, staff
from handlers.feature import Feature, Wiring
from handlers.orders.commands import (
    CancelOrder,
    ConfirmOrder,
    DeliverOrder,
    LineRequest,
    PlaceOrder,
    ShipOrder,
    cancel_order,
    confirm_order,
    deliver_order,
    place_order,
    ship_order,
)
from handlers.orders.events import (
    VIEWS,
    OrderChange,
    OrderChangeType,
    OrderEventView,
    WatchOrders,
    load_order_event_views,
    watch_orders,
)
from handlers.orders.expiry import pending_order_timer, subscribe_due_times
from handlers.orders.lists import (
    CountOrders,
    FirstOrderPages,
    ListOrders,
    OrderFilter,
    OrderSort,
    count_orders,
    first_order_pages,
    list_orders,
)
from handlers.orders.queries import (
    GetOrderLines,
    GetOrders,
    OrderLineView,
    OrderView,
    get_order_lines,
    get_orders,
    load_order_views,
    may_see_order,
    order_line_view,
    order_view,
    visible_to,
)
from handlers.orders.reactions import subscribe_emails
from handlers.orders.read_model import ORDERS, order_rows_touched, project_orders
from handlers.query_cache import Cached
from handlers.transaction import writes
from mediator import Registry

__all__ = [
    "CACHED",
    "EVENT_TYPES",
    "FEATURE",
    "IDEMPOTENT",
    "ORDERS",
    "POLICIES",
    "VIEWS",
    "CancelOrder",
    "ConfirmOrder",
    "CountOrders",
    "DeliverOrder",
    "FirstOrderPages",
    "GetOrderLines",
    "GetOrders",
    "LineRequest",
    "ListOrders",
    "OrderChange",
    "OrderChangeType",
    "OrderEventView",
    "OrderFilter",
    "OrderLineView",
    "OrderSort",
    "OrderView",
    "PlaceOrder",
    "ShipOrder",
    "WatchOrders",
    "cancel_order",
    "confirm_order",
    "count_orders",
    "deliver_order",
    "first_order_pages",
    "get_order_lines",
    "get_orders",
    "list_orders",
    "load_order_event_views",
    "load_order_views",
    "may_see_order",
    "order_line_view",
    "order_rows_touched",
    "order_view",
    "place_order",
    "project_orders",
    "register",
    "ship_order",
    "visible_to",
    "watch_orders",
]


def _own_order(message: PlaceOrder, caller: Identity | None) -> bool:
    """Staff place orders for anyone; a customer for itself, named or not."""
    return caller is not None and (
        caller.is_staff or message.customer_id in (None, caller.customer_id)
    )


EVENT_TYPES = ORDER_EVENTS
POLICIES: dict[type, Policy] = {
    PlaceOrder: _own_order,
    ConfirmOrder: staff,
    ShipOrder: staff,
    DeliverOrder: staff,
    # A customer may cancel its own orders; the handler finds only those.
    CancelOrder: signed_in,
    GetOrders: anyone,
    GetOrderLines: anyone,
    # Lists show each caller what it may see (visible_to): anonymous callers, nothing.
    ListOrders: anyone,
    CountOrders: anyone,
    FirstOrderPages: anyone,
    # Signed in; which orders a customer sees is the stream handler's filter.
    WatchOrders: signed_in,
}
# What a retry gets back is the order, for a cancel too (which also changes products).
IDEMPOTENT: dict[type, str] = {
    PlaceOrder: Order.kind,
    ConfirmOrder: Order.kind,
    ShipOrder: Order.kind,
    DeliverOrder: Order.kind,
    CancelOrder: Order.kind,
}
# Per caller (the default): which orders a caller sees is part of every answer.
CACHED: dict[type, Cached] = {
    GetOrders: Cached(("orders",), lambda q: q.ids),
    GetOrderLines: Cached(("orders",), lambda q: q.order_ids),
    ListOrders: Cached(("orders",)),
    CountOrders: Cached(("orders",)),
    # Pages by customer: any order placed may change them.
    FirstOrderPages: Cached(("orders",)),
}


def register(registry: Registry, wiring: Wiring) -> None:
    new_id = partial(wiring.ids, Order.kind)
    registry.handle(PlaceOrder, writes(partial(place_order, new_id=new_id)))
    registry.handle(ConfirmOrder, writes(confirm_order))
    registry.handle(ShipOrder, writes(ship_order))
    registry.handle(DeliverOrder, writes(deliver_order))
    registry.handle(CancelOrder, writes(cancel_order))
    reads = wiring.read_engine
    registry.handle(GetOrders, partial(get_orders, read_engine=reads))
    registry.handle(GetOrderLines, partial(get_order_lines, read_engine=reads))
    # Lists, counts and pages per customer grow with the data (database.create_engine).
    scans = wiring.scan_engine
    registry.handle(ListOrders, partial(list_orders, read_engine=scans))
    registry.handle(CountOrders, partial(count_orders, read_engine=scans))
    registry.handle(FirstOrderPages, partial(first_order_pages, read_engine=scans))
    if wiring.tail is not None:
        registry.stream(WatchOrders, partial(watch_orders, tail=wiring.tail))
    subscribe_due_times(registry, wiring)
    subscribe_emails(registry, wiring)


FEATURE = Feature(
    "orders",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(ORDERS,),
    views=VIEWS,
    workers=(pending_order_timer,),
)
