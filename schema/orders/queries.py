"""The order queries: `order` by id and the `orders` list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from handlers.orders import ListOrders, OrderFilter
from handlers.paging import DEFAULT_PAGE_SIZE
from schema.context import Info
from schema.enums import OrderSort
from schema.errors import filter_id
from schema.ids import read_id
from schema.messages import ask
from schema.nodes import (
    CUSTOMER,
    ORDER,
    Order,
    OrderConnection,
    SortArgument,
    StatusArgument,
    order_connection,
)
from schema.pagination import AFTER, FIRST


@strawberry.type
class OrderListQueries:
    @strawberry.field(
        description="Orders, a page at a time (at most 100 per page): staff see all, a "
        "customer its own, anonymous callers none. `placedAfter` is inclusive, "
        "`placedBefore` exclusive."
    )
    async def orders(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE_SIZE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        customer_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this customer's orders (Customer.id); null for all the caller "
                "may see. Another type's id is BAD_USER_INPUT."
            ),
        ] = None,
        status: StatusArgument = None,
        placed_after: Annotated[
            datetime | None,
            strawberry.argument(description="Only orders placed at or after this instant."),
        ] = None,
        placed_before: Annotated[
            datetime | None,
            strawberry.argument(description="Only orders placed before this instant."),
        ] = None,
        sort: SortArgument = OrderSort.NEWEST,
    ) -> OrderConnection:
        wanted = OrderFilter(
            customer_id=filter_id(customer_id, CUSTOMER, "customerId"),
            status=status,
            placed_after=placed_after,
            placed_before=placed_before,
        )
        page = await ask(info, ListOrders(first=first, after=after, filter=wanted, sort=sort))
        return await order_connection(info, page, wanted)


@strawberry.type
class OrderQueries(OrderListQueries):
    @strawberry.field(description="An order by id; another customer's order reads as null.")
    async def order(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The order's global id (Order.id).")
        ],
    ) -> Order | None:
        local = read_id(id, ORDER)
        if local is None:
            return None
        view = await info.context.loaders.orders.load(local)
        return Order.from_view(view) if view is not None else None
